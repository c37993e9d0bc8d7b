package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// KeySource gives the verification keys of an issuer.
type KeySource interface {
	// Key returns iss's key with the given kid. When the kid is unknown it
	// may refresh the issuer's key set (at most once per issuer every 10 s)
	// and returns an error if the key is still missing. Any error is
	// token_unknown_key: the key could not be had, whatever the cause.
	// An empty kid matches only when the set holds exactly one key.
	//
	// Key should return the same jwk.Key value for as long as the key set
	// is unchanged: the Verifier's cache compares it to decide whether a
	// cached verification still holds.
	Key(ctx context.Context, iss *policies.Issuer, kid string) (jwk.Key, error)
}

// Identity is what a verified Access token says about its bearer.
//
// An Identity may be shared between requests (it comes from the Verifier's
// cache): treat it, its Groups and its Claims as read-only.
type Identity struct {
	// Token is the token text as presented.
	Token string
	// Email is the `email` claim ("" for a service-token token).
	Email string
	// Country is the `country` claim (ISO code as sent).
	Country string
	// Groups is the `groups` claim, else `custom.groups` (how identity
	// providers behind Cloudflare Access deliver it); a single string is
	// one group, non-string members are skipped.
	Groups []string
	// Claims are all claims as decoded from JSON (numbers as float64,
	// objects as map[string]any, arrays as []any), except `aud`, which is
	// always a []string, whether the token sent a string or an array.
	Claims map[string]any
	// Expires is the `exp` claim.
	Expires time.Time
	// Sub is the `sub` claim; IssuedAt the `iat` claim (zero when absent).
	// Revocation matches them.
	Sub      string
	IssuedAt time.Time

	// emailFold is Email with A-Z folded, computed once so that a cached
	// token is checked against the revocations without allocating.
	emailFold string

	// headers are the identity headers a forward sets for this token
	// (see forward), built once when the token is verified so that a
	// cached token forwards without allocating. Read-only, shared.
	headers []Header
}

// forwardHeaders returns the identity headers a forward sets for id:
// Cf-Access-Authenticated-User-Email (when the token has an email) and
// Cf-Access-Jwt-Assertion. The slice is read-only and at full capacity.
func (id *Identity) forwardHeaders() []Header {
	if id.headers != nil {
		return id.headers
	}
	return buildForwardHeaders(id.Email, id.Token)
}

func buildForwardHeaders(email, token string) []Header {
	if email != "" {
		return []Header{{Key: hdrUserEmail, Value: email}, {Key: hdrJWTAssertion, Value: token}}
	}
	return []Header{{Key: hdrJWTAssertion, Value: token}}
}

// maxTokenSize is the longest token accepted (contract section 3, step 4).
// Cloudflare's tokens are about 1 KiB; a longer one is refused unparsed.
const maxTokenSize = 16 << 10

// b64 decodes JWS segments. Strict refuses non-zero padding bits, so a
// signature has exactly one spelling; the alphabet check in splitToken
// refuses the line breaks the decoder would otherwise skip.
var b64 = base64.RawURLEncoding.Strict()

// minRSABits is the smallest RSA modulus accepted. Cloudflare's keys are
// 2048 bits; anything shorter is forgeable at some cost and is refused.
const minRSABits = 2048

