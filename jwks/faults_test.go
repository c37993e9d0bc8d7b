package jwks_test

// JWKS faults, injected into a real HTTP endpoint and judged
// through the real token verifier (authz.Verifier over jwks.Manager): an
// outage at start, an outage, a slow or hanging endpoint and garbage
// later, and a key rotation with overlap. jwks_test.go covers the manager
// on its own (forced refreshes, the rate limit, the document formats);
// this file is in the external test package because it drives the
// manager through authz, as a running gate does.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"go.uber.org/zap/zaptest"
)

// ecKey is an issuer signing key (ES256: fast to generate).
type ecKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newECKey(t *testing.T, kid string) ecKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return ecKey{kid: kid, priv: priv}
}

// jwksOf is the JWK set document publishing ks.
func jwksOf(t *testing.T, ks ...ecKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for _, k := range ks {
		pub, err := jwk.FromRaw(&k.priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		_ = pub.Set(jwk.KeyIDKey, k.kid)
		_ = pub.Set(jwk.KeyUsageKey, "sig")
		_ = set.AddKey(pub)
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// token is a valid Access token for app, signed by k.
func (k ecKey) token(t *testing.T, app *policies.Application) string {
	t.Helper()
	now := time.Now()
	payload, err := json.Marshal(map[string]any{
		"iss": app.Issuer.Issuer, "aud": []string{app.Audience},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(),
		"email": "alice@example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.KeyIDKey, k.kid)
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// fault is what the JWKS endpoint does to a request.
type fault int

const (
	serveOK     fault = iota // 200 and the current document
	serveStatus              // the set status with the document as body
	serveHang                // never answer, until the client gives up
	serveStall               // 200 and half a document, then nothing
)

// faultServer is a JWKS endpoint whose answers the test switches.
type faultServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	mode   fault
	status int
	doc    []byte
}

func newFaultServer(t *testing.T, doc []byte) *faultServer {
	t.Helper()
	s := &faultServer{doc: doc}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		mode, status, doc := s.mode, s.status, s.doc
		s.mu.Unlock()
		switch mode {
		case serveHang:
			<-r.Context().Done()
		case serveStall:
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc[:len(doc)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case serveStatus:
			w.WriteHeader(status)
			w.Write(doc)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(doc)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *faultServer) set(mode fault, status int, doc []byte) {
	s.mu.Lock()
	s.mode, s.status, s.doc = mode, status, doc
	s.mu.Unlock()
}

// fetchResult is one call of the manager's fetch hook.
type fetchResult struct {
	err error
	at  time.Time
}

// fetches collects fetch hook calls; the hook never blocks.
type fetches chan fetchResult

func (c fetches) hook(_ string, err error) {
	select {
	case c <- fetchResult{err, time.Now()}:
	default:
	}
}

// await reads fetch results until ok accepts one (then returns it), or
// fails the test after 10 s.
func (c fetches) await(t *testing.T, what string, ok func(error) bool) fetchResult {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case r := <-c:
			if ok(r.err) {
				return r
			}
		case <-deadline.C:
			t.Fatalf("no %s within 10s", what)
		}
	}
}

func failed(err error) bool    { return err != nil }
func succeeded(err error) bool { return err == nil }

// frozen is a clock that never moves: the manager's 10 s limit on
// unknown-kid refreshes never reopens unless a test moves it.
type frozen struct {
	mu sync.Mutex
	t  time.Time
}

func (c *frozen) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *frozen) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// gate is a real key manager for one issuer at url, and verifiers on it:
// one with the token cache a running gate has, one without.
type gate struct {
	m        *jwks.Manager
	set      *policies.Set
	app      *policies.Application
	cached   *authz.Verifier
	uncached *authz.Verifier
}

func newGate(t *testing.T, url string, opts ...jwks.Option) *gate {
	t.Helper()
	iss := &policies.Issuer{Name: "team", Issuer: "https://team.example.com", JWKSURL: url, JWKSRefresh: time.Hour, Leeway: 30 * time.Second}
	app := &policies.Application{Name: "dashboard", Audience: "aud-dashboard", Issuer: iss}
	m := jwks.New(zaptest.NewLogger(t), opts...)
	t.Cleanup(m.Close)
	g := &gate{
		m:        m,
		set:      &policies.Set{Issuers: []*policies.Issuer{iss}, Applications: []*policies.Application{app}},
		app:      app,
		cached:   authz.NewVerifier(m, time.Now),
		uncached: authz.NewVerifier(m, time.Now, authz.WithVerifierCache(0)),
	}
	m.Sync(context.Background(), g.set)
	return g
}

// verify checks token with both verifiers, which must agree.
func (g *gate) verify(t *testing.T, token string) authz.Reason {
	t.Helper()
	_, r1 := g.cached.Verify(context.Background(), token, g.app)
	_, r2 := g.uncached.Verify(context.Background(), token, g.app)
	if r1 != r2 {
		t.Errorf("cached verifier says %q, uncached %q", r1, r2)
	}
	return r1
}

func TestFaultJWKSDownAtStart(t *testing.T) {
	a := newECKey(t, "a")
	tests := []struct {
		name    string
		mode    fault
		status  int
		doc     []byte
		refused bool // connection refused: the endpoint never comes back
	}{
		{"connection refused", serveOK, 0, nil, true},
		{"503", serveStatus, http.StatusServiceUnavailable, []byte("down"), false},
		{"404", serveStatus, http.StatusNotFound, []byte("not found"), false},
		{"hanging", serveHang, 0, nil, false},
		{"garbage JSON", serveOK, 0, []byte("<html>oops</html>"), false},
		{"empty key set", serveOK, 0, []byte(`{"keys":[]}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFaultServer(t, tt.doc)
			srv.set(tt.mode, tt.status, tt.doc)
			url := srv.URL + "/certs"
			if tt.refused {
				srv.Close()
			}
			log := make(fetches, 1000)
			// first, longest: 1 ms doubling to 8 ms.
			g := newGate(t, url, jwks.WithFetchHook(log.hook), jwks.WithBackoff(time.Millisecond, 8*time.Millisecond),
				jwks.WithTimeout(20*time.Millisecond))

			if missing := g.m.Ready(g.set); len(missing) != 1 || missing[0] != "team" {
				t.Fatalf("Ready = %v, want [team]", missing)
			}
			// The retries back off: each wait at least doubles up to the cap.
			// A timer never fires early, so these lower bounds cannot flake.
			prev := log.await(t, "first failed fetch", failed)
			for i, want := range []time.Duration{1, 2, 4, 8, 8} {
				next := log.await(t, "retry", failed)
				if gap := next.at.Sub(prev.at); gap < want*time.Millisecond {
					t.Errorf("retry %d came %v after the previous fetch, want at least %v", i+1, gap, want*time.Millisecond)
				}
				prev = next
			}
			if missing := g.m.Ready(g.set); len(missing) != 1 {
				t.Fatalf("Ready after retries = %v, want [team]", missing)
			}
			// The issuer's tokens are refused, never accepted.
			tok := a.token(t, g.app)
			for range 3 {
				if got := g.verify(t, tok); got != authz.ReasonTokenUnknownKey {
					t.Fatalf("Verify during the outage = %q, want %q", got, authz.ReasonTokenUnknownKey)
				}
			}
			if tt.refused {
				return
			}

			// The endpoint recovers: the next retry brings the keys.
			srv.set(serveOK, 0, jwksOf(t, a))
			log.await(t, "successful fetch", succeeded)
			if missing := g.m.Ready(g.set); missing != nil {
				t.Fatalf("Ready after recovery = %v, want none", missing)
			}
			if got := g.verify(t, tok); got != "" {
				t.Errorf("Verify after recovery = %q, want none", got)
			}
		})
	}
}

func TestFaultJWKSFailsLater(t *testing.T) {
	a := newECKey(t, "a")
	stranger := newECKey(t, "b")
	tests := []struct {
		name   string
		mode   fault
		status int
		doc    []byte
		closed bool // the endpoint stops listening
	}{
		{"connection refused", serveOK, 0, nil, true},
		{"500", serveStatus, http.StatusInternalServerError, []byte(`{"keys":[]}`), false},
		{"hanging", serveHang, 0, nil, false},
		{"stalled body", serveStall, 0, nil, false},
		{"garbage JSON", serveOK, 0, []byte("<html>maintenance</html>"), false},
		{"truncated JSON", serveOK, 0, []byte(`{"keys":[{"kty":"EC"`), false},
		{"JSON null", serveOK, 0, []byte("null"), false},
		{"JSON array", serveOK, 0, []byte("[]"), false},
		{"empty object", serveOK, 0, []byte("{}"), false},
		{"empty key set", serveOK, 0, []byte(`{"keys":[]}`), false},
		{"only a symmetric key", serveOK, 0, []byte(`{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := jwksOf(t, a)
			srv := newFaultServer(t, good)
			log := make(fetches, 1000)
			// Periodic refresh every millisecond: faults are met by the
			// scheduled refresh, not only by an unknown kid.
			g := newGate(t, srv.URL+"/certs", jwks.WithFetchHook(log.hook), jwks.WithRefreshInterval(time.Millisecond),
				jwks.WithBackoff(time.Millisecond, 2*time.Millisecond), jwks.WithTimeout(20*time.Millisecond))
			tok := a.token(t, g.app)
			if got := g.verify(t, tok); got != "" {
				t.Fatalf("Verify before the fault = %q, want none", got)
			}
			before, err := g.m.Key(context.Background(), g.app.Issuer, "a")
			if err != nil {
				t.Fatal(err)
			}
			gen := jwks.Generation(g.m)

			doc := tt.doc
			if tt.mode == serveStall {
				doc = good
			}
			srv.set(tt.mode, tt.status, doc)
			if tt.closed {
				srv.Close()
			}
			// Drain results of fetches that began before the fault, then
			// require several failures in a row.
			log.await(t, "failed refresh", failed)
			for range 3 {
				if r := log.await(t, "failed refresh", func(error) bool { return true }); r.err == nil {
					t.Fatalf("a refresh succeeded during %s", tt.name)
				}
			}
			if tt.mode == serveHang || tt.mode == serveStall {
				r := log.await(t, "timed-out refresh", failed)
				if !errors.Is(r.err, context.DeadlineExceeded) {
					t.Errorf("refresh error = %v, want a deadline", r.err)
				}
			}

			// The last good keys stay in force, unchanged.
			if missing := g.m.Ready(g.set); missing != nil {
				t.Errorf("Ready during %s = %v, want none: the last good keys serve", tt.name, missing)
			}
			if after, err := g.m.Key(context.Background(), g.app.Issuer, "a"); err != nil || after != before {
				t.Errorf("Key(a) during %s = %v, %v: want the last good key", tt.name, after, err)
			}
			if jwks.Generation(g.m) != gen {
				t.Errorf("Generation moved during %s", tt.name)
			}
			for range 3 {
				if got := g.verify(t, tok); got != "" {
					t.Fatalf("Verify of a valid token during %s = %q, want none", tt.name, got)
				}
			}
			if got := g.verify(t, stranger.token(t, g.app)); got != authz.ReasonTokenUnknownKey {
				t.Errorf("Verify of an unpublished key's token during %s = %q, want %q", tt.name, got, authz.ReasonTokenUnknownKey)
			}
		})
	}
}

func TestFaultJWKSRotationWithOverlap(t *testing.T) {
	old, next := newECKey(t, "old"), newECKey(t, "next")

	// verifyAll verifies tokens from several goroutines and counts
	// refusals; the periodic refresh runs meanwhile.
	verifyAll := func(t *testing.T, g *gate, rounds int, toks ...string) (refused int64) {
		t.Helper()
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					tok := toks[(w+i)%len(toks)]
					if _, r := g.cached.Verify(context.Background(), tok, g.app); r != "" {
						n.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return n.Load()
	}

	t.Run("new kid fetched on first sight", func(t *testing.T) {
		srv := newFaultServer(t, jwksOf(t, old))
		clk := &frozen{t: time.Unix(1_800_000_000, 0)}
		g := newGate(t, srv.URL+"/certs", jwks.WithClock(clk.now))
		oldTok, nextTok := old.token(t, g.app), next.token(t, g.app)
		if got := g.verify(t, oldTok); got != "" {
			t.Fatalf("old key's token = %q", got)
		}
		// Overlap: the issuer publishes next beside old, then signs with it.
		srv.set(serveOK, 0, jwksOf(t, old, next))
		if got := g.verify(t, nextTok); got != "" {
			t.Fatalf("next key's first token = %q, want none: an unknown kid refreshes", got)
		}
		if n := verifyAll(t, g, 200, oldTok, nextTok); n != 0 {
			t.Errorf("%d valid tokens refused during the overlap", n)
		}
		// old is retired. Until the next refresh its tokens still pass
		// (they were signed while it was published); after it they fail.
		srv.set(serveOK, 0, jwksOf(t, next))
		clk.add(jwks.DefaultMinRefreshGap)
		if got := g.verify(t, newECKey(t, "probe").token(t, g.app)); got != authz.ReasonTokenUnknownKey {
			t.Fatalf("probe token = %q", got) // forces the refresh
		}
		if got := g.verify(t, oldTok); got != authz.ReasonTokenUnknownKey {
			t.Errorf("retired key's token = %q, want %q", got, authz.ReasonTokenUnknownKey)
		}
		if n := verifyAll(t, g, 200, nextTok); n != 0 {
			t.Errorf("%d valid tokens of the new key refused after the rotation", n)
		}
	})

	t.Run("scheduled refresh while the rate limit is spent", func(t *testing.T) {
		// An attacker's unknown kid has spent the unknown-kid refresh, and
		// the clock never moves on: only the scheduled refresh can bring
		// the new key. An overlap longer than jwks_refresh suffices.
		srv := newFaultServer(t, jwksOf(t, old))
		clk := &frozen{t: time.Unix(1_800_000_000, 0)}
		log := make(fetches, 1000)
		g := newGate(t, srv.URL+"/certs", jwks.WithClock(clk.now), jwks.WithFetchHook(log.hook), jwks.WithRefreshInterval(2*time.Millisecond))
		oldTok, nextTok := old.token(t, g.app), next.token(t, g.app)
		if got := g.verify(t, newECKey(t, "attacker").token(t, g.app)); got != authz.ReasonTokenUnknownKey {
			t.Fatalf("attacker token = %q", got)
		}
		gen := jwks.Generation(g.m)
		srv.set(serveOK, 0, jwksOf(t, old, next))
		// Wait for a scheduled refresh that brought the new document.
		for jwks.Generation(g.m) == gen {
			log.await(t, "scheduled refresh", succeeded)
		}
		if n := verifyAll(t, g, 200, oldTok, nextTok); n != 0 {
			t.Errorf("%d valid tokens refused during the overlap", n)
		}
		gen = jwks.Generation(g.m)
		srv.set(serveOK, 0, jwksOf(t, next))
		for jwks.Generation(g.m) == gen {
			log.await(t, "scheduled refresh", succeeded)
		}
		if got := g.verify(t, oldTok); got != authz.ReasonTokenUnknownKey {
			t.Errorf("retired key's token = %q, want %q", got, authz.ReasonTokenUnknownKey)
		}
		if n := verifyAll(t, g, 200, nextTok); n != 0 {
			t.Errorf("%d valid tokens of the new key refused after the rotation", n)
		}
	})
}
