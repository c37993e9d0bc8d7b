package authz

import (
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// Header names and fixed values of the CORS answers (contract section 4).
const (
	hdrACAO          = "access-control-allow-origin"
	hdrACAC          = "access-control-allow-credentials"
	hdrACAM          = "access-control-allow-methods"
	hdrACAH          = "access-control-allow-headers"
	hdrACEH          = "access-control-expose-headers"
	hdrACMA          = "access-control-max-age"
	hdrACAPN         = "access-control-allow-private-network"
	hdrVary          = "vary"
	preflightVary    = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
	hdrOrigin        = "origin"
	hdrACRM          = "access-control-request-method"
	hdrACRH          = "access-control-request-headers"
	hdrACRPN         = "access-control-request-private-network"
	methodOptions    = "OPTIONS"
	valueTrue        = "true"
	varyOriginAppend = "Origin"
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
		if !isToken(method) {
			return ReasonPreflightMethod, nil
		}
	} else if _, ok := c.Methods[method]; !ok {
		return ReasonPreflightMethod, nil
	}
	requested := strings.TrimSpace(r.Headers[hdrACRH])
	if requested != "" {
		if c.AllowAllHeaders {
			// Echoed back as well: a list of header names, nothing else.
			if !headersAllowed(requested, nil) {
				return ReasonPreflightHeader, nil
			}
		} else if !headersAllowed(requested, c.Headers) {
			return ReasonPreflightHeader, nil
		}
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
// Access-Control-Request-Headers list is in allowed (lower-cased names); a
// nil allowed (allow_all_headers) admits any name that is a token.
func headersAllowed(list string, allowed map[string]struct{}) bool {
	for list != "" {
		var name string
		name, list, _ = strings.Cut(list, ",")
		name = strings.Trim(name, " \t")
		if name == "" {
			continue
		}
		if allowed == nil {
			if !isToken(name) {
				return false
			}
			continue
		}
		if _, ok := allowed[lower(name)]; !ok {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token, the syntax of a method
// and of a header name: no space, control character, separator or byte
// above 0x7e.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// appendCORS appends the CORS headers of a non-preflight answer (a forward,
// 401 or 403) when the request carries an Origin the application allows:
// the echoed origin, credentials and expose headers overwrite what the
// origin sends, and Origin is appended to its Vary.
func appendCORS(h []Header, r *Request, app *policies.Application) []Header {
	if app == nil || app.CORS == nil {
		return h
	}
	origin := r.Headers[hdrOrigin]
	if origin == "" || !app.CORS.OriginAllowed(origin) {
		return h
	}
	h = append(h, Header{Key: hdrACAO, Value: origin})
	if app.CORS.AllowCredentials {
		h = append(h, Header{Key: hdrACAC, Value: valueTrue})
	}
	if app.CORS.ExposeHeadersValue != "" {
		h = append(h, Header{Key: hdrACEH, Value: app.CORS.ExposeHeadersValue})
	}
	return append(h, Header{Key: hdrVary, Value: varyOriginAppend, Append: true})
}
