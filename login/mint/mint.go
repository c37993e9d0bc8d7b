// Package mint makes and opens the credentials of accessgate's built-in
// sign-in (contract §8): Access tokens shaped like Cloudflare's, signed with
// the login section's first key, and the transfer codes that carry an
// identity from the team domain to an application host.
//
// It is pure Go with no net/http, so that the decision core can redeem a
// code and mint an application token on `/cdn-cgi/access/authorized` as
// plain input and output; the team-domain server (package login) uses it
// too.
package mint

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Token types (the `type` claim).
const (
	TypeApp = "app" // minted for an application host
	TypeOrg = "org" // the team domain's own session
)

// CodeTTL is how long a transfer code is valid.
const CodeTTL = 60 * time.Second

// Identity is who signed in, as a provider vouched for them.
type Identity struct {
	Email  string   `json:"e"`
	Groups []string `json:"g,omitempty"`
	// IdP is the name of the provider (login.providers[].name).
	IdP string `json:"i"`
}

// Minter mints tokens and transfer codes for one login section. It is
// safe for concurrent use.
type Minter struct {
	login *policies.Login
	key   *policies.SigningKey
	codes *Box
	ns    [16]byte // namespace of `sub`: UUIDv5(URL, team_domain)
	now   func() time.Time
}

// New returns a Minter for l; now is the clock (time.Now when nil).
func New(l *policies.Login, now func() time.Time) (*Minter, error) {
	if l == nil || len(l.SigningKeys) == 0 {
		return nil, errors.New("login section without signing keys")
	}
	codes, err := NewBox(l.CookieSecret, "transfer code v1")
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Minter{
		login: l,
		key:   l.SigningKeys[0],
		codes: codes,
		ns:    uuidV5(urlNamespace, l.TeamDomain),
		now:   now,
	}, nil
}

