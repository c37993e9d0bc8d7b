package authz

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/cert"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Test fixtures: one key of each kind, generated once per test binary
// (RSA generation is the slow part).

const (
	testIss = "https://team.example.com"
	testAud = "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"
)

// testNow is the fixed clock of the token tests.
var testNow = time.Unix(1_800_000_000, 0)

type signingKey struct {
	kid  string
	alg  jwa.SignatureAlgorithm
	priv crypto.Signer
}

func (k signingKey) public(t testing.TB) jwk.Key {
	t.Helper()
	pub, err := jwk.FromRaw(k.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Set(jwk.KeyIDKey, k.kid); err != nil {
		t.Fatal(err)
	}
	return pub
}

var testKeys = sync.OnceValue(func() map[string]signingKey {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	e256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	attacker, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return map[string]signingKey{
		"rsa":      {kid: "rsa-kid", alg: jwa.RS256, priv: r},
		"ec256":    {kid: "ec256-kid", alg: jwa.ES256, priv: e256},
		"ec384":    {kid: "ec384-kid", alg: jwa.ES384, priv: e384},
		"ed":       {kid: "ed-kid", alg: jwa.EdDSA, priv: ed},
		"attacker": {kid: "attacker-kid", alg: jwa.RS256, priv: attacker},
	}
})

// staticKeys is a KeySource over fixed keys that counts its calls.
type staticKeys struct {
	keys  map[string]jwk.Key
	calls atomic.Int64
}

func (s *staticKeys) Key(_ context.Context, _ *policies.Issuer, kid string) (jwk.Key, error) {
	s.calls.Add(1)
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("kid %q: %w", kid, errTestUnknownKey)
}

// issuerKeys holds the public keys of every test key except the attacker's.
func issuerKeys(t testing.TB) *staticKeys {
	t.Helper()
	s := &staticKeys{keys: map[string]jwk.Key{}}
	for name, k := range testKeys() {
		if name != "attacker" {
			s.keys[k.kid] = k.public(t)
		}
	}
	return s
}

func testApp() *policies.Application {
	return &policies.Application{
		Name:     "dashboard",
		Audience: testAud,
		Issuer: &policies.Issuer{
			Name:    "team",
			Issuer:  testIss,
			Leeway:  30 * time.Second,
			JWKSURL: "https://team.example.com/cdn-cgi/access/certs",
		},
	}
}

// claimsAt returns Cloudflare-shaped claims valid at now.
func claimsAt(now time.Time) map[string]any {
	return map[string]any{
		"iss":     testIss,
		"aud":     []any{testAud},
		"exp":     now.Add(time.Hour).Unix(),
		"iat":     now.Add(-time.Minute).Unix(),
		"nbf":     now.Add(-time.Minute).Unix(),
		"email":   "alice@example.com",
		"country": "NL",
		"sub":     "7335d417-61da-459d-899c-0a01c76a2f94",
		"type":    "app",
		"custom":  map[string]any{"groups": []any{"eng", "ops"}, "department": "eng"},
	}
}

// with returns a copy of c with the given changes; a nil value deletes.
func with(c map[string]any, kv ...any) map[string]any {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// sign makes a real jwx-signed compact JWS with k, its kid and any extra
// protected headers.
func sign(t testing.TB, k signingKey, claims map[string]any, extra map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, k.kid); err != nil {
		t.Fatal(err)
	}
	for name, v := range extra {
		if err := hdr.Set(name, v); err != nil {
			t.Fatalf("header %s: %v", name, err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func seg(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// handMade builds a token from a header and claims with HMAC-SHA256 under
// secret (nil: empty signature), the way an attacker would.
func handMade(header, claims map[string]any, secret []byte) string {
	in := seg(header) + "." + seg(claims)
	if secret == nil {
		return in + "."
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// reheader swaps a token's protected header, keeping payload and signature.
func reheader(tok string, header map[string]any) string {
	_, rest, _ := strings.Cut(tok, ".")
	return seg(header) + "." + rest
}

// repayload swaps a token's payload, keeping header and signature.
func repayload(tok string, claims map[string]any) string {
	parts := strings.Split(tok, ".")
	return parts[0] + "." + seg(claims) + "." + parts[2]
}

func newTestVerifier(ks KeySource, cache int) *Verifier {
	return NewVerifier(ks, func() time.Time { return testNow }, WithVerifierCache(cache))
}

func TestVerify(t *testing.T) {
	keys := testKeys()
	rsaK, ps := keys["rsa"], keys["rsa"]
	ps.alg = jwa.PS256
	rs384, rs512 := keys["rsa"], keys["rsa"]
	rs384.alg, rs512.alg = jwa.RS384, jwa.RS512
	base := claimsAt(testNow)
	leeway := 30 * time.Second
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }

	tests := []struct {
		name   string
		key    signingKey
		claims map[string]any
		want   Reason
	}{
		{"RS256", rsaK, base, ""},
		{"RS384", rs384, base, ""},
		{"RS512", rs512, base, ""},
		{"PS256", ps, base, ""},
		{"ES256", keys["ec256"], base, ""},
		{"ES384", keys["ec384"], base, ""},
		{"EdDSA", keys["ed"], base, ""},

		{"aud string", rsaK, with(base, "aud", testAud), ""},
		{"aud array with others", rsaK, with(base, "aud", []any{"other", testAud}), ""},
		{"aud string wrong", rsaK, with(base, "aud", "other"), ReasonTokenAudience},
		{"aud array wrong", rsaK, with(base, "aud", []any{"a", "b"}), ReasonTokenAudience},
		{"aud empty array", rsaK, with(base, "aud", []any{}), ReasonTokenAudience},
		{"aud missing", rsaK, with(base, "aud", nil), ReasonTokenAudience},
		{"aud prefix only", rsaK, with(base, "aud", testAud[:10]), ReasonTokenAudience},
		{"aud number", rsaK, with(base, "aud", 7), ReasonTokenMalformed},
		{"aud array with number", rsaK, with(base, "aud", []any{testAud, 7}), ReasonTokenMalformed},

		{"iss wrong", rsaK, with(base, "iss", "https://evil.example.com"), ReasonTokenIssuer},
		{"iss trailing slash", rsaK, with(base, "iss", testIss+"/"), ReasonTokenIssuer},
		{"iss missing", rsaK, with(base, "iss", nil), ReasonTokenIssuer},
		{"iss number", rsaK, with(base, "iss", 1), ReasonTokenMalformed},

		{"exp missing", rsaK, with(base, "exp", nil), ReasonTokenMalformed},
		{"exp string", rsaK, with(base, "exp", "tomorrow"), ReasonTokenMalformed},
		{"exp fractional", rsaK, with(base, "exp", float64(at(time.Hour))+0.5), ""},
		{"exp huge", rsaK, with(base, "exp", 1e300), ""},
		{"exp negative", rsaK, with(base, "exp", -1e300), ReasonTokenExpired},
		{"exp now", rsaK, with(base, "exp", at(0)), ""},
		{"exp within leeway", rsaK, with(base, "exp", at(-leeway+time.Second)), ""},
		{"exp at leeway", rsaK, with(base, "exp", at(-leeway)), ReasonTokenExpired},
		{"exp past leeway", rsaK, with(base, "exp", at(-time.Hour)), ReasonTokenExpired},

		{"nbf within leeway", rsaK, with(base, "nbf", at(leeway)), ""},
		{"nbf past leeway", rsaK, with(base, "nbf", at(leeway+time.Second)), ReasonTokenNotYetValid},
		{"nbf missing", rsaK, with(base, "nbf", nil), ""},
		{"nbf string", rsaK, with(base, "nbf", "soon"), ReasonTokenMalformed},
		{"iat within leeway", rsaK, with(base, "iat", at(leeway)), ""},
		{"iat past leeway", rsaK, with(base, "iat", at(leeway+time.Second)), ReasonTokenNotYetValid},
		{"iat missing", rsaK, with(base, "iat", nil), ""},
		{"iat bool", rsaK, with(base, "iat", true), ReasonTokenMalformed},

		// Claim order: malformed, issuer, audience, expired, not yet valid.
		{"malformed before issuer", rsaK, with(base, "exp", nil, "iss", "x"), ReasonTokenMalformed},
		{"issuer before audience", rsaK, with(base, "iss", "x", "aud", "x"), ReasonTokenIssuer},
		{"audience before expired", rsaK, with(base, "aud", "x", "exp", at(-time.Hour)), ReasonTokenAudience},
		{"expired before not yet valid", rsaK, with(base, "exp", at(-time.Hour), "nbf", at(time.Hour)), ReasonTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(issuerKeys(t), 0)
			tok := sign(t, tt.key, tt.claims, nil)
			id, got := v.Verify(context.Background(), tok, testApp())
			if got != tt.want {
				t.Fatalf("Verify(%s): reason = %q, want %q", tt.name, got, tt.want)
			}
			if (id == nil) != (tt.want != "") {
				t.Fatalf("Verify(%s): identity = %v with reason %q", tt.name, id, got)
			}
		})
	}
}

func TestVerifyLeewayZero(t *testing.T) {
	app := testApp()
	app.Issuer.Leeway = 0
	tests := []struct {
		name   string
		claims map[string]any
		want   Reason
	}{
		{"exp now", with(claimsAt(testNow), "exp", testNow.Unix()), ReasonTokenExpired},
		{"exp in a second", with(claimsAt(testNow), "exp", testNow.Unix()+1), ""},
		{"nbf now", with(claimsAt(testNow), "nbf", testNow.Unix()), ""},
		{"nbf in a second", with(claimsAt(testNow), "nbf", testNow.Unix()+1), ReasonTokenNotYetValid},
		{"iat in a second", with(claimsAt(testNow), "iat", testNow.Unix()+1), ReasonTokenNotYetValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(issuerKeys(t), 0)
			_, got := v.Verify(context.Background(), sign(t, testKeys()["rsa"], tt.claims, nil), app)
			if got != tt.want {
				t.Fatalf("Verify(%s): reason = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestVerifyIdentity(t *testing.T) {
	v := newTestVerifier(issuerKeys(t), 0)
	tok := sign(t, testKeys()["ec256"], with(claimsAt(testNow), "aud", testAud), nil)
	id, r := v.Verify(context.Background(), tok, testApp())
	if r != "" {
		t.Fatalf("Verify: reason = %q, want none", r)
	}
	if id.Token != tok || id.Email != "alice@example.com" || id.Country != "NL" {
		t.Errorf("Verify: identity = %+v", id)
	}
	if got := strings.Join(id.Groups, ","); got != "eng,ops" {
		t.Errorf("Groups = %q, want custom.groups eng,ops", got)
	}
	if !id.Expires.Equal(testNow.Add(time.Hour)) {
		t.Errorf("Expires = %v, want %v", id.Expires, testNow.Add(time.Hour))
	}
	if aud, ok := id.Claims["aud"].([]string); !ok || len(aud) != 1 || aud[0] != testAud {
		t.Errorf("Claims[aud] = %#v, want []string{aud}", id.Claims["aud"])
	}
	if dep := id.Claims["custom"].(map[string]any)["department"]; dep != "eng" {
		t.Errorf("Claims[custom.department] = %v, want eng", dep)
	}

	// A top-level groups claim wins over custom.groups.
	tok = sign(t, testKeys()["ec256"], with(claimsAt(testNow), "groups", []any{"admins", 3}), nil)
	if id, _ = v.Verify(context.Background(), tok, testApp()); id == nil || strings.Join(id.Groups, ",") != "admins" {
		t.Errorf("Groups with top-level claim = %v, want [admins]", id)
	}
}

func TestParseClaims(t *testing.T) {
	tests := []struct {
		name string
		give map[string]any
		want Reason
	}{
		{"minimal", map[string]any{"exp": 1.0}, ""},
		{"no exp", map[string]any{}, ReasonTokenMalformed},
		{"exp null", map[string]any{"exp": nil}, ReasonTokenMalformed},
		{"nbf null", map[string]any{"exp": 1.0, "nbf": nil}, ReasonTokenMalformed},
		{"iat object", map[string]any{"exp": 1.0, "iat": map[string]any{}}, ReasonTokenMalformed},
		{"iss null", map[string]any{"exp": 1.0, "iss": nil}, ReasonTokenMalformed},
		{"aud null", map[string]any{"exp": 1.0, "aud": nil}, ReasonTokenMalformed},
		{"aud object", map[string]any{"exp": 1.0, "aud": map[string]any{}}, ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, got := parseClaims(tt.give); got != tt.want {
				t.Errorf("parseClaims(%v) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

// TestVerifyAttacks is the JWT attack table: every forgery is refused with
// the right reason, and nothing is ever fetched from a URL a token names.
func TestVerifyAttacks(t *testing.T) {
	keys := testKeys()
	rsaK, ecK, att := keys["rsa"], keys["ec256"], keys["attacker"]
	good := claimsAt(testNow)
	valid := sign(t, rsaK, good, nil)

	attacker := newAttackerServer(t, att)

	pubDER, err := x509.MarshalPKIXPublicKey(rsaK.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	pubJWK, err := json.Marshal(rsaK.public(t))
	if err != nil {
		t.Fatal(err)
	}
	attJWK := att.public(t)
	attCert := selfSigned(t, att)

	hs := func(secret []byte) string {
		return handMade(map[string]any{"alg": "HS256", "typ": "JWT", "kid": rsaK.kid}, good, secret)
	}
	// An ES256 token relabelled RS256 and the other way round.
	esAsRS := reheader(sign(t, ecK, good, nil), map[string]any{"alg": "RS256", "kid": ecK.kid})
	rsAsES := reheader(valid, map[string]any{"alg": "ES256", "kid": rsaK.kid})
	// An RS256 signature presented under the EC key's kid.
	rsUnderECKid := reheader(valid, map[string]any{"alg": "RS256", "kid": ecK.kid})

	tests := []struct {
		name  string
		token string
		want  Reason
	}{
		{"control valid", valid, ""},
		{"alg none", handMade(map[string]any{"alg": "none", "kid": rsaK.kid}, good, nil), ReasonTokenSignature},
		{"alg None", handMade(map[string]any{"alg": "None", "kid": rsaK.kid}, good, nil), ReasonTokenSignature},
		{"alg none with signature", reheader(valid, map[string]any{"alg": "none", "kid": rsaK.kid}), ReasonTokenSignature},
		{"alg missing", reheader(valid, map[string]any{"kid": rsaK.kid}), ReasonTokenMalformed},
		{"alg upper-case member", reheader(valid, map[string]any{"ALG": "RS256", "kid": rsaK.kid}), ReasonTokenMalformed},
		{"HS256 with PEM public key", hs(pubPEM), ReasonTokenSignature},
		{"HS256 with JWK public key", hs(pubJWK), ReasonTokenSignature},
		{"HS256 with modulus", hs(rsaK.priv.Public().(*rsa.PublicKey).N.Bytes()), ReasonTokenSignature},
		{"HS384", handMade(map[string]any{"alg": "HS384", "kid": rsaK.kid}, good, pubPEM), ReasonTokenSignature},
		{"PS512 not allowed", reheader(valid, map[string]any{"alg": "PS512", "kid": rsaK.kid}), ReasonTokenSignature},
		{"unknown kid", sign(t, att, good, nil), ReasonTokenUnknownKey},
		{"kid path traversal", reheader(valid, map[string]any{"alg": "RS256", "kid": "../../etc/passwd"}), ReasonTokenUnknownKey},
		{"kid empty", reheader(valid, map[string]any{"alg": "RS256", "kid": ""}), ReasonTokenUnknownKey},
		{"kid number", reheader(valid, map[string]any{"alg": "RS256", "kid": 1}), ReasonTokenMalformed},
		{"jku to attacker, attacker kid", sign(t, att, good, map[string]any{"jku": attacker.URL + "/jwks"}), ReasonTokenUnknownKey},
		{"jku to attacker, issuer kid", sign(t, signingKey{kid: rsaK.kid, alg: jwa.RS256, priv: att.priv}, good, map[string]any{"jku": attacker.URL + "/jwks"}), ReasonTokenSignature},
		{"x5u to attacker", sign(t, signingKey{kid: rsaK.kid, alg: jwa.RS256, priv: att.priv}, good, map[string]any{"x5u": attacker.URL + "/cert.pem"}), ReasonTokenSignature},
		{"x5u to attacker, no kid", reheader(sign(t, att, good, nil), map[string]any{"alg": "RS256", "x5u": attacker.URL + "/cert.pem"}), ReasonTokenUnknownKey},
		{"embedded jwk, attacker kid", sign(t, att, good, map[string]any{"jwk": attJWK}), ReasonTokenUnknownKey},
		{"embedded jwk, issuer kid", sign(t, signingKey{kid: rsaK.kid, alg: jwa.RS256, priv: att.priv}, good, map[string]any{"jwk": attJWK}), ReasonTokenSignature},
		{"embedded x5c", sign(t, signingKey{kid: rsaK.kid, alg: jwa.RS256, priv: att.priv}, good, map[string]any{"x5c": chainOf(t, attCert)}), ReasonTokenSignature},
		{"crit header", sign(t, rsaK, good, map[string]any{"crit": []string{"exp"}, "exp": 1}), ReasonTokenMalformed},
		{"expired", sign(t, rsaK, with(good, "exp", testNow.Add(-time.Hour).Unix()), nil), ReasonTokenExpired},
		{"nbf in the future", sign(t, rsaK, with(good, "nbf", testNow.Add(time.Hour).Unix()), nil), ReasonTokenNotYetValid},
		{"iat in the future", sign(t, rsaK, with(good, "iat", testNow.Add(time.Hour).Unix()), nil), ReasonTokenNotYetValid},
		{"wrong aud", sign(t, rsaK, with(good, "aud", []any{"someone-else"}), nil), ReasonTokenAudience},
		{"wrong iss", sign(t, rsaK, with(good, "iss", "https://evil.cloudflareaccess.com"), nil), ReasonTokenIssuer},
		{"payload swapped", repayload(valid, with(good, "email", "mallory@example.com")), ReasonTokenSignature},
		{"truncated", valid[:len(valid)/2], ReasonTokenMalformed},
		{"truncated signature", truncateSig(valid), ReasonTokenSignature},
		{"signature stripped", valid[:strings.LastIndexByte(valid, '.')+1], ReasonTokenSignature},
		{"signature segment removed", valid[:strings.LastIndexByte(valid, '.')], ReasonTokenMalformed},
		{"extra segment", valid + ".AAAA", ReasonTokenMalformed},
		{"line break in signature", valid[:len(valid)-8] + "\n" + valid[len(valid)-8:], ReasonTokenMalformed},
		{"padded base64", valid + "==", ReasonTokenMalformed},
		{"1 MB token", valid + strings.Repeat("A", 1<<20), ReasonTokenMalformed},
		{"just over 16 KiB", strings.Repeat("A", 16<<10+1), ReasonTokenMalformed},
		{"RS256 token whose header says ES256", rsAsES, ReasonTokenSignature},
		{"ES256 key with RS256 header", esAsRS, ReasonTokenSignature},
		{"RS256 signature under EC kid", rsUnderECKid, ReasonTokenSignature},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, ReasonTokenMalformed},
		{"empty", "", ReasonTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(issuerKeys(t), 0)
			id, got := v.Verify(context.Background(), tt.token, testApp())
			if got != tt.want {
				t.Fatalf("Verify(%s): reason = %q, want %q", tt.name, got, tt.want)
			}
			if (id == nil) != (tt.want != "") {
				t.Fatalf("Verify(%s): identity = %v with reason %q", tt.name, id, got)
			}
		})
	}
	if n := attacker.hits.Load(); n != 0 {
		t.Errorf("attacker server hits = %d, want 0", n)
	}
}

func TestVerifyKeyConstraints(t *testing.T) {
	keys := testKeys()
	rsaK, ecK := keys["rsa"], keys["ec256"]
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallK := signingKey{kid: "small", alg: jwa.RS256, priv: small}
	hmacKey, err := jwk.FromRaw([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	withAttr := func(k jwk.Key, name string, v any) jwk.Key {
		c, err := k.Clone()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(name, v); err != nil {
			t.Fatal(err)
		}
		return c
	}
	privJWK, err := jwk.FromRaw(rsaK.priv)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  jwk.Key
		tok  string
		want Reason
	}{
		{"key alg matches", withAttr(rsaK.public(t), jwk.AlgorithmKey, jwa.RS256), sign(t, rsaK, claimsAt(testNow), nil), ""},
		{"key alg differs", withAttr(rsaK.public(t), jwk.AlgorithmKey, jwa.RS512), sign(t, rsaK, claimsAt(testNow), nil), ReasonTokenSignature},
		{"key use enc", withAttr(rsaK.public(t), jwk.KeyUsageKey, "enc"), sign(t, rsaK, claimsAt(testNow), nil), ReasonTokenSignature},
		{"key use sig", withAttr(rsaK.public(t), jwk.KeyUsageKey, "sig"), sign(t, rsaK, claimsAt(testNow), nil), ""},
		{"RSA under 2048 bits", smallK.public(t), sign(t, smallK, claimsAt(testNow), nil), ReasonTokenSignature},
		{"P-256 key for ES384", ecK.public(t), reheader(sign(t, ecK, claimsAt(testNow), nil), map[string]any{"alg": "ES384", "kid": "k"}), ReasonTokenSignature},
		{"symmetric key in the set", hmacKey, hs256(claimsAt(testNow), []byte("secret")), ReasonTokenSignature},
		{"private key in the set", privJWK, sign(t, rsaK, claimsAt(testNow), nil), ReasonTokenSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whatever kid the token names, the issuer answers with tt.key.
			v := newTestVerifier(oneKey{tt.key}, 0)
			if _, got := v.Verify(context.Background(), tt.tok, testApp()); got != tt.want {
				t.Fatalf("Verify(%s): reason = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func hs256(claims map[string]any, secret []byte) string {
	return handMade(map[string]any{"alg": "HS256", "kid": "k"}, claims, secret)
}

// oneKey answers every kid with the same key.
type oneKey struct{ k jwk.Key }

func (o oneKey) Key(context.Context, *policies.Issuer, string) (jwk.Key, error) { return o.k, nil }

// failingKeys fails every lookup with err.
type failingKeys struct{ err error }

func (f failingKeys) Key(context.Context, *policies.Issuer, string) (jwk.Key, error) {
	return nil, f.err
}

func TestVerifyKeySourceErrors(t *testing.T) {
	tok := sign(t, testKeys()["rsa"], claimsAt(testNow), nil)
	for _, err := range []error{errTestUnknownKey, fmt.Errorf("wrapped: %w", errTestUnknownKey), context.Canceled} {
		v := newTestVerifier(failingKeys{err}, 0)
		if _, got := v.Verify(context.Background(), tok, testApp()); got != ReasonTokenUnknownKey {
			t.Errorf("Verify with Key error %v: reason = %q, want %q", err, got, ReasonTokenUnknownKey)
		}
	}
	if _, got := newTestVerifier(nil, 0).Verify(context.Background(), tok, testApp()); got == "" {
		t.Error("Verify with nil KeySource accepted a token")
	}
	if _, got := newTestVerifier(issuerKeys(t), 0).Verify(context.Background(), tok, nil); got == "" {
		t.Error("Verify with nil application accepted a token")
	}
}

// truncateSig cuts the signature on a base64 quantum boundary, so what is
// left decodes: a short signature, not a malformed segment.
func truncateSig(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 1
	n := len(tok) - i
	return tok[:i+n-n%4-4]
}

// attackerServer is a JWKS and certificate host the attacker controls; a
// sound verifier never contacts it.
type attackerServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newAttackerServer(t *testing.T, k signingKey) *attackerServer {
	t.Helper()
	a := &attackerServer{}
	jwks, err := json.Marshal(map[string]any{"keys": []any{k.public(t)}})
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t, k)})
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if strings.HasSuffix(r.URL.Path, ".pem") {
			w.Write(cert)
			return
		}
		w.Write(jwks)
	}))
	t.Cleanup(a.Close)
	return a
}

// selfSigned returns a DER certificate for k's public key.
func selfSigned(t testing.TB, k signingKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.priv.Public(), k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func chainOf(t testing.TB, der []byte) *cert.Chain {
	t.Helper()
	var c cert.Chain
	if err := c.AddString(base64.StdEncoding.EncodeToString(der)); err != nil {
		t.Fatal(err)
	}
	return &c
}

// errTestUnknownKey stands for a key source's "no such kid" error: authz
// treats every KeySource error alike, so it defines no sentinel of its own.
var errTestUnknownKey = errors.New("unknown key id")
