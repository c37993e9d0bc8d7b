package envoy

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/accessgate/accessgate/authz"
)

// checkRequest builds an Envoy-shaped CheckRequest.
func checkRequest(method, host, path string, headers map[string]string, src string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: src, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       "1234567890",
			Method:   method,
			Host:     host,
			Path:     path,
			Scheme:   "https",
			Protocol: "HTTP/2",
			Headers:  headers,
		}},
	}}
}

func TestRequestFrom(t *testing.T) {
	hdrs := map[string]string{":authority": "app.example.com", "x-request-id": "r1", "cookie": "a=b"}
	withCert := checkRequest("GET", "app.example.com", "/", nil, "10.0.0.1")
	// As Envoy sends it: URL-encoded, with '+' of the base64 sometimes
	// left as is.
	withCert.Attributes.Source.Certificate = "-----BEGIN%20CERTIFICATE-----%0AMIIB+abc%2Bdef%2F%3D%3D%0A-----END%20CERTIFICATE-----%0A"
	withPrincipal := checkRequest("GET", "app.example.com", "/", nil, "10.0.0.1")
	withPrincipal.Attributes.Source.Principal = "spiffe://example.com/ns/a/sa/b"
	badCert := checkRequest("GET", "app.example.com", "/", nil, "10.0.0.1")
	badCert.Attributes.Source.Certificate = "-----BEGIN%ZZCERTIFICATE"
	noHost := checkRequest("GET", "", "/", map[string]string{":authority": "from-authority.example.com", "host": "from-host.example.com"}, "")
	hostHeader := checkRequest("GET", "", "/", map[string]string{"host": "from-host.example.com"}, "")
	raw := checkRequest("GET", "app.example.com", "/", nil, "")
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: "cookie", RawValue: []byte("a=1")},
		{Key: "Cookie", RawValue: []byte("b=2")},
		{Key: "accept", RawValue: []byte("text/html")},
		{Key: "accept", RawValue: []byte("*/*")},
	}}

	tests := []struct {
		name       string
		give       *authv3.CheckRequest
		wantOK     bool
		wantMethod string
		wantHost   string
		wantPath   string
		wantScheme string
		wantIP     netip.Addr
		wantCert   string
		wantHeader [2]string // a header and its expected value
	}{
		{name: "nil", give: nil},
		{name: "empty", give: &authv3.CheckRequest{}},
		{name: "no request", give: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{}}},
		{name: "no http", give: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{}}}},
		{name: "empty http", give: &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}}},
		{name: "no host anywhere", give: checkRequest("GET", "", "/", map[string]string{"x": "y"}, "10.0.0.1"), wantMethod: "GET", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("10.0.0.1"), wantHeader: [2]string{"x", "y"}},
		{
			name: "envoy request", give: checkRequest("POST", "App.Example.com:8443", "/v1/x?q=1&token=secret", hdrs, "192.0.2.7"),
			wantOK: true, wantMethod: "POST", wantHost: "App.Example.com:8443", wantPath: "/v1/x?q=1&token=secret", wantScheme: "https",
			wantIP: netip.MustParseAddr("192.0.2.7"), wantHeader: [2]string{"x-request-id", "r1"},
		},
		{name: "host from :authority", give: noHost, wantOK: true, wantMethod: "GET", wantHost: "from-authority.example.com", wantPath: "/", wantScheme: "https"},
		{name: "host from host", give: hostHeader, wantOK: true, wantMethod: "GET", wantHost: "from-host.example.com", wantPath: "/", wantScheme: "https"},
		{name: "ipv6 source", give: checkRequest("GET", "h", "/", nil, "2001:db8::1"), wantOK: true, wantMethod: "GET", wantHost: "h", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("2001:db8::1")},
		{name: "ipv4-mapped source", give: checkRequest("GET", "h", "/", nil, "::ffff:10.1.2.3"), wantOK: true, wantMethod: "GET", wantHost: "h", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("10.1.2.3")},
		{name: "unix socket source", give: checkRequest("GET", "h", "/", nil, "/run/envoy.sock"), wantOK: true, wantMethod: "GET", wantHost: "h", wantPath: "/", wantScheme: "https"},
		{name: "certificate", give: withCert, wantOK: true, wantMethod: "GET", wantHost: "app.example.com", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("10.0.0.1"),
			wantCert: "-----BEGIN CERTIFICATE-----\nMIIB+abc+def/==\n-----END CERTIFICATE-----\n"},
		// A principal alone is never a certificate (in a mesh it is the
		// calling sidecar).
		{name: "principal", give: withPrincipal, wantOK: true, wantMethod: "GET", wantHost: "app.example.com", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("10.0.0.1")},
		{name: "malformed certificate encoding", give: badCert, wantOK: true, wantMethod: "GET", wantHost: "app.example.com", wantPath: "/", wantScheme: "https", wantIP: netip.MustParseAddr("10.0.0.1")},
		{name: "raw header map", give: raw, wantOK: true, wantMethod: "GET", wantHost: "app.example.com", wantPath: "/", wantScheme: "https", wantHeader: [2]string{"cookie", "a=1; b=2"}},
		{name: "raw header map joins", give: raw, wantOK: true, wantMethod: "GET", wantHost: "app.example.com", wantPath: "/", wantScheme: "https", wantHeader: [2]string{"accept", "text/html,*/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := requestFrom(tt.give)
			if ok != tt.wantOK {
				t.Fatalf("requestFrom: ok = %v, want %v", ok, tt.wantOK)
			}
			if r == nil {
				t.Fatal("requestFrom: nil request")
			}
			if r.Method != tt.wantMethod || r.Host != tt.wantHost || r.Path != tt.wantPath || r.Scheme != tt.wantScheme {
				t.Errorf("requestFrom: method, host, path, scheme = %q %q %q %q, want %q %q %q %q",
					r.Method, r.Host, r.Path, r.Scheme, tt.wantMethod, tt.wantHost, tt.wantPath, tt.wantScheme)
			}
			if r.SourceIP != tt.wantIP {
				t.Errorf("requestFrom: SourceIP = %v, want %v", r.SourceIP, tt.wantIP)
			}
			if r.ClientCert != tt.wantCert {
				t.Errorf("requestFrom: ClientCert = %q, want %q", r.ClientCert, tt.wantCert)
			}
			if k := tt.wantHeader[0]; k != "" && r.Headers[k] != tt.wantHeader[1] {
				t.Errorf("requestFrom: Headers[%q] = %q, want %q", k, r.Headers[k], tt.wantHeader[1])
			}
		})
	}
}

