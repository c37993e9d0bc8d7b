package policies

import "strings"

// ApplicationNamed returns the application called name, or nil. It is the
// lookup of a per-route binding: the gateway names the application, and
// the host and path no longer choose it.
func (s *Set) ApplicationNamed(name string) *Application {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// CoversHost reports whether one of the application's domains covers a
// lower-cased host without port or trailing dot, path prefixes aside: a
// bound request must still be for one of the application's hosts. A
// wildcard covers exactly one more label, as in Lookup.
func (a *Application) CoversHost(host string) bool {
	for _, d := range a.hostDomains {
		if !d.wildcard {
			if host == d.host {
				return true
			}
			continue
		}
		if i := strings.IndexByte(host, '.'); i > 0 && host[i+1:] == d.host {
			return true
		}
	}
	return false
}

// OriginListed reports whether origin is written out in allow_origins: an
// exact entry, compared as OriginAllowed compares. A wildcard entry,
// allow_all_origins and "null" never count. It is the WebSocket rule's
// test: browsers apply no CORS to a WebSocket, so only an origin the
// operator named may open one with the user's cookie.
func (c *CORS) OriginListed(origin string) bool {
	if c == nil || origin == "null" {
		return false
	}
	origin = LowerASCII(origin)
	if _, _, _, ok := splitOrigin(origin); !ok {
		return false
	}
	_, ok := c.origins.exact[origin]
	return ok
}
