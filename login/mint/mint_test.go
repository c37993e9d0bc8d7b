package mint_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"go.uber.org/zap"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newMinter(t *testing.T, s *policies.Set, c *clock) *mint.Minter {
	t.Helper()
	m, err := mint.New(s.Login, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// verifier checks tokens the way the decision core does: the existing
// authz.Verifier, with keys from the jwks.Manager serving the Set's
// issuers (the login issuer's public halves).
func verifier(t *testing.T, s *policies.Set, c *clock) *authz.Verifier {
	t.Helper()
	km := jwks.New(zap.NewNop())
	t.Cleanup(km.Close)
	km.Sync(context.Background(), s)
	if missing := km.Ready(s); missing != nil {
		t.Fatalf("key manager: issuers without keys: %v", missing)
	}
	return authz.NewVerifier(km, c.now, authz.WithVerifierCache(0))
}

func app(t *testing.T, s *policies.Set, name string) *policies.Application {
	t.Helper()
	for _, a := range s.Applications {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no application %q", name)
	return nil
}

// segments decodes a compact JWS's header and payload.
func segments(t *testing.T, tok string) (hdr, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	for i, dst := range []*map[string]any{&hdr, &payload} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatal(err)
		}
	}
	return hdr, payload
}

// TestAppTokenVerifies mints application tokens with each key type and
// checks them with authz.Verifier against the login issuer built from the
// login section: the §8 header and claims, and §3 step 4 passing.
func TestAppTokenVerifies(t *testing.T) {
	for _, alg := range []string{"ES256", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			s := logintest.Load(t, logintest.Config{Algs: []string{alg, "ES256"}})
			c := &clock{t: time.Unix(1_800_000_000, 0)}
			m := newMinter(t, s, c)
			v := verifier(t, s, c)
			id := mint.Identity{Email: "Alice@Example.com", Groups: []string{"admins", "dev"}, IdP: "corp"}

			for _, tt := range []struct {
				app  string
				life time.Duration
			}{{"app", 24 * time.Hour}, {"other", time.Hour}} {
				a := app(t, s, tt.app)
				tok, life, err := m.AppToken(id, a)
				if err != nil {
					t.Fatal(err)
				}
				if life != tt.life {
					t.Errorf("AppToken(%s) lifetime = %v, want %v", tt.app, life, tt.life)
				}
				got, reason := v.Verify(context.Background(), tok, a)
				if reason != "" {
					t.Fatalf("Verify(app token for %s) reason = %q, want valid", tt.app, reason)
				}
				if got.Email != id.Email || !slices.Equal(got.Groups, id.Groups) {
					t.Errorf("verified identity = %q %v, want %q %v", got.Email, got.Groups, id.Email, id.Groups)
				}
				hdr, cl := segments(t, tok)
				key := s.Login.SigningKeys[0]
				if hdr["alg"] != alg || hdr["kid"] != key.KID || hdr["typ"] != "JWT" {
					t.Errorf("header = %v, want alg %s, kid %s, typ JWT", hdr, alg, key.KID)
				}
				if cl["type"] != mint.TypeApp || cl["iss"] != "https://auth.example.com" || cl["idp"] != "corp" {
					t.Errorf("claims type/iss/idp = %v %v %v", cl["type"], cl["iss"], cl["idp"])
				}
				if aud, _ := cl["aud"].([]any); len(aud) != 1 || aud[0] != a.Audience {
					t.Errorf("aud = %v, want [%s]", cl["aud"], a.Audience)
				}
				iat, nbf, exp := cl["iat"].(float64), cl["nbf"].(float64), cl["exp"].(float64)
				if iat != float64(c.t.Unix()) || nbf != iat || exp-iat != tt.life.Seconds() {
					t.Errorf("iat, nbf, exp = %v, %v, %v; want now, now, now+%v", iat, nbf, exp, tt.life)
				}
				if cl["sub"] != "d732bee4-2cab-502c-b9b8-70a3ab73c91f" {
					t.Errorf("sub = %v, want UUIDv5(UUIDv5(URL, team), lower(email))", cl["sub"])
				}
				if n, _ := cl["identity_nonce"].(string); len(n) < 16 {
					t.Errorf("identity_nonce = %q, want a random string", n)
				}
			}

			// A token for one application is refused on another.
			tok, _, err := m.AppToken(id, app(t, s, "app"))
			if err != nil {
				t.Fatal(err)
			}
			if _, reason := v.Verify(context.Background(), tok, app(t, s, "other")); reason != authz.ReasonTokenAudience {
				t.Errorf("Verify(app token on other) = %q, want %q", reason, authz.ReasonTokenAudience)
			}
			// It expires with its session duration.
			c.t = c.t.Add(24*time.Hour + time.Minute)
			if _, reason := v.Verify(context.Background(), tok, app(t, s, "app")); reason != authz.ReasonTokenExpired {
				t.Errorf("Verify(app token a day later) = %q, want %q", reason, authz.ReasonTokenExpired)
			}
		})
	}
}

