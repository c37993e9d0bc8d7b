package authz

import "strings"

// MaxHeaderLen bounds a header name or value in an answer: Envoy's
// HeaderValue validation limit. Both adapters apply it, and ValidHeader,
// so that one decision gives one answer over gRPC and over HTTP.
const MaxHeaderLen = 16384

// ValidHeader reports whether an answer may carry the header: a valid
// name (ValidHeaderName) and a value of at most MaxHeaderLen bytes without
// NUL, CR or LF. The engine never builds an invalid header from its own
// data; this guards values echoed from the request.
func ValidHeader(k, v string) bool {
	return ValidHeaderName(k) && len(v) <= MaxHeaderLen && !hasCtl(v)
}

// ValidHeaderName reports whether a header name may be written (or
// listed for removal): non-empty, at most MaxHeaderLen bytes, without NUL,
// CR or LF.
func ValidHeaderName(k string) bool {
	return k != "" && len(k) <= MaxHeaderLen && !hasCtl(k)
}

// hasCtl reports whether s holds NUL, CR or LF. Three IndexByte scans
// (vectorized) beat one byte loop on a 1 KiB token.
func hasCtl(s string) bool {
	return strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0 || strings.IndexByte(s, 0) >= 0
}
