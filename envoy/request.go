package envoy

import (
	"net/netip"
	"net/url"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/accessgate/accessgate/authz"
)

// requestFrom fills an authz.Request from Envoy's CheckRequest. It reports
// false when the CheckRequest is malformed (no attributes, request or http
// part, or no host at all); the caller answers that with 400 bad_request.
// It never panics: every proto getter is nil-safe.
//
// The headers map is Envoy's own (lower-case keys, duplicates joined) and is
// used as is, not copied: no per-request map is built. Only when Envoy runs
// with encode_raw_headers (header_map instead of headers) is a map built.
//
// ClientCert is source.certificate, the URL-encoded PEM of the peer
// certificate that Envoy sends when the ext_authz filter has
// include_peer_certificate: true, decoded; authz verifies it against the
// client_certificate_authorities. source.principal alone is never taken as
// a certificate: in a mesh it names the calling proxy, not the user.
func requestFrom(cr *authv3.CheckRequest) (*authz.Request, bool) {
	attrs := cr.GetAttributes()
	http := attrs.GetRequest().GetHttp()
	r := &authz.Request{
		Method:  http.GetMethod(),
		Scheme:  http.GetScheme(),
		Host:    http.GetHost(),
		Path:    http.GetPath(),
		Headers: http.GetHeaders(),
	}
	if r.Headers == nil && http.GetHeaderMap() != nil {
		r.Headers = rawHeaders(http.GetHeaderMap().GetHeaders())
	}
	if r.Host == "" {
		// Envoy always fills host from :authority; another client might
		// only send the headers.
		if h := r.Headers[":authority"]; h != "" {
			r.Host = h
		} else {
			r.Host = r.Headers["host"]
		}
	}
	if r.Method == "" {
		r.Method = r.Headers[":method"]
	}
	if r.Path == "" {
		r.Path = r.Headers[":path"]
	}
	if r.Scheme == "" {
		r.Scheme = r.Headers[":scheme"]
	}
	src := attrs.GetSource()
	if a, err := netip.ParseAddr(src.GetAddress().GetSocketAddress().GetAddress()); err == nil {
		// A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d;
		// unmap so that IPv4 CIDRs match them.
		r.SourceIP = a.Unmap()
	}
	if c := src.GetCertificate(); c != "" {
		// PathUnescape, not QueryUnescape: a '+' of the base64 body may
		// arrive unencoded and must stay a '+'. Malformed encoding is no
		// certificate.
		if pemText, err := url.PathUnescape(c); err == nil {
			r.ClientCert = pemText
		}
	}
	bindingFrom(attrs, r)
	if http == nil || r.Host == "" {
		return r, false
	}
	return r, true
}

// rawHeaders builds the headers map from Envoy's header_map (sent instead of
// headers with encode_raw_headers: true), joining duplicates as Envoy does
// for headers: cookies with "; ", others with ",".
func rawHeaders(hvs []*corev3.HeaderValue) map[string]string {
	m := make(map[string]string, len(hvs))
	for _, hv := range hvs {
		k := strings.ToLower(hv.GetKey())
		v := string(hv.GetRawValue())
		if v == "" {
			v = hv.GetValue()
		}
		if old, ok := m[k]; ok {
			sep := ","
			if k == "cookie" {
				sep = "; "
			}
			v = old + sep + v
		}
		m[k] = v
	}
	return m
}
