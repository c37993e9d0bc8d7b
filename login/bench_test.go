package login

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/accessgate/accessgate/login/internal/logintest"
)

// bodyWriter is a ResponseWriter that keeps only what a benchmark checks,
// so that it measures the handler, not a recorder.
type bodyWriter struct {
	h    http.Header
	code int
	body []byte
}

func (w *bodyWriter) Header() http.Header         { return w.h }
func (w *bodyWriter) WriteHeader(code int)        { w.code = code }
func (w *bodyWriter) Write(p []byte) (int, error) { w.body = p; return len(p), nil }

// BenchmarkCerts is one GET /cdn-cgi/access/certs, the JWKS endpoint that
// every verifier of the team domain's tokens polls: the document (public
// keys and their self-signed certificates) is built once per configuration
// and served as it is, so an answer costs the headers and one write.
func BenchmarkCerts(b *testing.B) {
	set := logintest.Load(b, logintest.Config{Algs: []string{"ES256", "RS256"}})
	s, err := New(set, Options{})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "https://auth.example.com"+pathCerts, nil)
	w := &bodyWriter{h: http.Header{}}
	s.ServeHTTP(w, r)
	if w.code != 0 && w.code != http.StatusOK || !bytes.Equal(w.body, s.certs) || len(w.body) == 0 {
		b.Fatalf("certs answered %d with %d bytes, want 200 with the %d-byte document", w.code, len(w.body), len(s.certs))
	}
	if &w.body[0] != &s.certs[0] {
		b.Fatal("certs answered with a copy, not the precomputed document")
	}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		s.ServeHTTP(w, r)
	}
}
