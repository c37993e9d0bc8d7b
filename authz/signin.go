package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
)

// ReasonSignin is the reason code of the answers an application host gives
// for accessgate's own sign-in (contract §8: /cdn-cgi/access/authorized,
// get-identity and logout on the host of an `issuer: login` application).
const ReasonSignin Reason = "signin"

func init() { Reasons = append(Reasons, ReasonSignin) }

// The application-host endpoints of the sign-in (contract §8). They are
// answered before §3's path matching, for every `issuer: login`
// application whose domains cover the host.
const (
	signinPrefix     = "/cdn-cgi/access/"
	signinAuthorized = signinPrefix + "authorized"
	signinIdentity   = signinPrefix + "get-identity"
	signinLogout     = signinPrefix + "logout"
	// signinMaxQuery bounds the query of an authorized request: a code is
	// far shorter (mint refuses anything over 4 KiB), and a huge query is
	// refused before it is parsed.
	signinMaxQuery = 8192
)

const (
	hdrSetCookie      = "set-cookie"
	hdrReferrerPolicy = "referrer-policy"
	noReferrer        = "no-referrer"
)

// signinState caches the Minter of one policy Set: built on first use
// after a Swap, from the Set's own keys and cookie secret, so that a reload
// that re-read them mints and redeems with the new ones at once.
type signinState struct {
	set    *policies.Set
	minter *mint.Minter
}

// minterFor returns the Minter of set (nil when its login section cannot
// make one, which Parse already refuses).
func (e *Engine) minterFor(set *policies.Set) *mint.Minter {
	if st := e.signin.Load(); st != nil && st.set == set {
		return st.minter
	}
	m, err := mint.New(set.Login, e.now)
	if err != nil {
		m = nil
	}
	e.signin.Store(&signinState{set: set, minter: m})
	return m
}

// signinEndpoint answers /cdn-cgi/access/{authorized,get-identity,logout}
// on the host of an `issuer: login` application. ok is false when the
// request is none of those, or no such application covers the host: the
// request then goes through the usual decision.
func (e *Engine) signinEndpoint(ctx context.Context, set *policies.Set, r *Request, host, path string) (Decision, bool) {
	if len(path) <= len(signinPrefix) || path[:len(signinPrefix)] != signinPrefix {
		return Decision{}, false
	}
	switch path {
	case signinAuthorized, signinIdentity, signinLogout:
	default:
		return Decision{}, false
	}
	apps := loginApplications(set, host)
	if len(apps) == 0 {
		return Decision{}, false
	}
	m := e.minterFor(set)
	if m == nil {
		return signinRefused(r, apps[0]), true
	}
	plain := mint.Plain(set.Login.Secure, r.Scheme == "https")
	switch path {
	case signinAuthorized:
		return e.authorized(r, set, apps, m, host, plain), true
	case signinIdentity:
		return e.identity(ctx, r, apps, m), true
	default:
		return logout(r, set, apps[0], plain), true
	}
}

// authorized redeems a transfer code (contract §8): 400 unless the code is
// authentic, unexpired, bound to this host and to the audience of one of
// the host's `issuer: login` applications, and carries the nonce of the
// browser's CF_AppSession; else a 302 to the bound redirect URL that sets
// the application's CF_Authorization and expires CF_AppSession.
func (e *Engine) authorized(r *Request, set *policies.Set, apps []*policies.Application, m *mint.Minter, host string, plain bool) Decision {
	if r.Method != "GET" && r.Method != "HEAD" {
		return signinRefused(r, apps[0])
	}
	code, ok := queryParam(r.Path, "code")
	if !ok || code == "" {
		return signinRefused(r, apps[0])
	}
	nonce := namedCookie(r.Headers["cookie"], mint.CookieNames(!plain).AppSession)
	if !mint.ValidNonce(nonce) {
		// Login CSRF: a code without its browser's nonce is useless.
		return signinRefused(r, apps[0])
	}
	for _, app := range apps {
		id, redirect, err := m.Redeem(code, host, app.Audience, nonce)
		if errors.Is(err, mint.ErrCodeBinding) {
			continue // made for another application of this host, maybe
		}
		if err != nil {
			return signinRefused(r, app)
		}
		if !app.Login.ProviderAllowed(id.IdP) {
			return signinRefused(r, app)
		}
		tok, life, err := m.AppToken(id, app)
		if err != nil {
			return signinRefused(r, app)
		}
		return Decision{
			Verdict:     Deny,
			Status:      302,
			Reason:      ReasonSignin,
			Application: app.Name,
			ResponseHeaders: []Header{
				{Key: hdrLocation, Value: redirect},
				{Key: hdrCacheControl, Value: noStore},
				{Key: hdrReferrerPolicy, Value: noReferrer},
				// Two Set-Cookie lines: Append, so the second does not
				// overwrite the first.
				{Key: hdrSetCookie, Value: mint.AuthorizationSetCookie(tok, life, app.Login, plain), Append: true},
				{Key: hdrSetCookie, Value: mint.ExpireAppSession(plain), Append: true},
			},
		}
	}
	return signinRefused(r, apps[0])
}

