package authz

import "strings"

// cookieName is the Access token's cookie; names are case-sensitive.
const cookieName = "CF_Authorization"

// tokenFrom returns the Access token from the first source present in h
// (CF_Authorization cookie, then each of tokenHeaders, then Authorization:
// Bearer), or "" when none is. h has lower-case names.
//
// The first source present is the one judged (contract section 3, step 4):
// when the cookie is present, a better token in a header is never looked at.
// A source whose value is empty (after trimming spaces), such as
// `CF_Authorization=` or `Authorization: Bearer `, counts as not present,
// because browsers and proxies leave such husks behind when a session is
// cleared. Among the cookies the first non-empty CF_Authorization wins
// (browsers send the most specific path first). The cookie name is
// case-sensitive, as cookie names are; the Bearer scheme is not (RFC 9110
// section 11.1).
//
// The result is always a substring of one of h's values: tokenFrom does not
// allocate.
func tokenFrom(h map[string]string) string {
	if c, ok := h["cookie"]; ok {
		if t := cookieToken(c); t != "" {
			return t
		}
	}
	for _, name := range tokenHeaders {
		if t := strings.TrimSpace(h[name]); t != "" {
			return t
		}
	}
	if a, ok := h["authorization"]; ok {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(a), " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// cookieToken returns the first non-empty CF_Authorization value in the
// cookie list of a request, with one pair of surrounding double quotes
// removed as RFC 6265 allows.
//
// Every cookie is scanned, none skipped (a CF_Authorization after the 64th
// cookie is still found, and a forged one there is still the one judged):
// the 64 KiB limit on a request's headers bounds the work. The list splits
// on ';' and on ',': one Cookie header separates its cookies with "; ", and
// Envoy joins several Cookie headers of one request with "," in the
// CheckRequest. Neither may appear inside a cookie value (RFC 6265 section
// 4.1.1), so splitting on both never cuts a token.
//
// The scan jumps from one occurrence of the name to the next (a vectorized
// search) and looks only at the cookie around each, so a header of many
// unrelated cookies costs one search; the cookie around an occurrence is
// the text between the separators before and after it, exactly the part a
// split on ';' and ',' would give.
func cookieToken(s string) string { return namedCookie(s, cookieName) }

// namedCookie returns the value of the first cookie called name in a
// Cookie header list, which splits on ';' and ',' (Envoy joins several
// Cookie headers with ','): every cookie is scanned, the 64 KiB header
// limit bounds the work; "" when there is none or it is empty.
func namedCookie(s, name string) string {
	for {
		i := strings.Index(s, name)
		if i < 0 {
			return ""
		}
		start := i
		for start > 0 && s[start-1] != ';' && s[start-1] != ',' {
			start--
		}
		end := i + len(name)
		for end < len(s) && s[end] != ';' && s[end] != ',' {
			end++
		}
		if val := cookieValue(s[start:end], name); val != "" {
			return val
		}
		if end == len(s) {
			return ""
		}
		s = s[end+1:]
	}
}

// cookieValue returns the value of one "name=value" cookie when its name
// is want, trimmed and without one pair of double quotes; "" for another
// cookie or an empty value.
func cookieValue(part, want string) string {
	name, val, ok := strings.Cut(part, "=")
	if !ok || strings.TrimSpace(name) != want {
		return ""
	}
	val = strings.TrimSpace(val)
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		val = strings.TrimSpace(val[1 : len(val)-1])
	}
	return val
}