// TestOrgToken: aud is the team domain, type org, idp set, lifetime the
// login section's; it never passes as an application token.
func TestOrgToken(t *testing.T) {
	s := logintest.Load(t, logintest.Config{Session: "2h"})
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	m := newMinter(t, s, c)
	tok, life, err := m.OrgToken(mint.Identity{Email: "bob@example.com", IdP: "corp"})
	if err != nil {
		t.Fatal(err)
	}
	_, cl := segments(t, tok)
	if aud, _ := cl["aud"].([]any); len(aud) != 1 || aud[0] != "https://auth.example.com" || cl["type"] != mint.TypeOrg ||
		cl["idp"] != "corp" || life != 2*time.Hour || cl["exp"].(float64)-cl["iat"].(float64) != 7200 {
		t.Errorf("org token claims = %v, lifetime %v; want aud [team], type org, idp corp, 2h", cl, life)
	}
	if _, reason := verifier(t, s, c).Verify(context.Background(), tok, app(t, s, "app")); reason != authz.ReasonTokenAudience {
		t.Errorf("Verify(org token as app token) = %q, want %q", reason, authz.ReasonTokenAudience)
	}
	if _, _, err := m.OrgToken(mint.Identity{IdP: "corp"}); err == nil {
		t.Error("OrgToken without email: want an error")
	}
}

// TestSubject: stable per email whatever its ASCII case, different per
// team domain, and the RFC 9562 construction (vector from Python's uuid).
func TestSubject(t *testing.T) {
	s := logintest.Load(t, logintest.Config{})
	m := newMinter(t, s, &clock{t: time.Now()})
	if got := m.Subject("alice@example.com"); got != "d732bee4-2cab-502c-b9b8-70a3ab73c91f" {
		t.Errorf("Subject(alice) = %s, want d732bee4-2cab-502c-b9b8-70a3ab73c91f", got)
	}
	if m.Subject("ALICE@example.COM") != m.Subject("alice@example.com") {
		t.Error("Subject differs by ASCII case")
	}
	if m.Subject("\u212Alice@example.com") == m.Subject("klice@example.com") {
		t.Error("Subject folded a non-ASCII letter (Kelvin sign) into k")
	}
	other := logintest.Load(t, logintest.Config{TeamDomain: "https://sso.example.com"})
	if newMinter(t, other, &clock{t: time.Now()}).Subject("alice@example.com") == m.Subject("alice@example.com") {
		t.Error("Subject is the same under another team domain")
	}
}

