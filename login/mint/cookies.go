package mint

// Cookie names of the sign-in (contract §8, *(2.1)* and *(3)*). On https
// the sign-in state cookies and the team domain's session carry the
// __Host- prefix (Secure, Path=/, no Domain), so that a sibling subdomain
// cannot plant them; the plain names are used only when the team domain
// itself is http on loopback and the request arrived over http.
const (
	AppSessionCookie       = "CF_AppSession"
	SecureAppSessionCookie = "__Host-CF_AppSession"
	StateCookie            = "CF_Session"
	SecureStateCookie      = "__Host-CF_Session"
	// AuthorizationCookie is the token cookie on application hosts
	// (Path=/, host-only) and, over http on loopback, the team domain's
	// session.
	AuthorizationCookie          = "CF_Authorization"
	SecureOrgAuthorizationCookie = "__Host-CF_Authorization"
)

// Names are the cookie names one host uses.
type Names struct {
	// AppSession is the nonce cookie of an application host.
	AppSession string
	// State is the team domain's sign-in state cookie.
	State string
	// Org is the team domain's session cookie.
	Org string
	// Secure says whether the cookies carry Secure (and the prefix).
	Secure bool
}

// CookieNames returns the names for a host whose cookies are Secure (see
// Plain for when they are not).
func CookieNames(secure bool) Names {
	if secure {
		return Names{AppSession: SecureAppSessionCookie, State: SecureStateCookie, Org: SecureOrgAuthorizationCookie, Secure: true}
	}
	return Names{AppSession: AppSessionCookie, State: StateCookie, Org: AuthorizationCookie}
}

// Plain reports whether a request may use the plain names and no Secure:
// only when the team domain is http on loopback (teamSecure false, the
// demo) and the request itself arrived over http. A request that merely
// lacks X-Forwarded-Proto on a deployment never qualifies.
func Plain(teamSecure, requestHTTPS bool) bool {
	return !teamSecure && !requestHTTPS
}
