package authz

import "strings"

// maxCookies caps how many cookies TokenFrom scans in the Cookie header, as
// net/http's readCookies does, so a huge header cannot make the scan costly.
const maxCookies = 64

// cookieName is the Access token's cookie; names are case-sensitive.
const cookieName = "CF_Authorization"

// TokenFrom returns the Access token from the first source present in h
// (CF_Authorization cookie, cf-access-jwt-assertion, cf-access-token,
// Authorization: Bearer), or "" when none is. h has lower-case names.
//
// The first source present is the one judged (contract section 3, step 4):
// when the cookie is present, a better token in a header is never looked at.
// A source whose value is empty (after trimming spaces), such as
// `CF_Authorization=` or `Authorization: Bearer `, counts as not present,
// because browsers and proxies leave such husks behind when a session is
// cleared. Within the Cookie header the first non-empty CF_Authorization
// wins (browsers send the most specific path first); only the first 64
// cookies are scanned. The cookie name is case-sensitive, as cookie names
// are; the Bearer scheme is not (RFC 9110 section 11.1).
//
// The result is always a substring of one of h's values: TokenFrom does not
// allocate.
func TokenFrom(h map[string]string) string {
	if c, ok := h["cookie"]; ok {
		if t := cookieToken(c); t != "" {
			return t
		}
	}
	if t := strings.TrimSpace(h["cf-access-jwt-assertion"]); t != "" {
		return t
	}
	if t := strings.TrimSpace(h["cf-access-token"]); t != "" {
		return t
	}
	if a, ok := h["authorization"]; ok {
		scheme, rest, ok := strings.Cut(strings.TrimSpace(a), " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// cookieToken returns the first non-empty CF_Authorization value in a Cookie
// header ("a=1; b=2", several headers joined with "; "), with one pair of
// surrounding double quotes removed as RFC 6265 allows.
func cookieToken(s string) string {
	if !strings.Contains(s, cookieName) {
		return "" // no such cookie: one vectorized search instead of the scan
	}
	for n := 0; s != "" && n < maxCookies; n++ {
		var part string
		part, s, _ = strings.Cut(s, ";")
		name, val, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(name) != cookieName {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.TrimSpace(val[1 : len(val)-1])
		}
		if val != "" {
			return val
		}
	}
	return ""
}
