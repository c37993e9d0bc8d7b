package authz

// PLACEHOLDERS: the token helper replaces this file.

import (
	"context"
	"errors"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// ErrUnknownKey is returned by a KeySource when the issuer has no key with
// the requested kid, even after a refresh.
var ErrUnknownKey = errors.New("unknown key id")

// KeySource gives the verification keys of an issuer.
type KeySource interface {
	// Key returns iss's key with the given kid. When the kid is unknown it
	// may refresh the issuer's key set (at most once per issuer every 10 s)
	// and returns an error wrapping ErrUnknownKey if the key is still
	// missing. An empty kid matches only when the set holds exactly one key.
	Key(ctx context.Context, iss *policies.Issuer, kid string) (jwk.Key, error)
}

// Identity is what a verified Access token says about its bearer.
type Identity struct {
	Token   string
	Email   string
	Country string
	Groups  []string
	Claims  map[string]any
	Expires time.Time
}

// Verifier checks Access tokens.
type Verifier struct{}

// NewVerifier returns a Verifier using ks for keys and now for time.
func NewVerifier(ks KeySource, now func() time.Time) *Verifier { return &Verifier{} }

// Verify checks token for app; it returns the identity, or a token_* reason.
func (v *Verifier) Verify(ctx context.Context, token string, app *policies.Application) (*Identity, Reason) {
	panic("TODO")
}

// TokenFrom returns the Access token from the first source present in h
// (CF_Authorization cookie, cf-access-jwt-assertion, cf-access-token,
// Authorization: Bearer), or "" when none is.
func TokenFrom(h map[string]string) string { panic("TODO") }
