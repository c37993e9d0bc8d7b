package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// fileKeySource serves an issuer's jwks_file keys, as the key manager does
// for file issuers; the engine tests need no HTTP.
type fileKeySource struct{}

func (fileKeySource) Key(_ context.Context, iss *policies.Issuer, kid string) (jwk.Key, error) {
	if iss.FileKeys != nil {
		if k, ok := iss.FileKeys.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("kid %q: %w", kid, errTestUnknownKey)
}

// engineFixture is an Engine on testdata/engine.yaml with a fresh ES256 key.
type engineFixture struct {
	t      *testing.T
	engine *Engine
	key    jwk.Key // private, kid "k1"
}

func newEngineFixture(t *testing.T) *engineFixture {
	t.Helper()
	return newEngineFixtureFrom(t, "testdata/engine.yaml")
}

// newEngineFixtureFrom is newEngineFixture on another policy file of
// testdata/ (its issuer reads jwks.json).
func newEngineFixtureFrom(t *testing.T, policyFile string) *engineFixture {
	t.Helper()
	priv := testkit.ES256(t, "k1")
	jwks := testkit.JWKS(t, priv)
	dir := t.TempDir()
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "engine.yaml")
	if err := os.WriteFile(file, policy, 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := policies.Load(file)
	if err != nil {
		t.Fatalf("load engine.yaml: %v", err)
	}
	e := New(fileKeySource{})
	e.Swap(ps)
	return &engineFixture{t: t, engine: e, key: priv}
}

// claims are the token's claims; zero fields get defaults for the dashboard.
type claims struct {
	iss, email, country string
	aud                 []string
	exp, nbf            time.Time
	extra               map[string]any
}

func (f *engineFixture) token(c claims) string {
	f.t.Helper()
	now := time.Now()
	if c.iss == "" {
		c.iss = "https://team.example.com"
	}
	if c.aud == nil {
		c.aud = []string{"aud-dashboard"}
	}
	if c.exp.IsZero() {
		c.exp = now.Add(time.Hour)
	}
	b := jwt.NewBuilder().Issuer(c.iss).Audience(c.aud).Expiration(c.exp).IssuedAt(now.Add(-time.Minute))
	if !c.nbf.IsZero() {
		b = b.NotBefore(c.nbf)
	}
	if c.email != "" {
		b = b.Claim("email", c.email)
	}
	if c.country != "" {
		b = b.Claim("country", c.country)
	}
	for k, v := range c.extra {
		b = b.Claim(k, v)
	}
	tok, err := b.Build()
	if err != nil {
		f.t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, f.key))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(signed)
}

// req builds a request; headers come as name, value pairs.
func req(method, host, path string, headers ...string) *Request {
	r := &Request{Method: method, Scheme: "https", Host: host, Path: path, Headers: map[string]string{},
		SourceIP: netip.MustParseAddr("203.0.113.7")}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Headers[headers[i]] = headers[i+1]
	}
	return r
}

