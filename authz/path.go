package authz

import (
	"strings"
	"unicode/utf8"

	"github.com/accessgate/accessgate/policies"
)

// normalizePath returns the path of a raw request target (path and query)
// as the gate matches it (contract section 3): the query is dropped,
// percent-encoded unreserved characters are decoded, each segment is cut at
// its first ';' (path parameters: Tomcat, Jetty and Spring serve
// /admin;x/users as /admin/users), and repeated slashes are merged, also
// those the cut leaves (/;x/admin is /admin). The request itself is
// forwarded unchanged; only the judgement uses this path.
//
// ok is false for a path the gate must refuse with 400: not absolute; a raw
// backslash; invalid percent-encoding; an encoded slash, backslash, NUL or
// ';' (%2F, %5C, %00, %3B); a full percent-decoding that is not valid UTF-8
// (every overlong form, such as %c0%ae for "." or %f8%80%80%80%ae, and
// legacy Latin-1 encodings such as %e9); or a "." or ".." segment, also
// once decoded (%2e%2e) or once cut (..;x).
//
// The common case, a clean path, returns a substring of raw without
// allocating.
func normalizePath(raw string) (path string, ok bool) {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	if isCleanPath(raw) {
		return raw, true
	}
	if !validEncoding(raw) {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(raw))
	cut := false // inside a segment's path parameters, after its ';'
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '%' {
			// validEncoding vouched for the two hex digits.
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if !cut && !isUnreserved(d) {
				// Kept encoded, as the origin will receive it.
				b.WriteString(raw[i : i+3])
			} else if !cut {
				b.WriteByte(d)
			}
			i += 2
			continue
		}
		switch {
		case c == '/':
			cut = false
			if b.Len() > 0 && lastByte(&b) == '/' {
				continue // merge repeated slashes
			}
		case c == ';':
			cut = true
			continue
		case cut:
			continue
		}
		b.WriteByte(c)
	}
	path = b.String()
	if hasDotSegment(path) {
		return "", false
	}
	return path, true
}

// isCleanPath reports whether p needs no rewriting and no refusal: no
// percent sign, ';', backslash, repeated slash or dot segment, and only
// ASCII (raw UTF-8 is rare, and checked on the slow path).
//
// One pass over p, as it runs on every request.
func isCleanPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c == ';' || c == '\\' || c >= 0x80:
			return false
		case c == '/':
			rest := p[i+1:]
			if rest == "" {
				continue
			}
			switch rest[0] {
			case '/':
				return false
			case '.':
				// A "." or ".." segment: the end or a slash follows.
				if len(rest) == 1 || rest[1] == '/' ||
					rest[1] == '.' && (len(rest) == 2 || rest[2] == '/') {
					return false
				}
			}
		}
	}
	return true
}

// validEncoding checks the whole of a raw path before it is rewritten: no
// raw backslash (browsers send '/', Windows and some Java origins split on
// it), every '%' followed by two hex digits, no encoded '/', '\', NUL or
// ';' (an origin that decodes before it strips path parameters would serve
// /admin%3Bx/users as /admin/users), and a full percent-decoding that is
// valid UTF-8: a lenient decoder in an origin turns overlong forms into the
// dot-segments and slashes the gate refuses. The decoding is checked as a
// stream, without building it.
func validEncoding(raw string) bool {
	var buf [utf8.UTFMax]byte
	n := 0 // bytes of an unfinished UTF-8 sequence in buf
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch c {
		case '\\':
			return false
		case '%':
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return false
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if c == '/' || c == '\\' || c == 0 || c == ';' {
				return false
			}
			i += 2
		}
		if n == 0 && c < utf8.RuneSelf {
			continue
		}
		if n > 0 && (c < 0x80 || c > 0xbf) {
			return false // a sequence cut short
		}
		if n == len(buf) {
			return false // longer than any UTF-8 sequence (5- and 6-byte forms)
		}
		buf[n] = c
		n++
		if utf8.FullRune(buf[:n]) {
			if r, size := utf8.DecodeRune(buf[:n]); r == utf8.RuneError && size <= 1 {
				return false // overlong, surrogate, out of range or a stray byte
			}
			n = 0
		}
	}
	return n == 0
}

// hasDotSegment reports whether p, an absolute path, has a "." or ".."
// segment.
func hasDotSegment(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] != '/' {
			continue
		}
		seg := p[i+1:]
		if j := strings.IndexByte(seg, '/'); j >= 0 {
			seg = seg[:j]
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func lastByte(b *strings.Builder) byte {
	s := b.String() // no copy: String returns the builder's bytes
	return s[len(s)-1]
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// normalizeHost returns the :authority as section 3 matches it: ASCII
// lower-cased, without its port and ONE trailing dot. ok is false (400) for
// a host that policies.CheckHostName refuses once so trimmed: empty, an
// empty label (a..example.com, .example.com, example.com..), a character
// other than ASCII letters, digits, '-', '_' and '.' (userinfo '@', spaces,
// controls, any non-ASCII byte such as a Kelvin sign or a fullwidth letter;
// internationalized names arrive as xn--), or a malformed IPv6 literal or
// port. Such a value never reaches a Location header nor "no application".
func normalizeHost(authority string) (host string, ok bool) {
	host = authority
	if strings.HasPrefix(host, "[") { // IPv6 literal, maybe with a port
		end := strings.IndexByte(host, ']')
		if end < 0 {
			return "", false
		}
		rest := host[end+1:]
		if rest != "" && (rest[0] != ':' || !isPort(rest[1:])) {
			return "", false
		}
		host = host[:end+1]
		if host == "[]" {
			return "", false
		}
		for i := 1; i < len(host)-1; i++ {
			c := host[i]
			if !isHex(c) && c != ':' && c != '.' {
				return "", false
			}
		}
		return lowerASCII(host), true
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		if !isPort(host[i+1:]) {
			return "", false
		}
		host = host[:i]
	}
	host = lowerASCII(strings.TrimSuffix(host, "."))
	if policies.CheckHostName(host) != nil {
		return "", false
	}
	return host, true
}

func isPort(s string) bool {
	if s == "" || len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// lowerASCII lower-cases the ASCII letters A-Z of s and nothing else (a
// Kelvin sign stays a Kelvin sign, É stays É: contract section 2 folds only
// A-Z, on both sides), without allocating when s has none.
//
// TODO(merge): one copy with policies.LowerASCII.
func lowerASCII(s string) string {
	i := 0
	for i < len(s) && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