// TestRequestFromSharesHeaders pins the zero-copy promise: the request's
// Headers is Envoy's map itself.
func TestRequestFromSharesHeaders(t *testing.T) {
	h := map[string]string{"a": "1"}
	r, _ := requestFrom(checkRequest("GET", "h", "/", h, ""))
	h["b"] = "2"
	if r.Headers["b"] != "2" {
		t.Error("requestFrom copied the headers map; want Envoy's map used as is")
	}
}

func FuzzRequestFrom(f *testing.F) {
	seeds := []*authv3.CheckRequest{
		nil,
		{},
		{Attributes: &authv3.AttributeContext{}},
		checkRequest("GET", "app.example.com", "/?q", map[string]string{"cookie": "CF_Authorization=x"}, "10.0.0.1"),
		checkRequest("OPTIONS", "", "", map[string]string{":authority": "a"}, "::ffff:1.2.3.4"),
		checkRequest("GET", "h", "/", nil, "fe80::1%eth0"),
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var cr authv3.CheckRequest
		if proto.Unmarshal(b, &cr) != nil {
			return
		}
		r, ok := requestFrom(&cr)
		if r == nil {
			t.Fatal("requestFrom returned nil")
		}
		if ok && r.Host == "" {
			t.Fatal("requestFrom: ok with an empty host")
		}
		// Whatever the request, the answer is a valid CheckResponse.
		if !ok {
			d := authz.BadRequest()
			if err := response(&d).ValidateAll(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