func header(hs []Header, key string) (string, bool) {
	for _, h := range hs {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

func hasACAHeaders(hs []Header) bool {
	for _, h := range hs {
		if strings.HasPrefix(h.Key, "access-control-allow-") {
			return true
		}
	}
	return false
}

const loginPrefix = "https://team.example.com/cdn-cgi/access/login/"

func TestDecideStatusAndReason(t *testing.T) {
	f := newEngineFixture(t)
	alice := f.token(claims{email: "alice@example.com"})
	contractor := f.token(claims{email: "bob@contractor.example.com"})
	mallory := f.token(claims{email: "mallory@example.com"})
	stranger := f.token(claims{email: "eve@elsewhere.org"})
	partner := f.token(claims{email: "Alice@Partner.ORG"})
	expired := f.token(claims{email: "alice@example.com", exp: time.Now().Add(-time.Hour)})
	future := f.token(claims{email: "alice@example.com", nbf: time.Now().Add(time.Hour)})
	wrongAud := f.token(claims{email: "alice@example.com", aud: []string{"other"}})
	wrongIss := f.token(claims{email: "alice@example.com", iss: "https://evil.example.com"})
	api := f.token(claims{email: "carol@example.com", aud: []string{"aud-api"}})
	big := strings.Repeat("x", 1024)

	tests := []struct {
		name       string
		give       *Request
		wantStatus int
		wantReason Reason
		wantPolicy string
	}{
		// Section 3: host, path and size rules.
		{"no application", req("GET", "nowhere.example.org", "/"), 403, ReasonNoApplication, ""},
		{"no host", req("GET", "", "/"), 400, ReasonBadRequest, ""},
		{"host with userinfo", req("GET", "user@app.example.com", "/"), 400, ReasonBadRequest, ""},
		{"host with CRLF", req("GET", "app.example.com\r\nx: y", "/"), 400, ReasonBadRequest, ""},
		{"relative path", req("GET", "app.example.com", "x/y"), 400, ReasonBadRequest, ""},
		{"absolute-form path", req("GET", "app.example.com", "https://app.example.com/"), 400, ReasonBadRequest, ""},
		{"encoded slash", req("GET", "app.example.com", "/a%2Fb"), 400, ReasonBadRequest, ""},
		{"encoded backslash", req("GET", "app.example.com", "/a%5cb"), 400, ReasonBadRequest, ""},
		{"encoded NUL", req("GET", "app.example.com", "/a%00"), 400, ReasonBadRequest, ""},
		{"bad percent", req("GET", "app.example.com", "/a%zz"), 400, ReasonBadRequest, ""},
		{"dot-dot segment", req("GET", "app.example.com", "/a/../b"), 400, ReasonBadRequest, ""},
		{"dot segment", req("GET", "app.example.com", "/a/./b"), 400, ReasonBadRequest, ""},
		{"encoded dot-dot", req("GET", "app.example.com", "/a/%2e%2E/b"), 400, ReasonBadRequest, ""},
		{"headers over 64 KiB", req("GET", "app.example.com", "/", "x-big", strings.Repeat(big, 64)), 400, ReasonBadRequest, ""},

		// Host matching: port, case, trailing dot, one-label wildcard.
		{"host with port and case", req("GET", "APP.Example.com.:8443", "/healthz"), 200, ReasonBypass, "health"},
		{"wildcard one label", req("GET", "a.app.example.com", "/healthz"), 200, ReasonBypass, "health"},
		{"wildcard two labels", req("GET", "a.b.app.example.com", "/healthz"), 403, ReasonNoApplication, ""},
		// A policy's paths are request paths: /healthz does not cover /v1/healthz.
		{"path prefix app", req("GET", "api.example.com", "/v1/healthz"), 401, ReasonTokenMissing, ""},
		{"path prefix not on boundary", req("GET", "api.example.com", "/v10/healthz"), 403, ReasonNoApplication, ""},
		{"merged slashes", req("GET", "app.example.com", "//healthz///x"), 200, ReasonBypass, "health"},
		{"decoded unreserved", req("GET", "app.example.com", "/health%7A"), 200, ReasonBypass, "health"},
		{"decoded unreserved app path", req("GET", "api.example.com", "/%761"), 401, ReasonTokenMissing, ""},

		// Bypass and service_auth (step 3).
		{"bypass path", req("GET", "app.example.com", "/healthz?x=1"), 200, ReasonBypass, "health"},
		{"bypass sub-path", req("GET", "app.example.com", "/healthz/deep"), 200, ReasonBypass, "health"},
		{"bypass not on boundary", req("GET", "app.example.com", "/healthzz"), 401, ReasonTokenMissing, ""},
		{"service token", req("GET", "app.example.com", "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "s3cret"), 200, ReasonServiceToken, "bots"},
		{"service token wrong secret", req("GET", "app.example.com", "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "nope"), 401, ReasonServiceTokenInvalid, ""},
		{"service token unknown id", req("GET", "app.example.com", "/", "cf-access-client-id", "x.access", "cf-access-client-secret", "s3cret"), 401, ReasonServiceTokenInvalid, ""},
		{"service token expired", req("GET", "app.example.com", "/", "cf-access-client-id", "old.access", "cf-access-client-secret", "old"), 401, ReasonServiceTokenExpired, ""},
		{"service token failed on navigation is 401", req("GET", "app.example.com", "/", "accept", "text/html", "cf-access-client-id", "ci.access", "cf-access-client-secret", "nope"), 401, ReasonServiceTokenInvalid, ""},
		{"any_service_token", req("GET", "opts.example.com", "/", "cf-access-client-id", "old.access", "cf-access-client-secret", "old"), 401, ReasonServiceTokenExpired, ""},
		{"any_service_token valid", req("GET", "opts.example.com", "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "s3cret"), 200, ReasonServiceToken, "any-bot"},

		// Step 4: the token.
		{"no token api", req("GET", "app.example.com", "/"), 401, ReasonTokenMissing, ""},
		{"no token navigation", req("GET", "app.example.com", "/", "sec-fetch-mode", "navigate"), 302, ReasonTokenMissing, ""},
		{"no token accept html", req("GET", "app.example.com", "/", "accept", "text/html,application/xhtml+xml"), 302, ReasonTokenMissing, ""},
		{"no token HEAD navigation", req("HEAD", "app.example.com", "/", "accept", "text/html"), 302, ReasonTokenMissing, ""},
		{"no token cors fetch with accept html", req("GET", "app.example.com", "/", "sec-fetch-mode", "cors", "accept", "text/html"), 401, ReasonTokenMissing, ""},
		{"no token XHR", req("GET", "app.example.com", "/", "accept", "text/html", "x-requested-with", "XMLHttpRequest"), 401, ReasonTokenMissing, ""},
		{"no token POST navigation", req("POST", "app.example.com", "/", "sec-fetch-mode", "navigate"), 401, ReasonTokenMissing, ""},
		{"unauthenticated deny", req("GET", "api.example.com", "/v2/x", "sec-fetch-mode", "navigate"), 401, ReasonTokenMissing, ""},
		{"expired", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+expired), 401, ReasonTokenExpired, ""},
		{"not yet valid", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+future), 401, ReasonTokenNotYetValid, ""},
		{"wrong audience", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+wrongAud), 401, ReasonTokenAudience, ""},
		{"wrong issuer", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+wrongIss), 401, ReasonTokenIssuer, ""},
		{"garbage token", req("GET", "app.example.com", "/", "cookie", "CF_Authorization=abc"), 401, ReasonTokenMalformed, ""},
		{"first source judged", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+expired, "cf-access-jwt-assertion", alice), 401, ReasonTokenExpired, ""},
		{"header source", req("GET", "app.example.com", "/", "cf-access-jwt-assertion", alice), 200, ReasonAllowed, "staff"},
		{"cloudflared header", req("GET", "app.example.com", "/", "cf-access-token", alice), 200, ReasonAllowed, "staff"},
		{"bearer", req("GET", "app.example.com", "/", "authorization", "Bearer "+alice), 200, ReasonAllowed, "staff"},
		{"token of another app", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+api), 401, ReasonTokenAudience, ""},

		// Step 5: block and allow.
		{"allowed by domain", req("GET", "app.example.com", "/", "cookie", "a=b; CF_Authorization="+alice), 200, ReasonAllowed, "staff"},
		{"allowed by email any case", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+partner), 200, ReasonAllowed, "staff"},
		{"blocked", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+contractor), 403, ReasonBlocked, "block-contractors"},
		{"excluded", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+mallory), 403, ReasonNoPolicyMatch, "staff"}, // §11: the policy that turned it down
		{"no policy matches", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+stranger), 403, ReasonNoPolicyMatch, ""},
		{"everyone with token", req("GET", "api.example.com", "/v2/x", "cookie", "CF_Authorization="+api), 200, ReasonAllowed, "everyone-with-token"},

		// Section 3 step 2: preflights.
		{"preflight", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "PUT"), 204, ReasonPreflight, ""},
		{"preflight bad origin", req("OPTIONS", "app.example.com", "/x", "origin", "https://evil.com", "access-control-request-method", "PUT"), 403, ReasonPreflightOrigin, ""},
		{"preflight bad method", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "DELETE"), 403, ReasonPreflightMethod, ""},
		{"preflight method case-sensitive", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "put"), 403, ReasonPreflightMethod, ""},
		{"preflight bad header", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "PUT", "access-control-request-headers", "content-type,x-secret"), 403, ReasonPreflightHeader, ""},
		{"preflight private network refused", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "PUT", "access-control-request-private-network", "true"), 403, ReasonPreflightPrivateNetwork, ""},
		{"preflight private network allowed", req("OPTIONS", "private.example.com", "/x", "origin", "https://any.test", "access-control-request-method", "PATCH", "access-control-request-private-network", "true"), 204, ReasonPreflight, ""},
		{"options without acrm is not a preflight", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com"), 401, ReasonTokenMissing, ""},
		{"preflight forwarded to origin", req("OPTIONS", "opts.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "PUT"), 200, ReasonPreflight, ""},
		{"preflight no cors is ordinary", req("OPTIONS", "api.example.com", "/v2/x", "origin", "https://www.example.com", "access-control-request-method", "PUT"), 401, ReasonTokenMissing, ""},
		{"preflight wins over bypass", req("OPTIONS", "app.example.com", "/healthz", "origin", "https://evil.com", "access-control-request-method", "GET"), 403, ReasonPreflightOrigin, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason || d.Policy != tt.wantPolicy {
				t.Errorf("Decide(%s %s%s) = %d %q policy %q, want %d %q policy %q",
					tt.give.Method, tt.give.Host, tt.give.Path, d.Status, d.Reason, d.Policy, tt.wantStatus, tt.wantReason, tt.wantPolicy)
			}
			wantVerdict := Deny
			if tt.wantStatus == 200 {
				wantVerdict = Forward
			}
			if d.Verdict != wantVerdict {
				t.Errorf("verdict = %v, want %v", d.Verdict, wantVerdict)
			}
		})
	}
}

