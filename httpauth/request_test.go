package httpauth

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// readRaw parses an auth request as the server does: a request line and
// header lines (joined with CRLF here), no body.
func readRaw(t testing.TB, lines ...string) *http.Request {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(strings.Join(lines, "\r\n") + "\r\n\r\n")))
	if err != nil {
		t.Fatalf("read request: %v", err)
	}
	return r
}

func TestRoute(t *testing.T) {
	tests := []struct {
		give     string
		wantEP   Endpoint
		wantRest string
		wantOK   bool
	}{
		{"/auth/envoy/api/items?x=1", Envoy, "/api/items?x=1", true},
		{"/auth/envoy", Envoy, "/", true},
		{"/auth/envoy/", Envoy, "/", true},
		{"/auth/envoy//double", Envoy, "//double", true},
		{"/auth/envoy?q", Envoy, "?q", true}, // not absolute: the decision answers 400
		{"/auth/envoyx", 0, "", false},
		{"/auth/answer/api", Answer, "/api", true},
		{"/auth/answer", Answer, "/", true},
		{"/auth/forward", Forward, "", true},
		{"/auth/forward?a=1&b=2", Forward, "", true}, // Caddy appends the original query
		{"/auth/forward/", 0, "", false},
		{"/auth/nginx", Nginx, "", true},
		{"/auth/nginx?x", Nginx, "", true},
		{"/auth/nginx/render", NginxRender, "", true},
		{"/auth/nginx/render?x=1", NginxRender, "", true},
		{"/auth/nginx/renderx", 0, "", false},
		{"/AUTH/forward", 0, "", false},
		{"/", 0, "", false},
		{"*", 0, "", false},
		{"http://x/auth/forward", 0, "", false},
	}
	for _, tt := range tests {
		ep, rest, ok := route(tt.give)
		if ep != tt.wantEP || rest != tt.wantRest || ok != tt.wantOK {
			t.Errorf("route(%q) = %v, %q, %v, want %v, %q, %v", tt.give, ep, rest, ok, tt.wantEP, tt.wantRest, tt.wantOK)
		}
	}
}

