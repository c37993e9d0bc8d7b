package policies

import (
	"errors"
	"strings"
)

// hostIndex finds the application for a host and path with map lookups
// only, so that Lookup costs the same for 10 or 10,000 applications.
type hostIndex struct {
	exact map[string]*hostEntry // by host
	wild  map[string]*hostEntry // `*.app.example.com` by "app.example.com"
}

// hostEntry holds the applications of one host (or wildcard host) by path
// prefix.
type hostEntry struct {
	root  *Application // the domain without a path, if any
	paths []pathEntry  // longest prefix first
	// byPath indexes paths by their ASCII-lower-cased prefix when there
	// are many, so that the cost depends on the request path's depth
	// instead of the number of prefixes. Several entries share a key only
	// when they differ in letter case (case-sensitive applications).
	byPath map[string][]pathEntry
}

type pathEntry struct {
	prefix string // normalized, never "" or "/"
	app    *Application
}

// manyPaths is where walking the request path's segments through a map
// beats comparing each prefix in turn.
const manyPaths = 8

// Lookup returns the application for a lower-cased host without port or
// trailing dot and a normalized path (no query), or nil. An exact host wins
// over a wildcard one; then the longest path prefix wins. A wildcard covers
// exactly one more label, as in Cloudflare Access and TLS. Path prefixes
// compare ASCII case-insensitively (`/V1/x` is covered by `/v1`) unless the
// application has case_sensitive_paths: origins such as Express, ASP.NET
// Core and IIS serve `/ADMIN` as `/admin`.
func (s *Set) Lookup(host, path string) *Application {
	if s == nil {
		return nil
	}
	if e := s.hosts.exact[host]; e != nil {
		if a := e.match(path); a != nil {
			return a
		}
	}
	// The first label must be non-empty: ".app.example.com" is no host.
	if i := strings.IndexByte(host, '.'); i > 0 {
		if e := s.hosts.wild[host[i+1:]]; e != nil {
			return e.match(path)
		}
	}
	return nil
}

func (e *hostEntry) match(path string) *Application {
	if e.byPath != nil {
		// lp has the same length as path (ASCII lower-casing), so a
		// prefix of one is the same prefix of the other. It allocates
		// only for a path with an upper-case letter.
		lp := LowerASCII(path)
		for n := len(path); n > 0; {
			for _, pe := range e.byPath[lp[:n]] {
				if !pe.app.CaseSensitivePaths || path[:n] == pe.prefix {
					return pe.app
				}
			}
			n = strings.LastIndexByte(lp[:n], '/')
		}
		return e.root
	}
	for _, pe := range e.paths {
		if hasPathPrefix(path, pe.prefix, pe.app.CaseSensitivePaths) {
			return pe.app
		}
	}
	return e.root
}

// add indexes app under a parsed domain; the caller has already refused a
// domain claimed twice.
func (x *hostIndex) add(d domain, app *Application) {
	m := &x.exact
	if d.wildcard {
		m = &x.wild
	}
	if *m == nil {
		*m = map[string]*hostEntry{}
	}
	e := (*m)[d.host]
	if e == nil {
		e = &hostEntry{}
		(*m)[d.host] = e
	}
	if d.path == "" {
		e.root = app
		return
	}
	// Insert keeping longest first; equal lengths cannot overlap.
	i := 0
	for i < len(e.paths) && len(e.paths[i].prefix) >= len(d.path) {
		i++
	}
	e.paths = append(e.paths, pathEntry{})
	copy(e.paths[i+1:], e.paths[i:])
	e.paths[i] = pathEntry{prefix: d.path, app: app}
	if len(e.paths) > manyPaths {
		if e.byPath == nil {
			e.byPath = make(map[string][]pathEntry, len(e.paths))
			for _, pe := range e.paths[:i] {
				e.byPath[LowerASCII(pe.prefix)] = append(e.byPath[LowerASCII(pe.prefix)], pe)
			}
			for _, pe := range e.paths[i+1:] {
				e.byPath[LowerASCII(pe.prefix)] = append(e.byPath[LowerASCII(pe.prefix)], pe)
			}
		}
		k := LowerASCII(d.path)
		e.byPath[k] = append(e.byPath[k], e.paths[i])
	}
}

