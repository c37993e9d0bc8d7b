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
	// byPath indexes paths when there are many, so that the cost depends
	// on the request path's depth instead of the number of prefixes.
	byPath map[string]*Application
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
// exactly one more label, as in Cloudflare Access and TLS.
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
		for p := path; ; {
			if a, ok := e.byPath[p]; ok {
				return a
			}
			i := strings.LastIndexByte(p, '/')
			if i <= 0 {
				break
			}
			p = p[:i]
		}
		return e.root
	}
	for _, pe := range e.paths {
		if hasPathPrefix(path, pe.prefix) {
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
			e.byPath = make(map[string]*Application, len(e.paths))
			for _, pe := range e.paths {
				e.byPath[pe.prefix] = pe.app
			}
		}
		e.byPath[d.path] = app
	}
}

// hasPathPrefix reports whether prefix covers path on a segment boundary:
// "/v1" covers "/v1" and "/v1/x", never "/v10". "" and "/" cover all.
func hasPathPrefix(path, prefix string) bool {
	if prefix == "" || prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

// CoversPath reports whether the policy applies to a normalized request
// path: it has no `paths`, or one of them is a segment-boundary prefix.
func (p *Policy) CoversPath(path string) bool {
	if len(p.Paths) == 0 {
		return true
	}
	for _, prefix := range p.Paths {
		if hasPathPrefix(path, prefix) {
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
	host = strings.ToLower(host)
	if rest, ok := strings.CutPrefix(host, "*."); ok {
		d.wildcard, host = true, rest
	}
	if strings.Contains(host, ":") {
		return d, errors.New("no port allowed")
	}
	if strings.Contains(host, "*") {
		return d, errors.New("a wildcard is only allowed as a leading *.")
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

// checkHostname checks a lower-case DNS name (also a dotted IPv4 address):
// labels of 1..63 letters, digits, '-' or '_' (seen in internal names), not
// starting or ending with '-'.
func checkHostname(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if len(h) > 253 {
		return errors.New("host longer than 253 characters")
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" {
			return errors.New("empty label in host")
		}
		if len(label) > 63 {
			return errors.New("host label longer than 63 characters")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("host label starts or ends with '-'")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return errors.New("invalid character in host")
			}
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