func TestDecideSelectors(t *testing.T) {
	f := newEngineFixture(t)
	tok := func(c claims) string {
		c.aud = []string{"aud-private"}
		return "CF_Authorization=" + f.token(c)
	}
	office := netip.MustParseAddr("192.0.2.10")
	proxy := netip.MustParseAddr("10.1.2.3")
	withIP := func(r *Request, ip netip.Addr) *Request { r.SourceIP = ip; return r }

	tests := []struct {
		name       string
		give       *Request
		wantReason Reason
		wantPolicy string
	}{
		{"group claim", req("GET", "private.example.com", "/admin/x", "cookie", tok(claims{extra: map[string]any{"groups": []string{"staff", "admins"}}})), ReasonAllowed, "admin-paths"},
		{"custom.groups", req("GET", "private.example.com", "/admin", "cookie", tok(claims{extra: map[string]any{"custom": map[string]any{"groups": []string{"admins"}}}})), ReasonAllowed, "admin-paths"},
		{"group outside its paths", req("GET", "private.example.com", "/other", "cookie", tok(claims{extra: map[string]any{"groups": []string{"admins"}}})), ReasonNoPolicyMatch, ""},
		{"group missing", req("GET", "private.example.com", "/admin", "cookie", tok(claims{extra: map[string]any{"groups": []string{"staff"}}})), ReasonNoPolicyMatch, ""},
		{"dotted claim and ip", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{extra: map[string]any{"custom": map[string]any{"department": "engineering"}}})), office), ReasonAllowed, "office"},
		{"claim array contains", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{extra: map[string]any{"custom": map[string]any{"department": []string{"sales", "engineering"}}}})), office), ReasonAllowed, "office"},
		{"claim wrong value", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{extra: map[string]any{"custom": map[string]any{"department": "sales"}}})), office), ReasonNoPolicyMatch, ""},
		{"country any case", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"})), office), ReasonAllowed, "office"},
		{"require ip fails", req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"})), ReasonNoPolicyMatch, "office"},
		{"xff from trusted proxy", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"}), "x-forwarded-for", "198.51.100.1, 192.0.2.10, 10.0.0.9"), proxy), ReasonAllowed, "office"},
		{"xff spoofed left entry ignored", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"}), "x-forwarded-for", "192.0.2.10, 198.51.100.1"), proxy), ReasonNoPolicyMatch, "office"},
		{"xff from untrusted peer ignored", req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"}), "x-forwarded-for", "192.0.2.10"), ReasonNoPolicyMatch, "office"},
		{"xff all trusted uses leftmost", withIP(req("GET", "private.example.com", "/", "cookie", tok(claims{country: "PT"}), "x-forwarded-for", "10.9.9.9, 10.0.0.1"), proxy), ReasonNoPolicyMatch, "office"},
		{"boolean claim", req("GET", "private.example.com", "/", "cookie", tok(claims{extra: map[string]any{"machine": true}})), ReasonAllowed, "machines"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Reason != tt.wantReason || d.Policy != tt.wantPolicy {
				t.Errorf("Decide(%s%s) = %q policy %q, want %q policy %q", tt.give.Host, tt.give.Path, d.Reason, d.Policy, tt.wantReason, tt.wantPolicy)
			}
		})
	}
}

func TestDecideForwardHeaders(t *testing.T) {
	f := newEngineFixture(t)
	alice := f.token(claims{email: "alice@example.com"})
	noEmail := f.token(claims{aud: []string{"aud-private"}, extra: map[string]any{"machine": true}})
	api := f.token(claims{email: "carol@example.com", aud: []string{"aud-api"}})
	all := []string{hdrUserEmail, hdrJWTAssertion, hdrClientID, hdrClientSecret, hdrAccessToken}

	tests := []struct {
		name        string
		give        *Request
		wantHeaders []Header
	}{
		{"token identity", req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+alice, hdrUserEmail, "spoof@example.com"),
			[]Header{{Key: hdrUserEmail, Value: "alice@example.com"}, {Key: hdrJWTAssertion, Value: alice}}},
		{"token without email", req("GET", "private.example.com", "/", "cf-access-token", noEmail),
			[]Header{{Key: hdrJWTAssertion, Value: noEmail}}},
		{"identity_headers false", req("GET", "api.example.com", "/v2/", "cookie", "CF_Authorization="+api), nil},
		{"service token", req("GET", "app.example.com", "/", "cf-access-client-id", "ci.access", "cf-access-client-secret", "s3cret"),
			[]Header{{Key: hdrClientID, Value: "ci.access"}}},
		{"bypass sets nothing", req("GET", "app.example.com", "/healthz", hdrUserEmail, "spoof@example.com", hdrJWTAssertion, "x"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Verdict != Forward {
				t.Fatalf("Decide = %d %q, want a forward", d.Status, d.Reason)
			}
			if !slices.Equal(d.Headers, tt.wantHeaders) {
				t.Errorf("headers = %v, want %v", d.Headers, tt.wantHeaders)
			}
			// Every identity header not set is removed; none set is removed.
			for _, name := range all {
				_, set := header(d.Headers, name)
				removed := slices.Contains(d.HeadersToRemove, name)
				if set == removed {
					t.Errorf("%s: set=%v removed=%v, want exactly one", name, set, removed)
				}
			}
		})
	}
}

func TestDecideCORSOnAnswers(t *testing.T) {
	f := newEngineFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	contractor := "CF_Authorization=" + f.token(claims{email: "bob@contractor.example.com"})
	const good, evil = "https://www.example.com", "https://evil-example.com"

	tests := []struct {
		name     string
		give     *Request
		wantCORS bool
	}{
		{"forward allowed origin", req("GET", "app.example.com", "/", "cookie", alice, "origin", good), true},
		{"forward wildcard origin", req("GET", "app.example.com", "/", "cookie", alice, "origin", "https://a.b.example.com"), true},
		{"forward disallowed origin", req("GET", "app.example.com", "/", "cookie", alice, "origin", evil), false},
		{"forward no origin", req("GET", "app.example.com", "/", "cookie", alice), false},
		{"401 allowed origin", req("GET", "app.example.com", "/", "origin", good), true},
		{"401 disallowed origin", req("GET", "app.example.com", "/", "origin", evil), false},
		{"403 allowed origin", req("GET", "app.example.com", "/", "cookie", contractor, "origin", good), true},
		{"null origin listed", req("GET", "app.example.com", "/", "origin", "null"), true},
		{"302 never", req("GET", "app.example.com", "/", "origin", good, "sec-fetch-mode", "navigate"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			acao, ok := header(d.ResponseHeaders, hdrACAO)
			if ok != tt.wantCORS {
				t.Fatalf("Decide = %d %q: access-control-allow-origin present = %v, want %v (%v)", d.Status, d.Reason, ok, tt.wantCORS, d.ResponseHeaders)
			}
			if !ok {
				return
			}
			if acao != tt.give.Headers["origin"] {
				t.Errorf("access-control-allow-origin = %q, want the request's Origin %q", acao, tt.give.Headers["origin"])
			}
			if v, _ := header(d.ResponseHeaders, hdrACAC); v != "true" {
				t.Errorf("access-control-allow-credentials = %q, want true", v)
			}
			if v, _ := header(d.ResponseHeaders, hdrACEH); v != "x-request-id" {
				t.Errorf("access-control-expose-headers = %q, want x-request-id", v)
			}
			i := slices.IndexFunc(d.ResponseHeaders, func(h Header) bool { return h.Key == hdrVary })
			if i < 0 || d.ResponseHeaders[i].Value != "Origin" || !d.ResponseHeaders[i].Append {
				t.Errorf("want Vary: Origin appended, got %v", d.ResponseHeaders)
			}
		})
	}
}

func TestDecidePreflightAnswer(t *testing.T) {
	f := newEngineFixture(t)
	tests := []struct {
		name string
		give *Request
		want []Header
	}{
		{"configured lists", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "PUT", "access-control-request-headers", "Content-Type, X-Requested-With"),
			[]Header{
				{Key: hdrACAO, Value: "https://www.example.com"},
				{Key: hdrACAM, Value: "GET, POST, PUT"},
				{Key: hdrACAH, Value: "content-type, x-requested-with"},
				{Key: hdrACMA, Value: "600"},
				{Key: hdrACAC, Value: "true"},
				{Key: hdrVary, Value: preflightVary},
			}},
		{"no requested headers", req("OPTIONS", "app.example.com", "/x", "origin", "https://www.example.com", "access-control-request-method", "GET"),
			[]Header{
				{Key: hdrACAO, Value: "https://www.example.com"},
				{Key: hdrACAM, Value: "GET, POST, PUT"},
				{Key: hdrACMA, Value: "600"},
				{Key: hdrACAC, Value: "true"},
				{Key: hdrVary, Value: preflightVary},
			}},
		{"allow all echoes", req("OPTIONS", "private.example.com", "/x", "origin", "https://any.test:8443", "access-control-request-method", "PATCH", "access-control-request-headers", "x-one, x-two", "access-control-request-private-network", "true"),
			[]Header{
				{Key: hdrACAO, Value: "https://any.test:8443"},
				{Key: hdrACAM, Value: "PATCH"},
				{Key: hdrACAH, Value: "x-one, x-two"},
				{Key: hdrACAPN, Value: "true"},
				{Key: hdrVary, Value: preflightVary},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			if d.Status != 204 || d.Body != "" {
				t.Fatalf("Decide = %d %q body %q, want 204 with no body", d.Status, d.Reason, d.Body)
			}
			if !slices.Equal(d.ResponseHeaders, tt.want) {
				t.Errorf("headers =\n%v\nwant\n%v", d.ResponseHeaders, tt.want)
			}
		})
	}
}

