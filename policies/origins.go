package policies

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// originMatcher holds an application's allowed origins, lower-cased in
// scheme and host, for map lookups: exact origins in one set, `*.` patterns
// by scheme and then by the host suffix they cover (port included).
type originMatcher struct {
	exact map[string]struct{}
	// wild["https"][".example.com:8443"]: the suffix starts at the dot so
	// that "evil-example.com" can never match.
	wild     map[string]map[string]struct{}
	allowAll bool
	null     bool // an explicit "null" entry
}

// OriginAllowed reports whether the request's Origin value is allowed
// (contract §5): scheme, host and port compare exactly after lower-casing
// scheme and host; `https://*.example.com` covers one or more labels;
// "null" matches only an explicit "null" entry, even with allow_all_origins.
func (c *CORS) OriginAllowed(origin string) bool {
	if c == nil {
		return false
	}
	m := &c.origins
	if origin == "null" {
		return m.null
	}
	// Browsers send lower case: LowerASCII then returns origin itself
	// without allocating. Only A–Z fold, so that no Unicode letter can
	// turn into an ASCII one and make an origin valid that is not.
	origin = LowerASCII(origin)
	schemeEnd, hostStart, hostEnd, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	if m.allowAll {
		return true
	}
	if _, ok := m.exact[origin]; ok {
		return true
	}
	suffixes := m.wild[origin[:schemeEnd]]
	if suffixes == nil || origin[hostStart] == '[' {
		return false
	}
	// Try every suffix starting at a dot, longest first. The labels before
	// it are non-empty: splitOrigin refused empty labels.
	for i := hostStart + 1; i < hostEnd; i++ {
		if origin[i] == '.' {
			if _, ok := suffixes[origin[i:]]; ok {
				return true
			}
		}
	}
	return false
}

// splitOrigin checks that a lower-case origin is well formed,
// scheme "://" host [":" port] with nothing else, and returns the offsets
// of its parts. It allocates nothing: it runs on every CORS request.
func splitOrigin(o string) (schemeEnd, hostStart, hostEnd int, ok bool) {
	schemeEnd = strings.Index(o, "://")
	if schemeEnd <= 0 {
		return 0, 0, 0, false
	}
	for i := 0; i < schemeEnd; i++ {
		c := o[i]
		if !('a' <= c && c <= 'z' || i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return 0, 0, 0, false
		}
	}
	hostStart = schemeEnd + 3
	rest := o[hostStart:]
	if rest == "" {
		return 0, 0, 0, false
	}
	if rest[0] == '[' {
		// An IPv6 literal: checked by netip, which allocates nothing for a
		// valid address without a zone.
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return 0, 0, 0, false
		}
		a, err := netip.ParseAddr(rest[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return 0, 0, 0, false
		}
		hostEnd = hostStart + end + 1
	} else {
		hostEnd = len(o)
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			hostEnd = hostStart + i
		}
		// The host rules of request hosts and domains, one copy.
		if CheckHostName(o[hostStart:hostEnd]) != nil {
			return 0, 0, 0, false
		}
	}
	if !validPort(o[hostEnd:]) {
		return 0, 0, 0, false
	}
	return schemeEnd, hostStart, hostEnd, true
}

// validPort accepts "" or ":" followed by a port number 1..65535.
func validPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	n := 0
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n >= 1 && n <= 65535
}

// addPattern adds one allow_origins entry: "null", an exact origin or
// scheme://*.suffix[:port].
func (m *originMatcher) addPattern(s string) error {
	if s == "null" {
		m.null = true
		return nil
	}
	if s == "*" {
		return errors.New(`use allow_all_origins: true instead of "*"`)
	}
	o := LowerASCII(s)
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok {
		return errors.New("want scheme://host[:port]")
	}
	if after, ok := strings.CutPrefix(rest, "*."); ok {
		// Validate as if the wildcard were one label.
		probe := scheme + "://x." + after
		_, hostStart, hostEnd, ok := splitOrigin(probe)
		if !ok {
			return errors.New("want scheme://*.host[:port] with nothing after the port")
		}
		if err := checkDefaultPort(scheme, probe[hostEnd:]); err != nil {
			return err
		}
		if suffix := probe[hostStart+2 : hostEnd]; isPublicSuffix(suffix) {
			return fmt.Errorf("the wildcard covers every site under the public suffix %s, where anyone can host a credentialed origin", suffix)
		}
		if m.wild == nil {
			m.wild = map[string]map[string]struct{}{}
		}
		if m.wild[scheme] == nil {
			m.wild[scheme] = map[string]struct{}{}
		}
		m.wild[scheme][probe[hostStart+1:]] = struct{}{}
		return nil
	}
	if strings.Contains(rest, "*") {
		return errors.New("a wildcard is only allowed as a leading *. of the host")
	}
	_, _, hostEnd, ok := splitOrigin(o)
	if !ok {
		if strings.Contains(rest, "/") {
			return errors.New("an origin has no path, not even a trailing /")
		}
		return errors.New("want scheme://host[:port]")
	}
	if err := checkDefaultPort(scheme, o[hostEnd:]); err != nil {
		return err
	}
	if m.exact == nil {
		m.exact = map[string]struct{}{}
	}
	m.exact[o] = struct{}{}
	return nil
}

// defaultPorts are the ports browsers leave out of an Origin.
var defaultPorts = map[string]string{"http": ":80", "https": ":443"}

// checkDefaultPort refuses an origin written with its scheme's default
// port: browsers never send it, so the entry could never match and the
// origin it was meant for would be refused.
func checkDefaultPort(scheme, port string) error {
	if port != "" && defaultPorts[scheme] == port {
		return fmt.Errorf("%s is the default port of %s, which browsers never send: leave it out", port[1:], scheme)
	}
	return nil
}

// isPublicSuffix reports whether a lower-case host is an entry of the
// Public Suffix List, its ICANN section (com, co.uk) or its private one
// (github.io, vercel.app, herokuapp.com): a wildcard over it covers sites
// of anyone who registers there. A single label is refused as well, listed
// or not: by the list's own default rule every top-level name is a public
// suffix, and a wildcard over all of .internal or .test is no narrower.
func isPublicSuffix(host string) bool {
	if !strings.Contains(host, ".") {
		return true
	}
	suffix, _ := publicsuffix.PublicSuffix(host)
	return suffix == host
}
