package jwks

import "errors"

// ErrUnknownKey is returned by Key when the issuer has no usable key with the
// requested kid, even after a refresh. authz.ErrUnknownKey is this same
// value, so errors.Is works across both packages.
var ErrUnknownKey = errors.New("unknown key id")
