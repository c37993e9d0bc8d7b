package httpauth

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/accessgate/accessgate/authz"
)

// Endpoint is one of the HTTP authorization endpoints (contract section 7).
type Endpoint int

// The endpoints. Zero is "no endpoint".
const (
	// Envoy is /auth/envoy/<path>: Envoy's ext_authz http_service with
	// path_prefix /auth/envoy.
	Envoy Endpoint = iota + 1
	// Forward is /auth/forward: Traefik forwardAuth, Caddy forward_auth and
	// any proxy that writes X-Forwarded-Method/-Host/-Uri.
	Forward
	// Nginx is /auth/nginx: nginx auth_request.
	Nginx
	// NginxRender is /auth/nginx/render: nginx's error_page after a 401
	// or 403 from Nginx; it renders the full answer.
	NginxRender
	// Answer is /auth/answer/<path>: the route a proxy sends CORS
	// preflights to, answered as an origin would.
	Answer
)

var endpointNames = [...]string{"", "auth/envoy", "auth/forward", "auth/nginx", "auth/nginx/render", "auth/answer"}

// Endpoints lists every endpoint, for metrics pre-registration and tests.
var Endpoints = []Endpoint{Envoy, Forward, Nginx, NginxRender, Answer}

// String is the endpoint's name without the leading slash ("auth/envoy"),
// the value of the `endpoint` log field and metric label.
func (e Endpoint) String() string {
	if e < Envoy || e > Answer {
		return ""
	}
	return endpointNames[e]
}

const (
	prefixEnvoy  = "/auth/envoy"
	prefixAnswer = "/auth/answer"
)

// route finds the endpoint of a raw request target (never cleaned or
// decoded: the gate must judge the target the origin will get). For Envoy
// and Answer, rest is the original request target after the prefix ("/"
// when nothing follows it). The query of Forward and the nginx endpoints is
// their own and ignored: Caddy appends the original query to the auth URI.
func route(target string) (ep Endpoint, rest string, ok bool) {
	if rest, ok := cutTarget(target, prefixEnvoy); ok {
		return Envoy, rest, true
	}
	if rest, ok := cutTarget(target, prefixAnswer); ok {
		return Answer, rest, true
	}
	path, _, _ := strings.Cut(target, "?")
	switch path {
	case "/auth/forward":
		return Forward, "", true
	case "/auth/nginx":
		return Nginx, "", true
	case "/auth/nginx/render":
		return NginxRender, "", true
	}
	return 0, "", false
}

// cutTarget cuts prefix off target when the prefix ends at a segment
// boundary (/auth/envoy, /auth/envoy/x, /auth/envoy?q; never /auth/envoyx).
func cutTarget(target, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(target, prefix)
	switch {
	case !ok:
		return "", false
	case rest == "":
		return "/", true
	case rest[0] == '/' || rest[0] == '?':
		return rest, true
	}
	return "", false
}

// Fact headers, in Go's canonical form (net/http canonicalizes every
// incoming name, so two spellings of one name are one key with two values).
const (
	hForwardedMethod = "X-Forwarded-Method"
	hForwardedHost   = "X-Forwarded-Host"
	hForwardedURI    = "X-Forwarded-Uri"
	hForwardedProto  = "X-Forwarded-Proto"
	hForwardedFor    = "X-Forwarded-For"
	hOriginalMethod  = "X-Original-Method"
	hOriginalURI     = "X-Original-Uri"
	hApplication     = "X-Accessgate-Application"
	hForwardedUpg    = "X-Forwarded-Upgrade"
	hClientCert      = "X-Forwarded-Client-Cert"
)

// facts are the headers that describe the original request instead of
// being part of it. None of them is carried over as a header of the
// original request, at any endpoint: a client's copy that a proxy let
// through must not reach the decision as an ordinary header either.
var facts = map[string]bool{
	hForwardedMethod: true, hForwardedHost: true, hForwardedURI: true,
	hForwardedProto: true, hForwardedFor: true, hOriginalMethod: true,
	hOriginalURI: true, hApplication: true, hForwardedUpg: true,
	hClientCert: true,
}

// singleFacts are, per endpoint, the fact headers it reads that must come
// at most once: two lines, even with equal values, are a 400 (contract
// section 7, revision 2.1). X-Forwarded-For is not among them: several
// lines are one list.
var singleFacts = [...][]string{
	Envoy:       {hForwardedProto, hApplication, hForwardedUpg, hClientCert},
	Forward:     {hForwardedMethod, hForwardedHost, hForwardedURI, hForwardedProto, hApplication, hForwardedUpg, hClientCert},
	Nginx:       {hOriginalMethod, hForwardedHost, hOriginalURI, hForwardedProto, hApplication, hForwardedUpg, hClientCert},
	NginxRender: {hOriginalMethod, hForwardedHost, hOriginalURI, hForwardedProto, hApplication, hForwardedUpg, hClientCert},
	Answer:      {hForwardedHost, hForwardedProto, hApplication, hForwardedUpg, hClientCert},
}

