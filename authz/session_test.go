package authz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// sessionFixture is an Engine on testdata/session.yaml (or a variant) with
// its revocations file next to it.
type sessionFixture struct {
	*engineFixture
	dir string
}

// revokedBefore is the `before` of every entry of the fixture's
// revocations file; tokens are issued a minute earlier unless told.
var revokedBefore = time.Now().Add(time.Hour).UTC().Truncate(time.Second)

func revocationsYAML(before time.Time) string {
	b := before.Format(time.RFC3339)
	return "revoked:\n" +
		"  - {email: Revoked@Example.COM, before: " + b + "}\n" +
		"  - {sub: sub-revoked, before: " + b + "}\n"
}

func newSessionFixture(t *testing.T, edit func(string) string) *sessionFixture {
	t.Helper()
	priv := testkit.ES256(t, "k1")
	dir := t.TempDir()
	policy, err := os.ReadFile("testdata/session.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(policy)
	if edit != nil {
		src = edit(src)
	}
	for name, data := range map[string][]byte{
		"jwks.json":    testkit.JWKS(t, priv),
		"session.yaml": []byte(src),
		"revoked.yaml": []byte(revocationsYAML(revokedBefore)),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ps, err := policies.Load(filepath.Join(dir, "session.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := New(fileKeySource{})
	e.Swap(ps)
	return &sessionFixture{engineFixture: &engineFixture{t: t, engine: e, key: priv}, dir: dir}
}

// sessionToken mints a token for email with sub and iat (zero iat: none).
func (f *sessionFixture) sessionToken(email, sub string, iat time.Time, extra ...string) string {
	f.t.Helper()
	b := jwt.NewBuilder().Issuer("https://team.example.com").Audience([]string{"aud-dashboard"}).
		Expiration(time.Now().Add(2*time.Hour)).Claim("email", email)
	if sub != "" {
		b = b.Subject(sub)
	}
	if !iat.IsZero() {
		b = b.IssuedAt(iat)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		b = b.Claim(extra[i], extra[i+1])
	}
	tok, err := b.Build()
	if err != nil {
		f.t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, f.key))
	if err != nil {
		f.t.Fatal(err)
	}
	return "CF_Authorization=" + string(signed)
}

func bound(r *Request, app string) *Request {
	r.Application = app
	r.ApplicationBound = true
	return r
}

// TestBinding: contract §10. The route's binding chooses the application;
// the host must still be one of its hosts; §3's path rules, policy paths
// and preflights are unchanged.
func TestBinding(t *testing.T) {
	f := newSessionFixture(t, nil)
	staff := f.sessionToken("alice@example.com", "", time.Now().Add(-time.Minute), "dept", "eng")
	root := f.sessionToken("root@example.com", "", time.Now().Add(-time.Minute))
	tests := []struct {
		name        string
		give        *Request
		wantStatus  int
		wantReason  Reason
		wantApp     string
		wantPolicy  string
		wantVary    bool
		wantNoCORSH bool
	}{
		// The control: the lookup judges /ADMIN;x/users as the dashboard
		// (admin is case-sensitive), and staff get in.
		{"unbound trick reaches the dashboard", req("GET", "app.example.com", "/ADMIN;x/users", "cookie", staff), 200, ReasonAllowed, "dashboard", "staff", true, false},
		// Bound to admin by the route, the string no longer matters.
		{"bound trick judged as admin", bound(req("GET", "app.example.com", "/ADMIN;x/users", "cookie", staff), "admin"), 403, ReasonNoPolicyMatch, "admin", "", false, false},
		{"bound admin, admin user", bound(req("GET", "app.example.com", "/anything", "cookie", root), "admin"), 200, ReasonAllowed, "admin", "root", false, false},
		{"bound wildcard host", bound(req("GET", "x.app.example.com", "/", "cookie", staff), "dashboard"), 200, ReasonAllowed, "dashboard", "staff", true, false},
		{"host with port", bound(req("GET", "API.example.com:8443", "/", "cookie", staff), "api"), 200, ReasonAllowed, "api", "anyone", false, false},
		{"unknown name beats default_action allow", bound(req("GET", "app.example.com", "/", "cookie", staff), "nope"), 403, ReasonNoApplication, "", "", false, false},
		{"empty name present", bound(req("GET", "app.example.com", "/", "cookie", staff), ""), 403, ReasonNoApplication, "", "", false, false},
		{"name compares exactly", bound(req("GET", "app.example.com", "/", "cookie", staff), "Dashboard"), 403, ReasonNoApplication, "", "", false, false},
		{"host not covered", bound(req("GET", "api.example.com", "/", "cookie", staff), "dashboard"), 403, ReasonApplicationMismatch, "dashboard", "", true, true},
		{"two labels under a wildcard", bound(req("GET", "a.b.app.example.com", "/", "cookie", staff), "dashboard"), 403, ReasonApplicationMismatch, "dashboard", "", true, true},
		{"mismatch shows no CORS", bound(req("GET", "api.example.com", "/", "cookie", staff, "origin", "https://www.example.com"), "dashboard"), 403, ReasonApplicationMismatch, "dashboard", "", true, true},
		{"refused path still 400", bound(req("GET", "app.example.com", "/a/%2e%2e/admin", "cookie", staff), "dashboard"), 400, ReasonBadRequest, "", "", true, false},
		{"bad host still 400", bound(req("GET", "app..example.com", "/", "cookie", staff), "dashboard"), 400, ReasonBadRequest, "", "", true, false},
		{"policy paths still apply", bound(req("GET", "app.example.com", "/healthz"), "dashboard"), 200, ReasonBypass, "dashboard", "health", true, false},
		{"policy paths on the normalized path", bound(req("GET", "app.example.com", "//healthz;x"), "dashboard"), 200, ReasonBypass, "dashboard", "health", true, false},
		{"preflight still answered", bound(req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "GET"), "dashboard"), 204, ReasonPreflight, "dashboard", "", true, false},
		{"a client header is no binding", req("GET", "app.example.com", "/admin/x", "cookie", staff, "x-accessgate-application", "dashboard"), 403, ReasonNoPolicyMatch, "admin", "", false, false},
		{"unbound unknown host under default allow", req("GET", "elsewhere.example.org", "/"), 200, ReasonNoApplication, "", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason || d.Application != tt.wantApp || d.Policy != tt.wantPolicy {
				t.Errorf("Decide = %d %q app %q policy %q, want %d %q app %q policy %q",
					d.Status, d.Reason, d.Application, d.Policy, tt.wantStatus, tt.wantReason, tt.wantApp, tt.wantPolicy)
			}
			if v, _ := header(d.ResponseHeaders, hdrVary); (v != "") != tt.wantVary {
				t.Errorf("Vary = %q, want present %v", v, tt.wantVary)
			}
			if tt.wantNoCORSH && hasACAHeaders(d.ResponseHeaders) {
				t.Errorf("a refused binding carries CORS headers: %v", d.ResponseHeaders)
			}
			if got := UnknownBinding(tt.give, &d); got != (tt.give.Bound() && tt.wantReason == ReasonNoApplication) {
				t.Errorf("UnknownBinding = %v", got)
			}
		})
	}
}

func TestRequireApplicationBinding(t *testing.T) {
	f := newSessionFixture(t, func(s string) string { return "require_application_binding: true\n" + s })
	staff := f.sessionToken("alice@example.com", "", time.Now().Add(-time.Minute), "dept", "eng")
	tests := []struct {
		name       string
		give       *Request
		wantStatus int
		wantReason Reason
	}{
		{"unbound", req("GET", "app.example.com", "/", "cookie", staff), 403, ReasonNoApplication},
		{"unbound unknown host beats default_action", req("GET", "elsewhere.example.org", "/"), 403, ReasonNoApplication},
		{"unbound preflight", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "GET"), 403, ReasonNoApplication},
		{"bound", bound(req("GET", "app.example.com", "/", "cookie", staff), "dashboard"), 200, ReasonAllowed},
		{"bound without the flag", &Request{Method: "GET", Scheme: "https", Host: "app.example.com", Path: "/", Headers: map[string]string{"cookie": staff}, Application: "dashboard"}, 200, ReasonAllowed},
	}
	for _, tt := range tests {
		d := f.engine.Decide(context.Background(), tt.give)
		if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
			t.Errorf("%s: Decide = %d %q, want %d %q", tt.name, d.Status, d.Reason, tt.wantStatus, tt.wantReason)
		}
	}
}