func TestDecidePreflightRefusalLeaksNothing(t *testing.T) {
	f := newEngineFixture(t)
	for _, give := range []*Request{
		req("OPTIONS", "app.example.com", "/", "origin", "https://evil.com", "access-control-request-method", "GET"),
		req("OPTIONS", "app.example.com", "/", "origin", "https://www.example.com", "access-control-request-method", "TRACE"),
		req("OPTIONS", "app.example.com", "/", "origin", "https://www.example.com", "access-control-request-method", "GET", "access-control-request-headers", "x-nope"),
		req("OPTIONS", "private.example.com", "/", "origin", "null", "access-control-request-method", "GET"),
	} {
		d := f.engine.Decide(context.Background(), give)
		if d.Status != 403 || hasACAHeaders(d.ResponseHeaders) || strings.Contains(d.Body, "example.com") {
			t.Errorf("Decide(preflight %v) = %d %v %q, want 403 with no Access-Control-Allow-* and no origin list", give.Headers, d.Status, d.ResponseHeaders, d.Body)
		}
	}
}

func TestDecideRedirectLocation(t *testing.T) {
	f := newEngineFixture(t)
	d := f.engine.Decide(context.Background(), req("GET", "App.Example.com:8443", "/a/b?x=1&y=2", "sec-fetch-mode", "navigate"))
	want := loginPrefix + "app.example.com?kid=aud-dashboard&redirect_url=" + url.QueryEscape("https://App.Example.com:8443/a/b?x=1&y=2")
	if got, _ := header(d.ResponseHeaders, hdrLocation); d.Status != 302 || got != want {
		t.Errorf("Location = %q (status %d), want %q", got, d.Status, want)
	}
	if v, _ := header(d.ResponseHeaders, hdrCacheControl); v != "no-store" {
		t.Errorf("cache-control = %q, want no-store", v)
	}
}