// identity answers get-identity on an application host: the identity
// document of a valid token of one of the host's `issuer: login`
// applications, else 401 JSON. A web app on an allowed origin may read it
// (the application's CORS headers).
func (e *Engine) identity(ctx context.Context, r *Request, apps []*policies.Application, m *mint.Minter) Decision {
	token := tokenFrom(r.Headers)
	reason := ReasonTokenMissing
	if token != "" {
		for _, app := range apps {
			id, why := e.verifier.Verify(ctx, token, app)
			if why != "" {
				reason = why
				continue
			}
			if t, _ := id.Claims["type"].(string); t != mint.TypeApp {
				reason = ReasonTokenAudience
				continue
			}
			idp, _ := id.Claims["idp"].(string)
			var iat int64
			if f, ok := id.Claims["iat"].(float64); ok {
				iat = int64(f)
			}
			sub, _ := id.Claims["sub"].(string)
			body, err := json.Marshal(mint.NewIdentityDocument(mint.Identity{Email: id.Email, Groups: id.Groups, IdP: idp}, iat, sub))
			if err != nil {
				break
			}
			h := make([]Header, 0, 8)
			h = append(h,
				Header{Key: hdrContentType, Value: contentJSON},
				Header{Key: hdrCacheControl, Value: noStore},
				Header{Key: hdrReferrerPolicy, Value: noReferrer},
			)
			return Decision{Verdict: Deny, Status: 200, Reason: ReasonSignin, Application: app.Name,
				ResponseHeaders: appendCORS(h, r, app), Body: string(body) + "\n"}
		}
	}
	app := apps[0]
	h := make([]Header, 0, 8)
	h = append(h,
		Header{Key: hdrContentType, Value: contentJSON},
		Header{Key: hdrCacheControl, Value: noStore},
		Header{Key: hdrReferrerPolicy, Value: noReferrer},
	)
	return Decision{Verdict: Deny, Status: 401, Reason: ReasonSignin, Application: app.Name,
		ResponseHeaders: appendCORS(h, r, app),
		Body:            `{"error":"unauthenticated","reason":"` + string(reason) + `"}`}
}

// logout expires this host's CF_Authorization and sends the browser on to
// the team domain's logout, which ends the org session.
func logout(r *Request, set *policies.Set, app *policies.Application, plain bool) Decision {
	return Decision{
		Verdict:     Deny,
		Status:      302,
		Reason:      ReasonSignin,
		Application: app.Name,
		ResponseHeaders: []Header{
			{Key: hdrLocation, Value: set.Login.TeamDomain + signinLogout},
			{Key: hdrCacheControl, Value: noStore},
			{Key: hdrReferrerPolicy, Value: noReferrer},
			{Key: hdrSetCookie, Value: mint.ExpireAuthorization(plain), Append: true},
		},
	}
}