// hasPathPrefix reports whether prefix covers path on a segment boundary:
// "/v1" covers "/v1" and "/v1/x", never "/v10". "" and "/" cover all.
// Letters compare ASCII case-insensitively unless exact is set; no other
// character folds (a Kelvin sign in a path never equals "k").
func hasPathPrefix(path, prefix string, exact bool) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	if len(path) < len(prefix) {
		return false
	}
	head := path[:len(prefix)]
	if exact {
		if head != prefix {
			return false
		}
	} else if !equalFoldASCII(head, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// equalFoldASCII reports whether a and b are equal once ASCII letters are
// lower-cased; every other byte must be equal.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// CoversPath reports whether the policy applies to a normalized request
// path: it has no `paths`, or one of them is a segment-boundary prefix.
// exact is the application's case_sensitive_paths: without it, prefixes
// compare ASCII case-insensitively, as the application is chosen.
func (p *Policy) CoversPath(path string, exact bool) bool {
	if len(p.Paths) == 0 {
		return true
	}
	for _, prefix := range p.Paths {
		if hasPathPrefix(path, prefix, exact) {
			return true
		}
	}
	return false
}

// domain is a parsed `domains` entry.
type domain struct {
	host     string // lower-cased, without the "*." of a wildcard
	wildcard bool
	path     string // normalized prefix; "" for the whole host
}

func (d domain) String() string {
	s := d.host + d.path
	if d.wildcard {
		s = "*." + s
	}
	return s
}

// parseDomain parses `host`, `*.host`, `host/path` or `*.host/path`.
func parseDomain(s string) (domain, error) {
	var d domain
	if strings.Contains(s, "://") {
		return d, errors.New("no scheme allowed")
	}
	host, path := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		host, path = s[:i], s[i:]
	}
	host = LowerASCII(host)
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		d.wildcard, host = true, rest
	}
	if strings.Contains(host, ":") {
		return d, errors.New("no port allowed")
	}
	if strings.Contains(host, "*") {
		return d, errors.New("a wildcard is only allowed as a leading *. of the host")
	}
	if err := checkHostname(host); err != nil {
		return d, err
	}
	p, err := normPathPrefix(path)
	if err != nil {
		return d, err
	}
	d.host, d.path = host, p
	return d, nil
}

// checkHostname checks a lower-case DNS name (also a dotted IPv4 address) of
// the policy file: CheckHostName's rules, plus labels of at most 63
// characters not starting or ending with '-'.
func checkHostname(h string) error {
	if err := CheckHostName(h); err != nil {
		return err
	}
	if len(h) > 253 {
		return errors.New("host longer than 253 characters")
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) > 63 {
			return errors.New("host label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("host label starts or ends with '-'")
		}
	}
	return nil
}

// normPathPrefix normalizes a path prefix: repeated slashes merged (as
// request paths are), no trailing slash, "" for the root. It refuses what a
// normalized request path can never contain: `%` (requests are compared
// decoded), `.`/`..` segments, `?`, `#`, `\`, spaces and controls.
func normPathPrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if p[0] != '/' {
		return "", errors.New("path must be absolute (start with /)")
	}
	for i := 0; i < len(p); i++ {
		if !isPathChar(p[i]) {
			return "", errors.New("invalid character in path")
		}
	}
	var b strings.Builder
	for seg := range strings.SplitSeq(p, "/") {
		switch seg {
		case "":
			continue
		case ".", "..":
			return "", errors.New("path has a . or .. segment")
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	return b.String(), nil
}

// isPathChar reports RFC 3986 pchar and '/', without '%'.
func isPathChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0
}
