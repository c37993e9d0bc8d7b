package httpauth

import (
	"net/http"
	"strings"

	"github.com/accessgate/accessgate/authz"
)

// headersToRemove is the response header in which Envoy's http_service
// takes the request headers to remove on a 200 (it applies removals after
// the headers it sets, as for gRPC's headers_to_remove).
const headersToRemove = "X-Envoy-Auth-Headers-To-Remove"

// isPreflightAnswer reports whether d is an answer of contract section 3
// step 2: a preflight answered directly (204, or 403 with a preflight_*
// reason). A preflight forwarded by bypass_options_to_origin is a forward.
func isPreflightAnswer(d *authz.Decision) bool {
	if d.Verdict == authz.Forward {
		return false
	}
	switch d.Reason {
	case authz.ReasonPreflight, authz.ReasonPreflightOrigin, authz.ReasonPreflightMethod,
		authz.ReasonPreflightHeader, authz.ReasonPreflightPrivateNetwork:
		return true
	}
	return false
}

// misrouted is the 403 answer for a request that reached an endpoint that
// must not answer it (preflight_misrouted, signin_misrouted): JSON, as
// every 403 that is not a navigation.
func misrouted(reason authz.Reason, app string) authz.Decision {
	return authz.Decision{
		Verdict:     authz.Deny,
		Status:      http.StatusForbidden,
		Reason:      reason,
		Application: app,
		ResponseHeaders: []authz.Header{
			{Key: "content-type", Value: "application/json"},
			{Key: "cache-control", Value: "no-store"},
		},
		Body: `{"error":"forbidden","reason":"` + string(reason) + `"}`,
	}
}

// answered returns the decision that endpoint ep answers for d, which
// differs from d where the answer table of contract section 7 says so:
// a preflight at /auth/forward is refused (a 2xx there would mean
// "forward"), and /auth/answer answers only preflights. What is logged and
// counted is the decision answered.
func answered(ep Endpoint, d authz.Decision) authz.Decision {
	switch ep {
	case Forward:
		if isPreflightAnswer(&d) {
			return misrouted(authz.ReasonPreflightMisrouted, d.Application)
		}
	case Answer:
		if !isPreflightAnswer(&d) {
			bad := authz.BadRequest()
			bad.Application = d.Application
			return bad
		}
	}
	return d
}

// render writes the HTTP answer of endpoint ep for the decision d (already
// passed through answered) about the original request r into h, and
// returns its status and body (contract section 7, answer table).
//
// A forward is 200 with no body: the headers to set and the CORS response
// headers as response headers, plus, at /auth/envoy, the removal list in
// x-envoy-auth-headers-to-remove. /auth/nginx turns every other answer
// into a bare 401 (nginx accepts only 2xx, 401 and 403 from auth_request,
// and its error_page sends the request on to /auth/nginx/render, which
// answers in full and turns a forward into a 307 retry). Every other
// answer is the section 4 answer: status, headers and body.
func render(ep Endpoint, r *authz.Request, d *authz.Decision, h http.Header) (status int, body string) {
	if d.Verdict == authz.Forward {
		switch ep {
		case NginxRender:
			// The decision changed since nginx's first call: retry.
			h.Set("Location", r.Scheme+"://"+r.Host+r.Path)
			h.Set("Cache-Control", "no-store")
			return http.StatusTemporaryRedirect, ""
		case Answer:
			// answered never lets a forward through to here.
			return http.StatusBadRequest, ""
		}
		vs := make(values, 0, len(d.Headers)+len(d.ResponseHeaders)+1)
		var invalid []string
		for i := range d.Headers {
			hd := &d.Headers[i]
			if !authz.ValidHeader(hd.Key, hd.Value) {
				// Left out, as the gRPC adapter does; the header is
				// removed instead, so the client's copy never passes.
				if authz.ValidHeaderName(hd.Key) {
					invalid = append(invalid, hd.Key)
				}
				continue
			}
			h[canonicalName(hd.Key)] = vs.one(hd.Value)
		}
		if ep == Envoy {
			remove := d.HeadersToRemove
			if len(invalid) > 0 {
				remove = append(append(make([]string, 0, len(remove)+len(invalid)), remove...), invalid...)
			}
			if len(remove) > 0 {
				h[headersToRemove] = vs.one(strings.Join(remove, ", "))
			}
		}
		writeHeaders(h, d.ResponseHeaders, &vs)
		return http.StatusOK, ""
	}
	if ep == Nginx {
		return http.StatusUnauthorized, ""
	}
	vs := make(values, 0, len(d.ResponseHeaders))
	writeHeaders(h, d.ResponseHeaders, &vs)
	return answerStatus(d.Status), d.Body
}

// answerStatus is the status of a direct answer: a code no client can be
// sent as a final answer becomes 403, as the gRPC adapter does with codes
// Envoy's enum lacks (fail closed).
func answerStatus(code int) int {
	if code < 200 || code > 599 || http.StatusText(code) == "" {
		return http.StatusForbidden
	}
	return code
}

// writeHeaders writes hs into h: set, or added for a Header with Append
// (Vary). A header no HTTP message may carry is left out.
func writeHeaders(h http.Header, hs []authz.Header, vs *values) {
	for i := range hs {
		hd := &hs[i]
		if !authz.ValidHeader(hd.Key, hd.Value) {
			continue
		}
		k := canonicalName(hd.Key)
		if old := h[k]; hd.Append && len(old) > 0 {
			h[k] = append(old, hd.Value)
		} else {
			h[k] = vs.one(hd.Value)
		}
	}
}

// values hands out one-value header slices from one backing array, so
// that an answer's headers cost one allocation rather than one each. Each
// slice is capped at its value: an append to it (net/http's Header.Add, a
// later Append header) copies instead of overwriting the next header.
type values []string

func (vs *values) one(v string) []string {
	*vs = append(*vs, v)
	n := len(*vs)
	return (*vs)[n-1 : n : n]
}

// isSigninPath reports whether a raw request target is under
// /cdn-cgi/access/, the sign-in endpoints of an application host, which the
// shipped configurations route to the sign-in listener, never here. The
// path is compared as the decision normalizes it (ASCII case-insensitive,
// like every path prefix), so /CDN-CGI/access/x counts too.
func isSigninPath(target string) bool {
	p, ok := authz.NormalizePath(target)
	if !ok {
		return false // the decision answers 400
	}
	const prefix = "/cdn-cgi/access"
	return len(p) >= len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) &&
		(len(p) == len(prefix) || p[len(prefix)] == '/')
}

// answerNames are the canonical forms of the headers decisions set, so that
// writing an answer does not canonicalize (and allocate) each name again.
var answerNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{
		"cf-access-authenticated-user-email", "cf-access-jwt-assertion", "cf-access-client-id",
		"access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers",
		"access-control-allow-methods", "access-control-allow-headers", "access-control-max-age",
		"access-control-allow-private-network", "vary", "content-type", "cache-control",
		"location", "www-authenticate", "set-cookie", "referrer-policy",
	} {
		m[n] = http.CanonicalHeaderKey(n)
	}
	return m
}()

// canonicalName is http.CanonicalHeaderKey, without allocating for the
// names decisions use.
func canonicalName(k string) string {
	if c, ok := answerNames[k]; ok {
		return c
	}
	return http.CanonicalHeaderKey(k)
}
