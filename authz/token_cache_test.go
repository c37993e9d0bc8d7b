package authz

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestVerifyCache(t *testing.T) {
	ctx := context.Background()
	keys := testKeys()
	now := testNow
	ks := issuerKeys(t)
	v := NewVerifier(ks, func() time.Time { return now })
	tok := sign(t, keys["ec256"], claimsAt(testNow), nil)

	first, r := v.Verify(ctx, tok, testApp())
	if r != "" {
		t.Fatalf("Verify: reason = %q", r)
	}
	second, r := v.Verify(ctx, tok, testApp())
	if r != "" || second != first {
		t.Fatalf("Verify again: reason %q, identity %p, want cached %p", r, second, first)
	}
	if n := v.cache.len(); n != 1 {
		t.Fatalf("cache holds %d entries, want 1", n)
	}

	// The same token for another application is judged for that one.
	other := testApp()
	other.Audience = "another-app"
	if _, r := v.Verify(ctx, tok, other); r != ReasonTokenAudience {
		t.Errorf("cached token, other audience: reason = %q, want %q", r, ReasonTokenAudience)
	}
	otherIss := testApp()
	otherIss.Issuer.Issuer = "https://other.example.com"
	if _, r := v.Verify(ctx, tok, otherIss); r != ReasonTokenIssuer {
		t.Errorf("cached token, other issuer: reason = %q, want %q", r, ReasonTokenIssuer)
	}

	// Time moves on: the cached token expires.
	now = testNow.Add(time.Hour + 29*time.Second)
	if _, r := v.Verify(ctx, tok, testApp()); r != "" {
		t.Errorf("cached token within leeway: reason = %q, want none", r)
	}
	now = testNow.Add(time.Hour + 30*time.Second)
	if _, r := v.Verify(ctx, tok, testApp()); r != ReasonTokenExpired {
		t.Errorf("cached token after exp: reason = %q, want %q", r, ReasonTokenExpired)
	}
	now = testNow

	// The issuer rotates the key under the same kid: the cached result no
	// longer holds and the token fails verification against the new key.
	ks.keys[keys["ec256"].kid] = keys["attacker"].public(t)
	if _, r := v.Verify(ctx, tok, testApp()); r != ReasonTokenSignature {
		t.Errorf("cached token, key replaced: reason = %q, want %q", r, ReasonTokenSignature)
	}
	// The key is removed: unknown key, cached or not.
	delete(ks.keys, keys["ec256"].kid)
	if _, r := v.Verify(ctx, tok, testApp()); r != ReasonTokenUnknownKey {
		t.Errorf("cached token, key removed: reason = %q, want %q", r, ReasonTokenUnknownKey)
	}

	v.Purge()
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries after Purge, want 0", n)
	}
}

func TestVerifyCacheSkipsFailures(t *testing.T) {
	v := newTestVerifier(issuerKeys(t), 100)
	bad := []string{
		sign(t, testKeys()["attacker"], claimsAt(testNow), nil),
		"garbage",
	}
	for _, tok := range bad {
		v.Verify(context.Background(), tok, testApp())
	}
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d entries after failed signatures, want 0", n)
	}
	// (An expired token whose signature holds is cached on purpose: see
	// TestCacheExpiredTokenIsCheap.)
	// A token whose signature holds but whose audience is wrong is cached:
	// it may be presented to the application it was issued for.
	tok := sign(t, testKeys()["rsa"], with(claimsAt(testNow), "aud", "elsewhere"), nil)
	if _, r := v.Verify(context.Background(), tok, testApp()); r != ReasonTokenAudience {
		t.Fatalf("reason = %q, want %q", r, ReasonTokenAudience)
	}
	app := testApp()
	app.Audience = "elsewhere"
	if _, r := v.Verify(context.Background(), tok, app); r != "" {
		t.Errorf("cached token for its own app: reason = %q, want none", r)
	}
}

