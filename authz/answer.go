package authz

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/accessgate/accessgate/policies"
)

// The headers accessgate owns on the upstream request (contract section 4).
// Whatever of them a forward does not set is removed, so a client can never
// spoof them. Envoy applies removals after sets, so a header set by a
// decision must never be in its removal list: hence one precomputed list per
// combination, each derived from ownedHeaders and shared read-only by every
// decision.
const (
	hdrUserEmail    = "cf-access-authenticated-user-email"
	hdrJWTAssertion = "cf-access-jwt-assertion"
	hdrClientID     = "cf-access-client-id"
	hdrClientSecret = "cf-access-client-secret"
	hdrAccessToken  = "cf-access-token"
)

// tokenHeaders are the request headers an Access token is read from, in the
// order tokenFrom reads them (after the CF_Authorization cookie, before
// Authorization: Bearer). Adding a token source is one edit here: tokenFrom
// reads it and every removal list below drops it (TestOwnedHeadersOneList).
var tokenHeaders = []string{hdrJWTAssertion, hdrAccessToken}

// ownedHeaders is every header a client must never pass to the origin
// unless a forward sets it: the identity headers, the token headers and the
// service-token pair.
var ownedHeaders = slices.Concat([]string{hdrUserEmail}, tokenHeaders, []string{hdrClientID, hdrClientSecret})

// The removal lists, named by what a forward keeps (sets) in their place.
var (
	removeKeepingNothing       = ownedExcept()
	removeKeepingEmailAndToken = ownedExcept(hdrUserEmail, hdrJWTAssertion)
	removeKeepingToken         = ownedExcept(hdrJWTAssertion)
	removeKeepingClientID      = ownedExcept(hdrClientID)
)

// ownedExcept returns ownedHeaders without keep, at full capacity (so an
// append to the shared slice always copies).
func ownedExcept(keep ...string) []string {
	out := make([]string, 0, len(ownedHeaders))
	for _, h := range ownedHeaders {
		if !slices.Contains(keep, h) {
			out = append(out, h)
		}
	}
	return slices.Clip(out)
}

const (
	hdrContentType     = "content-type"
	hdrCacheControl    = "cache-control"
	hdrLocation        = "location"
	hdrWWWAuthenticate = "www-authenticate"
	contentJSON        = "application/json"
	contentHTML        = "text/html; charset=utf-8"
	noStore            = "no-store"
)

// badRequestDecision is the 400 answer for a malformed request. It carries
// Vary: Origin, always: a 400 is mostly decided before an application is
// chosen, so it cannot tell whether the application has cors, and a shared
// cache must never serve it to another origin (section 4, revision 3). It
// carries no other CORS header.
var badRequestDecision = Decision{
	Verdict: Deny,
	Status:  400,
	Reason:  ReasonBadRequest,
	ResponseHeaders: []Header{
		{Key: hdrContentType, Value: contentJSON},
		{Key: hdrCacheControl, Value: noStore},
		{Key: hdrVary, Value: varyOrigin, Append: true},
	},
	Body: `{"error":"bad_request","reason":"bad_request"}`,
}

// BadRequest returns the 400 answer of contract section 4 for a request
// that cannot be judged. The envoy adapter uses it for a malformed
// CheckRequest.
func BadRequest() Decision {
	d := badRequestDecision
	d.ResponseHeaders = append([]Header(nil), badRequestDecision.ResponseHeaders...)
	return d
}

// forward builds a forward decision. id and svc say which identity (if any)
// goes to the origin.
func forward(r *Request, app *policies.Application, reason Reason, policy string, id *Identity, svc *policies.ServiceToken) Decision {
	d := Decision{Verdict: Forward, Status: 200, Reason: reason, Policy: policy}
	if app != nil {
		d.Application = app.Name
	}
	switch {
	case id != nil && app != nil && app.IdentityHeaders:
		// Precomputed when the token was verified: a cached token
		// forwards without allocating.
		d.Headers = id.forwardHeaders()
		if id.Email != "" {
			d.HeadersToRemove = removeKeepingEmailAndToken
		} else {
			d.HeadersToRemove = removeKeepingToken
		}
	case svc != nil:
		d.Headers = []Header{{Key: hdrClientID, Value: svc.ClientID}}
		d.HeadersToRemove = removeKeepingClientID
	default:
		d.HeadersToRemove = removeKeepingNothing
	}
	if hasCORS(app) {
		if r.Headers[hdrOrigin] != "" {
			d.ResponseHeaders = appendCORS(make([]Header, 0, 4), r, app)
		} else {
			d.ResponseHeaders = varyOriginAppended
		}
	}
	return d
}

// forbidden is the 403 answer: JSON, or a small HTML page for a browser
// navigation; CORS headers as for 401.
//
// Bodies and the headers without CORS are the same for every request, so
// they are built once (forbiddenAnswers) and shared; only an answer with
// CORS headers gets a slice of its own.
func forbidden(r *Request, app *policies.Application, reason Reason, policy string) Decision {
	d := Decision{Verdict: Deny, Status: 403, Reason: reason, Policy: policy}
	if isNavigation(r) {
		d.ResponseHeaders = forbiddenHTMLHeaders
		d.Body = forbiddenPage(reason)
	} else {
		d.ResponseHeaders = forbiddenJSONHeaders
		d.Body = forbiddenJSON(reason)
	}
	if app != nil {
		d.Application = app.Name
		if hasCORS(app) {
			// forbidden*Headers are at full capacity: the append copies.
			d.ResponseHeaders = appendCORS(d.ResponseHeaders, r, app)
		}
	}
	return d
}