// TestRequestFromFacts checks the facts table of contract section 7, per
// endpoint: where method, host, path and scheme come from, what is
// required, and that a fact header given twice is refused.
func TestRequestFromFacts(t *testing.T) {
	type want struct {
		ok                         bool
		method, host, path, scheme string
	}
	tests := []struct {
		name  string
		lines []string
		want  want
	}{
		{"envoy: method, Host and target from the auth request", []string{
			"PUT /auth/envoy/api/items?page=2 HTTP/1.1", "Host: app.example.com:8443", "X-Forwarded-Proto: https",
		}, want{true, "PUT", "app.example.com:8443", "/api/items?page=2", "https"}},
		{"envoy: X-Forwarded-Host is no fact there", []string{
			"GET /auth/envoy/ HTTP/1.1", "Host: app.example.com", "X-Forwarded-Host: evil.example.com",
		}, want{true, "GET", "app.example.com", "/", "http"}},
		{"forward: every fact from X-Forwarded-*", []string{
			"GET /auth/forward?ignored=1 HTTP/1.1", "Host: accessgate:9002",
			"X-Forwarded-Method: DELETE", "X-Forwarded-Host: app.example.com",
			"X-Forwarded-Uri: /api/x?y=1", "X-Forwarded-Proto: https",
		}, want{true, "DELETE", "app.example.com", "/api/x?y=1", "https"}},
		{"forward: scheme defaults to http", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
		}, want{true, "GET", "app.example.com", "/", "http"}},
		{"forward: missing method", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
		}, want{ok: false}},
		{"forward: missing host (Host is the auth server's)", []string{
			"GET /auth/forward HTTP/1.1", "Host: app.example.com",
			"X-Forwarded-Method: GET", "X-Forwarded-Uri: /",
		}, want{ok: false}},
		{"forward: missing uri", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com",
		}, want{ok: false}},
		{"forward: empty fact is missing", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: ", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
		}, want{ok: false}},
		{"forward: two X-Forwarded-Host lines, equal values", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
		}, want{ok: false}},
		{"forward: two spellings of one fact are two lines", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "x-forwarded-uri: /a", "X-FORWARDED-URI: /b",
		}, want{ok: false}},
		{"forward: two X-Forwarded-Proto", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
			"X-Forwarded-Proto: https", "X-Forwarded-Proto: https",
		}, want{ok: false}},
		{"forward: a scheme list is refused", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
			"X-Forwarded-Proto: https, http",
		}, want{ok: false}},
		{"forward: two X-Accessgate-Application", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
			"X-Accessgate-Application: a", "X-Accessgate-Application: b",
		}, want{ok: false}},
		{"forward: two X-Forwarded-Client-Cert", []string{
			"GET /auth/forward HTTP/1.1", "Host: accessgate",
			"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /",
			"X-Forwarded-Client-Cert: Cert=", "X-Forwarded-Client-Cert: Cert=",
		}, want{ok: false}},
		{"nginx: host from X-Forwarded-Host", []string{
			"GET /auth/nginx HTTP/1.1", "Host: app.example.com",
			"X-Original-Method: POST", "X-Original-URI: /submit?a=b", "X-Forwarded-Host: app.example.com:8080",
		}, want{true, "POST", "app.example.com:8080", "/submit?a=b", "http"}},
		{"nginx: host falls back to Host", []string{
			"GET /auth/nginx HTTP/1.1", "Host: app.example.com",
			"X-Original-Method: GET", "X-Original-URI: /",
		}, want{true, "GET", "app.example.com", "/", "http"}},
		{"nginx: missing X-Original-URI", []string{
			"GET /auth/nginx HTTP/1.1", "Host: app.example.com", "X-Original-Method: GET",
		}, want{ok: false}},
		{"nginx: missing X-Original-Method", []string{
			"GET /auth/nginx HTTP/1.1", "Host: app.example.com", "X-Original-URI: /",
		}, want{ok: false}},
		{"nginx: X-Forwarded-Uri is no fact there", []string{
			"GET /auth/nginx HTTP/1.1", "Host: app.example.com",
			"X-Original-Method: GET", "X-Original-URI: /real", "X-Forwarded-Uri: /spoofed", "X-Forwarded-Uri: /twice",
		}, want{true, "GET", "app.example.com", "/real", "http"}},
		{"render: same facts as nginx", []string{
			"OPTIONS /auth/nginx/render HTTP/1.1", "Host: app.example.com",
			"X-Original-Method: OPTIONS", "X-Original-URI: /api", "X-Forwarded-Proto: HTTPS",
		}, want{true, "OPTIONS", "app.example.com", "/api", "https"}},
		{"render: two X-Original-Method", []string{
			"GET /auth/nginx/render HTTP/1.1", "Host: app.example.com",
			"X-Original-Method: GET", "X-Original-Method: GET", "X-Original-URI: /",
		}, want{ok: false}},
		{"answer: method and target from the auth request, host from X-Forwarded-Host", []string{
			"OPTIONS /auth/answer/api/items?x=1 HTTP/1.1", "Host: accessgate:9002", "X-Forwarded-Host: app.example.com",
		}, want{true, "OPTIONS", "app.example.com", "/api/items?x=1", "http"}},
		{"answer: host falls back to Host", []string{
			"OPTIONS /auth/answer/ HTTP/1.1", "Host: app.example.com",
		}, want{true, "OPTIONS", "app.example.com", "/", "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hr := readRaw(t, tt.lines...)
			ep, rest, found := route(hr.RequestURI)
			if !found {
				t.Fatalf("route(%q): no endpoint", hr.RequestURI)
			}
			r, ok := requestFrom(ep, rest, hr)
			if ok != tt.want.ok {
				t.Fatalf("requestFrom ok = %v, want %v (request %+v)", ok, tt.want.ok, r)
			}
			if !ok {
				return
			}
			got := want{ok, r.Method, r.Host, r.Path, r.Scheme}
			if got != tt.want {
				t.Errorf("requestFrom = %+v, want %+v", got, tt.want)
			}
			for k, v := range map[string]string{":method": r.Method, ":authority": r.Host, ":path": r.Path, ":scheme": r.Scheme} {
				if r.Headers[k] != v {
					t.Errorf("headers[%s] = %q, want %q", k, r.Headers[k], v)
				}
			}
		})
	}
}