func TestVerifyCacheBound(t *testing.T) {
	const size = 64
	now := testNow
	v := NewVerifier(issuerKeys(t), func() time.Time { return now }, WithVerifierCache(size))
	k := testKeys()["ed"]
	for i := range 300 {
		tok := sign(t, k, with(claimsAt(testNow), "sub", fmt.Sprint(i)), nil)
		if _, r := v.Verify(context.Background(), tok, testApp()); r != "" {
			t.Fatalf("Verify %d: reason %q", i, r)
		}
		if n := v.cache.len(); n > size {
			t.Fatalf("cache holds %d entries, bound %d", n, size)
		}
	}
	// Expired entries are evicted first: after exp, new tokens replace them.
	now = testNow.Add(2 * time.Hour)
	fresh := claimsAt(now)
	for i := range size {
		tok := sign(t, k, with(fresh, "sub", fmt.Sprint("new", i)), nil)
		if _, r := v.Verify(context.Background(), tok, testApp()); r != "" {
			t.Fatalf("Verify new %d: reason %q", i, r)
		}
	}
	if n := v.cache.len(); n > size {
		t.Fatalf("cache holds %d entries, bound %d", n, size)
	}
}

func TestVerifyCacheCollision(t *testing.T) {
	// Two tokens forced into the same slot: the full token compare turns
	// the second into a miss, never the first one's identity.
	v := newTestVerifier(issuerKeys(t), 16)
	k := testKeys()["ed"]
	a := sign(t, k, with(claimsAt(testNow), "email", "a@example.com"), nil)
	b := sign(t, k, with(claimsAt(testNow), "email", "b@example.com"), nil)
	id, _ := v.Verify(context.Background(), a, testApp())
	h := v.cache.hash(b)
	e := *v.cache.get(v.cache.hash(a), a)
	v.cache.put(h, &e, testNow) // slot of b now holds a's entry
	if got := v.cache.get(h, b); got != nil {
		t.Fatalf("get(b) = entry for %q, want miss", got.id.Email)
	}
	idB, r := v.Verify(context.Background(), b, testApp())
	if r != "" || idB.Email != "b@example.com" || idB == id {
		t.Errorf("Verify(b) = %+v, %q, want b's identity", idB, r)
	}
}

func FuzzVerify(f *testing.F) {
	valid := sign(f, testKeys()["rsa"], claimsAt(testNow), nil)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(reheader(valid, map[string]any{"alg": "none"}))
	f.Add("e30.e30.")
	f.Add("..")
	f.Add(strings.Repeat(".", 100))
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6InJzYS1raWQifQ.e30.AAAA")
	ks := issuerKeys(f)
	ks.keys["hmac"] = mustKey(f, []byte("secret"))
	v := newTestVerifier(ks, 0)
	f.Fuzz(func(t *testing.T, tok string) {
		id, r := v.Verify(context.Background(), tok, testApp())
		if tok == valid {
			return
		}
		if r == "" || id != nil {
			t.Errorf("Verify(%q) = %v, %q: accepted a token nobody signed", tok, id, r)
		}
	})
}

func mustKey(tb testing.TB, raw any) jwk.Key {
	tb.Helper()
	k, err := jwk.FromRaw(raw)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func BenchmarkVerify(b *testing.B) {
	keys := testKeys()
	ctx := context.Background()
	app := testApp()
	for _, name := range []string{"RS256", "ES256", "EdDSA"} {
		k := map[string]signingKey{"RS256": keys["rsa"], "ES256": keys["ec256"], "EdDSA": keys["ed"]}[name]
		tok := sign(b, k, claimsAt(testNow), nil)
		b.Run(name+"/first", func(b *testing.B) {
			v := newTestVerifier(issuerKeys(b), 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, r := v.Verify(ctx, tok, app); r != "" {
					b.Fatal(r)
				}
			}
		})
		b.Run(name+"/cached", func(b *testing.B) {
			v := newTestVerifier(issuerKeys(b), DefaultVerifierCacheSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, r := v.Verify(ctx, tok, app); r != "" {
					b.Fatal(r)
				}
			}
		})
	}
}

// TestCacheExpiredTokenIsCheap: a token that verified but has expired is
// remembered, so the next sight answers token_expired from the cache
// without a second signature check, and is never accepted.
func TestCacheExpiredTokenIsCheap(t *testing.T) {
	keys := testKeys()
	now := testNow.Add(3 * time.Hour) // claimsAt(testNow) expired long ago
	v := NewVerifier(issuerKeys(t), func() time.Time { return now })
	tok := sign(t, keys["ec256"], claimsAt(testNow), nil)
	for i := 0; i < 3; i++ {
		if _, r := v.Verify(context.Background(), tok, testApp()); r != ReasonTokenExpired {
			t.Fatalf("sight %d: reason = %q, want %q", i, r, ReasonTokenExpired)
		}
	}
	if n := v.cache.len(); n != 1 {
		t.Errorf("cache holds %d entries after an expired token, want 1", n)
	}
}
