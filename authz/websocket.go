package authz

import (
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// crossSiteWebSocket reports whether r is a WebSocket upgrade whose Origin
// may not open a socket on app (contract §11): an Origin other than the
// request's own and not listed explicitly in the application's
// allow_origins. Browsers apply no CORS to WebSockets, so without this any
// page the user visits could open the socket with the user's cookie
// (cross-site WebSocket hijacking). Without an Origin (not a browser) the
// request is judged as usual. Connection need not name the upgrade.
func crossSiteWebSocket(r *Request, app *policies.Application) bool {
	origin := r.Headers[hdrOrigin]
	if origin == "" || !isWebSocketUpgrade(r) {
		return false
	}
	if ownOrigin(origin, r) {
		return false
	}
	return !app.CORS.OriginListed(origin)
}

// isWebSocketUpgrade reports whether r asks for a WebSocket: Upgrade (or,
// from the HTTP endpoints, X-Forwarded-Upgrade) lists `websocket` in any
// letter case, with or without a version; or an HTTP/2 extended CONNECT
// names it in :protocol.
func isWebSocketUpgrade(r *Request) bool {
	up := r.Upgrade
	if up == "" {
		up = r.Headers["upgrade"]
	}
	if up == "" {
		return r.Method == "CONNECT" && strings.EqualFold(r.Headers[":protocol"], "websocket")
	}
	for up != "" {
		var proto string
		proto, up, _ = strings.Cut(up, ",")
		proto = strings.Trim(proto, " \t")
		if i := strings.IndexByte(proto, '/'); i >= 0 {
			proto = proto[:i]
		}
		if strings.EqualFold(proto, "websocket") {
			return true
		}
	}
	return false
}

// ownOrigin reports whether origin is the request's own: the same scheme
// (the request's, https when unknown) and the same :authority, host
// ASCII case-insensitively and ports equal once a scheme's default port
// counts as none. `null` is never anyone's own origin.
func ownOrigin(origin string, r *Request) bool {
	if origin == "null" {
		return false
	}
	scheme, authority, ok := strings.Cut(origin, "://")
	if !ok || strings.ContainsAny(authority, "/?#@ \t\\") {
		return false
	}
	own := r.Scheme
	if own == "" {
		own = "https"
	}
	if !strings.EqualFold(scheme, own) {
		return false
	}
	oh, op, ok := splitAuthority(authority, scheme)
	if !ok {
		return false
	}
	rh, rp, ok := splitAuthority(r.Host, scheme)
	return ok && oh != "" && strings.EqualFold(oh, rh) && op == rp
}

// splitAuthority splits host[:port] (an IPv6 host in brackets) and drops
// the scheme's default port; ok is false for a port that is not digits.
func splitAuthority(a, scheme string) (host, port string, ok bool) {
	host = a
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", "", false
		}
		host, port = a[:end+1], a[end+1:]
		if port != "" && port[0] != ':' {
			return "", "", false
		}
	} else if i := strings.LastIndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	if port != "" {
		port = port[1:]
		if port == "" || !isPort(port) {
			return "", "", false
		}
	}
	switch {
	case port == "443" && strings.EqualFold(scheme, "https"), port == "80" && strings.EqualFold(scheme, "http"):
		port = ""
	}
	return host, port, true
}