// TestRequestFromHeaders checks which headers of the auth request become
// headers of the original request.
func TestRequestFromHeaders(t *testing.T) {
	hr := readRaw(t,
		"GET /auth/forward HTTP/1.1",
		"Host: accessgate",
		"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /", "X-Forwarded-Proto: https",
		"X-Original-URI: /spoof", "X-Original-Method: OPTIONS", "X-Accessgate-Application: dashboard",
		"X-Forwarded-Upgrade: websocket", "X-Forwarded-Client-Cert: Cert=",
		"Cookie: a=1", "Cookie: CF_Authorization=tok",
		"Origin: https://www.example.com",
		"Access-Control-Request-Method: PUT",
		"Accept: text/html", "Accept: application/json",
		"Cf-Access-Client-Id: id.access",
		"Connection: keep-alive, X-Secret-Hop",
		"X-Secret-Hop: dropped",
		"Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers", "Trailer: x", "Upgrade: h2c",
		"Content-Length: 0",
		"X-Request-Id: req-1",
	)
	r, ok := requestFrom(Forward, "", hr)
	if !ok {
		t.Fatal("requestFrom refused a valid request")
	}
	want := map[string]string{
		"cookie":                        "a=1; CF_Authorization=tok",
		"origin":                        "https://www.example.com",
		"access-control-request-method": "PUT",
		"accept":                        "text/html,application/json",
		"cf-access-client-id":           "id.access",
		"x-request-id":                  "req-1",
		"upgrade":                       "websocket", // from X-Forwarded-Upgrade, never the auth hop's Upgrade
		":method":                       "GET",
		":authority":                    "app.example.com",
		":path":                         "/",
		":scheme":                       "https",
	}
	if !reflect.DeepEqual(r.Headers, want) {
		t.Errorf("headers =\n%v\nwant\n%v", r.Headers, want)
	}
	// The binding fact is carried, marked as a fact (the decision reads it
	// only under require_application_binding), and the upgrade fact is the
	// request's Upgrade.
	if r.Application != "dashboard" || !r.ApplicationBound || !r.ApplicationFromFact {
		t.Errorf("binding = %q bound %v fact %v, want dashboard from the fact", r.Application, r.ApplicationBound, r.ApplicationFromFact)
	}
	if r.Upgrade != "websocket" {
		t.Errorf("Upgrade = %q, want websocket", r.Upgrade)
	}
}

// TestRequestFromSource checks the source-address rule: the rightmost
// X-Forwarded-For entry, else the TCP peer; the entries left of it are the
// original request's X-Forwarded-For; several lines are one list.
func TestRequestFromSource(t *testing.T) {
	tests := []struct {
		name     string
		xff      []string
		peer     string
		wantSrc  string // "" = invalid
		wantPrev string
	}{
		{"no header: the peer", nil, "192.0.2.1:5000", "192.0.2.1", ""},
		{"no header, IPv4-mapped peer", nil, "[::ffff:192.0.2.1]:5000", "192.0.2.1", ""},
		{"one entry", []string{"198.51.100.7"}, "127.0.0.1:1", "198.51.100.7", ""},
		{"rightmost, never leftmost", []string{"203.0.113.9, 10.0.0.1, 198.51.100.7"}, "127.0.0.1:1", "198.51.100.7", "203.0.113.9, 10.0.0.1"},
		{"several lines are one list", []string{"203.0.113.9", "10.0.0.1", "198.51.100.7"}, "127.0.0.1:1", "198.51.100.7", "203.0.113.9,10.0.0.1"},
		{"entry with a port", []string{"198.51.100.7:51000"}, "127.0.0.1:1", "198.51.100.7", ""},
		{"IPv6 in brackets with a port", []string{"[2001:db8::1]:443"}, "127.0.0.1:1", "2001:db8::1", ""},
		{"bare IPv6", []string{"2001:db8::1"}, "127.0.0.1:1", "2001:db8::1", ""},
		{"not an address: unknown", []string{"unknown"}, "127.0.0.1:1", "", ""},
		{"not an address: named port", []string{"198.51.100.7:http"}, "127.0.0.1:1", "", ""},
		{"not an address: hex", []string{"0x7f.1"}, "127.0.0.1:1", "", ""},
		{"not an address: zone", []string{"fe80::1%eth0"}, "127.0.0.1:1", "", ""},
		{"empty header: the peer", []string{""}, "192.0.2.1:5000", "192.0.2.1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := []string{"GET /auth/envoy/ HTTP/1.1", "Host: app.example.com"}
			for _, v := range tt.xff {
				lines = append(lines, "X-Forwarded-For: "+v)
			}
			hr := readRaw(t, lines...)
			hr.RemoteAddr = tt.peer
			r, ok := requestFrom(Envoy, "/", hr)
			if !ok {
				t.Fatal("requestFrom refused the request")
			}
			got := ""
			if r.SourceIP.IsValid() {
				got = r.SourceIP.String()
			}
			if got != tt.wantSrc || r.Headers["x-forwarded-for"] != tt.wantPrev {
				t.Errorf("source = %q, x-forwarded-for = %q; want %q, %q", got, r.Headers["x-forwarded-for"], tt.wantSrc, tt.wantPrev)
			}
		})
	}
}