// signinRefused is the 400 of a code that cannot be redeemed: a page for a
// browser navigation, else JSON. It never says why (the reason would help
// whoever is trying codes, and the user can only start again).
func signinRefused(r *Request, app *policies.Application) Decision {
	d := Decision{Verdict: Deny, Status: 400, Reason: ReasonSignin, Application: app.Name}
	if isNavigation(r) {
		d.ResponseHeaders = []Header{
			{Key: hdrContentType, Value: contentHTML},
			{Key: hdrCacheControl, Value: noStore},
			{Key: hdrReferrerPolicy, Value: noReferrer},
		}
		d.Body = signinRefusedPage
		return d
	}
	d.ResponseHeaders = []Header{
		{Key: hdrContentType, Value: contentJSON},
		{Key: hdrCacheControl, Value: noStore},
		{Key: hdrReferrerPolicy, Value: noReferrer},
	}
	d.Body = `{"error":"bad_request","reason":"signin"}`
	return d
}

const signinRefusedPage = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in link not valid</title></head>" +
	"<body><h1>This sign-in link is not valid</h1><p>It has expired, was already used in another browser, or was not made for this site. " +
	"Go back to the application and sign in again.</p></body></html>\n"

// isLoginIssuer reports whether iss is the implicit issuer of a `login`
// section: named "login" and with neither a JWKS URL nor a file (an
// `issuers` entry always has one of them).
func isLoginIssuer(iss *policies.Issuer) bool {
	return iss != nil && iss.Name == policies.LoginIssuerName && iss.JWKSURL == "" && iss.JWKSFile == ""
}

// appSession is the §4 hook of an `issuer: login` application (contract
// §8): the nonce of the browser's CF_AppSession (or a fresh one) and the
// request's origin are appended to the rendered login URL, and the cookie
// is set (again). crossSite is true for the 401, whose cookie must also be
// set by a credentialed cross-origin call: SameSite=None on https.
func appSession(r *Request, app *policies.Application, login string, crossSite bool) (string, Header) {
	teamSecure := strings.HasPrefix(app.Issuer.Issuer, "https://")
	plain := mint.Plain(teamSecure, r.Scheme == "https")
	nonce := namedCookie(r.Headers["cookie"], mint.CookieNames(!plain).AppSession)
	if !mint.ValidNonce(nonce) {
		nonce = mint.NewNonce()
	}
	scheme := r.Scheme
	if scheme == "" {
		scheme = "https"
	}
	return mint.LoginURL(login, nonce, scheme+"://"+r.Host),
		Header{Key: hdrSetCookie, Value: mint.AppSessionSetCookie(nonce, plain, crossSite), Append: true}
}

// loginApplications lists the `issuer: login` applications whose domains
// cover host, path prefixes aside, in file order.
func loginApplications(set *policies.Set, host string) []*policies.Application {
	if set.Login.Issuer == nil {
		return nil
	}
	var out []*policies.Application
	for _, app := range set.Applications {
		if app.Issuer == set.Login.Issuer && app.CoversHost(host) {
			out = append(out, app)
		}
	}
	return out
}

// queryParam returns the one value of name in the query of a raw request
// target. A parameter given twice, an unparsable or oversized query counts
// as absent (which of two values a check reads is how parameter-pollution
// bugs start).
func queryParam(target, name string) (string, bool) {
	_, q, ok := strings.Cut(target, "?")
	if !ok || len(q) > signinMaxQuery {
		return "", false
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return "", false
	}
	v := vals[name]
	if len(v) != 1 {
		return "", false
	}
	for _, vs := range vals {
		if len(vs) > 1 {
			return "", false
		}
	}
	return v[0], true
}

// SignIn answers r only if it is one of the sign-in endpoints of an
// application host (/cdn-cgi/access/authorized, get-identity, logout on a
// host an `issuer: login` application covers), exactly as Decide would;
// ok is false for any other request, which it does not judge. The team
// domain's listener uses it to serve those paths for proxies that route
// them there instead of through ext_authz (the HTTP authorization
// endpoints refuse them).
func (e *Engine) SignIn(ctx context.Context, r *Request) (d Decision, ok bool) {
	set := e.set.Load()
	if set == nil || set.Login == nil || r == nil || headerBytes(r.Headers) > maxHeaderBytes {
		return Decision{}, false
	}
	host, ok := normalizeHost(r.Host)
	if !ok {
		return Decision{}, false
	}
	path, ok := NormalizePath(r.Path)
	if !ok {
		return Decision{}, false
	}
	return e.signinEndpoint(ctx, set, r, host, path)
}
