package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// FuzzVerifyDifferential feeds the same signed, mutated tokens to the
// hand-written verifier (Verify: parseToken, allowedAlg, keyFits,
// parseClaims, check) and to lestrrat-go/jwx's jwt.Parse with the same
// keys, issuer, audience, leeway and clock, and fails when one accepts what
// the other refuses, outside the documented, intended differences that
// jwxDifference lists.
//
// Each input is a key (keyIdx), a header built around that key's alg with a
// kid chosen by kidMode and raw JSON members appended (extra), a raw payload,
// a real signature over them, and optionally one byte of the finished token
// changed (mutPos, mutXor), so that the fuzzer reaches malformed encodings
// as well as signed tokens with odd claims.
func FuzzVerifyDifferential(f *testing.F) {
	now := testNow
	valid := func(extra string) []byte {
		return []byte(`{"iss":"` + testIss + `","aud":["` + testAud + `"],"exp":` + strconv.FormatInt(now.Add(time.Hour).Unix(), 10) +
			`,"iat":` + strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + extra + `}`)
	}
	for i := range uint8(4) {
		f.Add(i, uint8(0), "", valid(""), uint16(0), uint8(0))
	}
	f.Add(uint8(0), uint8(1), "", valid(""), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(2), "", valid(""), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(3), "", valid(""), uint16(0), uint8(0))
	f.Add(uint8(2), uint8(4), "", valid(""), uint16(0), uint8(0))
	f.Add(uint8(0), uint8(0), `"crit":["exp"],"exp":1`, valid(""), uint16(0), uint8(0))
	f.Add(uint8(0), uint8(0), `"alg":"none"`, valid(""), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), `"typ":"JWT"`, valid(`,"aud":"`+testAud+`"`), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", valid(`,"nbf":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", []byte(`{"iss":"`+testIss+`","aud":["`+testAud+`"]}`), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", valid(`,"aud":["x",1]`), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", valid(`,"exp":"1900000000"`), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", valid(`,"iss":"https://evil.example.com"`), uint16(0), uint8(0))
	f.Add(uint8(1), uint8(0), "", valid(""), uint16(40), uint8(1))
	f.Add(uint8(3), uint8(0), "", valid(""), uint16(200), uint8(0x20))

	keys := testKeys()
	order := []signingKey{keys["rsa"], keys["ec256"], keys["ec384"], keys["ed"]}
	ours := &staticKeys{keys: map[string]jwk.Key{}}
	set := jwk.NewSet()
	for _, k := range order {
		pub := k.public(f)
		// The alg on the key: jwx requires it to pick the algorithm, and
		// keyFits then holds the token to it as well.
		if err := pub.Set(jwk.AlgorithmKey, k.alg); err != nil {
			f.Fatal(err)
		}
		ours.keys[k.kid] = pub
		if err := set.AddKey(pub); err != nil {
			f.Fatal(err)
		}
	}
	keyAlgs := map[string]string{}
	for _, k := range order {
		keyAlgs[k.kid] = string(k.alg)
	}
	app := testApp()
	v := NewVerifier(ours, func() time.Time { return now }, WithVerifierCache(0))

	f.Fuzz(func(t *testing.T, keyIdx, kidMode uint8, extra string, payload []byte, mutPos uint16, mutXor uint8) {
		k := order[int(keyIdx)%len(order)]
		alg := string(k.alg)
		switch kidMode >> 2 % 4 {
		case 1:
			alg = "RS384" // allowed, but not this key's
		case 2:
			alg = "PS512" // not allowed by accessgate at all
		case 3:
			alg = "HS256"
		}
		hdr := `{"alg":` + strconv.Quote(alg)
		switch kidMode % 4 {
		case 0:
			hdr += `,"kid":` + strconv.Quote(k.kid)
		case 2:
			hdr += `,"kid":"unknown-kid"`
		case 3:
			hdr += `,"kid":7`
		}
		if extra != "" {
			hdr += "," + extra
		}
		hdr += "}"
		input := base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + base64.RawURLEncoding.EncodeToString(payload)
		signer, err := jws.NewSigner(k.alg)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := signer.Sign([]byte(input), k.priv)
		if err != nil {
			t.Fatal(err)
		}
		token := []byte(input + "." + base64.RawURLEncoding.EncodeToString(sig))
		if mutXor != 0 {
			token[int(mutPos)%len(token)] ^= mutXor
		}

		_, reason := v.Verify(context.Background(), string(token), app)
		oursOK := reason == ""
		_, jerr := jwt.Parse(token,
			jwt.WithKeySet(set),
			jwt.WithValidate(true),
			jwt.WithIssuer(testIss),
			jwt.WithAudience(testAud),
			jwt.WithAcceptableSkew(app.Issuer.Leeway),
			jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })),
			jwt.WithRequiredClaim(jwt.ExpirationKey),
		)
		jwxOK := jerr == nil
		if oursOK == jwxOK {
			return
		}
		if why := jwxDifference(string(token), keyAlgs, now, app.Issuer.Leeway); why != "" {
			t.Logf("intended difference (%s): ours %v (%q), jwx %v (%v)", why, oursOK, reason, jwxOK, jerr)
			return
		}
		t.Fatalf("verifiers disagree on %q (header %s, payload %q):\n  accessgate: ok=%v reason %q\n  jwx:        ok=%v err %v",
			token, hdr, payload, oursOK, reason, jwxOK, jerr)
	})
}

