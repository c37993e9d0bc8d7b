package policies

import "errors"

// Syntax rules shared by the policy file and the request side (authz): one
// copy of each, so that what a file may name and what a request may carry
// cannot drift apart.

var (
	errEmptyHost  = errors.New("empty host")
	errEmptyLabel = errors.New("empty label in host")
	errHostChar   = errors.New("invalid character in host")
)

// CheckHostName checks a lower-case host name (also a dotted IPv4 address)
// without port and trailing dot: it is not empty, has no empty label, and
// holds only ASCII letters, digits, '-', '_' (seen in internal names) and
// '.'. Anything else, a non-ASCII byte (a Kelvin sign, a fullwidth letter,
// an unencoded IDN), an upper-case letter, '@' (userinfo), a space, is
// refused. It allocates nothing: authz runs it on every request's host.
//
// The policy file adds its own limits on top (label length, no leading or
// trailing '-'); a request host only has to be well formed.
func CheckHostName(h string) error {
	if h == "" {
		return errEmptyHost
	}
	prevDot := true // no empty first label
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '.':
			if prevDot {
				return errEmptyLabel
			}
			prevDot = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			prevDot = false
		default:
			return errHostChar
		}
	}
	if prevDot {
		return errEmptyLabel
	}
	return nil
}

// IsToken reports whether s is an RFC 9110 token (section 5.6.2), the
// syntax of a method and of a header name: no space, control character,
// separator or byte above 0x7e.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' ||
			c == '*' || c == '+' || c == '-' || c == '.' || c == '^' || c == '_' ||
			c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}