// TestBindingFromFact: a binding from the §7 X-Accessgate-Application fact
// counts only under require_application_binding (contract §7): without it
// the host-and-path lookup decides, so a proxy configuration that forgets
// to overwrite the header cannot let a client choose its application.
func TestBindingFromFact(t *testing.T) {
	fact := func(r *Request, name string) *Request {
		r.Application, r.ApplicationBound, r.ApplicationFromFact = name, true, true
		return r
	}
	for _, tt := range []struct {
		name       string
		require    bool
		give       func(staff string) *Request
		wantStatus int
		wantReason Reason
		wantApp    string
	}{
		{"ignored without the flag", false, func(staff string) *Request {
			return fact(req("GET", "app.example.com", "/ADMIN;x/users", "cookie", staff), "admin")
		}, 200, ReasonAllowed, "dashboard"},
		{"unknown name ignored without the flag", false, func(staff string) *Request {
			return fact(req("GET", "app.example.com", "/", "cookie", staff), "nope")
		}, 200, ReasonAllowed, "dashboard"},
		{"read under the flag", true, func(staff string) *Request {
			return fact(req("GET", "app.example.com", "/ADMIN;x/users", "cookie", staff), "admin")
		}, 403, ReasonNoPolicyMatch, "admin"},
		{"unknown name under the flag", true, func(staff string) *Request {
			return fact(req("GET", "app.example.com", "/", "cookie", staff), "nope")
		}, 403, ReasonNoApplication, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			edit := func(s string) string { return s }
			if tt.require {
				edit = func(s string) string { return "require_application_binding: true\n" + s }
			}
			f := newSessionFixture(t, edit)
			staff := f.sessionToken("alice@example.com", "", time.Now().Add(-time.Minute), "dept", "eng")
			r := tt.give(staff)
			d := f.engine.Decide(context.Background(), r)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason || d.Application != tt.wantApp {
				t.Errorf("Decide = %d %q app %q, want %d %q app %q", d.Status, d.Reason, d.Application, tt.wantStatus, tt.wantReason, tt.wantApp)
			}
			if got, want := UnknownBinding(r, &d), tt.require && tt.wantReason == ReasonNoApplication; got != want {
				t.Errorf("UnknownBinding = %v, want %v", got, want)
			}
		})
	}
}