// TestRedeem covers every way a transfer code is refused, and the one way
// it is accepted.
func TestRedeem(t *testing.T) {
	s := logintest.Load(t, logintest.Config{})
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	m := newMinter(t, s, c)
	const nonce = "n0nce-0123456789abcdef"
	id := mint.Identity{Email: "alice@example.com", Groups: []string{"g"}, IdP: "corp"}
	code, err := m.Code(mint.Transfer{Host: "app.example.com", Audience: "app-aud", Nonce: nonce, Redirect: "/dash?x=1", Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(code, "alice") || strings.Contains(code, "dash") {
		t.Errorf("code %q shows its contents: want it encrypted", code)
	}

	gotID, redirect, err := m.Redeem(code, "app.example.com", "app-aud", nonce)
	if err != nil || gotID.Email != id.Email || gotID.IdP != "corp" || !slices.Equal(gotID.Groups, id.Groups) || redirect != "/dash?x=1" {
		t.Fatalf("Redeem(valid) = %+v, %q, %v", gotID, redirect, err)
	}

	// A code made with another cookie secret.
	foreign := logintest.Load(t, logintest.Config{})
	foreign.Login.CookieSecret = []byte("another secret, also 32 bytes long!!")
	fm := newMinter(t, foreign, c)
	foreignCode, err := fm.Code(mint.Transfer{Host: "app.example.com", Audience: "app-aud", Nonce: nonce, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(code)
	tampered[len(tampered)/2] ^= 1
	// A sealed value of another purpose (a state cookie) made from the
	// same secret never opens as a code.
	stateBox, err := mint.NewBox(s.Login.CookieSecret, "state v1")
	if err != nil {
		t.Fatal(err)
	}
	stateValue, err := stateBox.Seal(mint.Transfer{Host: "app.example.com", Audience: "app-aud", Nonce: nonce, Identity: id}, c.t.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name                  string
		code, host, aud, nnce string
		want                  error
	}{
		{"another host (replay)", code, "other.example.com", "app-aud", nonce, mint.ErrCodeBinding},
		{"another application on the host", code, "app.example.com", "other-aud", nonce, mint.ErrCodeBinding},
		{"no CF_AppSession (login CSRF)", code, "app.example.com", "app-aud", "", mint.ErrCodeNonce},
		{"another browser's nonce", code, "app.example.com", "app-aud", "n0nce-0123456789abcdeX", mint.ErrCodeNonce},
		{"tampered", string(tampered), "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
		{"another secret", foreignCode, "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
		{"state cookie as code", stateValue, "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
		{"empty", "", "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
		{"garbage", "not a code!", "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
		{"oversized", strings.Repeat("A", 1<<20), "app.example.com", "app-aud", nonce, mint.ErrCodeInvalid},
	}
	for _, tt := range tests {
		if _, _, err := m.Redeem(tt.code, tt.host, tt.aud, tt.nnce); !errors.Is(err, tt.want) {
			t.Errorf("Redeem(%s) error = %v, want %v", tt.name, err, tt.want)
		}
	}

	// Valid again within its 60 seconds, expired after them.
	c.t = c.t.Add(59 * time.Second)
	if _, _, err := m.Redeem(code, "app.example.com", "app-aud", nonce); err != nil {
		t.Errorf("Redeem after 59s = %v, want valid", err)
	}
	c.t = c.t.Add(time.Second)
	if _, _, err := m.Redeem(code, "app.example.com", "app-aud", nonce); !errors.Is(err, mint.ErrCodeExpired) {
		t.Errorf("Redeem after 60s = %v, want %v", err, mint.ErrCodeExpired)
	}
}

func TestCodeNeedsBinding(t *testing.T) {
	m := newMinter(t, logintest.Load(t, logintest.Config{}), &clock{t: time.Now()})
	id := mint.Identity{Email: "a@example.com"}
	for _, tr := range []mint.Transfer{
		{Audience: "a", Nonce: "n", Identity: id},
		{Host: "h", Nonce: "n", Identity: id},
		{Host: "h", Audience: "a", Identity: id},
		{Host: "h", Audience: "a", Nonce: "n"},
	} {
		if _, err := m.Code(tr); err == nil {
			t.Errorf("Code(%+v): want an error", tr)
		}
	}
}

func TestValidNonce(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{mint.NewNonce(), true},
		{"n1", true},
		{"a-b_c.d~e!f*(1)", true},
		{strings.Repeat("a", 256), true},
		{strings.Repeat("a", 257), false},
		{"abc;x", false},
		{"abc,x", false},
		{`abc"x`, false},
		{`abc\x`, false},
		{"abc\r\nx", false},
		{"ab c", false},
		{"abcé", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := mint.ValidNonce(tt.give); got != tt.want {
			t.Errorf("ValidNonce(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if a, b := mint.NewNonce(), mint.NewNonce(); a == b {
		t.Errorf("NewNonce repeats: %q twice", a)
	}
}

func TestCookieNames(t *testing.T) {
	tests := []struct {
		teamSecure, requestHTTPS bool
		wantPlain                bool
	}{
		{true, true, false},
		{true, false, false}, // https deployment, TLS ended before the proxy: still __Host-
		{false, true, false},
		{false, false, true}, // the demo: http team domain on loopback, http request
	}
	for _, tt := range tests {
		if got := mint.Plain(tt.teamSecure, tt.requestHTTPS); got != tt.wantPlain {
			t.Errorf("Plain(%v, %v) = %v, want %v", tt.teamSecure, tt.requestHTTPS, got, tt.wantPlain)
		}
	}
	if n := mint.CookieNames(true); n.AppSession != "__Host-CF_AppSession" || n.State != "__Host-CF_Session" || n.Org != "__Host-CF_Authorization" || !n.Secure {
		t.Errorf("CookieNames(secure) = %+v", n)
	}
	if n := mint.CookieNames(false); n.AppSession != "CF_AppSession" || n.State != "CF_Session" || n.Org != "CF_Authorization" || n.Secure {
		t.Errorf("CookieNames(plain) = %+v", n)
	}
}