// Verifier checks Access tokens. It is safe for concurrent use.
//
// Check order (each step runs only if the previous passed, so the reason is
// the first failure in this order):
//
//  1. size: over 16 KiB → token_malformed, without parsing;
//  2. parse: three base64url segments, header and payload JSON objects, no
//     `crit` header → token_malformed;
//  3. alg: RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA, never none or
//     HMAC → token_signature;
//  4. key: KeySource.Key(iss, kid) fails → token_unknown_key;
//  5. key/alg consistency (RSA ≥ 2048 bits for RS*/PS*, EC P-256 for ES256,
//     P-384 for ES384, OKP Ed25519 for EdDSA; the key's `alg`, when set,
//     equal to the token's; `use`, when set, "sig") and the signature →
//     token_signature;
//  6. claims, in this order: `exp` missing or any registered claim of the
//     wrong type → token_malformed; `iss` ≠ issuer → token_issuer; `aud`
//     lacking the audience → token_audience; now ≥ exp+leeway →
//     token_expired; now < nbf−leeway or now < iat−leeway →
//     token_not_yet_valid.
//
// The key comes only from the issuer's KeySource: the `jku`, `x5u`, `jwk`
// and `x5c` headers are never read, fetched or trusted. Claims are checked
// only once the signature holds, so a forged token always gets
// token_signature, whatever it claims.
//
// Tokens whose signature verified are kept in a bounded cache keyed by a
// hash of the token (see WithVerifierCache). A hit skips steps 2–5 but still
// asks the KeySource for the key and requires the very same key value (so a
// rotated or removed key drops its tokens), and runs step 6 against the
// asking application and the current time: the same token can reach another
// application, or expire while cached.
type Verifier struct {
	ks    KeySource
	now   func() time.Time
	cache *tokenCache // nil when disabled
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig)

type verifierConfig struct {
	cacheSize int
}

// DefaultVerifierCacheSize is the number of verified tokens a Verifier
// remembers unless WithVerifierCache says otherwise.
const DefaultVerifierCacheSize = 10000

// WithVerifierCache bounds the verified-token cache to n entries; n ≤ 0
// disables it (every token is verified in full).
func WithVerifierCache(n int) VerifierOption {
	return func(c *verifierConfig) { c.cacheSize = n }
}

// NewVerifier returns a Verifier using ks for keys and now for time.
func NewVerifier(ks KeySource, now func() time.Time, opts ...VerifierOption) *Verifier {
	cfg := verifierConfig{cacheSize: DefaultVerifierCacheSize}
	for _, o := range opts {
		o(&cfg)
	}
	if now == nil {
		now = time.Now
	}
	v := &Verifier{ks: ks, now: now}
	if cfg.cacheSize > 0 {
		v.cache = newTokenCache(cfg.cacheSize)
	}
	return v
}

// Purge empties the verified-token cache. Stale entries are never served
// anyway (a hit re-checks the key), so this only frees memory, e.g. after
// a key rotation.
func (v *Verifier) Purge() {
	if v.cache != nil {
		v.cache.purge()
	}
}

// Verify checks token for app; it returns the identity, or a token_* reason
// (and a nil Identity). The reason is "" exactly when the token is valid.
func (v *Verifier) Verify(ctx context.Context, token string, app *policies.Application) (*Identity, Reason) {
	if app == nil || app.Issuer == nil || v.ks == nil {
		// Not reachable from a compiled Set; never panic on it.
		return nil, ReasonTokenIssuer
	}
	if token == "" || len(token) > maxTokenSize {
		return nil, ReasonTokenMalformed
	}
	now := v.now()
	var h uint64
	if v.cache != nil {
		h = v.cache.hash(token)
		if e := v.cache.get(h, token); e != nil {
			key, err := v.ks.Key(ctx, app.Issuer, e.kid)
			if err != nil {
				return nil, ReasonTokenUnknownKey
			}
			if key == e.key {
				if r := e.claims.check(app, now); r != "" {
					return nil, r
				}
				return e.id, ""
			}
			// The issuer's key changed under this kid: verify afresh.
		}
	}

	p, r := parseToken(token)
	if r != "" {
		return nil, r
	}
	if !allowedAlg(p.alg) {
		return nil, ReasonTokenSignature
	}
	key, err := v.ks.Key(ctx, app.Issuer, p.kid)
	if err != nil {
		// An unknown kid, but also an issuer without keys yet or a
		// cancelled wait for a refresh: the key could not be had.
		return nil, ReasonTokenUnknownKey
	}
	if !keyFits(key, p.alg) {
		return nil, ReasonTokenSignature
	}
	verifier, err := jws.NewVerifier(jwa.SignatureAlgorithm(p.alg))
	if err != nil {
		return nil, ReasonTokenSignature
	}
	if err := verifier.Verify(p.signingInput, p.sig, key); err != nil {
		return nil, ReasonTokenSignature
	}

	c, r := parseClaims(p.claims)
	if r != "" {
		return nil, r
	}
	id := &Identity{
		Token:   token,
		Email:   stringClaim(p.claims, "email"),
		Country: stringClaim(p.claims, "country"),
		Groups:  groupsOf(p.claims),
		Claims:  p.claims,
		Expires: c.exp,
	}
	id.Sub, id.IssuedAt = stringClaim(p.claims, "sub"), c.iat
	id.emailFold = policies.LowerASCII(id.Email)
	id.headers = buildForwardHeaders(id.Email, token)
	if _, ok := p.claims["aud"]; ok {
		p.claims["aud"] = c.aud
	}
	// Expired tokens are cached too: a browser whose session lapsed keeps
	// sending its cookie (an SPA polls), and each hit then costs a lookup
	// instead of a signature check. Their until is already past, so they
	// are the first evicted when a shard is full.
	if v.cache != nil {
		v.cache.put(h, &cacheEntry{
			token:  token,
			kid:    p.kid,
			key:    key,
			id:     id,
			claims: c,
			until:  c.exp.Add(app.Issuer.Leeway),
		}, now)
	}
	if r := c.check(app, now); r != "" {
		return nil, r
	}
	return id, ""
}