// hopByHop are the hop-by-hop headers of RFC 9110 section 7.6.1, plus
// Content-Length: none describes the original request. Headers named by
// Connection are hop-by-hop too (see requestFrom).
var hopByHop = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true, "Host": true,
}

// requestFrom rebuilds the original request from an auth request at
// endpoint ep (rest: the target after the prefix, for Envoy and Answer),
// per the facts table of contract section 7. It reports false when a
// required fact is missing, a fact header comes twice, or a fact is
// malformed; the caller answers 400. The returned Request is never nil, so
// the caller can always log what it has.
//
// The rebuilt headers hold every carried header (lower-case names,
// duplicates joined with "," and cookies with "; ", as Envoy sends them)
// and the facts as Envoy's pseudo-headers (:method, :authority, :path,
// :scheme), so the 64 KiB limit counts the original request as rebuilt
// (contract section 7) and one request weighs the same over gRPC and HTTP.
func requestFrom(ep Endpoint, rest string, r *http.Request) (*authz.Request, bool) {
	req := &authz.Request{}
	if ep < Envoy || ep > Answer {
		return req, false
	}
	for _, name := range singleFacts[ep] {
		if len(r.Header[name]) > 1 {
			return req, false
		}
	}
	ok := readFacts(ep, rest, r, req)
	var prev string
	req.SourceIP, prev = sourceAddr(r)
	if v := first(r.Header, hClientCert, ""); v != "" {
		pem, certOK := clientCert(v)
		req.ClientCert = pem
		ok = ok && certOK
	}
	if upg := first(r.Header, hForwardedUpg, ""); upg != "" {
		req.Upgrade = upg
	}
	// The gateway's binding (contract §10): the decision reads it only
	// under require_application_binding, so a configuration that forgets
	// to overwrite the header cannot let a client pick its application.
	if v, present := r.Header[hApplication]; present {
		req.ApplicationFromFact = true
		req.ApplicationBound = true
		if len(v) > 0 {
			req.Application = v[0]
		}
	}
	carryHeaders(r, req, prev)
	return req, ok
}

// readFacts fills req's method, host, path and scheme from ep's facts
// (contract section 7's table); false when a required one is missing or
// the scheme is malformed.
func readFacts(ep Endpoint, rest string, r *http.Request, req *authz.Request) bool {
	ok := true
	switch ep {
	case Envoy:
		req.Method, req.Host, req.Path = r.Method, r.Host, rest
	case Answer:
		req.Method, req.Path = r.Method, rest
		req.Host = first(r.Header, hForwardedHost, r.Host)
	case Forward:
		req.Method = first(r.Header, hForwardedMethod, "")
		req.Host = first(r.Header, hForwardedHost, "")
		req.Path = first(r.Header, hForwardedURI, "")
		ok = req.Method != "" && req.Host != "" && req.Path != ""
	case Nginx, NginxRender:
		req.Method = first(r.Header, hOriginalMethod, "")
		req.Host = first(r.Header, hForwardedHost, r.Host)
		req.Path = first(r.Header, hOriginalURI, "")
		ok = req.Method != "" && req.Path != ""
	}
	switch proto := first(r.Header, hForwardedProto, ""); {
	case proto == "" || strings.EqualFold(proto, "http"):
		req.Scheme = "http"
	case strings.EqualFold(proto, "https"):
		req.Scheme = "https"
	default:
		// A list ("https, http") or another scheme: the proxy did not
		// write this fact, or wrote it wrong.
		ok = false
	}
	return ok
}

// carryHeaders sets req.Headers: every header of the auth request but the
// hop-by-hop ones, those Connection names, Content-Length and the facts;
// prev as the original X-Forwarded-For; the upgrade fact as Upgrade; and
// the facts as Envoy's pseudo-headers.
func carryHeaders(r *http.Request, req *authz.Request, prev string) {
	// Headers named by Connection are hop-by-hop; rare, so only then is a
	// set built.
	var named map[string]bool
	for _, line := range r.Header["Connection"] {
		for _, tok := range strings.Split(line, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				if named == nil {
					named = map[string]bool{}
				}
				named[http.CanonicalHeaderKey(tok)] = true
			}
		}
	}
	// n counts the names and values put in h as they go in, so that the
	// engine's 64 KiB check need not walk the map again (HeaderBytes). A
	// name that lands on one already there (two spellings net/http could
	// not canonicalize, lower-cased alike) makes the count unknown (0):
	// the engine counts the map itself then.
	h := make(map[string]string, len(r.Header)+6)
	n, exact := 0, true
	put := func(k, v string) {
		before := len(h)
		h[k] = v
		n += len(k) + len(v)
		exact = exact && len(h) > before
	}
	for name, vals := range r.Header {
		// One lookup tells a known name's lower case and whether it is
		// carried at all.
		key, known := names[name]
		if known && key.skip || len(vals) == 0 || named[name] || !known && strings.HasPrefix(name, ":") {
			continue
		}
		if !known {
			key.lower = strings.ToLower(name)
		}
		v := vals[0]
		if len(vals) > 1 {
			sep := ","
			if key.lower == "cookie" {
				sep = "; "
			}
			v = strings.Join(vals, sep)
		}
		put(key.lower, v)
	}
	if prev != "" {
		put("x-forwarded-for", prev)
	}
	if req.Upgrade != "" {
		put("upgrade", req.Upgrade)
	}
	put(":method", req.Method)
	put(":authority", req.Host)
	put(":path", req.Path)
	put(":scheme", req.Scheme)
	req.Headers = h
	if exact {
		req.HeaderBytes = n
	}
}

