package authz

import (
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// Header names and fixed values of the CORS answers (contract section 4).
const (
	hdrACAO       = "access-control-allow-origin"
	hdrACAC       = "access-control-allow-credentials"
	hdrACAM       = "access-control-allow-methods"
	hdrACAH       = "access-control-allow-headers"
	hdrACEH       = "access-control-expose-headers"
	hdrACMA       = "access-control-max-age"
	hdrACAPN      = "access-control-allow-private-network"
	hdrVary       = "vary"
	preflightVary = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	hdrOrigin     = "origin"
	hdrACRM       = "access-control-request-method"
	hdrACRH       = "access-control-request-headers"
	hdrACRPN      = "access-control-request-private-network"
	methodOptions = "OPTIONS"
	valueTrue     = "true"
	varyOrigin    = "Origin"
)

// isPreflight reports whether r is a CORS preflight: OPTIONS with Origin and
// Access-Control-Request-Method.
func isPreflight(r *Request) bool {
	return r.Method == methodOptions && r.Headers[hdrOrigin] != "" && r.Headers[hdrACRM] != ""
}

// preflight answers a CORS preflight from the application's settings
// (contract sections 4 and 5). A refusal carries no Access-Control-Allow-*
// header, so it never reveals what would have been allowed.
func preflight(r *Request, c *policies.CORS) (Reason, []Header) {
	origin := r.Headers[hdrOrigin]
	if !c.OriginAllowed(origin) {
		return ReasonPreflightOrigin, nil
	}
	method := r.Headers[hdrACRM]
	if c.AllowAllMethods {
		// Echoed back: only a real method name may be, never a value
		// carrying CR, LF or other bytes into a response header.
		if !policies.IsToken(method) {
			return ReasonPreflightMethod, nil
		}
	} else if _, ok := c.Methods[method]; !ok {
		// An absent allow_methods is an empty set (a nil map finds
		// nothing): section 5 reads it as "no method", never as "all".
		return ReasonPreflightMethod, nil
	}
	requested := strings.TrimSpace(r.Headers[hdrACRH])
	if requested != "" && !headersAllowed(requested, c.Headers, c.AllowAllHeaders) {
		return ReasonPreflightHeader, nil
	}
	privateNetwork := strings.EqualFold(strings.TrimSpace(r.Headers[hdrACRPN]), valueTrue)
	if privateNetwork && !c.AllowPrivateNetwork {
		return ReasonPreflightPrivateNetwork, nil
	}

	h := make([]Header, 0, 7)
	h = append(h, Header{Key: hdrACAO, Value: origin})
	if c.AllowAllMethods {
		h = append(h, Header{Key: hdrACAM, Value: method})
	} else {
		h = append(h, Header{Key: hdrACAM, Value: c.AllowMethodsValue})
	}
	if requested != "" {
		if c.AllowAllHeaders {
			h = append(h, Header{Key: hdrACAH, Value: requested})
		} else {
			h = append(h, Header{Key: hdrACAH, Value: c.AllowHeadersValue})
		}
	}
	if c.MaxAgeValue != "" {
		h = append(h, Header{Key: hdrACMA, Value: c.MaxAgeValue})
	}
	if c.AllowCredentials {
		h = append(h, Header{Key: hdrACAC, Value: valueTrue})
	}
	if privateNetwork {
		h = append(h, Header{Key: hdrACAPN, Value: valueTrue})
	}
	h = append(h, Header{Key: hdrVary, Value: preflightVary})
	return ReasonPreflight, h
}

// headersAllowed reports whether every name of a comma-separated
// Access-Control-Request-Headers list is allowed: with allowAll any name
// that is a token (it is echoed back), else only the lower-cased names in
// allowed. An absent allow_headers (nil allowed) is an empty list: any
// requested header is refused (section 5, revision 3), never taken as
// "all".
func headersAllowed(list string, allowed map[string]struct{}, allowAll bool) bool {
	for list != "" {
		var name string
		name, list, _ = strings.Cut(list, ",")
		name = strings.Trim(name, " \t")
		if name == "" {
			continue
		}
		if allowAll {
			if !policies.IsToken(name) {
				return false
			}
			continue
		}
		if _, ok := allowed[lowerASCII(name)]; !ok {
			return false
		}
	}
	return true
}

// hasCORS reports whether app answers with CORS headers: it has `cors`,
// and not only bypass_options_to_origin.
func hasCORS(app *policies.Application) bool {
	return app != nil && app.CORS != nil && !app.CORS.BypassOptionsToOrigin
}

// appendCORS appends the CORS headers of a non-preflight answer (a forward,
// 401 or 403) of an application with cors: when the request carries an
// Origin the application allows, the echoed origin, credentials and expose
// headers, which overwrite what the origin sends; and in every case Vary:
// Origin (appended to the origin's own Vary on a forward), also without an
// Origin or with a refused one, so that a shared cache never serves a
// CORS-less answer to an allowed origin (section 4, revision 2).
func appendCORS(h []Header, r *Request, app *policies.Application) []Header {
	if !hasCORS(app) {
		return h
	}
	if origin := r.Headers[hdrOrigin]; origin != "" && app.CORS.OriginAllowed(origin) {
		h = append(h, Header{Key: hdrACAO, Value: origin})
		if app.CORS.AllowCredentials {
			h = append(h, Header{Key: hdrACAC, Value: valueTrue})
		}
		if app.CORS.ExposeHeadersValue != "" {
			h = append(h, Header{Key: hdrACEH, Value: app.CORS.ExposeHeadersValue})
		}
	}
	return append(h, Header{Key: hdrVary, Value: varyOrigin, Append: true})
}
