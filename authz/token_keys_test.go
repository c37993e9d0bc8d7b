package authz

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"go.uber.org/zap/zaptest"
)

// certsServer serves a Cloudflare-shaped certs document (keys,
// public_cert, public_certs) for the given keys and counts its hits.
type certsServer struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	doc  []byte
}

func newCertsServer(t *testing.T, ks ...signingKey) *certsServer {
	t.Helper()
	s := &certsServer{}
	s.serve(t, ks...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		doc := s.doc
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *certsServer) serve(t *testing.T, ks ...signingKey) {
	t.Helper()
	var jwks []any
	var certs []map[string]string
	for _, k := range ks {
		jwks = append(jwks, k.public(t))
		certs = append(certs, map[string]string{
			"kid":  k.kid,
			"cert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t, k)})),
		})
	}
	doc, err := json.Marshal(map[string]any{"keys": jwks, "public_cert": certs[0], "public_certs": certs})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.doc = doc
	s.mu.Unlock()
}

// managedApp returns an application whose issuer's keys come from a real
// key manager fetching srv.
func managedApp(t *testing.T, srv *certsServer, clock func() time.Time) (*policies.Application, *jwks.Manager) {
	t.Helper()
	app := testApp()
	app.Issuer.JWKSURL = srv.URL + "/cdn-cgi/access/certs"
	app.Issuer.JWKSRefresh = time.Hour
	m := jwks.New(zaptest.NewLogger(t), jwks.WithClock(clock))
	t.Cleanup(m.Close)
	m.Sync(context.Background(), &policies.Set{Issuers: []*policies.Issuer{app.Issuer}, Applications: []*policies.Application{app}})
	if missing := m.Ready(&policies.Set{Issuers: []*policies.Issuer{app.Issuer}}); missing != nil {
		t.Fatalf("issuer without keys: %v", missing)
	}
	return app, m
}

// TestVerifyWithKeyManager runs tokens through the real key manager and a
// real certs endpoint: the attacker's URLs are never fetched, the issuer's
// endpoint only as the rate limit allows, and a rotation is picked up.
func TestVerifyWithKeyManager(t *testing.T) {
	ctx := context.Background()
	k := testKeys()
	rsaK, att := k["rsa"], k["attacker"]
	issuer := newCertsServer(t, rsaK, k["ec256"])
	attacker := newAttackerServer(t, att)
	var mu sync.Mutex
	now := testNow
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	app, m := managedApp(t, issuer, clock)
	v := NewVerifier(m, clock)
	good := claimsAt(testNow)
	posing := signingKey{kid: rsaK.kid, alg: jwa.RS256, priv: att.priv}

	tests := []struct {
		name  string
		token string
		want  Reason
		hits  int64 // issuer endpoint hits after this token
	}{
		{"valid RS256", sign(t, rsaK, good, nil), "", 1},
		{"valid ES256", sign(t, k["ec256"], good, nil), "", 1},
		{"jku to attacker", sign(t, att, good, map[string]any{"jku": attacker.URL + "/jwks"}), ReasonTokenUnknownKey, 2},
		{"x5u to attacker", sign(t, posing, good, map[string]any{"x5u": attacker.URL + "/cert.pem"}), ReasonTokenSignature, 2},
		{"embedded jwk", sign(t, posing, good, map[string]any{"jwk": att.public(t)}), ReasonTokenSignature, 2},
		{"kid path traversal", reheader(sign(t, rsaK, good, nil), map[string]any{"alg": "RS256", "kid": "../../etc/passwd"}), ReasonTokenUnknownKey, 2},
		{"HS256 with the public key", hs(t, rsaK), ReasonTokenSignature, 2},
		{"ES256 key with RS256 header", reheader(sign(t, k["ec256"], good, nil), map[string]any{"alg": "RS256", "kid": k["ec256"].kid}), ReasonTokenSignature, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := v.Verify(ctx, tt.token, app); got != tt.want {
				t.Errorf("Verify(%s): reason = %q, want %q", tt.name, got, tt.want)
			}
			if got := issuer.hits.Load(); got != tt.hits {
				t.Errorf("issuer endpoint hits = %d, want %d", got, tt.hits)
			}
		})
	}
	if n := attacker.hits.Load(); n != 0 {
		t.Errorf("attacker server hits = %d, want 0", n)
	}

	// Rotation: the issuer adds a key. Within 10 s of the last unknown-kid
	// refresh the new kid is unknown; after that, one refresh finds it.
	rotated := signingKey{kid: "rotated-kid", alg: jwa.EdDSA, priv: k["ed"].priv}
	issuer.serve(t, rotated, rsaK)
	tok := sign(t, rotated, good, nil)
	if _, got := v.Verify(ctx, tok, app); got != ReasonTokenUnknownKey {
		t.Errorf("new kid within 10s: reason = %q, want %q", got, ReasonTokenUnknownKey)
	}
	mu.Lock()
	now = now.Add(10 * time.Second)
	mu.Unlock()
	if _, got := v.Verify(ctx, tok, app); got != "" {
		t.Errorf("new kid after 10s: reason = %q, want none", got)
	}
	if got := issuer.hits.Load(); got != 3 {
		t.Errorf("issuer endpoint hits after rotation = %d, want 3", got)
	}
	// The rotated-out key's tokens fail once the set no longer has it, even
	// though they were verified (and cached) before.
	ecTok := sign(t, k["ec256"], good, nil)
	if _, got := v.Verify(ctx, ecTok, app); got != ReasonTokenUnknownKey {
		t.Errorf("token of a removed key: reason = %q, want %q", got, ReasonTokenUnknownKey)
	}
}

func hs(t *testing.T, k signingKey) string {
	t.Helper()
	b, err := json.Marshal(k.public(t))
	if err != nil {
		t.Fatal(err)
	}
	return handMade(map[string]any{"alg": "HS256", "kid": k.kid}, claimsAt(testNow), []byte(strings.TrimSpace(string(b))))
}