func TestDecideUnauthenticatedBody(t *testing.T) {
	f := newEngineFixture(t)
	self := "https://app.example.com/page?tab=2"
	tests := []struct {
		name         string
		give         *Request
		wantRedirect string
	}{
		{"no referer", req("GET", "app.example.com", "/api/x?q=1"), "https://app.example.com/api/x?q=1"},
		{"referer on allowed origin", req("GET", "api.example.com", "/v1/data", "referer", "https://www.example.com/app/page", "origin", "https://www.example.com"), "https://www.example.com/app/page"},
		{"referer on own host", req("GET", "app.example.com", "/api/x", "referer", self), self},
		{"referer elsewhere", req("GET", "app.example.com", "/api/x", "referer", "https://evil.com/phish"), "https://app.example.com/api/x"},
		{"referer look-alike", req("GET", "app.example.com", "/api/x", "referer", "https://app.example.com.evil.com/"), "https://app.example.com/api/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.engine.Decide(context.Background(), tt.give)
			var body struct {
				Error, Reason string
				LoginURL      string `json:"login_url"`
			}
			if err := json.Unmarshal([]byte(d.Body), &body); err != nil {
				t.Fatalf("body %q: %v", d.Body, err)
			}
			u, err := url.Parse(body.LoginURL)
			if err != nil {
				t.Fatal(err)
			}
			host, _ := normalizeHost(tt.give.Host)
			if d.Status != 401 || body.Error != "unauthenticated" || body.Reason != "token_missing" ||
				u.Query().Get("redirect_url") != tt.wantRedirect || u.Path != "/cdn-cgi/access/login/"+host {
				t.Errorf("401 body = %+v (status %d), want redirect_url %q", body, d.Status, tt.wantRedirect)
			}
			for _, k := range []string{hdrContentType, hdrCacheControl, hdrWWWAuthenticate} {
				if _, ok := header(d.ResponseHeaders, k); !ok {
					t.Errorf("401 lacks %s", k)
				}
			}
			if v, _ := header(d.ResponseHeaders, hdrWWWAuthenticate); v != `Bearer realm="dashboard"` {
				t.Errorf("www-authenticate = %q", v)
			}
		})
	}
}