// parsedToken is a compact JWS taken apart.
type parsedToken struct {
	alg, kid     string
	signingInput []byte // header.payload, as signed
	sig          []byte
	claims       map[string]any
}

// parseToken splits and decodes a compact JWS. Any structural problem is
// token_malformed.
func parseToken(token string) (*parsedToken, Reason) {
	// Only the base64url alphabet and exactly two dots: this also refuses
	// the whitespace that base64 decoding would silently skip.
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.':
			dots++
		default:
			return nil, ReasonTokenMalformed
		}
	}
	if dots != 2 {
		return nil, ReasonTokenMalformed
	}
	hdr, rest, _ := strings.Cut(token, ".")
	pay, sig, _ := strings.Cut(rest, ".")
	if hdr == "" || pay == "" {
		return nil, ReasonTokenMalformed
	}
	hb, err := b64.DecodeString(hdr)
	if err != nil {
		return nil, ReasonTokenMalformed
	}
	// Decode the header into raw members: JSON member names are
	// case-sensitive, which encoding/json's struct decoding is not, and a
	// header must not say one thing to us and another to a library.
	var header map[string]json.RawMessage
	if err := json.Unmarshal(hb, &header); err != nil || header == nil {
		return nil, ReasonTokenMalformed
	}
	// RFC 7515 section 4.1.11: extensions in `crit` must be understood, and
	// we understand none (b64=false and friends are refused here).
	if _, ok := header["crit"]; ok {
		return nil, ReasonTokenMalformed
	}
	p := &parsedToken{signingInput: []byte(token[:len(hdr)+1+len(pay)])}
	if err := json.Unmarshal(header["alg"], &p.alg); err != nil {
		return nil, ReasonTokenMalformed
	}
	if raw, ok := header["kid"]; ok {
		if err := json.Unmarshal(raw, &p.kid); err != nil {
			return nil, ReasonTokenMalformed
		}
	}
	pb, err := b64.DecodeString(pay)
	if err != nil {
		return nil, ReasonTokenMalformed
	}
	d := json.NewDecoder(bytes.NewReader(pb))
	if err := d.Decode(&p.claims); err != nil || p.claims == nil || d.More() {
		return nil, ReasonTokenMalformed
	}
	if p.sig, err = b64.DecodeString(sig); err != nil {
		return nil, ReasonTokenMalformed
	}
	return p, ""
}

// allowedAlg reports whether alg is one the contract allows.
func allowedAlg(alg string) bool {
	switch jwa.SignatureAlgorithm(alg) {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.ES256, jwa.ES384, jwa.EdDSA:
		return true
	}
	return false
}

