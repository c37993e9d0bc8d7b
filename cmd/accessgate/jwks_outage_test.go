package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/testkit"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc/codes"
)

// signer is an ES256 issuer key with its kid.
type signer struct{ priv jwk.Key }

func newSigner(t *testing.T, kid string) signer { return signer{testkit.ES256(t, kid)} }

// jwksDoc is the key set document publishing ss.
func jwksDoc(t *testing.T, ss ...signer) []byte {
	t.Helper()
	keys := make([]jwk.Key, len(ss))
	for i, s := range ss {
		keys[i] = s.priv
	}
	return testkit.JWKS(t, keys...)
}

// token signs an hour-long Access token for email.
func (s signer) token(t *testing.T, iss, aud, email string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(iss).Audience([]string{aud}).Subject(email).
		IssuedAt(now).Expiration(now.Add(time.Hour)).Claim("email", email).Build()
	if err != nil {
		t.Fatal(err)
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, s.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestServeJWKSOutageSignals: a JWKS URL that goes down after its keys
// were loaded leaves them in force (valid tokens still pass), and the
// outage shows in accessgate_jwks_keys_stale and in one "jwks fetch
// failed" line however many retries fail within the minute. When the
// issuer then leaves the file, its JWKS series go with it: a stale gauge
// must not alert forever on an issuer nobody uses.
func TestServeJWKSOutageSignals(t *testing.T) {
	key := newSigner(t, "k1")
	doc := jwksDoc(t, key)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(doc)
	}))
	defer srv.Close()
	const iss, aud = "https://remote.example.com", "remote-aud"
	policy := writeFile(t, t.TempDir(), "policy.yaml", `issuers:
  - name: remote
    issuer: `+iss+`
    jwks_url: `+srv.URL+`
    login_url: https://remote.example.com/login?r={redirect}
applications:
  - name: app
    domains: [app.example.com]
    issuer: remote
    audience: `+aud+`
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`)
	s := startServe(t, loopbackEnv(nil), "--config", policy)
	client := authv3.NewAuthorizationClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	alice := key.token(t, iss, aud, "alice@example.com")
	allowed := func(when string) {
		t.Helper()
		resp, err := client.Check(ctx, envoyRequest(alice))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("Check alice %s = %v, %v; want OK", when, resp.GetStatus(), err)
		}
	}
	allowed("before the outage")
	const (
		stale    = `accessgate_jwks_keys_stale{issuer="remote"}`
		lastOK   = `accessgate_jwks_last_success_timestamp_seconds{issuer="remote"}`
		failures = `accessgate_jwks_fetches_total{issuer="remote",result="failure"}`
	)
	if v := s.metric(stale); v != 0 {
		t.Errorf("%s = %v before the outage, want 0", stale, v)
	}
	okAt := s.metric(lastOK)
	if okAt < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("%s = %v, want about now", lastOK, okAt)
	}

	srv.Close() // the JWKS URL goes down
	// A token with a kid the set lacks makes accessgate refresh now; the
	// refresh fails and is retried with backoff (1 s, then 2 s).
	other := newSigner(t, "k2").token(t, iss, aud, "alice@example.com")
	if resp, err := client.Check(ctx, envoyRequest(other)); err != nil || codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		t.Fatalf("Check with an unknown kid = %v, %v; want a denial", resp.GetStatus(), err)
	}
	eventually(t, "the keys marked stale", func() bool { return s.metric(stale) == 1 })
	allowed("during the outage")
	eventually(t, "a retry failing", func() bool { return s.metric(failures) >= 2 })
	allowed("after retries failed")
	if n := strings.Count(s.stderr.String(), `"jwks fetch failed"`); n != 1 {
		t.Errorf("%d \"jwks fetch failed\" lines after %v failures, want 1 (rate-limited):\n%s", n, s.metric(failures), s.stderr)
	}
	if v := s.metric(lastOK); v != okAt {
		t.Errorf("%s = %v during the outage, want the last success %v", lastOK, v, okAt)
	}

	loaded := s.metric(reloadsOK)
	if err := os.WriteFile(policy, []byte("default_action: deny\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the file without the issuer loaded", func() bool { return s.metric(reloadsOK) > loaded })
	for _, series := range []string{stale, lastOK, failures} {
		if v := s.metric(series); v != -1 {
			t.Errorf("%s = %v after the issuer left the file, want no such series", series, v)
		}
	}
}
