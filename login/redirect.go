package login

import (
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// maxRedirect bounds redirect_url: the full original URL of an application
// request fits easily; the code that carries it must fit in a URL too.
const maxRedirect = 4096

// Reasons a login request is refused (400); the text is shown on the page
// and logged, and never holds the request's values.
var (
	errBadHost     = errors.New("the application host in the sign-in link is malformed")
	errBadRedirect = errors.New("the redirect URL is not allowed for this application")
	errBadOrigin   = errors.New("the origin parameter is malformed or names another host")
	errBadNonce    = errors.New("the nonce parameter is missing or malformed")
	errNoApp       = errors.New("no application signs in through this team domain for this host and kid")
	errBadQuery    = errors.New("the sign-in link's parameters are malformed, repeated or too long")
	errBadProvider = errors.New("the identity provider is not allowed for this application")
)

// checkHost validates the <host> of /cdn-cgi/access/login/<host> and
// returns it lower-cased: a DNS name or dotted IPv4 address, labels of
// ASCII letters, digits, '-' and '_', no port.
func checkHost(h string) (string, error) {
	h = asciiLower(h)
	if h == "" || len(h) > 253 {
		return "", errBadHost
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return "", errBadHost
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", errBadHost
			}
		}
	}
	return h, nil
}

// checkOrigin validates the login request's `origin` against host and
// returns it normalized: scheme and host lower-cased, a default port
// dropped. Only `http` or `https`, the login path's host, and an optional
// decimal port are allowed: no user info, path, query or trailing slash.
func checkOrigin(raw, host string) (string, error) {
	if len(raw) > 300 {
		return "", errBadOrigin
	}
	o := asciiLower(raw)
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || scheme != "http" && scheme != "https" {
		return "", errBadOrigin
	}
	h, port, hasPort := strings.Cut(rest, ":")
	if h != host {
		return "", errBadOrigin
	}
	if !hasPort {
		return scheme + "://" + h, nil
	}
	if port == "" || len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" {
		return "", errBadOrigin
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", errBadOrigin
	}
	if scheme == "https" && n == 443 || scheme == "http" && n == 80 {
		return scheme + "://" + h, nil
	}
	return scheme + "://" + h + ":" + strconv.Itoa(n), nil
}

// checkRedirect validates the login request's redirect_url for app on
// host. It is allowed when it is
//   - a URL on host itself (any scheme http/https, any port),
//   - a URL on one of app's CORS origins listed explicitly in allow_origins
//     (a wildcard entry or allow_all_origins never qualifies: sign-in would
//     end in an open redirect), or
//   - a path starting with a single `/`.
//
// Anything that a browser could read as another host is refused: `//evil`,
// `/\evil`, user info (`https://app@evil`), and control characters, spaces
// and backslashes anywhere, raw or percent-encoded (browsers drop tabs and
// newlines and turn `\` into `/`, so `/\t/evil` is `//evil` to them).
func checkRedirect(raw, host string, app *policies.Application) error {
	if raw == "" || len(raw) > maxRedirect {
		return errBadRedirect
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c <= ' ' || c == 0x7f || c == '\\' {
			return errBadRedirect
		}
		if c == '%' {
			if i+2 >= len(raw) {
				return errBadRedirect
			}
			d, ok := unhex(raw[i+1], raw[i+2])
			if !ok || d < ' ' || d == 0x7f || d == '\\' {
				return errBadRedirect
			}
		}
	}
	if raw[0] == '/' {
		// A path: the second character, also once decoded, must not make
		// it protocol-relative.
		rest := raw[1:]
		if strings.HasPrefix(rest, "/") || hasPrefixFold(rest, "%2f") || hasPrefixFold(rest, "%5c") {
			return errBadRedirect
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			return errBadRedirect
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" || u.User != nil || u.Host == "" {
		return errBadRedirect
	}
	h := asciiLower(u.Hostname())
	if h == host {
		return nil
	}
	origin, err := checkOrigin(u.Scheme+"://"+u.Host, h)
	if err == nil && app.CORS.ExplicitOrigin(origin) {
		return nil
	}
	return errBadRedirect
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexVal(a)
	y, ok2 := hexVal(b)
	return x<<4 | y, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// asciiLower lower-cases A–Z only (a Kelvin sign stays what it is).
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
