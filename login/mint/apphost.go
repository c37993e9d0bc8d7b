package mint

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// AppSessionTTL is the lifetime of the CF_AppSession nonce cookie.
const AppSessionTTL = 10 * time.Minute

// The Set-Cookie values of an application host (contract §8), as plain
// strings so that the decision core can put them in its answers without
// net/http. plain is Plain(teamSecure, requestHTTPS): only then do the
// cookies drop Secure and the __Host- prefix.

// AppSessionSetCookie sets the nonce cookie: HttpOnly, Path=/, 10
// minutes, host-only; SameSite=Lax, or None for the 401 of a
// credentialed cross-origin call (crossSite), which must be able to set
// it — None only with Secure, so over plain http it stays Lax.
func AppSessionSetCookie(nonce string, plain, crossSite bool) string {
	n := CookieNames(!plain)
	sameSite := "Lax"
	if crossSite && !plain {
		sameSite = "None"
	}
	return cookieString(n.AppSession, nonce, int(AppSessionTTL/time.Second), !plain, true, sameSite)
}

// ExpireAppSession removes the nonce cookie once a code was redeemed.
func ExpireAppSession(plain bool) string {
	return cookieString(CookieNames(!plain).AppSession, "", 0, !plain, true, "Lax")
}

// AuthorizationSetCookie sets the application token: CF_Authorization,
// Path=/, host-only, Max-Age = maxAge, the application's SameSite (None
// falls back to Lax over plain http, where browsers drop None) and
// HttpOnly, Secure unless plain.
func AuthorizationSetCookie(token string, maxAge time.Duration, app *policies.AppLogin, plain bool) string {
	sameSite, httpOnly := "Lax", true
	if app != nil {
		if app.SameSiteNone && !plain {
			sameSite = "None"
		}
		httpOnly = app.HTTPOnly
	}
	return cookieString(AuthorizationCookie, token, int(maxAge/time.Second), !plain, httpOnly, sameSite)
}

// ExpireAuthorization removes the application token (logout on an
// application host).
func ExpireAuthorization(plain bool) string {
	return cookieString(AuthorizationCookie, "", 0, !plain, true, "Lax")
}

// LoginURL appends the nonce and origin to an `issuer: login`
// application's rendered login_url; origin is the request's scheme and
// :authority, port kept.
func LoginURL(rendered, nonce, origin string) string {
	return rendered + "&nonce=" + url.QueryEscape(nonce) + "&origin=" + url.QueryEscape(origin)
}

// cookieString formats a Set-Cookie value; maxAge 0 expires the cookie
// (Max-Age=0). Values are base64url or JWS text: nothing to quote.
func cookieString(name, value string, maxAge int, secure, httpOnly bool, sameSite string) string {
	var b strings.Builder
	b.Grow(len(name) + len(value) + 80)
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=/; Max-Age=")
	b.WriteString(strconv.Itoa(maxAge))
	if secure {
		b.WriteString("; Secure")
	}
	if httpOnly {
		b.WriteString("; HttpOnly")
	}
	b.WriteString("; SameSite=")
	b.WriteString(sameSite)
	return b.String()
}
