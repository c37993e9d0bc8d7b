package jwks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// redirector answers every request with a 302 to target.
func redirector(t *testing.T, tls bool, target string) *httptest.Server {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusFound)
	})
	var s *httptest.Server
	if tls {
		s = httptest.NewTLSServer(h)
	} else {
		s = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// TestRedirectOnlyToHTTPS: a key-set fetch follows a redirect only to an
// https URL, whatever the scheme of the jwks_url, so that no one on the
// path can serve keys in clear text. Every server is real; the https ones
// share httptest's certificate, which the client trusts.
func TestRedirectOnlyToHTTPS(t *testing.T) {
	doc := certsDoc(t, kidKey{"a", rsaA()})
	var tlsHits atomic.Int64
	keysTLS := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tlsHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(keysTLS.Close)
	keysHTTP := newJWKSServer(t, doc)

	tests := []struct {
		name     string
		from     *httptest.Server
		wantErr  bool
		wantHits *atomic.Int64 // hits the final server must have got
	}{
		{"https to http refused", redirector(t, true, keysHTTP.URL+"/certs"), true, &keysHTTP.hits},
		{"loopback http to http refused", redirector(t, false, keysHTTP.URL+"/certs"), true, &keysHTTP.hits},
		{"https to https followed", redirector(t, true, keysTLS.URL+"/certs"), false, &tlsHits},
		{"loopback http to https followed", redirector(t, false, keysTLS.URL+"/certs"), false, &tlsHits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.wantHits.Load()
			m := newManager(t, withHTTPClient(keysTLS.Client()))
			ks, err := m.fetch(context.Background(), tt.from.URL+"/cdn-cgi/access/certs")
			hits := tt.wantHits.Load() - before
			if tt.wantErr {
				if !errors.Is(err, errInsecureRedirect) {
					t.Errorf("fetch error = %v, want errInsecureRedirect", err)
				}
				if hits != 0 {
					t.Errorf("the http target got %d requests, want 0", hits)
				}
				return
			}
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if _, ok := ks.get("a"); !ok || hits != 1 {
				t.Errorf("key a found = %v after %d hits on the https target, want found after 1", ok, hits)
			}
		})
	}
}

// TestRedirectLimit: following https redirects still stops, as net/http's
// default policy does, instead of looping forever.
func TestRedirectLimit(t *testing.T) {
	var loop *httptest.Server
	loop = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+r.URL.Path+"x", http.StatusFound)
	}))
	t.Cleanup(loop.Close)
	m := newManager(t, withHTTPClient(loop.Client()))
	_, err := m.fetch(context.Background(), loop.URL+"/certs")
	if err == nil || errors.Is(err, errInsecureRedirect) {
		t.Fatalf("fetch through a redirect loop = %v, want the redirect limit", err)
	}
}

// TestRedirectRuleKeepsCallerClient: the rule is set on the Manager's own
// copy; a client passed in is not changed under its owner.
func TestRedirectRuleKeepsCallerClient(t *testing.T) {
	c := &http.Client{}
	newManager(t, withHTTPClient(c))
	if c.CheckRedirect != nil {
		t.Error("New changed the CheckRedirect of the client passed in")
	}
}