func TestClientCert(t *testing.T) {
	pem := "-----BEGIN CERTIFICATE-----\nMIIB+x/y==\n-----END CERTIFICATE-----\n"
	enc := url.PathEscape(pem)
	tests := []struct {
		name   string
		give   string
		want   string
		wantOK bool
	}{
		{"Envoy's form", `By=spiffe://x;Hash=abc;Cert="` + enc + `";Subject="CN=a,O=b"`, pem, true},
		{"unquoted", "Cert=" + enc, pem, true},
		{"nginx without a client certificate", "Cert=", "", true},
		{"no Cert field", "Hash=abc;Subject=x", "", true},
		{"case of the key", "cert=" + enc, pem, true},
		{"a '+' left unencoded stays a '+'", "Cert=a+b", "a+b", true},
		{"last element wins", `Cert="` + url.PathEscape("first") + `",Cert="` + enc + `"`, pem, true},
		{"quoted comma inside an element", `Subject="CN=a,b";Cert=` + enc, pem, true},
		{"bad percent-encoding", "Cert=%zz", "", false},
	}
	for _, tt := range tests {
		got, ok := clientCert(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s: clientCert(%q) = %q, %v, want %q, %v", tt.name, tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
	// Through requestFrom: the request's ClientCert, and a 400 for a bad one.
	hr := readRaw(t, "GET /auth/envoy/ HTTP/1.1", "Host: app.example.com", "X-Forwarded-Client-Cert: Hash=1;Cert=\""+enc+"\"")
	if r, ok := requestFrom(Envoy, "/", hr); !ok || r.ClientCert != pem {
		t.Errorf("requestFrom: ClientCert = %q, ok %v; want the PEM", r.ClientCert, ok)
	} else if _, carried := r.Headers["x-forwarded-client-cert"]; carried {
		t.Error("X-Forwarded-Client-Cert carried as an ordinary header")
	}
	hr = readRaw(t, "GET /auth/envoy/ HTTP/1.1", "Host: app.example.com", "X-Forwarded-Client-Cert: Cert=%zz")
	if _, ok := requestFrom(Envoy, "/", hr); ok {
		t.Error("requestFrom accepted an undecodable certificate")
	}
}

// TestRequestFromHeaderBytes: the header count handed to the engine is the
// rebuilt map's exact size, or 0 (unknown: the engine counts) when two
// names of the incoming header land on one lower-case name, which net/http
// never produces but a handler-built request can.
func TestRequestFromHeaderBytes(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		exact  bool
	}{
		{"canonical names", http.Header{"Accept": {"a"}, "Cookie": {"x=1", "y=2"}, "X-Custom-Thing": {"v"}}, true},
		{"one name twice", http.Header{"X-Dup": {"first"}, "x-dup": {"second, longer"}}, false},
		{"every kind of entry", nil, true},
	}
	// Every kind of entry the map gets: carried headers (joined
	// duplicates), the left part of X-Forwarded-For, the upgrade fact and
	// the pseudo-headers; facts and hop-by-hop headers left out.
	full := readRaw(t,
		"GET /auth/forward HTTP/1.1",
		"Host: accessgate",
		"X-Forwarded-Method: GET", "X-Forwarded-Host: app.example.com", "X-Forwarded-Uri: /x?y=1", "X-Forwarded-Proto: https",
		"X-Forwarded-For: 198.51.100.1, 203.0.113.9", "X-Forwarded-Upgrade: websocket",
		"Cookie: a=1", "Cookie: CF_Authorization=tok", "Accept: text/html", "Accept: application/json",
		"Connection: keep-alive, X-Secret-Hop", "X-Secret-Hop: dropped", "Upgrade: h2c",
		"X-Request-Id: req-1",
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/auth/forward", nil)
			if tt.header == nil {
				r = full
			} else {
				r.Header = tt.header
				r.Header.Set(hForwardedMethod, "GET")
				r.Header.Set(hForwardedHost, "app.example.com")
				r.Header.Set(hForwardedURI, "/")
			}
			req, ok := requestFrom(Forward, "", r)
			if !ok {
				t.Fatal("requestFrom refused the request")
			}
			n := 0
			for k, v := range req.Headers {
				n += len(k) + len(v)
			}
			want := 0
			if tt.exact {
				want = n
			}
			if req.HeaderBytes != want {
				t.Errorf("HeaderBytes = %d, want %d (map size %d)", req.HeaderBytes, want, n)
			}
		})
	}
}