// keyFits reports whether key may verify a signature made with alg. The
// algorithm is judged by the key the issuer published, never by the token
// alone: an RSA key never verifies ES256, an EC key never RS256, and no key
// of any kind verifies HMAC (refused earlier) — the classic alg confusion.
func keyFits(key jwk.Key, alg string) bool {
	if ka := key.Algorithm(); ka != nil && ka.String() != "" && ka.String() != alg {
		return false
	}
	if u, ok := key.Get(jwk.KeyUsageKey); ok {
		if s, _ := u.(string); s != "" && s != string(jwk.ForSignature) {
			return false
		}
	}
	switch jwa.SignatureAlgorithm(alg) {
	case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256:
		k, ok := key.(jwk.RSAPublicKey)
		if !ok {
			return false
		}
		return len(bytes.TrimLeft(k.N(), "\x00"))*8 >= minRSABits
	case jwa.ES256:
		k, ok := key.(jwk.ECDSAPublicKey)
		return ok && k.Crv() == jwa.P256
	case jwa.ES384:
		k, ok := key.(jwk.ECDSAPublicKey)
		return ok && k.Crv() == jwa.P384
	case jwa.EdDSA:
		k, ok := key.(jwk.OKPPublicKey)
		return ok && k.Crv() == jwa.Ed25519
	}
	return false
}

// tokenClaims are the registered claims Verify checks, typed.
type tokenClaims struct {
	iss      string
	aud      []string
	exp      time.Time
	nbf, iat time.Time // zero when absent
}

// parseClaims types the registered claims; a missing `exp` or a registered
// claim of the wrong type is token_malformed. An absent `iss` or `aud` is
// not malformed: it fails the issuer or audience check.
func parseClaims(m map[string]any) (tokenClaims, Reason) {
	var c tokenClaims
	var ok bool
	if c.exp, ok = numericDate(m["exp"]); !ok {
		return c, ReasonTokenMalformed
	}
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"nbf", &c.nbf}, {"iat", &c.iat}} {
		if v, present := m[f.name]; present {
			if *f.dst, ok = numericDate(v); !ok {
				return c, ReasonTokenMalformed
			}
		}
	}
	if v, present := m["iss"]; present {
		if c.iss, ok = v.(string); !ok {
			return c, ReasonTokenMalformed
		}
	}
	switch a := m["aud"].(type) {
	case nil:
		if _, present := m["aud"]; present {
			return c, ReasonTokenMalformed
		}
	case string:
		c.aud = []string{a}
	case []any:
		c.aud = make([]string, len(a))
		for i, v := range a {
			if c.aud[i], ok = v.(string); !ok {
				return c, ReasonTokenMalformed
			}
		}
	default:
		return c, ReasonTokenMalformed
	}
	return c, ""
}

// maxNumericDate bounds exp/nbf/iat (year 5138) so a huge number cannot
// overflow time arithmetic.
const maxNumericDate = 1e11

// numericDate converts a JSON NumericDate (seconds, possibly fractional).
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return time.Time{}, false
	}
	f = max(min(f, maxNumericDate), -maxNumericDate)
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// check applies the claim rules for app at now: issuer, audience, expiry,
// then not-before and issued-at, each time rule within the issuer's leeway.
func (c *tokenClaims) check(app *policies.Application, now time.Time) Reason {
	if c.iss != app.Issuer.Issuer {
		return ReasonTokenIssuer
	}
	found := false
	for _, a := range c.aud {
		if a == app.Audience {
			found = true
			break
		}
	}
	if !found || app.Audience == "" {
		return ReasonTokenAudience
	}
	leeway := app.Issuer.Leeway
	if !now.Before(c.exp.Add(leeway)) {
		return ReasonTokenExpired
	}
	if !c.nbf.IsZero() && now.Before(c.nbf.Add(-leeway)) {
		return ReasonTokenNotYetValid
	}
	if !c.iat.IsZero() && now.Before(c.iat.Add(-leeway)) {
		return ReasonTokenNotYetValid
	}
	return ""
}

func stringClaim(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}

// groupsOf returns the `groups` claim, else `custom.groups`.
func groupsOf(m map[string]any) []string {
	g, ok := m["groups"]
	if !ok {
		if custom, isObj := m["custom"].(map[string]any); isObj {
			g = custom["groups"]
		}
	}
	switch g := g.(type) {
	case string:
		return []string{g}
	case []any:
		out := make([]string, 0, len(g))
		for _, v := range g {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