func TestDecideForbiddenBody(t *testing.T) {
	f := newEngineFixture(t)
	contractor := "CF_Authorization=" + f.token(claims{email: "bob@contractor.example.com"})
	d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", contractor))
	if d.Body != `{"error":"forbidden","reason":"blocked"}` {
		t.Errorf("403 body = %q", d.Body)
	}
	d = f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", contractor, "sec-fetch-mode", "navigate"))
	if ct, _ := header(d.ResponseHeaders, hdrContentType); d.Status != 403 || !strings.HasPrefix(ct, "text/html") || !strings.Contains(d.Body, "blocked") {
		t.Errorf("403 for a navigation = %d %q %q, want an HTML page", d.Status, ct, d.Body)
	}
	d = f.engine.Decide(context.Background(), req("GET", "nowhere.example.org", "/"))
	if d.Body != `{"error":"forbidden","reason":"no_application"}` {
		t.Errorf("no_application body = %q", d.Body)
	}
	d = f.engine.Decide(context.Background(), req("GET", "app.example.com", "/%2F"))
	if d.Body != `{"error":"bad_request","reason":"bad_request"}` {
		t.Errorf("400 body = %q", d.Body)
	}
}

func TestDecideDefaultAllow(t *testing.T) {
	f := newEngineFixture(t)
	set := *f.engine.Set()
	set.DefaultAllow = true
	f.engine.Swap(&set)
	d := f.engine.Decide(context.Background(), req("GET", "nowhere.example.org", "/", hdrUserEmail, "spoof@example.com"))
	if d.Verdict != Forward || d.Reason != ReasonNoApplication || !slices.Contains(d.HeadersToRemove, hdrUserEmail) {
		t.Errorf("default allow: %+v, want a forward that strips identity headers", d)
	}
}

func TestEngineTokenCache(t *testing.T) {
	if e := New(fileKeySource{}, WithTokenCache(0)); e.verifier.cache != nil {
		t.Error("WithTokenCache(0): cache is on, want off")
	}
	f := newEngineFixture(t)
	tok := f.token(claims{email: "alice@example.com"})
	d := f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+tok))
	if d.Reason != ReasonAllowed || f.engine.verifier.cache.len() != 1 {
		t.Fatalf("Decide = %q with %d cached tokens, want allowed and 1", d.Reason, f.engine.verifier.cache.len())
	}
	f.engine.KeysChanged()
	if n := f.engine.verifier.cache.len(); n != 0 {
		t.Errorf("KeysChanged: %d cached tokens, want 0", n)
	}
	f.engine.Decide(context.Background(), req("GET", "app.example.com", "/", "cookie", "CF_Authorization="+tok))
	set := *f.engine.Set()
	f.engine.Swap(&set)
	if n := f.engine.verifier.cache.len(); n != 0 {
		t.Errorf("Swap: %d cached tokens, want 0", n)
	}
}