// TestDecisionRule: §11's rule names, with the policy they belong to.
func TestDecisionRule(t *testing.T) {
	f := newSessionFixture(t, nil)
	iat := time.Now().Add(-time.Minute)
	tok := func(email string, extra ...string) string { return f.sessionToken(email, "", iat, extra...) }
	preflight := func(origin, method, headers string, extra ...string) *Request {
		return req("OPTIONS", "app.example.com", "/x", append([]string{"origin", origin, "access-control-request-method", method, "access-control-request-headers", headers}, extra...)...)
	}
	tests := []struct {
		name       string
		give       *Request
		wantReason Reason
		wantPolicy string
		wantRule   string
		wantSvc    string
		wantEmail  string
	}{
		{"allowed by the second include", req("GET", "app.example.com", "/", "cookie", tok("alice@example.com", "dept", "eng")), ReasonAllowed, "staff", "include[1].email_domain", "", "alice@example.com"},
		{"allowed by the first include", req("GET", "app.example.com", "/", "cookie", tok("boss@partner.org", "dept", "eng")), ReasonAllowed, "staff", "include[0].email", "", "boss@partner.org"},
		{"require failed", req("GET", "app.example.com", "/", "cookie", tok("boss@partner.org", "dept", "sales")), ReasonNoPolicyMatch, "staff", "require[1].claim", "", "boss@partner.org"},
		{"exclude matched", req("GET", "app.example.com", "/", "cookie", tok("mallory@example.com", "dept", "eng")), ReasonNoPolicyMatch, "staff", "exclude[0].email", "", "mallory@example.com"},
		{"no include matched", req("GET", "app.example.com", "/", "cookie", tok("eve@elsewhere.org", "dept", "eng")), ReasonNoPolicyMatch, "", "", "", "eve@elsewhere.org"},
		{"blocked", req("GET", "app.example.com", "/", "cookie", tok("bob@contractor.example.com")), ReasonBlocked, "block-contractors", "include[0].email_domain", "", "bob@contractor.example.com"},
		{"bypass", req("GET", "app.example.com", "/healthz"), ReasonBypass, "health", "include[0].everyone", "", ""},
		{"service token", req("GET", "app.example.com", "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "hello"), ReasonServiceToken, "bots", "include[1].service_token", "ci-bot", ""},
		{"token missing", req("GET", "app.example.com", "/"), ReasonTokenMissing, "", "", "", ""},
		{"no application", req("GET", "elsewhere.example.org", "/"), ReasonNoApplication, "", "", "", ""},
		{"preflight origin", preflight("https://evil.test", "GET", ""), ReasonPreflightOrigin, "", "cors.allow_origins", "", ""},
		{"preflight method", preflight("https://www.example.com", "PUT", ""), ReasonPreflightMethod, "", "cors.allow_methods", "", ""},
		{"preflight header", preflight("https://www.example.com", "GET", "x-secret"), ReasonPreflightHeader, "", "cors.allow_headers", "", ""},
		{"preflight private network", preflight("https://www.example.com", "GET", "", "access-control-request-private-network", "true"), ReasonPreflightPrivateNetwork, "", "cors.allow_private_network", "", ""},
		{"preflight allowed", preflight("https://www.example.com", "GET", "content-type"), ReasonPreflight, "", "", "", ""},
		{"revoked", req("GET", "app.example.com", "/", "cookie", tok("revoked@example.com", "dept", "eng")), ReasonTokenRevoked, "", "session.revoked", "", "revoked@example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			var email string
			if d.Identity != nil {
				email = d.Identity.Email
			}
			if d.Reason != tt.wantReason || d.Policy != tt.wantPolicy || d.Rule != tt.wantRule || d.ServiceToken != tt.wantSvc || email != tt.wantEmail {
				t.Errorf("Decide = %q policy %q rule %q svc %q email %q, want %q %q %q %q %q",
					d.Reason, d.Policy, d.Rule, d.ServiceToken, email, tt.wantReason, tt.wantPolicy, tt.wantRule, tt.wantSvc, tt.wantEmail)
			}
		})
	}
}

// TestRevocation: §11. A matching email (ASCII case-insensitive) or sub
// with iat at or before `before` is token_revoked, answered as every
// invalid token; no iat is before everything; no leeway.
func TestRevocation(t *testing.T) {
	f := newSessionFixture(t, nil)
	early := revokedBefore.Add(-time.Hour)
	tests := []struct {
		name       string
		cookie     string
		headers    []string
		wantStatus int
		wantReason Reason
	}{
		{"email, any case", f.sessionToken("REVOKED@example.com", "", early, "dept", "eng"), nil, 401, ReasonTokenRevoked},
		{"email, navigation redirects", f.sessionToken("revoked@example.com", "", early, "dept", "eng"), []string{"accept", "text/html"}, 302, ReasonTokenRevoked},
		{"sub", f.sessionToken("alice@example.com", "sub-revoked", early, "dept", "eng"), nil, 401, ReasonTokenRevoked},
		{"no iat", f.sessionToken("revoked@example.com", "", time.Time{}, "dept", "eng"), nil, 401, ReasonTokenRevoked},
		{"other user", f.sessionToken("alice@example.com", "sub-alice", early, "dept", "eng"), nil, 200, ReasonAllowed},
	}
	for _, tt := range tests {
		r := req("GET", "app.example.com", "/", append([]string{"cookie", tt.cookie}, tt.headers...)...)
		for i := 0; i < 2; i++ { // the second decision hits the token cache
			d := f.engine.Decide(context.Background(), r)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("%s (pass %d): Decide = %d %q, want %d %q", tt.name, i, d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
			if d.Reason == ReasonTokenRevoked && d.Status == 401 && !strings.Contains(d.Body, `"reason":"token_revoked"`) {
				t.Errorf("%s: body %s", tt.name, d.Body)
			}
		}
	}

	// A token issued a second after `before` passes: no leeway. The
	// engine's clock is real, so a token from the future would be
	// refused as not yet valid: move `before` into the past instead.
	past := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	writeRev(t, f.dir, revocationsYAML(past))
	rv, err := policies.LoadRevocations(filepath.Join(f.dir, "revoked.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.engine.SwapRevocations(rv) {
		t.Fatal("SwapRevocations refused a newer read")
	}
	for _, c := range []struct {
		iat  time.Time
		want Reason
	}{{past, ReasonTokenRevoked}, {past.Add(time.Second), ReasonAllowed}} {
		d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", f.sessionToken("revoked@example.com", "", c.iat, "dept", "eng")))
		if d.Reason != c.want {
			t.Errorf("iat %v, before %v: %q, want %q", c.iat, past, d.Reason, c.want)
		}
	}

	// The later read wins, whichever is swapped last.
	older := rv
	writeRev(t, f.dir, "revoked: []\n")
	newer, err := policies.LoadRevocations(filepath.Join(f.dir, "revoked.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !f.engine.SwapRevocations(newer) || f.engine.SwapRevocations(older) || f.engine.Revocations() != newer {
		t.Error("an older read of the file replaced a newer one")
	}

	// A policy file without revocations_file drops them.
	f2 := newSessionFixture(t, func(s string) string { return strings.Replace(s, "revocations_file: revoked.yaml\n", "", 1) })
	if f2.engine.Revocations() != nil {
		t.Error("revocations live without revocations_file")
	}
	d := f2.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", f2.sessionToken("revoked@example.com", "", early, "dept", "eng")))
	if d.Reason != ReasonAllowed {
		t.Errorf("without revocations_file: %q, want allowed", d.Reason)
	}
}

func writeRev(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "revoked.yaml"), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWebSocketOrigin: §11. An upgrade carrying an Origin that is neither
// the request's own nor listed explicitly is refused before bypass.
func TestWebSocketOrigin(t *testing.T) {
	f := newSessionFixture(t, nil)
	staff := f.sessionToken("alice@example.com", "", time.Now().Add(-time.Minute), "dept", "eng")
	ws := func(host, path, origin string, extra ...string) *Request {
		h := append([]string{"cookie", staff, "upgrade", "websocket", "connection", "Upgrade"}, extra...)
		if origin != "" {
			h = append(h, "origin", origin)
		}
		return req("GET", host, path, h...)
	}
	withoutConnection := ws("app.example.com", "/socket", "https://evil.test")
	delete(withoutConnection.Headers, "connection")
	fromHTTP := req("GET", "app.example.com", "/socket", "cookie", staff, "origin", "https://evil.test")
	fromHTTP.Upgrade = "websocket"
	plainScheme := ws("app.example.com", "/socket", "http://app.example.com")
	h2 := req("CONNECT", "app.example.com", "/socket", "cookie", staff, ":protocol", "websocket", "origin", "https://evil.test")
	tests := []struct {
		name       string
		give       *Request
		wantStatus int
		wantReason Reason
	}{
		{"own origin", ws("app.example.com", "/socket", "https://app.example.com"), 200, ReasonAllowed},
		{"own origin, default port on the host", ws("app.example.com:443", "/socket", "https://APP.example.com"), 200, ReasonAllowed},
		{"own origin, default port on the origin", ws("app.example.com", "/socket", "https://app.example.com:443"), 200, ReasonAllowed},
		{"own origin, other port", ws("app.example.com:8443", "/socket", "https://app.example.com:8443"), 200, ReasonAllowed},
		{"port differs", ws("app.example.com:8443", "/socket", "https://app.example.com"), 403, ReasonWebsocketOrigin},
		{"scheme differs", plainScheme, 403, ReasonWebsocketOrigin},
		{"listed origin", ws("app.example.com", "/socket", "https://www.example.com"), 200, ReasonAllowed},
		{"wildcard never qualifies", ws("app.example.com", "/socket", "https://other.example.com"), 403, ReasonWebsocketOrigin},
		{"foreign origin", ws("app.example.com", "/socket", "https://evil.test"), 403, ReasonWebsocketOrigin},
		{"before bypass", ws("app.example.com", "/healthz", "https://evil.test"), 403, ReasonWebsocketOrigin},
		{"null is never own", ws("app.example.com", "/socket", "null"), 403, ReasonWebsocketOrigin},
		{"any letter case", ws("app.example.com", "/socket", "https://evil.test", "upgrade", "WebSocket"), 403, ReasonWebsocketOrigin},
		{"among other protocols", ws("app.example.com", "/socket", "https://evil.test", "upgrade", "foo/1, websocket"), 403, ReasonWebsocketOrigin},
		{"without Connection", withoutConnection, 403, ReasonWebsocketOrigin},
		{"Upgrade from the HTTP endpoints", fromHTTP, 403, ReasonWebsocketOrigin},
		{"HTTP/2 extended CONNECT", h2, 403, ReasonWebsocketOrigin},
		{"origin with a path is no origin", ws("app.example.com", "/socket", "https://app.example.com/x"), 403, ReasonWebsocketOrigin},
		{"no Origin: judged as usual", ws("app.example.com", "/socket", ""), 200, ReasonAllowed},
		{"no Origin, no token", req("GET", "app.example.com", "/socket", "upgrade", "websocket"), 401, ReasonTokenMissing},
		{"not a WebSocket", ws("app.example.com", "/socket", "https://evil.test", "upgrade", "h2c"), 200, ReasonAllowed},
		{"app without cors, own origin", ws("api.example.com", "/", "https://api.example.com"), 200, ReasonAllowed},
		{"app without cors, other origin", ws("api.example.com", "/", "https://app.example.com"), 403, ReasonWebsocketOrigin},
		{"no application: default_action", ws("elsewhere.example.org", "/", "https://evil.test"), 200, ReasonNoApplication},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide(%s %s Origin %q) = %d %q, want %d %q", tt.give.Host, tt.give.Path, tt.give.Headers["origin"], d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
			if d.Reason == ReasonWebsocketOrigin && !strings.Contains(d.Body, `"websocket_origin"`) {
				t.Errorf("body %q does not name websocket_origin", d.Body)
			}
		})
	}
}

func TestWarnLimiter(t *testing.T) {
	l := NewWarnLimiter(time.Minute)
	t0 := time.Unix(1_800_000_000, 0)
	steps := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", 30 * time.Second, false},
		{"b", 30 * time.Second, true},
		{"a", 59 * time.Second, false},
		{"a", 60 * time.Second, true},
		{"b", 61 * time.Second, false},
	}
	for i, s := range steps {
		if got := l.Allow(s.key, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: Allow(%q, +%v) = %v, want %v", i, s.key, s.at, got, s.want)
		}
	}
	// Bounded: a flood of names keeps at most maxWarnKeys.
	for i := 0; i < 3*maxWarnKeys; i++ {
		l.Allow(fmt.Sprint("flood-", i), t0.Add(2*time.Minute))
	}
	if n := len(l.last); n > maxWarnKeys {
		t.Errorf("limiter holds %d keys, want at most %d", n, maxWarnKeys)
	}
}

// TestOwnOrigin: scheme and :authority compared, a default port equal to
// none, hosts ASCII case-insensitively; anything malformed is not own.
func TestOwnOrigin(t *testing.T) {
	tests := []struct {
		origin, scheme, host string
		want                 bool
	}{
		{"https://app.example.com", "https", "app.example.com", true},
		{"HTTPS://APP.example.com", "https", "app.example.com", true},
		{"https://app.example.com", "", "app.example.com", true}, // scheme unknown: https
		{"http://app.example.com", "", "app.example.com", false},
		{"http://app.example.com:80", "http", "app.example.com", true},
		{"http://app.example.com", "http", "app.example.com:80", true},
		{"https://app.example.com:443", "https", "app.example.com:443", true},
		{"https://app.example.com:80", "https", "app.example.com", false},
		{"https://app.example.com:8443", "https", "app.example.com:8443", true},
		{"https://app.example.com:08443", "https", "app.example.com:8443", false},
		{"https://[::1]:8443", "https", "[::1]:8443", true},
		{"https://[::1]", "https", "[::1]:443", true},
		{"https://[::1]", "https", "[::2]", false},
		{"https://app.example.com.", "https", "app.example.com", false},
		{"https://user@app.example.com", "https", "app.example.com", false},
		{"https://app.example.com/", "https", "app.example.com", false},
		{"https://app.example.com:", "https", "app.example.com", false},
		{"https://app.example.com:x", "https", "app.example.com", false},
		{"https://", "https", "", false},
		{"null", "https", "null", false},
		{"app.example.com", "https", "app.example.com", false},
		{"https://evil.test", "https", "app.example.com", false},
	}
	for _, tt := range tests {
		r := &Request{Scheme: tt.scheme, Host: tt.host}
		if got := ownOrigin(tt.origin, r); got != tt.want {
			t.Errorf("ownOrigin(%q, %s://%s) = %v, want %v", tt.origin, tt.scheme, tt.host, got, tt.want)
		}
	}
}