// Shared, read-only 403 headers (full capacity, so an append copies).
var (
	forbiddenJSONHeaders = []Header{{Key: hdrContentType, Value: contentJSON}, {Key: hdrCacheControl, Value: noStore}}
	forbiddenHTMLHeaders = []Header{{Key: hdrContentType, Value: contentHTML}, {Key: hdrCacheControl, Value: noStore}}
	// varyOriginAppended is a CORS application's forward without Origin.
	varyOriginAppended = []Header{{Key: hdrVary, Value: varyOrigin, Append: true}}
)

// forbiddenBodies holds the 403 bodies of every reason code, built once.
var forbiddenBodies = func() map[Reason][2]string {
	m := make(map[Reason][2]string, len(Reasons))
	for _, r := range Reasons {
		m[r] = [2]string{buildForbiddenJSON(r), buildForbiddenPage(r)}
	}
	return m
}()

func forbiddenJSON(reason Reason) string {
	if b, ok := forbiddenBodies[reason]; ok {
		return b[0]
	}
	return buildForbiddenJSON(reason)
}

func forbiddenPage(reason Reason) string {
	if b, ok := forbiddenBodies[reason]; ok {
		return b[1]
	}
	return buildForbiddenPage(reason)
}

func buildForbiddenJSON(reason Reason) string {
	return `{"error":"forbidden","reason":"` + string(reason) + `"}`
}

func buildForbiddenPage(reason Reason) string {
	return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>403 Forbidden</title></head>" +
		"<body><h1>Forbidden</h1><p>You do not have access to this application.</p>" +
		"<p>Reason: <code>" + string(reason) + "</code></p></body></html>\n"
}

// unauthenticated answers a request without a valid Access token: a 302 to
// the login page for a browser navigation (when the application redirects
// and no service token was presented), else a 401 with JSON a web app can
// read cross-origin (contract section 4). A 302 of a CORS application
// carries Vary: Origin and no other CORS header.
func unauthenticated(r *Request, app *policies.Application, host string, reason Reason, serviceTokenPresented bool) Decision {
	d := Decision{Verdict: Deny, Reason: reason, Application: app.Name}
	if !serviceTokenPresented && app.Unauthenticated == policies.UnauthRedirect && isNavigation(r) {
		d.Status = 302
		loc := app.Issuer.LoginURL.Render(host, app.Audience, originalURL(r))
		d.ResponseHeaders = make([]Header, 0, 4)
		if isLoginIssuer(app.Issuer) { // §8: the CF_AppSession nonce (signin.go)
			var cookie Header
			loc, cookie = appSession(r, app, loc, false)
			d.ResponseHeaders = append(d.ResponseHeaders, cookie)
		}
		d.ResponseHeaders = append(d.ResponseHeaders,
			Header{Key: hdrLocation, Value: loc},
			Header{Key: hdrCacheControl, Value: noStore},
		)
		if hasCORS(app) {
			d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: hdrVary, Value: varyOrigin, Append: true})
		}
		return d
	}
	redirect := originalURL(r)
	if ref := r.Headers["referer"]; ref != "" && refererAllowed(ref, host, app) {
		redirect = ref
	}
	login := app.Issuer.LoginURL.Render(host, app.Audience, redirect)
	var cookie Header
	if isLoginIssuer(app.Issuer) { // §8: the CF_AppSession nonce (signin.go)
		login, cookie = appSession(r, app, login, true)
	}
	d.Status = 401
	d.Body = `{"error":"unauthenticated","reason":"` + string(reason) + `","login_url":` + jsonString(login) + `}`
	h := make([]Header, 0, 7)
	h = append(h,
		Header{Key: hdrContentType, Value: contentJSON},
		Header{Key: hdrCacheControl, Value: noStore},
		Header{Key: hdrWWWAuthenticate, Value: app.WWWAuthenticate},
	)
	if cookie.Key != "" {
		h = append(h, cookie)
	}
	d.ResponseHeaders = appendCORS(h, r, app)
	return d
}

// isNavigation reports whether r is a browser navigation: GET or HEAD whose
// Sec-Fetch-Mode is navigate, or with no Sec-Fetch-Mode and an Accept that
// contains text/html; never with X-Requested-With: XMLHttpRequest.
func isNavigation(r *Request) bool {
	if r.Method != "GET" && r.Method != "HEAD" {
		return false
	}
	if strings.EqualFold(r.Headers["x-requested-with"], "XMLHttpRequest") {
		return false
	}
	if mode, ok := r.Headers["sec-fetch-mode"]; ok {
		return strings.EqualFold(mode, "navigate")
	}
	return containsFold(r.Headers["accept"], "text/html")
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// originalURL is the full URL the client asked for: scheme, :authority as
// sent (port kept), then the path with its query.
func originalURL(r *Request) string {
	scheme := r.Scheme
	if scheme == "" {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.Path
}

// refererAllowed reports whether a Referer is a page the user should land
// back on after logging in: on an allowed Origin or on the application's own
// host.
func refererAllowed(ref, host string, app *policies.Application) bool {
	scheme, rest, ok := strings.Cut(ref, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return false
	}
	authority := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority = rest[:i]
	}
	if app.CORS != nil && app.CORS.OriginAllowed(ref[:len(scheme)+3+len(authority)]) {
		return true
	}
	refHost, ok := normalizeHost(authority)
	return ok && refHost == host
}

// jsonString quotes s as a JSON string. The login URL is query-escaped, so
// this rarely has anything to escape, but a configured template may.
func jsonString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			default:
				b.WriteString(`\u00`)
				b.WriteByte("0123456789abcdef"[c>>4])
				b.WriteByte("0123456789abcdef"[c&0xf])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteString(`\ufffd`)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