// jwxDifference names the documented, intended difference that explains a
// disagreement about token, or returns "" when none does. Each is a place
// where accessgate is deliberately stricter than jwx, or where the two
// round time differently:
//
//   - size: accessgate refuses a token over 16 KiB unparsed;
//   - encoding: accessgate takes only the canonical base64url alphabet
//     without padding or stray bits, so a signature has one spelling;
//   - crit: accessgate understands no critical header extension (RFC 7515
//     section 4.1.11) and refuses any `crit`;
//   - alg: accessgate's whitelist (RS256, RS384, RS512, PS256, ES256,
//     ES384, EdDSA) is narrower than jwx's;
//   - key alg: accessgate refuses a token whose header alg differs from
//     the alg its key publishes; jwx verifies with the key's alg and
//     ignores the header's;
//   - NumericDate type: accessgate takes exp, nbf and iat only as JSON
//     numbers (RFC 7519 section 2); jwx also parses them from strings;
//   - header JSON: accessgate decodes the header itself (member names
//     case-sensitive, a duplicate member is refused by neither rule but read
//     last-wins by encoding/json), so a header jwx reads differently is
//     judged on what accessgate reads;
//   - epoch: jwx skips a time claim whose Unix second is 0; accessgate
//     judges it (exp 0 is expired);
//   - rounding: jwx truncates the clock and the claims to whole seconds,
//     accessgate compares exactly, so claims within 2 s of a boundary are
//     not compared;
//   - range: accessgate clamps NumericDates beyond ±1e11 s (year 5138).
func jwxDifference(token string, keyAlgs map[string]string, now time.Time, leeway time.Duration) string {
	if len(token) > maxTokenSize {
		return "size"
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	for _, p := range parts {
		if strings.ContainsFunc(p, func(r rune) bool {
			return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_')
		}) {
			return "encoding"
		}
		if _, err := b64.DecodeString(p); err != nil {
			return "encoding"
		}
	}
	hb, _ := b64.DecodeString(parts[0])
	var header map[string]json.RawMessage
	if json.Unmarshal(hb, &header) != nil {
		return "header JSON"
	}
	if _, ok := header["crit"]; ok {
		return "crit"
	}
	var alg string
	if json.Unmarshal(header["alg"], &alg) != nil || !allowedAlg(alg) {
		return "alg"
	}
	if strings.Count(string(hb), `"alg"`) > 1 || strings.Count(string(hb), `"kid"`) > 1 {
		return "header JSON"
	}
	var kid string
	if json.Unmarshal(header["kid"], &kid) == nil && keyAlgs[kid] != "" && keyAlgs[kid] != alg {
		return "key alg"
	}
	pb, _ := b64.DecodeString(parts[1])
	var claims map[string]any
	if json.Unmarshal(pb, &claims) != nil {
		return ""
	}
	for name, bound := range map[string]time.Time{"exp": now.Add(-leeway), "nbf": now.Add(leeway), "iat": now.Add(leeway)} {
		v, present := claims[name]
		if !present {
			continue
		}
		f, ok := v.(float64)
		if !ok {
			return "NumericDate type"
		}
		if math.Abs(f) > maxNumericDate {
			return "range"
		}
		if math.Abs(f) < 1 {
			return "epoch"
		}
		if math.Abs(f-float64(bound.Unix())) <= 2 {
			return "rounding"
		}
	}
	return ""
}
