package httpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/authz"
)

// benchRequest is the auth request a proxy sends for a browser's API call,
// the same dozen headers as the gRPC adapter's BenchmarkCheck, with the
// endpoint's facts.
func benchRequest(ep Endpoint, cookie string) *http.Request {
	target := map[Endpoint]string{
		Envoy: "/auth/envoy/ok/api/items?page=2", Forward: "/auth/forward", Nginx: "/auth/nginx",
		NginxRender: "/auth/nginx/render", Answer: "/auth/answer/ok/api/items?page=2",
	}[ep]
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Host = "app.example.com"
	r.RemoteAddr = "10.0.0.7:41234"
	h := r.Header
	h.Set("Accept", "application/json")
	h.Set("Accept-Encoding", "gzip, deflate, br")
	h.Set("Accept-Language", "en-US,en;q=0.9")
	h.Set("Cookie", cookie)
	h.Set("Origin", "https://www.example.com")
	h.Set("Referer", "https://www.example.com/reports")
	h.Set("Sec-Fetch-Mode", "cors")
	h.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36")
	h.Set("X-Forwarded-For", "203.0.113.9")
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-Request-Id", "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11")
	switch ep {
	case Forward:
		h.Set("X-Forwarded-Method", "GET")
		h.Set("X-Forwarded-Host", "app.example.com")
		h.Set("X-Forwarded-Uri", "/ok/api/items?page=2")
	case Nginx, NginxRender:
		h.Set("X-Original-Method", "GET")
		h.Set("X-Forwarded-Host", "app.example.com")
		h.Set("X-Original-URI", "/ok/api/items?page=2")
	}
	return r
}

// discard is a ResponseWriter that keeps nothing, so that the benchmark
// measures the adapter, not a recorder.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func benchServe(b *testing.B, s *Server, r *http.Request) {
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, r)
	}
}

// BenchmarkAdapter is the HTTP adapter alone, per endpoint: facts in, the
// answer out, with a decider that returns a fixed forward (as the gRPC
// adapter's BenchmarkCheck does).
func BenchmarkAdapter(b *testing.B) {
	d := authz.Decision{
		Verdict: authz.Forward, Status: 200, Reason: authz.ReasonAllowed, Application: "dashboard", Policy: "staff",
		Headers: []authz.Header{
			{Key: "cf-access-authenticated-user-email", Value: "alice@example.com"},
			{Key: "cf-access-jwt-assertion", Value: strings.Repeat("t", 714)},
		},
		HeadersToRemove: []string{"cf-access-client-id", "cf-access-client-secret", "cf-access-token"},
		ResponseHeaders: []authz.Header{
			{Key: "access-control-allow-origin", Value: "https://www.example.com"},
			{Key: "access-control-allow-credentials", Value: "true"},
			{Key: "vary", Value: "Origin", Append: true},
		},
	}
	s := NewServer(deciderFunc(func(context.Context, *authz.Request) authz.Decision { return d }), nil)
	cookie := "_ga=GA1.2.3; CF_Authorization=" + strings.Repeat("t", 714) + "; theme=dark"
	for _, ep := range []Endpoint{Envoy, Forward, Nginx} {
		b.Run(strings.ReplaceAll(ep.String(), "/", "_"), func(b *testing.B) {
			benchServe(b, s, benchRequest(ep, cookie))
		})
	}
}

// BenchmarkForward is an allowed request through /auth/forward with the
// real Engine (the token verified once, then cached), the path a Traefik
// or Caddy deployment takes for every request.
func BenchmarkForward(b *testing.B) {
	f := newFixture(b)
	s := NewServer(f.engine, nil)
	r := benchRequest(Forward, "_ga=GA1.2.3; CF_Authorization="+f.token(b, "alice@example.com")+"; theme=dark")
	r.Header.Set("X-Forwarded-Uri", "/api/items?page=2")
	benchServe(b, s, r)
}

// BenchmarkNginx is the same request through /auth/nginx.
func BenchmarkNginx(b *testing.B) {
	f := newFixture(b)
	s := NewServer(f.engine, nil)
	r := benchRequest(Nginx, "_ga=GA1.2.3; CF_Authorization="+f.token(b, "alice@example.com")+"; theme=dark")
	r.Header.Set("X-Original-URI", "/api/items?page=2")
	benchServe(b, s, r)
}

// BenchmarkEnvoyHTTP is the same request through /auth/envoy.
func BenchmarkEnvoyHTTP(b *testing.B) {
	f := newFixture(b)
	s := NewServer(f.engine, nil)
	r := benchRequest(Envoy, "_ga=GA1.2.3; CF_Authorization="+f.token(b, "alice@example.com")+"; theme=dark")
	r.RequestURI = "/auth/envoy/api/items?page=2"
	benchServe(b, s, r)
}

// BenchmarkAnswer is a preflight answered at /auth/answer.
func BenchmarkAnswer(b *testing.B) {
	f := newFixture(b)
	s := NewServer(f.engine, nil)
	r := benchRequest(Answer, "")
	r.Method = http.MethodOptions
	r.Header.Del("Cookie")
	r.Header.Set("Access-Control-Request-Method", "PUT")
	benchServe(b, s, r)
}
