package authz

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// Decide benchmarks: the real Engine on testdata/engine.yaml, a real ES256
// key (JWKS written next to a copy of the policy file, as in production
// with jwks_file) and a Cloudflare-shaped token of about 700 bytes in the
// CF_Authorization cookie, among the dozen headers Envoy sends for a
// browser request. First sight of a token (full signature check) per
// algorithm is BenchmarkVerify/*/first in token_cache_test.go.

// benchEngine is an Engine on testdata/engine.yaml with a fresh ES256 key;
// sign mints tokens for it.
func benchEngine(b *testing.B) (e *Engine, sign func(exp time.Time) string) {
	b.Helper()
	// A Cloudflare kid is the hex SHA-256 of the key.
	priv := testkit.ES256(b, "c2a93f1d5b7e4a6c8d0f2e4b6a8c0d2f4e6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c")
	jwks := testkit.JWKS(b, priv)
	policy, err := os.ReadFile("testdata/engine.yaml")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), jwks, 0o600); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, "engine.yaml")
	if err := os.WriteFile(file, policy, 0o600); err != nil {
		b.Fatal(err)
	}
	ps, err := policies.Load(file)
	if err != nil {
		b.Fatal(err)
	}
	e = New(fileKeySource{})
	e.Swap(ps)
	sign = func(exp time.Time) string {
		now := time.Now()
		tok, err := jwt.NewBuilder().
			Issuer("https://team.example.com").
			Audience([]string{"aud-dashboard"}).
			Subject("7335d417-61da-459d-899c-0a01c76a2f94").
			IssuedAt(now.Add(-time.Minute)).
			NotBefore(now.Add(-time.Minute)).
			Expiration(exp).
			Claim("email", "alice@example.com").
			Claim("type", "app").
			Claim("identity_nonce", "6ei69kawdKzMIAPF").
			Claim("country", "NL").
			Claim("custom", map[string]any{"groups": []string{"eng", "ops"}, "department": "engineering"}).
			Build()
		if err != nil {
			b.Fatal(err)
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv))
		if err != nil {
			b.Fatal(err)
		}
		return string(signed)
	}
	return e, sign
}

// browserRequest is a request as Envoy reports it for a browser: pseudo
// headers, the usual browser headers and the Access cookie among others.
func browserRequest(method, host, path, token string, extra ...string) *Request {
	cookie := "_ga=GA1.2.1234567890.1700000000; theme=dark"
	if token != "" {
		cookie += "; CF_Authorization=" + token + "; _gid=GA1.2.987654321.1700000000"
	}
	h := map[string]string{
		":authority":        host,
		":method":           method,
		":path":             path,
		":scheme":           "https",
		"accept":            "application/json, text/plain, */*",
		"accept-encoding":   "gzip, deflate, br, zstd",
		"accept-language":   "en-US,en;q=0.9,nl;q=0.8",
		"cookie":            cookie,
		"sec-fetch-mode":    "cors",
		"sec-fetch-site":    "same-origin",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"x-forwarded-for":   "203.0.113.9",
		"x-forwarded-proto": "https",
		"x-request-id":      "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return &Request{Method: method, Scheme: "https", Host: host, Path: path, Headers: h,
		SourceIP: netip.MustParseAddr("10.0.0.7")}
}

// counted sets r.HeaderBytes as an adapter that counts while building the
// header map does.
func counted(r *Request) *Request {
	r.HeaderBytes = headerBytes(r.Headers)
	return r
}

func BenchmarkDecide(b *testing.B) {
	e, sign := benchEngine(b)
	valid := sign(time.Now().Add(time.Hour))
	expired := sign(time.Now().Add(-time.Hour))
	if len(valid) < 600 || len(valid) > 900 {
		b.Fatalf("token is %d bytes, want about 700 like Cloudflare's", len(valid))
	}
	navigate := []string{"sec-fetch-mode", "navigate", "accept", "text/html,application/xhtml+xml"}
	cases := []struct {
		name   string
		req    *Request
		reason Reason
		status int
	}{
		{"bypass", browserRequest("GET", "app.example.com", "/healthz", ""), ReasonBypass, 200},
		{"allow_cached", browserRequest("GET", "app.example.com", "/api/items?page=2", valid), ReasonAllowed, 200},
		{"preflight", browserRequest("OPTIONS", "app.example.com", "/api/items", "",
			"origin", "https://www.example.com", "access-control-request-method", "PUT",
			"access-control-request-headers", "content-type"), ReasonPreflight, 204},
		// The same preflight from an adapter that knows the header bytes
		// (the HTTP endpoints count them while building the map, the
		// gRPC adapter bounds them by the CheckRequest's size): Decide
		// skips its own pass over the map.
		{"preflight_counted", counted(browserRequest("OPTIONS", "app.example.com", "/api/items", "",
			"origin", "https://www.example.com", "access-control-request-method", "PUT",
			"access-control-request-headers", "content-type")), ReasonPreflight, 204},
		{"allow_cached_counted", counted(browserRequest("GET", "app.example.com", "/api/items?page=2", valid)), ReasonAllowed, 200},
		{"redirect", browserRequest("GET", "app.example.com", "/reports?q=1", "", navigate...), ReasonTokenMissing, 302},
		{"expired", browserRequest("GET", "app.example.com", "/api/items", expired), ReasonTokenExpired, 401},
		{"no_application", browserRequest("GET", "unknown.example.org", "/", valid), ReasonNoApplication, 403},
		{"forward_cors", browserRequest("GET", "api.example.com", "/v1/items", valid,
			"origin", "https://www.example.com", "sec-fetch-site", "same-site"), ReasonAllowed, 200},
	}
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			d := e.Decide(ctx, c.req) // warms the token cache
			if d.Reason != c.reason || d.Status != c.status {
				b.Fatalf("Decide(%s): reason, status = %q, %d, want %q, %d", c.name, d.Reason, d.Status, c.reason, c.status)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(ctx, c.req)
			}
		})
	}
}
