package authz

// Request-level attacks (issue 6), each a named subtest against the real
// policy file (testdata/engine.yaml) and real signed tokens. The JWT attack
// table is TestVerifyAttacks (token_test.go); these tests attack everything
// around the token: the values that reach response headers, the login
// redirect, the host, the identity headers, service tokens, paths, token
// sources, CORS and the reason in a body.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// controlChars are the bytes that must never reach a header value: CR and
// LF split a header in two (response splitting), NUL truncates it.
const controlChars = "\r\n\x00"

// crlf is an injection attempt: a second header smuggled in a value.
const crlf = "\r\nSet-Cookie: pwned=1\r\n"

// assertNoControlChars fails when any header of d (response headers, and
// the headers set on the upstream request) holds CR, LF or NUL.
func assertNoControlChars(t *testing.T, d Decision) {
	t.Helper()
	for _, hs := range [][]Header{d.ResponseHeaders, d.Headers} {
		for _, h := range hs {
			if strings.ContainsAny(h.Key, controlChars) || strings.ContainsAny(h.Value, controlChars) {
				t.Errorf("Decide = %d %q: header %q: %q carries a control character", d.Status, d.Reason, h.Key, h.Value)
			}
		}
	}
	for _, name := range d.HeadersToRemove {
		if strings.ContainsAny(name, controlChars) {
			t.Errorf("Decide = %d %q: removal %q carries a control character", d.Status, d.Reason, name)
		}
	}
}

// assertLoginURL fails unless raw is the configured login_url of the team
// issuer (https://team.example.com/cdn-cgi/access/login/{host}?kid={aud}&
// redirect_url={redirect}) filled for wantHost: same scheme, host and path,
// and exactly the template's two query parameters.
func assertLoginURL(t *testing.T, raw, wantHost string) *url.URL {
	t.Helper()
	if strings.ContainsAny(raw, controlChars+" \t\\") {
		t.Errorf("login URL %q carries a control character, space or backslash", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("login URL %q: %v", raw, err)
	}
	if u.Scheme != "https" || u.Host != "team.example.com" || u.User != nil || u.Fragment != "" ||
		u.Path != "/cdn-cgi/access/login/"+wantHost || !strings.HasPrefix(raw, loginPrefix) {
		t.Errorf("login URL %q: want %s%s?...", raw, loginPrefix, wantHost)
	}
	q := u.Query()
	if len(q) != 2 || len(q["kid"]) != 1 || len(q["redirect_url"]) != 1 || q.Get("kid") == "" {
		t.Errorf("login URL %q: query %v, want exactly one kid and one redirect_url", raw, q)
	}
	return u
}

// loginURLOf returns the login URL of an unauthenticated answer: the
// Location of a 302, the login_url of a 401 body; "" for other answers.
func loginURLOf(t *testing.T, d Decision) string {
	t.Helper()
	switch d.Status {
	case 302:
		loc, ok := header(d.ResponseHeaders, hdrLocation)
		if !ok {
			t.Fatalf("302 without a Location: %v", d.ResponseHeaders)
		}
		return loc
	case 401:
		var body struct {
			LoginURL string `json:"login_url"`
		}
		if err := json.Unmarshal([]byte(d.Body), &body); err != nil {
			t.Fatalf("401 body %q: %v", d.Body, err)
		}
		return body.LoginURL
	}
	if _, ok := header(d.ResponseHeaders, hdrLocation); ok {
		t.Errorf("a %d answer carries a Location: %v", d.Status, d.ResponseHeaders)
	}
	return ""
}

// signer returns the fixture's key as a signingKey (kid "k1"), so the
// sign helper of token_test.go can set any header.
func (f *engineFixture) signer() signingKey {
	f.t.Helper()
	var raw ecdsa.PrivateKey
	if err := f.key.Raw(&raw); err != nil {
		f.t.Fatal(err)
	}
	return signingKey{kid: "k1", alg: jwa.ES256, priv: &raw}
}

// dashboardClaims are valid claims for the dashboard application now.
func dashboardClaims(email string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   "https://team.example.com",
		"aud":   []any{"aud-dashboard"},
		"exp":   now.Add(time.Hour).Unix(),
		"iat":   now.Add(-time.Minute).Unix(),
		"email": email,
	}
}