// first returns the first value of header name, or def when it is absent
// or empty (nginx never sends an empty header; an empty one is absent).
func first(h http.Header, name, def string) string {
	if v := h[name]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	return def
}

// sourceAddr is the request's source address (contract section 7): the
// rightmost X-Forwarded-For entry, which the proxy wrote, else the TCP
// peer. prev is the list left of that entry, which section 2's
// trusted_proxies rule reads as the original request's X-Forwarded-For.
// Several X-Forwarded-For lines are one list, joined in order. A rightmost
// entry that is not an address leaves the source unknown (invalid).
func sourceAddr(r *http.Request) (src netip.Addr, prev string) {
	xff := strings.Join(r.Header[hForwardedFor], ",")
	if strings.TrimSpace(xff) == "" {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			return ap.Addr().Unmap(), ""
		}
		return netip.Addr{}, ""
	}
	last := xff
	if i := strings.LastIndexByte(xff, ','); i >= 0 {
		last, prev = xff[i+1:], strings.TrimSpace(xff[:i])
	}
	a, _ := authz.ForwardedAddr(last)
	return a, prev
}

// clientCert returns the certificate of an X-Forwarded-Client-Cert value:
// the Cert= field (URL-encoded PEM, quoted or not) of its last element,
// the one the nearest proxy wrote. ok is false when the value cannot be
// decoded; a value without Cert= (or "Cert=", written by a proxy without a
// TLS client certificate) is no certificate.
func clientCert(v string) (pem string, ok bool) {
	elems := splitQuoted(v, ',')
	for _, field := range splitQuoted(elems[len(elems)-1], ';') {
		k, val, found := strings.Cut(field, "=")
		if !found || !strings.EqualFold(strings.TrimSpace(k), "cert") {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.ReplaceAll(val[1:len(val)-1], `\"`, `"`)
		}
		// PathUnescape, not QueryUnescape: a '+' of the base64 text that a
		// proxy left unencoded must stay a '+'.
		pem, err := url.PathUnescape(val)
		if err != nil {
			return "", false
		}
		return pem, true
	}
	return "", true
}

// splitQuoted splits s at sep outside double quotes (a backslash escapes
// the next character inside quotes). It always returns at least one part.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// commonNames are the lower-case forms of the headers browsers and proxies
// send most, so that carrying them over costs no allocation.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"accept", "accept-encoding", "accept-language", "cache-control", "cookie", "origin",
		"referer", "user-agent", "x-request-id", "x-requested-with", "authorization",
		"sec-fetch-mode", "sec-fetch-site", "sec-fetch-dest", "sec-fetch-user",
		"sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform", "upgrade-insecure-requests",
		"access-control-request-method", "access-control-request-headers",
		"access-control-request-private-network", "content-type", "pragma", "dnt",
		"cf-access-client-id", "cf-access-client-secret", "cf-access-token",
		"cf-access-jwt-assertion", "cf-access-authenticated-user-email",
		"x-real-ip", "x-forwarded-port", "x-forwarded-server", "x-forwarded-prefix",
		"traceparent", "tracestate", "x-envoy-expected-rq-timeout-ms", "via", "forwarded",
		"priority", "if-none-match", "if-modified-since", "range",
	} {
		m[http.CanonicalHeaderKey(n)] = n
	}
	return m
}()

// nameInfo is what requestFrom needs to know of a header name: its lower
// case, and whether it is left out (a fact or hop-by-hop header).
type nameInfo struct {
	lower string
	skip  bool
}

// names holds the common, fact and hop-by-hop header names (canonical
// form), so that carrying a header costs one map lookup and no
// allocation for its name.
var names = func() map[string]nameInfo {
	m := make(map[string]nameInfo, len(commonNames)+len(facts)+len(hopByHop))
	for canon, lower := range commonNames {
		m[canon] = nameInfo{lower: lower}
	}
	for canon := range facts {
		m[canon] = nameInfo{lower: strings.ToLower(canon), skip: true}
	}
	for canon := range hopByHop {
		m[canon] = nameInfo{lower: strings.ToLower(canon), skip: true}
	}
	return m
}()
