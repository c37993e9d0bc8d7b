package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	rsaA = sync.OnceValue(func() crypto.Signer { return mustRSA() })
	rsaB = sync.OnceValue(func() crypto.Signer { return mustRSA() })
)

func mustRSA() crypto.Signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// pub returns k's public JWK with kid and Cloudflare's alg and use.
func pub(t testing.TB, k crypto.Signer, kid string) jwk.Key {
	t.Helper()
	j, err := jwk.FromRaw(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	j.Set(jwk.KeyIDKey, kid)
	if _, ok := k.(*rsa.PrivateKey); ok {
		j.Set(jwk.AlgorithmKey, "RS256")
	}
	j.Set(jwk.KeyUsageKey, "sig")
	return j
}

func certPEM(t testing.TB, k crypto.Signer) string {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

type kidKey struct {
	kid string
	key crypto.Signer
}

// certsDoc is a Cloudflare-shaped certs document: keys, public_cert (the
// first key) and public_certs.
func certsDoc(t testing.TB, ks ...kidKey) []byte {
	t.Helper()
	var keys []any
	var certs []map[string]string
	for _, k := range ks {
		keys = append(keys, pub(t, k.key, k.kid))
		certs = append(certs, map[string]string{"kid": k.kid, "cert": certPEM(t, k.key)})
	}
	doc := map[string]any{"keys": keys, "public_certs": certs}
	if len(certs) > 0 {
		doc["public_cert"] = certs[0]
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksServer serves whatever body and status it is set to, counting hits.
type jwksServer struct {
	*httptest.Server
	hits   atomic.Int64
	mu     sync.Mutex
	body   []byte
	status int
	block  bool // hold each request until the client gives up
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		body, status, block := s.body, s.status, s.block
		s.mu.Unlock()
		if block {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

func issuerFor(url string) *policies.Issuer {
	return &policies.Issuer{Name: "team", Issuer: "https://team.example.com", JWKSURL: url, JWKSRefresh: time.Hour, Leeway: 30 * time.Second}
}

func setOfIssuers(iss ...*policies.Issuer) *policies.Set { return &policies.Set{Issuers: iss} }

// clock is a settable clock for the unknown-kid rate limit.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fetchLog records the fetch hook's calls on a channel.
type fetchLog chan error

// hook never blocks (a fetcher must not stall on it); results beyond the
// buffer are dropped.
func (l fetchLog) hook(_ string, err error) {
	select {
	case l <- err:
	default:
	}
}

// next waits for the next fetch result.
func (l fetchLog) next(t *testing.T) error {
	t.Helper()
	select {
	case err := <-l:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch within 10s")
		return nil
	}
}

func newManager(t *testing.T, opts ...Option) *Manager {
	t.Helper()
	m := New(zaptest.NewLogger(t), opts...)
	t.Cleanup(m.Close)
	return m
}

func TestKeyFromCertsDocument(t *testing.T) {
	srv := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	m := newManager(t)
	iss := issuerFor(srv.URL)
	set := setOfIssuers(iss)
	if missing := m.Ready(set); len(missing) != 1 {
		t.Fatalf("Ready before Sync = %v, want [team]", missing)
	}
	m.Sync(context.Background(), set)
	if missing := m.Ready(set); missing != nil {
		t.Fatalf("Ready after Sync = %v, want none", missing)
	}
	k, err := m.Key(context.Background(), iss, "a")
	if err != nil {
		t.Fatalf("Key(a): %v", err)
	}
	if _, ok := k.(jwk.RSAPublicKey); !ok {
		t.Errorf("Key(a) = %T, want an RSA public key", k)
	}
	if k2, _ := m.Key(context.Background(), iss, "a"); k2 != k {
		t.Error("Key(a) twice returned different key values")
	}
	if k, err := m.Key(context.Background(), iss, ""); err != nil || k == nil {
		t.Errorf("Key(\"\") with one key = %v, %v, want it", k, err)
	}
	if _, err := m.Key(context.Background(), iss, "zzz"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(zzz) error = %v, want ErrUnknownKey", err)
	}
}

// TestHTTPSKeySet: keys are fetched over https with the client the manager
// is given; its own default client refuses the test CA, so the issuer stays
// without keys.
func TestHTTPSKeySet(t *testing.T) {
	doc := certsDoc(t, kidKey{"a", rsaA()})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	defer srv.Close()
	tests := []struct {
		name      string
		opts      []Option
		wantReady bool
	}{
		{"the server's client", []Option{withHTTPClient(srv.Client()), WithTimeout(5 * time.Second)}, true},
		{"the default client", []Option{WithTimeout(5 * time.Second), WithBackoff(time.Hour, time.Hour)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, tt.opts...)
			set := setOfIssuers(issuerFor(srv.URL))
			m.Sync(context.Background(), set)
			if ready := m.Ready(set) == nil; ready != tt.wantReady {
				t.Errorf("Ready after Sync over https = %v, want %v", ready, tt.wantReady)
			}
		})
	}
}

func TestPublicCertsFallback(t *testing.T) {
	doc, _ := json.Marshal(map[string]any{
		"public_cert":  map[string]string{"kid": "a", "cert": certPEM(t, rsaA())},
		"public_certs": []map[string]string{{"kid": "a", "cert": certPEM(t, rsaA())}, {"kid": "b", "cert": certPEM(t, rsaB())}, {"kid": "c", "cert": "garbage"}},
	})
	srv := newJWKSServer(t, doc)
	m := newManager(t)
	iss := issuerFor(srv.URL)
	m.Sync(context.Background(), setOfIssuers(iss))
	for _, kid := range []string{"a", "b"} {
		k, err := m.Key(context.Background(), iss, kid)
		if err != nil {
			t.Fatalf("Key(%s): %v", kid, err)
		}
		var raw rsa.PublicKey
		if err := k.Raw(&raw); err != nil {
			t.Fatal(err)
		}
		want := map[string]crypto.Signer{"a": rsaA(), "b": rsaB()}[kid].Public().(*rsa.PublicKey)
		if !raw.Equal(want) {
			t.Errorf("Key(%s) is not the certificate's key", kid)
		}
	}
	if _, err := m.Key(context.Background(), iss, ""); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(\"\") with two keys: error = %v, want ErrUnknownKey", err)
	}
}

func TestRotationAndRateLimit(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	changes := atomic.Int64{}
	m := newManager(t, WithClock(clk.now), WithChangeHook(func() { changes.Add(1) }))
	iss := issuerFor(srv.URL)
	m.Sync(ctx, setOfIssuers(iss))
	if got := srv.hits.Load(); got != 1 {
		t.Fatalf("hits after Sync = %d, want 1", got)
	}
	gen := m.generation()

	// The issuer rotates: b appears. An unknown kid refreshes and finds it.
	srv.set(http.StatusOK, certsDoc(t, kidKey{"b", rsaB()}, kidKey{"a", rsaA()}))
	if _, err := m.Key(ctx, iss, "b"); err != nil {
		t.Fatalf("Key(b) after rotation: %v", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("hits after unknown kid = %d, want 2", got)
	}
	if m.generation() == gen || changes.Load() == 0 {
		t.Errorf("Generation %d → %d, change hook %d calls: want a change", gen, m.generation(), changes.Load())
	}

	// A second unknown kid within 10 s does not refetch.
	clk.add(9 * time.Second)
	if _, err := m.Key(ctx, iss, "c"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Key(c) = %v, want ErrUnknownKey", err)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("hits after second unknown kid within 10s = %d, want 2", got)
	}
	// Known kids are served without any fetch.
	keyA, err := m.Key(ctx, iss, "a")
	if err != nil {
		t.Fatal(err)
	}
	gen = m.generation()

	// 10 s later, one more refresh is allowed; concurrent askers share it.
	clk.add(time.Second)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Key(ctx, iss, "d")
		}()
	}
	wg.Wait()
	if got := srv.hits.Load(); got != 3 {
		t.Fatalf("hits after 20 concurrent unknown kids = %d, want 3", got)
	}
	// That refetch brought the same document: the keys (and so any cached
	// verification) stay as they were.
	if k, _ := m.Key(ctx, iss, "a"); k != keyA || m.generation() != gen {
		t.Errorf("unchanged document replaced the keys (generation %d → %d)", gen, m.generation())
	}
}

func TestFailuresKeepLastGoodKeys(t *testing.T) {
	ctx := context.Background()
	good := certsDoc(t, kidKey{"a", rsaA()})
	huge := append([]byte(`{"keys":[],"pad":"`), make([]byte, 2<<20)...)
	tests := []struct {
		name   string
		status int
		body   []byte
	}{
		{"outage", http.StatusServiceUnavailable, []byte("down")},
		{"garbage JSON", http.StatusOK, []byte("<html>not json")},
		{"empty key set", http.StatusOK, []byte(`{"keys":[]}`)},
		{"only symmetric keys", http.StatusOK, []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"a"}]}`)},
		{"only encryption keys", http.StatusOK, mustJSON(t, map[string]any{"keys": []any{withUse(t, pub(t, rsaB(), "a"), "enc")}})},
		{"unparsable keys", http.StatusOK, []byte(`{"keys":[{"kty":"XYZ","kid":"a"}]}`)},
		{"too large", http.StatusOK, huge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, good)
			log := make(fetchLog, 10)
			clk := &clock{t: time.Unix(1_800_000_000, 0)}
			m := newManager(t, WithFetchHook(log.hook), WithClock(clk.now))
			iss := issuerFor(srv.URL)
			m.Sync(ctx, setOfIssuers(iss))
			if err := log.next(t); err != nil {
				t.Fatalf("first fetch: %v", err)
			}
			before, err := m.Key(ctx, iss, "a")
			if err != nil {
				t.Fatal(err)
			}
			gen := m.generation()

			srv.set(tt.status, tt.body)
			if _, err := m.Key(ctx, iss, "new"); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Key(new) = %v, want ErrUnknownKey", err)
			}
			if err := log.next(t); err == nil {
				t.Fatal("refresh succeeded, want an error")
			}
			after, err := m.Key(ctx, iss, "a")
			if err != nil || after != before {
				t.Fatalf("Key(a) after %s = %v, %v: want the last good key", tt.name, after, err)
			}
			if m.Ready(setOfIssuers(iss)) != nil || m.generation() != gen {
				t.Errorf("after %s: Ready = %v, generation %d → %d", tt.name, m.Ready(setOfIssuers(iss)), gen, m.generation())
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withUse(t testing.TB, k jwk.Key, use string) jwk.Key {
	t.Helper()
	if err := k.Set(jwk.KeyUsageKey, use); err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNoKeysRetriesWithBackoff(t *testing.T) {
	srv := newJWKSServer(t, []byte("nope"))
	srv.set(http.StatusInternalServerError, []byte("nope"))
	log := make(fetchLog, 100)
	m := newManager(t, WithFetchHook(log.hook), WithBackoff(time.Millisecond, 5*time.Millisecond))
	iss := issuerFor(srv.URL)
	set := setOfIssuers(iss)
	m.Sync(context.Background(), set)
	for range 3 {
		if err := log.next(t); err == nil {
			t.Fatal("fetch succeeded against a failing server")
		}
	}
	if missing := m.Ready(set); len(missing) != 1 || missing[0] != "team" {
		t.Fatalf("Ready = %v, want [team]", missing)
	}
	srv.set(http.StatusOK, certsDoc(t, kidKey{"a", rsaA()}))
	for log.next(t) != nil {
	}
	if missing := m.Ready(set); missing != nil {
		t.Fatalf("Ready after recovery = %v, want none", missing)
	}
}

func TestPeriodicRefresh(t *testing.T) {
	srv := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	log := make(fetchLog, 100)
	m := newManager(t, WithFetchHook(log.hook), WithRefreshInterval(time.Millisecond))
	iss := issuerFor(srv.URL)
	m.Sync(context.Background(), setOfIssuers(iss))
	srv.set(http.StatusOK, certsDoc(t, kidKey{"b", rsaB()}))
	for range 3 {
		log.next(t)
	}
	// The rotated-out key is gone, the new one served, without any ask.
	if _, err := m.Key(context.Background(), iss, "b"); err != nil {
		t.Errorf("Key(b) after periodic refresh: %v", err)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.mu.Lock()
	srv.block = true
	srv.mu.Unlock()
	log := make(fetchLog, 10)
	m := newManager(t, WithTimeout(50*time.Millisecond), WithFetchHook(log.hook), WithBackoff(time.Hour, time.Hour))
	iss := issuerFor(srv.URL)
	start := time.Now()
	m.Sync(context.Background(), setOfIssuers(iss))
	if err := log.next(t); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("fetch error = %v, want a deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Sync took %v with a 50ms timeout", took)
	}
	if missing := m.Ready(setOfIssuers(iss)); len(missing) != 1 {
		t.Errorf("Ready = %v, want [team]", missing)
	}
	// A request whose own context ends stops waiting.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Key(ctx, iss, "a"); err == nil {
		t.Error("Key with a cancelled context succeeded")
	}
}

func TestFileIssuer(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	set := jwk.NewSet()
	priv, _ := jwk.FromRaw(ec) // a private key in the file: served as public
	priv.Set(jwk.KeyIDKey, "ec")
	set.AddKey(priv)
	edPub, _ := jwk.FromRaw(ed.Public())
	edPub.Set(jwk.KeyIDKey, "ed")
	set.AddKey(edPub)
	oct, _ := jwk.FromRaw([]byte("secret"))
	oct.Set(jwk.KeyIDKey, "oct")
	set.AddKey(oct)

	iss := &policies.Issuer{Name: "file", Issuer: "https://file.example.com", JWKSFile: "/keys/jwks.json", FileKeys: set}
	m := newManager(t)
	ctx := context.Background()
	// Served even before Sync.
	if _, err := m.Key(ctx, iss, "ed"); err != nil {
		t.Fatalf("Key(ed) before Sync: %v", err)
	}
	m.Sync(ctx, setOfIssuers(iss))
	k, err := m.Key(ctx, iss, "ec")
	if err != nil {
		t.Fatalf("Key(ec): %v", err)
	}
	if _, ok := k.(jwk.ECDSAPublicKey); !ok {
		t.Errorf("Key(ec) = %T, want the public half", k)
	}
	if _, err := m.Key(ctx, iss, "oct"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(oct) = %v, want ErrUnknownKey: symmetric keys are never served", err)
	}
	if _, err := m.Key(ctx, iss, "../../etc/passwd"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(path) = %v, want ErrUnknownKey", err)
	}
	if missing := m.Ready(setOfIssuers(iss)); missing != nil {
		t.Errorf("Ready = %v, want none", missing)
	}
	empty := &policies.Issuer{Name: "empty", JWKSFile: "/x"}
	if missing := m.Ready(setOfIssuers(iss, empty)); len(missing) != 1 || missing[0] != "empty" {
		t.Errorf("Ready = %v, want [empty]", missing)
	}

	// A reload with the same file keeps the generation; a changed file moves it.
	gen := m.generation()
	same := *iss
	m.Sync(ctx, setOfIssuers(&same))
	if m.generation() != gen {
		t.Errorf("Generation moved on a reload with the same key file")
	}
	changed := same
	changed.FileKeys = jwk.NewSet()
	changed.FileKeys.AddKey(edPub)
	m.Sync(ctx, setOfIssuers(&changed))
	if m.generation() == gen {
		t.Errorf("Generation did not move when the key file changed")
	}
}

func TestSyncKeepsFetchersAcrossReloads(t *testing.T) {
	ctx := context.Background()
	a := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	b := newJWKSServer(t, certsDoc(t, kidKey{"b", rsaB()}))
	m := newManager(t)
	issA := issuerFor(a.URL)
	m.Sync(ctx, setOfIssuers(issA))
	keyA, err := m.Key(ctx, issA, "a")
	if err != nil {
		t.Fatal(err)
	}

	// Reload: a new Issuer value with the same URL, plus a new issuer.
	issA2 := issuerFor(a.URL)
	issB := issuerFor(b.URL)
	issB.Name = "other"
	m.Sync(ctx, setOfIssuers(issA2, issB))
	if got := a.hits.Load(); got != 1 {
		t.Errorf("hits on unchanged URL after reload = %d, want 1", got)
	}
	if k, err := m.Key(ctx, issA2, "a"); err != nil || k != keyA {
		t.Errorf("Key(a) after reload = %v, %v: want the same key", k, err)
	}
	if _, err := m.Key(ctx, issB, "b"); err != nil {
		t.Errorf("Key(b) from the new issuer: %v", err)
	}

	// Reload without A: its fetcher stops and its keys are gone.
	m.Sync(ctx, setOfIssuers(issB))
	if _, err := m.Key(ctx, issA2, "a"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Key(a) after its issuer was removed = %v, want ErrUnknownKey", err)
	}
	if missing := m.Ready(setOfIssuers(issA2, issB)); len(missing) != 1 || missing[0] != "team" {
		t.Errorf("Ready = %v, want [team]", missing)
	}
}

func TestClose(t *testing.T) {
	srv := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	m := New(nil)
	iss := issuerFor(srv.URL)
	m.Sync(context.Background(), setOfIssuers(iss))
	m.Close()
	if _, err := m.Key(context.Background(), iss, "a"); err == nil {
		t.Error("Key after Close succeeded")
	}
	m.Sync(context.Background(), setOfIssuers(iss)) // no fetcher starts
	m.Close()                                       // twice is fine
	// goleak (TestMain) checks that nothing is left running.
}

// TestDependencies keeps the key manager below authz and free of transports.
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/accessgate/accessgate/authz", "google.golang.org/grpc", "google.golang.org/protobuf", "github.com/envoyproxy/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("keys depends on %s", dep)
			}
		}
	}
}