func TestAttackControlCharacters(t *testing.T) {
	f := newEngineFixture(t)
	alice := f.token(claims{email: "alice@example.com"})
	const app, private = "app.example.com", "private.example.com"
	nav := []string{"sec-fetch-mode", "navigate"}
	withScheme := func(r *Request, s string) *Request { r.Scheme = s; return r }
	preflightTo := func(origin, method string, more ...string) *Request {
		return req("OPTIONS", private, "/x", append([]string{"origin", origin, "access-control-request-method", method}, more...)...)
	}

	tests := []struct {
		name       string
		give       *Request
		wantStatus int
	}{
		{"host CRLF", req("GET", app+crlf, "/"), 400},
		{"host LF only", req("GET", app+"\nx: y", "/"), 400},
		{"host NUL", req("GET", app+"\x00", "/healthz"), 400},
		{"host port CRLF", req("GET", app+":443"+crlf, "/"), 400},
		{"host IPv6 CRLF", req("GET", "[::1]"+crlf, "/"), 400},
		{"path CRLF navigation", req("GET", app, "/a"+crlf, nav...), 302},
		{"path NUL navigation", req("GET", app, "/a\x00b", nav...), 302},
		{"path encoded CRLF navigation", req("GET", app, "/a%0d%0aSet-Cookie:%20x", nav...), 302},
		{"query CRLF navigation", req("GET", app, "/a?x="+crlf, nav...), 302},
		{"query CRLF API", req("GET", app, "/a?x="+crlf), 401},
		{"scheme CRLF navigation", withScheme(req("GET", app, "/", nav...), "https"+crlf), 302},
		{"origin CRLF allowed prefix", req("GET", app, "/", "origin", "https://www.example.com"+crlf), 401},
		{"origin CRLF allow_all", req("GET", private, "/", "origin", "https://any.test"+crlf), 401},
		{"origin CRLF forward", req("GET", app, "/", "cookie", "CF_Authorization="+alice, "origin", "https://www.example.com"+crlf), 200},
		{"origin NUL preflight", preflightTo("https://any.test\x00", "GET"), 403},
		{"referer CRLF own host", req("GET", app, "/api", "referer", "https://app.example.com/"+crlf), 401},
		{"referer CRLF allowed origin", req("GET", app, "/api", "referer", "https://www.example.com"+crlf, "origin", "https://www.example.com"), 401},
		{"cookie CRLF", req("GET", app, "/", "cookie", "CF_Authorization=abc"+crlf), 401},
		{"cookie CRLF after valid token", req("GET", app, "/", "cookie", "CF_Authorization="+alice+crlf), 401},
		{"assertion header trailing CRLF", req("GET", app, "/", "cf-access-jwt-assertion", alice+"\r\n"), 200},
		{"bearer CRLF", req("GET", app, "/", "authorization", "Bearer "+alice+crlf+"x"), 401},
		{"client id CRLF", req("GET", app, "/", "cf-access-client-id", "ci.access"+crlf, "cf-access-client-secret", "s3cret"), 401},
		{"client secret CRLF", req("GET", app, "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "s3cret"+crlf), 401},
		{"x-forwarded-for CRLF", req("GET", private, "/", "x-forwarded-for", "192.0.2.1"+crlf), 401},
		{"x-requested-with CRLF", req("GET", app, "/", "x-requested-with", "XMLHttpRequest"+crlf, "accept", "text/html"), 302},
		// allow_all_methods and allow_all_headers echo the request's values:
		// only methods and header names may be echoed (regression: both
		// echoed CR and LF into the 204's headers).
		{"preflight method CRLF allow_all", preflightTo("https://any.test", "PATCH"+crlf), 403},
		{"preflight method NUL allow_all", preflightTo("https://any.test", "GET\x00"), 403},
		{"preflight method space allow_all", preflightTo("https://any.test", "GET /"), 403},
		{"preflight headers CRLF allow_all", preflightTo("https://any.test", "GET", "access-control-request-headers", "x-a"+crlf), 403},
		{"preflight headers inner CRLF allow_all", preflightTo("https://any.test", "GET", "access-control-request-headers", "x-a\r\n, x-b"), 403},
		{"preflight headers NUL allow_all", preflightTo("https://any.test", "GET", "access-control-request-headers", "x-a\x00"), 403},
		{"preflight headers colon allow_all", preflightTo("https://any.test", "GET", "access-control-request-headers", "x-a: 1"), 403},
		{"preflight headers tab-separated allow_all", preflightTo("https://any.test", "GET", "access-control-request-headers", "x-a,\tx-b"), 204},
		{"preflight private network CRLF", preflightTo("https://any.test", "GET", "access-control-request-private-network", "true"+crlf), 204},
		{"preflight method CRLF listed", req("OPTIONS", app, "/", "origin", "https://www.example.com", "access-control-request-method", "GET"+crlf), 403},
		{"preflight headers CRLF listed", req("OPTIONS", app, "/", "origin", "https://www.example.com", "access-control-request-method", "GET", "access-control-request-headers", "content-type"+crlf+"x"), 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus {
				t.Errorf("Decide(%q %q) = %d %q, want %d", tt.give.Host, tt.give.Path, d.Status, d.Reason, tt.wantStatus)
			}
			assertNoControlChars(t, d)
			if login := loginURLOf(t, d); login != "" {
				host, _ := normalizeHost(tt.give.Host)
				assertLoginURL(t, login, host)
			}
		})
	}
}

func TestAttackLoginRedirect(t *testing.T) {
	f := newEngineFixture(t)
	const app = "app.example.com"
	const orig = "https://app.example.com/api"
	tests := []struct {
		name         string
		host, path   string
		headers      []string
		wantHost     string // the {host} in the login URL
		wantRedirect string // the redirect_url of the 401 (API) answer
	}{
		{"plain", app, "/api", nil, app, orig},
		{"path double slash", app, "//evil.com", nil, app, "https://app.example.com//evil.com"},
		{"path backslash", app, `/\evil.com`, nil, "", ""}, // 400: a raw backslash
		{"path at", app, "/@evil.com", nil, app, "https://app.example.com/@evil.com"},
		{"path encoded at", app, "/%40evil.com", nil, app, "https://app.example.com/%40evil.com"},
		{"path scheme-relative triple", app, "///evil.com/%2e", nil, "", ""}, // 400
		{"path encoded double slash", app, "/%2F%2Fevil.com", nil, "", ""},   // 400
		{"path encoded backslash", app, "/%5Cevil.com", nil, "", ""},         // 400
		{"query with login params", app, "/api?kid=evil&redirect_url=https://evil.com", nil, app, "https://app.example.com/api?kid=evil&redirect_url=https://evil.com"},
		{"query encoded ampersand", app, "/api?%26kid%3Devil", nil, app, "https://app.example.com/api?%26kid%3Devil"},
		{"query fragment", app, "/api?x=1#@evil.com", nil, app, "https://app.example.com/api?x=1#@evil.com"},
		{"host case port dot", "APP.Example.com.:8443", "/api", nil, app, "https://APP.Example.com.:8443/api"},
		{"host wildcard label", "x.app.example.com", "/api", nil, "x.app.example.com", "https://x.app.example.com/api"},
		{"host userinfo", "evil.com@app.example.com", "/api", nil, "", ""},       // 400
		{"host userinfo after", "app.example.com@evil.com", "/api", nil, "", ""}, // 400
		{"host backslash", `app.example.com\evil.com`, "/api", nil, "", ""},      // 400
		{"host unknown", "evil.com", "/api", nil, "", ""},                        // 403
		{"x-forwarded-host ignored", app, "/api", []string{"x-forwarded-host", "evil.com", "forwarded", "host=evil.com", "x-original-url", "https://evil.com/"}, app, orig},
		{"referer elsewhere", app, "/api", []string{"referer", "https://evil.com/"}, app, orig},
		{"referer scheme-relative", app, "/api", []string{"referer", "//evil.com/"}, app, orig},
		{"referer backslashes", app, "/api", []string{"referer", `https:\\evil.com\`}, app, orig},
		{"referer userinfo own host", app, "/api", []string{"referer", "https://app.example.com@evil.com/"}, app, orig},
		{"referer backslash userinfo", app, "/api", []string{"referer", `https://app.example.com\@evil.com/`}, app, orig},
		{"referer look-alike", app, "/api", []string{"referer", "https://app.example.com.evil.com/"}, app, orig},
		{"referer encoded host", app, "/api", []string{"referer", "https://app.example.com%2f@evil.com/"}, app, orig},
		{"referer javascript", app, "/api", []string{"referer", "javascript://app.example.com/%0aalert(1)"}, app, orig},
		{"referer upper-case scheme", app, "/api", []string{"referer", "HTTPS://evil.com/"}, app, orig},
		{"referer own host with fragment trick", app, "/api", []string{"referer", "https://app.example.com#@evil.com"}, app, "https://app.example.com#@evil.com"},
		{"referer on allowed origin", app, "/api", []string{"referer", "https://www.example.com/page"}, app, "https://www.example.com/page"},
	}
	for _, tt := range tests {
		for _, nav := range []bool{true, false} {
			name := tt.name + "/api"
			give := req("GET", tt.host, tt.path, tt.headers...)
			if nav {
				name = tt.name + "/navigation"
				give.Headers["sec-fetch-mode"] = "navigate"
			}
			t.Run(name, func(t *testing.T) {
				d := f.engine.Decide(context.Background(), give)
				assertNoControlChars(t, d)
				login := loginURLOf(t, d)
				if tt.wantHost == "" {
					if login != "" || d.Status == 302 || d.Status == 401 {
						t.Fatalf("Decide(%q %q) = %d %q with login URL %q, want a 400 or 403", tt.host, tt.path, d.Status, d.Reason, login)
					}
					return
				}
				wantStatus := 401
				if nav {
					wantStatus = 302
				}
				if d.Status != wantStatus {
					t.Fatalf("Decide(%q %q) = %d %q, want %d", tt.host, tt.path, d.Status, d.Reason, wantStatus)
				}
				u := assertLoginURL(t, login, tt.wantHost)
				wantRedirect := tt.wantRedirect
				if nav {
					wantRedirect = "https://" + tt.host + tt.path // a navigation returns to itself
				}
				if got := u.Query().Get("redirect_url"); got != wantRedirect {
					t.Errorf("redirect_url = %q, want %q", got, wantRedirect)
				}
				if got := u.Query().Get("kid"); got != "aud-dashboard" {
					t.Errorf("kid = %q, want the application's audience", got)
				}
			})
		}
	}
}

func TestAttackHostTricks(t *testing.T) {
	f := newEngineFixture(t)
	long := strings.Repeat("a", 60000)
	tests := []struct {
		name       string
		host, path string
		wantStatus int
		wantReason Reason
		wantApp    string
	}{
		{"absolute-form path other host", "app.example.com", "https://evil.com/healthz", 400, ReasonBadRequest, ""},
		{"absolute-form path same host", "evil.com", "http://app.example.com/healthz", 400, ReasonBadRequest, ""},
		{"asterisk-form path", "app.example.com", "*", 400, ReasonBadRequest, ""},
		{"authority-form path", "app.example.com", "app.example.com:443", 400, ReasonBadRequest, ""},
		{"userinfo", "user:pass@app.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"userinfo after host", "app.example.com@evil.com", "/healthz", 400, ReasonBadRequest, ""},
		{"IPv6 loopback", "[::1]", "/healthz", 403, ReasonNoApplication, ""},
		{"IPv6 with port", "[::1]:8443", "/healthz", 403, ReasonNoApplication, ""},
		{"IPv6 mapped IPv4", "[::ffff:10.0.0.1]", "/", 403, ReasonNoApplication, ""},
		{"IPv6 unclosed", "[::1", "/", 400, ReasonBadRequest, ""},
		{"IPv6 junk after", "[::1]x", "/", 400, ReasonBadRequest, ""},
		{"IPv6 empty port", "[::1]:", "/", 400, ReasonBadRequest, ""},
		{"IPv6 zone", "[fe80::1%25eth0]", "/", 400, ReasonBadRequest, ""},
		{"IPv6 brackets around a name", "[app.example.com]", "/healthz", 400, ReasonBadRequest, ""},
		{"IPv6 empty", "[]", "/", 400, ReasonBadRequest, ""},
		{"IPv6 bare", "::1", "/", 400, ReasonBadRequest, ""},
		{"trailing dot", "app.example.com.", "/healthz", 200, ReasonBypass, "dashboard"},
		// One trailing dot is removed; what is left must have no empty
		// label, else 400, so that no spelling of a host finds "no
		// application" (forwarded under default_action: allow).
		{"two trailing dots", "app.example.com..", "/healthz", 400, ReasonBadRequest, ""},
		{"two trailing dots and port", "app.example.com..:443", "/healthz", 400, ReasonBadRequest, ""},
		{"empty inner label", "app..example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"only a dot", ".", "/", 400, ReasonBadRequest, ""},
		{"leading dot", ".app.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"kelvin sign", "\u212Aate.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"kelvin sign in a known host", "app.e\u212Aample.com", "/healthz", 400, ReasonBadRequest, ""},
		{"fullwidth letter", "\uff41pp.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"unencoded IDN", "b\u00fccher.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"latin-1 byte", "app.ex\xe1mple.com", "/healthz", 400, ReasonBadRequest, ""},
		{"punycode IDN", "xn--bcher-kva.example.com", "/healthz", 403, ReasonNoApplication, ""},
		{"underscore", "my_host.app.example.com", "/healthz", 200, ReasonBypass, "dashboard"},
		{"userinfo no password", "user@app.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"mixed case", "ApP.ExAmPlE.CoM", "/healthz", 200, ReasonBypass, "dashboard"},
		{"mixed case wildcard", "X.APP.example.COM", "/healthz", 200, ReasonBypass, "dashboard"},
		{"port", "app.example.com:443", "/healthz", 200, ReasonBypass, "dashboard"},
		{"odd port", "app.example.com:1", "/healthz", 200, ReasonBypass, "dashboard"},
		{"empty port", "app.example.com:", "/healthz", 400, ReasonBadRequest, ""},
		{"port letters", "app.example.com:https", "/healthz", 400, ReasonBadRequest, ""},
		{"two ports", "app.example.com:443:443", "/healthz", 400, ReasonBadRequest, ""},
		{"six-digit port", "app.example.com:123456", "/healthz", 400, ReasonBadRequest, ""},
		{"only a port", ":443", "/", 400, ReasonBadRequest, ""},
		{"trailing space", "app.example.com ", "/healthz", 400, ReasonBadRequest, ""},
		{"leading space", " app.example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"inner space", "app .example.com", "/healthz", 400, ReasonBadRequest, ""},
		{"tab", "app.example.com\t", "/healthz", 400, ReasonBadRequest, ""},
		{"encoded dot", "app%2eexample.com", "/healthz", 400, ReasonBadRequest, ""},
		{"homograph", "аpp.example.com", "/healthz", 400, ReasonBadRequest, ""}, // Cyrillic а
		{"slash in host", "api.example.com/v1", "/", 400, ReasonBadRequest, ""},
		{"hash in host", "evil.com#app.example.com", "/", 400, ReasonBadRequest, ""},
		{"suffix look-alike", "app.example.com.evil.com", "/healthz", 403, ReasonNoApplication, ""},
		{"prefix look-alike", "evilapp.example.com", "/healthz", 403, ReasonNoApplication, ""},
		{"wildcard two labels", "a.b.app.example.com", "/healthz", 403, ReasonNoApplication, ""},
		{"very long unknown host", long + ".example.org", "/", 403, ReasonNoApplication, ""},
		{"very long label under wildcard", long + ".app.example.com", "/", 401, ReasonTokenMissing, "dashboard"},
		{"very long port", "app.example.com:" + long, "/", 400, ReasonBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := req("GET", tt.host, tt.path, "x-forwarded-host", "app.example.com")
			d := f.engine.Decide(context.Background(), give)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason || d.Application != tt.wantApp {
				t.Errorf("Decide(host %.40q, %q) = %d %q app %q, want %d %q app %q",
					tt.host, tt.path, d.Status, d.Reason, d.Application, tt.wantStatus, tt.wantReason, tt.wantApp)
			}
			assertNoControlChars(t, d)
		})
	}
}

// identityHeaders are the headers accessgate owns on the upstream request.
var identityHeaders = []string{hdrUserEmail, hdrJWTAssertion, hdrClientID, hdrClientSecret, hdrAccessToken}

func TestAttackSpoofedIdentityHeaders(t *testing.T) {
	f := newEngineFixture(t)
	alice := f.token(claims{email: "alice@example.com"})
	noEmail := f.token(claims{aud: []string{"aud-private"}, extra: map[string]any{"machine": true}})
	api := f.token(claims{email: "carol@example.com", aud: []string{"aud-api"}})
	withDefaultAllow := *f.engine.Set()
	withDefaultAllow.DefaultAllow = true
	open := New(fileKeySource{})
	open.Swap(&withDefaultAllow)

	// spoof adds every identity header with attacker values, lower-case as
	// Envoy delivers them and, for good measure, in the case a client
	// typed them (Envoy's removal is case-insensitive).
	spoof := func(r *Request) *Request {
		for name, v := range map[string]string{
			hdrUserEmail:                         "root@example.com",
			hdrJWTAssertion:                      "spoofed.assertion.value",
			hdrAccessToken:                       "spoofed.access.token",
			"CF-Access-Authenticated-User-Email": "root@example.com",
			"Cf-Access-Jwt-Assertion":            "spoofed.assertion.value",
			"CF-ACCESS-CLIENT-SECRET":            "spoofed-secret",
		} {
			if _, ok := r.Headers[name]; !ok {
				r.Headers[name] = v
			}
		}
		return r
	}
	spoofed := []string{"root@example.com", "spoofed.assertion.value", "spoofed.access.token", "spoofed-secret"}

	tests := []struct {
		name       string
		engine     *Engine
		give       *Request
		wantReason Reason
		wantSet    []Header
	}{
		{"bypass", f.engine, spoof(req("GET", "app.example.com", "/healthz", hdrClientID, "ci.access")), ReasonBypass, nil},
		{"service token", f.engine, spoof(req("GET", "app.example.com", "/", hdrClientID, "ci.access", hdrClientSecret, "s3cret")), ReasonServiceToken,
			[]Header{{Key: hdrClientID, Value: "ci.access"}}},
		{"allowed by cookie", f.engine, spoof(req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+alice, hdrClientID, "ci.access")), ReasonAllowed,
			[]Header{{Key: hdrUserEmail, Value: "alice@example.com"}, {Key: hdrJWTAssertion, Value: alice}}},
		{"allowed by assertion with a bad service token", f.engine, spoof(req("GET", "app.example.com", "/", hdrJWTAssertion, alice, hdrClientID, "ci.access", hdrClientSecret, "wrong")), ReasonAllowed,
			[]Header{{Key: hdrUserEmail, Value: "alice@example.com"}, {Key: hdrJWTAssertion, Value: alice}}},
		{"allowed without email", f.engine, spoof(req("GET", "private.example.com", "/", "cookie", "CF_Authorization="+noEmail)), ReasonAllowed,
			[]Header{{Key: hdrJWTAssertion, Value: noEmail}}},
		{"allowed identity_headers false", f.engine, spoof(req("GET", "api.example.com", "/v2/x", "cookie", "CF_Authorization="+api)), ReasonAllowed, nil},
		{"forwarded preflight", f.engine, spoof(req("OPTIONS", "opts.example.com", "/", "origin", "https://www.example.com", "access-control-request-method", "GET")), ReasonPreflight, nil},
		{"default allow", open, spoof(req("GET", "nowhere.example.org", "/", hdrClientID, "ci.access", hdrClientSecret, "s3cret")), ReasonNoApplication, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.engine.Decide(context.Background(), tt.give)
			if d.Verdict != Forward || d.Reason != tt.wantReason {
				t.Fatalf("Decide = %d %q, want a forward with %q", d.Status, d.Reason, tt.wantReason)
			}
			if !slices.Equal(d.Headers, tt.wantSet) {
				t.Errorf("headers set = %v, want %v", d.Headers, tt.wantSet)
			}
			for _, h := range d.Headers {
				if slices.Contains(spoofed, h.Value) {
					t.Errorf("header %s set to the client's value %q", h.Key, h.Value)
				}
			}
			// Every identity header, in whatever case the client sent it,
			// is either set by the gate or removed; never both, since
			// Envoy applies removals after sets.
			for name := range tt.give.Headers {
				if !slices.Contains(identityHeaders, lowerASCII(name)) {
					continue
				}
				_, set := header(d.Headers, lowerASCII(name))
				removed := slices.Contains(d.HeadersToRemove, lowerASCII(name))
				if set == removed {
					t.Errorf("%s: set=%v removed=%v, want exactly one", name, set, removed)
				}
			}
			for _, name := range []string{hdrClientSecret, hdrAccessToken} {
				if !slices.Contains(d.HeadersToRemove, name) {
					t.Errorf("%s is not removed: the origin would see it", name)
				}
			}
		})
	}
}

func TestAttackServiceTokenHeaders(t *testing.T) {
	f := newEngineFixture(t)
	const id, secret = "ci.access", "s3cret"
	tests := []struct {
		name       string
		headers    []string
		wantStatus int
		wantReason Reason
	}{
		{"valid", []string{hdrClientID, id, hdrClientSecret, secret}, 200, ReasonServiceToken},
		{"valid on a navigation", []string{hdrClientID, id, hdrClientSecret, secret, "sec-fetch-mode", "navigate"}, 200, ReasonServiceToken},
		{"empty secret", []string{hdrClientID, id, hdrClientSecret, ""}, 401, ReasonServiceTokenInvalid},
		{"no secret", []string{hdrClientID, id}, 401, ReasonServiceTokenInvalid},
		{"no id", []string{hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"empty id", []string{hdrClientID, "", hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"secret of another token", []string{hdrClientID, id, hdrClientSecret, "old"}, 401, ReasonServiceTokenInvalid},
		{"id of another token", []string{hdrClientID, "old.access", hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"id upper case", []string{hdrClientID, "CI.ACCESS", hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"id with space", []string{hdrClientID, id + " ", hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"secret with space", []string{hdrClientID, id, hdrClientSecret, secret + " "}, 401, ReasonServiceTokenInvalid},
		{"secret upper case", []string{hdrClientID, id, hdrClientSecret, "S3CRET"}, 401, ReasonServiceTokenInvalid},
		{"secret prefix", []string{hdrClientID, id, hdrClientSecret, "s3cre"}, 401, ReasonServiceTokenInvalid},
		{"secret with NUL", []string{hdrClientID, id, hdrClientSecret, secret + "\x00"}, 401, ReasonServiceTokenInvalid},
		{"secret is the configured digest", []string{hdrClientID, id, hdrClientSecret, "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0"}, 401, ReasonServiceTokenInvalid},
		{"duplicate id joined", []string{hdrClientID, id + "," + id, hdrClientSecret, secret}, 401, ReasonServiceTokenInvalid},
		{"duplicate secret joined", []string{hdrClientID, id, hdrClientSecret, secret + "," + secret}, 401, ReasonServiceTokenInvalid},
		{"duplicate pair joined", []string{hdrClientID, id + ",old.access", hdrClientSecret, secret + ",old"}, 401, ReasonServiceTokenInvalid},
		{"expired token", []string{hdrClientID, "old.access", hdrClientSecret, "old"}, 401, ReasonServiceTokenExpired},
		{"failed on a navigation is not redirected", []string{hdrClientID, id, hdrClientSecret, "nope", "sec-fetch-mode", "navigate"}, 401, ReasonServiceTokenInvalid},
		{"in the wrong headers", []string{"x-client-id", id, "x-client-secret", secret}, 401, ReasonTokenMissing},
		{"as a bearer token", []string{"authorization", "Bearer " + secret}, 401, ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", tt.headers...))
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide(%q) = %d %q, want %d %q", tt.headers, d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
			if strings.Contains(d.Body, secret) || strings.Contains(d.Body, "ci.access") {
				t.Errorf("body %q echoes the service token", d.Body)
			}
		})
	}
}

func TestAttackPathTricks(t *testing.T) {
	f := newEngineFixture(t)
	// Every refused path starts under the bypassed /healthz: a gate that
	// judged the path before decoding would forward it with no token.
	refused := []struct{ name, path string }{
		{"encoded dot-dot", "/healthz/%2e%2e/admin"},
		{"encoded dot-dot upper", "/healthz/%2E%2E/admin"},
		{"encoded dot-dot mixed case", "/healthz/%2E%2e/admin"},
		{"half-encoded dot-dot", "/healthz/.%2e/admin"},
		{"half-encoded dot-dot other half", "/healthz/%2e./admin"},
		{"dot-dot", "/healthz/../admin"},
		{"dot-dot at the end", "/healthz/.."},
		{"encoded dot-dot at the end", "/healthz/%2e%2e"},
		{"dot", "/healthz/./admin"},
		{"dot at the start", "/./healthz"},
		{"encoded dot", "/healthz/%2e/admin"},
		{"dot-dot behind merged slashes", "/healthz//..//admin"},
		{"dot-dot with a query", "/healthz/%2e%2e?x=1"},
		{"encoded slash", "/healthz%2Fadmin"},
		{"encoded slash lower", "/healthz%2fadmin"},
		{"encoded slash dot-dot", "/healthz/..%2Fadmin"},
		{"encoded backslash", "/healthz%5Cadmin"},
		{"encoded backslash lower", "/healthz%5c..%5cadmin"},
		{"encoded NUL", "/healthz%00"},
		{"encoded NUL segment", "/healthz/%00/admin"},
		{"overlong dot-dot", "/healthz/%c0%ae%c0%ae/admin"},
		{"overlong dot-dot upper", "/healthz/%C0%AE%C0%AE/admin"},
		{"overlong slash", "/healthz%c0%afadmin"},
		{"overlong backslash", "/healthz%c1%9cadmin"},
		{"overlong NUL", "/healthz%c0%80"},
		{"overlong three-byte dot", "/healthz/%e0%80%ae%e0%80%ae/admin"},
		{"overlong four-byte dot", "/healthz/%f0%80%80%ae/admin"},
		{"raw overlong dot-dot", "/healthz/\xc0\xae\xc0\xae/admin"},
		{"mixed raw and encoded overlong", "/healthz/\xc0%ae\xc0%ae/admin"},
		{"truncated escape", "/healthz/%"},
		{"short escape", "/healthz/%2"},
		{"non-hex escape", "/healthz/%g0"},
		{"double percent", "/healthz/%%32%65"},
		{"relative", "healthz"},
		{"empty", ""},
		{"query only", "?x=/healthz"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), req("GET", "app.example.com", tt.path))
			if d.Status != 400 || d.Reason != ReasonBadRequest || d.Verdict != Deny {
				t.Errorf("Decide(%q) = %d %q, want 400 bad_request", tt.path, d.Status, d.Reason)
			}
			if d.Body != `{"error":"bad_request","reason":"bad_request"}` {
				t.Errorf("400 body = %q", d.Body)
			}
		})
	}

	// Look-alikes that are not tricks must not be refused: real UTF-8, dots
	// inside names, a dot-dot in the query, and a double encoding (the
	// origin receives %252e, a literal "%2e", never "..").
	judged := []struct {
		name, path string
		wantStatus int
		wantReason Reason
	}{
		{"two-byte UTF-8", "/caf%C3%A9", 401, ReasonTokenMissing},
		{"three-byte UTF-8 lowest", "/%e0%a0%80", 401, ReasonTokenMissing},
		{"four-byte UTF-8 lowest", "/%f0%90%80%80", 401, ReasonTokenMissing},
		{"raw UTF-8", "/café", 401, ReasonTokenMissing},
		{"dots in a name", "/a..b/.c/d.", 401, ReasonTokenMissing},
		{"dot-dot in the query", "/healthz?x=/../admin", 200, ReasonBypass},
		{"double-encoded dot-dot", "/x/%252e%252e/admin", 401, ReasonTokenMissing},
	}
	for _, tt := range judged {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), req("GET", "app.example.com", tt.path))
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide(%q) = %d %q, want %d %q", tt.path, d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

func TestAttackTokenSources(t *testing.T) {
	f := newEngineFixture(t)
	good := f.token(claims{email: "alice@example.com"})
	expired := f.token(claims{email: "alice@example.com", exp: time.Now().Add(-time.Hour)})
	otherApp := f.token(claims{email: "alice@example.com", aud: []string{"aud-api"}})
	tests := []struct {
		name       string
		headers    []string
		wantStatus int
		wantReason Reason
		wantJWT    string // the cf-access-jwt-assertion set on a forward
	}{
		{"bad cookie good assertion", []string{"cookie", "CF_Authorization=garbage", "cf-access-jwt-assertion", good}, 401, ReasonTokenMalformed, ""},
		{"bad cookie good bearer", []string{"cookie", "CF_Authorization=garbage", "authorization", "Bearer " + good}, 401, ReasonTokenMalformed, ""},
		{"expired cookie good cloudflared header", []string{"cookie", "CF_Authorization=" + expired, "cf-access-token", good}, 401, ReasonTokenExpired, ""},
		{"other app's cookie good assertion", []string{"cookie", "CF_Authorization=" + otherApp, "cf-access-jwt-assertion", good}, 401, ReasonTokenAudience, ""},
		{"bad first cookie good second", []string{"cookie", "CF_Authorization=garbage; CF_Authorization=" + good}, 401, ReasonTokenMalformed, ""},
		{"bad assertion good cloudflared header", []string{"cf-access-jwt-assertion", "garbage", "cf-access-token", good}, 401, ReasonTokenMalformed, ""},
		{"bad cloudflared header good bearer", []string{"cf-access-token", "garbage", "authorization", "Bearer " + good}, 401, ReasonTokenMalformed, ""},
		{"good cookie bad assertion", []string{"cookie", "CF_Authorization=" + good, "cf-access-jwt-assertion", "garbage"}, 200, ReasonAllowed, good},
		{"good cookie bad bearer", []string{"cookie", "CF_Authorization=" + good, "authorization", "Bearer " + expired}, 200, ReasonAllowed, good},
		{"quoted cookie", []string{"cookie", `CF_Authorization="` + good + `"`}, 200, ReasonAllowed, good},
		// An empty cookie is no cookie (a cleared session): the next
		// source present is judged.
		{"empty cookie good assertion", []string{"cookie", "CF_Authorization=", "cf-access-jwt-assertion", good}, 200, ReasonAllowed, good},
		{"cookie name is case-sensitive", []string{"cookie", "cf_authorization=" + good}, 401, ReasonTokenMissing, ""},
		{"cookie name prefix", []string{"cookie", "xCF_Authorization=" + good}, 401, ReasonTokenMissing, ""},
		{"cookie in another header", []string{"set-cookie", "CF_Authorization=" + good}, 401, ReasonTokenMissing, ""},
		{"basic scheme", []string{"authorization", "Basic " + good}, 401, ReasonTokenMissing, ""},
		{"bearer with two tokens", []string{"authorization", "Bearer " + good + " " + good}, 401, ReasonTokenMalformed, ""},
		{"joined assertion headers", []string{"cf-access-jwt-assertion", good + "," + good}, 401, ReasonTokenMalformed, ""},
		{"token with a space inside", []string{"cf-access-jwt-assertion", good[:20] + " " + good[20:]}, 401, ReasonTokenMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", tt.headers...))
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide = %d %q, want %d %q", d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
			if got, _ := header(d.Headers, hdrJWTAssertion); got != tt.wantJWT {
				t.Errorf("cf-access-jwt-assertion set to %.30q..., want the judged token %.30q...", got, tt.wantJWT)
			}
		})
	}
}

func TestAttackCORSUnallowedOrigin(t *testing.T) {
	f := newEngineFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	contractor := "CF_Authorization=" + f.token(claims{email: "bob@contractor.example.com"})
	privateTok := "CF_Authorization=" + f.token(claims{aud: []string{"aud-private"}, extra: map[string]any{"machine": true}})
	badOrigins := []string{
		"https://evil.com",
		"https://evil-example.com",
		"https://www.example.com.evil.com",
		"https://example.com",
		"http://www.example.com",
		"https://www.example.com:8443",
		"https://www.example.com/",
		"https://www.example.com.",
		"https://user@www.example.com",
		"https://*.example.com",
		"https://a..example.com",
		" https://www.example.com",
		"https://www.example.com" + crlf,
		"https://www.example.com\x00",
		"https://www.example.com, https://evil.com",
		"null\r\n",
	}
	kinds := []struct {
		name    string
		host    string
		method  string
		path    string
		headers []string
	}{
		{"forward", "app.example.com", "GET", "/", []string{"cookie", alice}},
		{"bypass", "app.example.com", "GET", "/healthz", nil},
		{"service token", "app.example.com", "GET", "/", []string{hdrClientID, "ci.access", hdrClientSecret, "s3cret"}},
		{"401", "app.example.com", "GET", "/", nil},
		{"302", "app.example.com", "GET", "/", []string{"sec-fetch-mode", "navigate"}},
		{"403", "app.example.com", "GET", "/", []string{"cookie", contractor}},
		{"403 page", "app.example.com", "GET", "/", []string{"cookie", contractor, "sec-fetch-mode", "navigate"}},
		{"400", "app.example.com", "GET", "/%2F", nil},
		{"preflight", "app.example.com", "OPTIONS", "/", []string{"access-control-request-method", "GET"}},
		{"forwarded preflight", "opts.example.com", "OPTIONS", "/", []string{"access-control-request-method", "GET"}},
		{"no application", "nowhere.example.org", "GET", "/", nil},
		{"allow_all 401", "private.example.com", "GET", "/", nil},
		{"allow_all forward", "private.example.com", "GET", "/", []string{"cookie", privateTok}},
		{"allow_all preflight", "private.example.com", "OPTIONS", "/", []string{"access-control-request-method", "GET"}},
	}
	for _, k := range kinds {
		origins := badOrigins
		if strings.HasPrefix(k.host, "private.") {
			// allow_all_origins: only malformed origins and an unlisted
			// null are refused.
			origins = []string{"null", "https://www.example.com" + crlf, "https://user@evil.com", "https://evil.com/", "evil.com", "https://[::1%25eth0]"}
		}
		for _, origin := range origins {
			t.Run(k.name+"/"+origin, func(t *testing.T) {
				give := req(k.method, k.host, k.path, append([]string{"origin", origin}, k.headers...)...)
				d := f.engine.Decide(context.Background(), give)
				// Every non-preflight answer of a CORS application
				// carries Vary: Origin and nothing else of CORS; a
				// preflight answer, a forwarded preflight and an answer
				// without an application carry none.
				wantVary := !strings.Contains(k.name, "preflight") && k.name != "no application"
				vary := 0
				for _, h := range d.ResponseHeaders {
					if strings.HasPrefix(h.Key, "access-control-") || h.Key == hdrVary && (!wantVary || h.Value != "Origin") {
						t.Errorf("Decide(%s, Origin %q) = %d %q: carries %s: %q", k.name, origin, d.Status, d.Reason, h.Key, h.Value)
					}
					if h.Key == hdrVary {
						vary++
					}
				}
				if wantVary && vary != 1 {
					t.Errorf("Decide(%s, Origin %q) = %d %q: %d Vary headers, want exactly Vary: Origin", k.name, origin, d.Status, d.Reason, vary)
				}
				if strings.Contains(d.Body, "example.com") && d.Status != 401 {
					t.Errorf("body %q names an origin", d.Body)
				}
			})
		}
	}
}

func TestAttackReasonLeaksNothing(t *testing.T) {
	f := newEngineFixture(t)
	k := f.signer()
	const email = "canary-8c1f@example.com"
	const claimValue = "claim-canary-5d2e"
	const kid = "kid-canary-7a9b"
	base := with(dashboardClaims(email), "department", claimValue)
	attacker, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forged := signingKey{kid: "k1", alg: jwa.ES256, priv: attacker}
	now := time.Now()
	contractor := with(dashboardClaims("canary-8c1f@contractor.example.com"), "department", claimValue)

	tests := []struct {
		name       string
		token      string
		wantStatus int
		wantReason Reason
	}{
		{"malformed", "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtpZC1jYW5hcnktN2E5YiJ9.canary", 401, ReasonTokenMalformed},
		{"signature", sign(t, forged, base, nil), 401, ReasonTokenSignature},
		{"unknown key", sign(t, k, base, map[string]any{"kid": kid}), 401, ReasonTokenUnknownKey},
		{"expired", sign(t, k, with(base, "exp", now.Add(-time.Hour).Unix()), nil), 401, ReasonTokenExpired},
		{"not yet valid", sign(t, k, with(base, "nbf", now.Add(time.Hour).Unix()), nil), 401, ReasonTokenNotYetValid},
		{"audience", sign(t, k, with(base, "aud", []any{"aud-" + claimValue}), nil), 401, ReasonTokenAudience},
		{"issuer", sign(t, k, with(base, "iss", "https://"+claimValue+".example.com"), nil), 401, ReasonTokenIssuer},
		{"no exp", sign(t, k, with(base, "exp", nil), nil), 401, ReasonTokenMalformed},
		{"blocked", sign(t, k, contractor, nil), 403, ReasonBlocked},
		{"no policy match", sign(t, k, with(base, "email", "canary-8c1f@elsewhere.org"), nil), 403, ReasonNoPolicyMatch},
	}
	for _, tt := range tests {
		for _, nav := range []bool{false, true} {
			name := tt.name
			if nav {
				name += "/navigation"
			}
			t.Run(name, func(t *testing.T) {
				give := req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+tt.token, "origin", "https://www.example.com")
				if nav {
					give.Headers["sec-fetch-mode"] = "navigate"
				}
				d := f.engine.Decide(context.Background(), give)
				wantStatus := tt.wantStatus
				if nav && wantStatus == 401 {
					wantStatus = 302
				}
				if d.Status != wantStatus || d.Reason != tt.wantReason {
					t.Fatalf("Decide = %d %q, want %d %q", d.Status, d.Reason, wantStatus, tt.wantReason)
				}
				if !nav {
					var body map[string]any
					if err := json.Unmarshal([]byte(d.Body), &body); err != nil {
						t.Fatalf("body %q: %v", d.Body, err)
					}
					if body["reason"] != string(tt.wantReason) {
						t.Errorf("body reason = %v, want %q", body["reason"], tt.wantReason)
					}
					for key := range body {
						if key != "error" && key != "reason" && key != "login_url" {
							t.Errorf("body has %q: %q", key, d.Body)
						}
					}
				}
				hdr, _, _ := strings.Cut(tt.token, ".")
				leaks := []string{tt.token, hdr, kid, email, "canary-8c1f", claimValue}
				for _, leak := range leaks {
					if strings.Contains(d.Body, leak) {
						t.Errorf("body %q carries %q", d.Body, leak)
					}
					for _, h := range d.ResponseHeaders {
						if strings.Contains(h.Value, leak) {
							t.Errorf("header %s: %q carries %q", h.Key, h.Value, leak)
						}
					}
				}
			})
		}
	}
}
