package authz

import "strings"

// NormalizePath returns the path of a raw request target (path and query)
// normalized as contract section 3 says: the query is dropped,
// percent-encoded unreserved characters are decoded and repeated slashes are
// merged. ok is false for a path the gate must refuse with 400: not
// absolute, invalid percent-encoding, an encoded slash, backslash or NUL, or
// a "." or ".." segment (also once decoded), or an overlong UTF-8 sequence
// (%c0%ae, a lenient decoder's ".").
//
// The common case, a clean path, returns a substring of raw without
// allocating.
func NormalizePath(raw string) (path string, ok bool) {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	if isCleanPath(raw) {
		return raw, true
	}
	var b strings.Builder
	b.Grow(len(raw))
	var prev byte // the previous byte once decoded, to spot overlong UTF-8
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '%' {
			if isOverlong(prev, c) {
				return "", false
			}
			prev = c
		} else {
			if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
				return "", false
			}
			d := unhex(raw[i+1])<<4 | unhex(raw[i+2])
			if isOverlong(prev, d) {
				return "", false
			}
			prev = d
			switch {
			case d == '/' || d == '\\' || d == 0:
				return "", false
			case isUnreserved(d):
				c = d
			default:
				// Kept encoded, as the origin will receive it.
				b.WriteString(raw[i : i+3])
				i += 2
				continue
			}
			i += 2
		}
		if c == '/' && b.Len() > 0 && lastByte(&b) == '/' {
			continue // merge repeated slashes
		}
		b.WriteByte(c)
	}
	path = b.String()
	if hasDotSegment(path) {
		return "", false
	}
	return path, true
}

// isCleanPath reports whether p needs no rewriting: no percent sign, no
// repeated slash, no dot segment and only ASCII (raw UTF-8 is rare, and
// checked for overlong forms on the slow path).
//
// One pass over p, as it runs on every request.
func isCleanPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '%' || c >= 0x80:
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

// isOverlong reports whether byte c, after prev, makes an overlong UTF-8
// sequence: C0 and C1 only ever start one (%c0%ae is ".", %c0%af "/"), as do
// E0 80..9F and F0 80..8F. No valid UTF-8 has them, but a lenient decoder
// in an origin turns them into the dot-segments and slashes the gate
// refuses, so they are refused as well.
func isOverlong(prev, c byte) bool {
	return c == 0xc0 || c == 0xc1 ||
		prev == 0xe0 && 0x80 <= c && c <= 0x9f ||
		prev == 0xf0 && 0x80 <= c && c <= 0x8f
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

// normalizeHost returns the :authority lower-cased, without its port and
// trailing dot, as contract section 3 says. ok is false for an empty host or
// one with characters no host name or IP literal has (userinfo, spaces,
// control characters), so such a value can never reach a Location header.
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
		for i := 1; i < len(host)-1; i++ {
			c := host[i]
			if !isHex(c) && c != ':' && c != '.' {
				return "", false
			}
		}
	} else {
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			if !isPort(host[i+1:]) {
				return "", false
			}
			host = host[:i]
		}
		host = strings.TrimSuffix(host, ".")
		for i := 0; i < len(host); i++ {
			c := host[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
				return "", false
			}
		}
	}
	if host == "" || host == "[]" {
		return "", false
	}
	return lower(host), true
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

// lower returns s lower-cased (ASCII), without allocating when it already
// is.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