// claims are a minted token's payload, in Cloudflare's names.
type claims struct {
	Aud           []string `json:"aud"`
	Email         string   `json:"email"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	Nbf           int64    `json:"nbf"`
	Iss           string   `json:"iss"`
	Type          string   `json:"type"`
	IdentityNonce string   `json:"identity_nonce"`
	Sub           string   `json:"sub"`
	Groups        []string `json:"groups,omitempty"`
	IdP           string   `json:"idp,omitempty"`
}

// AppToken mints the `type: app` token for app (aud = its audience,
// lifetime = its session duration) and returns it with that lifetime, the
// cookie's Max-Age.
func (m *Minter) AppToken(id Identity, app *policies.Application) (string, time.Duration, error) {
	if app == nil {
		return "", 0, errors.New("no application")
	}
	d := m.login.SessionDurationFor(app)
	tok, err := m.mint(app.Audience, TypeApp, id, d)
	return tok, d, err
}

// OrgToken mints the team domain's `type: org` session token (aud = the
// team domain, lifetime = the login section's session duration).
func (m *Minter) OrgToken(id Identity) (string, time.Duration, error) {
	d := m.login.SessionDuration
	tok, err := m.mint(m.login.TeamDomain, TypeOrg, id, d)
	return tok, d, err
}

func (m *Minter) mint(aud, typ string, id Identity, d time.Duration) (string, error) {
	if id.Email == "" {
		return "", errors.New("identity without email")
	}
	now := m.now().Unix()
	c := claims{
		Aud:           []string{aud},
		Email:         id.Email,
		Iat:           now,
		Nbf:           now,
		Exp:           now + int64(d/time.Second),
		Iss:           m.login.TeamDomain,
		Type:          typ,
		IdentityNonce: randomString(12),
		Sub:           m.Subject(id.Email),
		Groups:        id.Groups,
		IdP:           id.IdP,
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("mint token: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, m.key.KID); err != nil {
		return "", err
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.SignatureAlgorithm(m.key.Alg), m.key.Private, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return string(tok), nil
}

// Subject is the `sub` of email: the UUID version 5 of the email,
// lower-cased (ASCII letters only, as every email comparison here), in
// the namespace UUIDv5(URL namespace, team_domain). It is stable for an
// address across sign-ins, providers and replicas.
func (m *Minter) Subject(email string) string {
	return formatUUID(uuidV5(m.ns, asciiLower(email)))
}

// Transfer is what a transfer code binds and carries.
type Transfer struct {
	// Host is the application host (lower-case, no port) the code may be
	// redeemed on.
	Host string `json:"h"`
	// Audience of the application that redeems it.
	Audience string `json:"a"`
	// Nonce is the login request's nonce: the browser's CF_AppSession.
	Nonce string `json:"n"`
	// Redirect is where the browser goes once the cookie is set.
	Redirect string   `json:"r"`
	Identity Identity `json:"id"`
}

// Code seals t into an opaque transfer code valid for CodeTTL. The code is
// encrypted (it carries the identity) and authenticated with a key derived
// from the cookie secret, so that any replica can redeem it.
func (m *Minter) Code(t Transfer) (string, error) {
	if t.Host == "" || t.Audience == "" || t.Nonce == "" || t.Identity.Email == "" {
		return "", errors.New("transfer without host, audience, nonce or identity")
	}
	return m.codes.Seal(t, m.now().Add(CodeTTL))
}

// Errors of Redeem. Every one is a 400 on /cdn-cgi/access/authorized.
var (
	// ErrCodeInvalid: not a code this team domain made (malformed,
	// tampered, another secret).
	ErrCodeInvalid = errors.New("transfer code invalid")
	// ErrCodeExpired: authentic, but older than CodeTTL.
	ErrCodeExpired = errors.New("transfer code expired")
	// ErrCodeBinding: made for another host or application.
	ErrCodeBinding = errors.New("transfer code bound to another host or application")
	// ErrCodeNonce: the browser's CF_AppSession is missing or is not the
	// nonce the code was made for (a code stolen or planted from
	// elsewhere).
	ErrCodeNonce = errors.New("transfer code nonce mismatch")
)

// Redeem opens a transfer code on an application host: host (lower-case,
// no port) and audience are those of the application answering, nonce is
// the CF_AppSession cookie of the request. It returns the identity and the
// redirect URL the code carries. A code may be redeemed again within its
// lifetime (there is no store), always only by the browser holding its
// nonce.
func (m *Minter) Redeem(code, host, audience, nonce string) (Identity, string, error) {
	var t Transfer
	switch err := m.codes.Open(code, &t, m.now()); {
	case errors.Is(err, ErrExpired):
		return Identity{}, "", ErrCodeExpired
	case err != nil:
		return Identity{}, "", ErrCodeInvalid
	}
	if t.Host != host || t.Audience != audience || host == "" {
		return Identity{}, "", ErrCodeBinding
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(nonce), []byte(t.Nonce)) != 1 {
		return Identity{}, "", ErrCodeNonce
	}
	return t.Identity, t.Redirect, nil
}

// IdentityDocument is the get-identity answer (contract §8), on the team
// domain from the org session and on application hosts from the app token.
type IdentityDocument struct {
	Email    string      `json:"email"`
	Groups   []string    `json:"groups"`
	IdP      IdentityIdP `json:"idp"`
	IAT      int64       `json:"iat"`
	UserUUID string      `json:"user_uuid"`
}

// IdentityIdP names the provider in the get-identity document.
type IdentityIdP struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// NewIdentityDocument is the get-identity answer for id, from a token
// issued at iat with sub as its `sub`; groups is [] when none.
func NewIdentityDocument(id Identity, iat int64, sub string) IdentityDocument {
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	return IdentityDocument{Email: id.Email, Groups: groups, IdP: IdentityIdP{ID: id.IdP, Type: "oidc"}, IAT: iat, UserUUID: sub}
}

// randomString returns n random bytes as unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+
		// crashes the program instead of returning an error).
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewNonce returns a fresh CF_AppSession nonce (128 random bits).
func NewNonce() string { return randomString(16) }

// ValidNonce reports whether s can be a nonce: 1 to 256 characters a
// cookie value may hold unquoted (RFC 6265 cookie-octets: printable ASCII
// without space, `"`, `,`, `;` and `\`). accessgate's own are 22
// base64url characters; anything else in a cookie or parameter is refused
// rather than carried into a code or a Set-Cookie.
func ValidNonce(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// asciiLower lower-cases A–Z only.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// urlNamespace is RFC 9562's namespace ID for URLs.
var urlNamespace = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// uuidV5 is RFC 9562 §5.5: SHA-1 of namespace and name, version 5,
// variant 10.
func uuidV5(ns [16]byte, name string) [16]byte {
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte(name))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return u
}

func formatUUID(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
