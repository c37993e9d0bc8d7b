package httpauth

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/accessgate/accessgate/authz"
)

// exchange is one answer from the real server.
type exchange struct {
	status int
	header http.Header
	body   string
}

// ask sends one auth request to the server over a new HTTP/1.1 connection.
func (s *served) ask(t *testing.T, method, target string, hdr ...string) exchange {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{resp.StatusCode, resp.Header, string(b)}
}

func reasonOf(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Reason string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	return v.Reason
}

// forwardFacts are what Traefik and Caddy write for a GET of target.
func forwardFacts(method, target string) []string {
	return []string{"X-Forwarded-Method", method, "X-Forwarded-Host", "app.example.com", "X-Forwarded-Uri", target, "X-Forwarded-Proto", "https"}
}

// nginxFacts are what the shipped nginx configuration writes.
func nginxFacts(method, target string) []string {
	return []string{"X-Original-Method", method, "X-Original-URI", target, "X-Forwarded-Host", "app.example.com:8443", "X-Forwarded-Proto", "https"}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestAnswerTable drives every endpoint with real decisions from a real
// Engine and checks the answer table of contract section 7.
func TestAnswerTable(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine)
	alice := "CF_Authorization=" + f.token(t, "alice@example.com")
	bob := "CF_Authorization=" + f.token(t, "bob@contractor.example.com")
	preflight := []string{"Origin", "https://www.example.com", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-custom"}
	navigation := []string{"Accept", "text/html", "Sec-Fetch-Mode", "navigate"}
	api := []string{"Accept", "application/json", "Origin", "https://www.example.com"}

	t.Run("forward: 200 with the headers to set and CORS", func(t *testing.T) {
		for _, tt := range []struct {
			target string
			hdr    []string
		}{
			{"/auth/forward", cat(forwardFacts("GET", "/api"), api, []string{"Cookie", alice})},
			{"/auth/nginx", cat(nginxFacts("GET", "/api"), api, []string{"Cookie", alice})},
		} {
			a := s.ask(t, "GET", tt.target, tt.hdr...)
			if a.status != 200 || a.body != "" {
				t.Fatalf("%s: %d %q, want 200 without a body", tt.target, a.status, a.body)
			}
			if got := a.header.Get("Cf-Access-Authenticated-User-Email"); got != "alice@example.com" {
				t.Errorf("%s: user email = %q", tt.target, got)
			}
			if got := a.header.Get("Access-Control-Allow-Origin"); got != "https://www.example.com" {
				t.Errorf("%s: Access-Control-Allow-Origin = %q", tt.target, got)
			}
			if got := a.header.Get(headersToRemove); got != "" {
				t.Errorf("%s: %s = %q, only /auth/envoy sends it", tt.target, headersToRemove, got)
			}
		}
	})

	t.Run("envoy: 200 with the removal list", func(t *testing.T) {
		a := s.ask(t, "GET", "/auth/envoy/api?x=1", cat([]string{"Host", "app.example.com", "X-Forwarded-Proto", "https", "Cookie", alice})...)
		if a.status != 200 {
			t.Fatalf("status %d %q, want 200", a.status, a.body)
		}
		// The order is the decision's; what counts is the set.
		got := strings.Split(a.header.Get(headersToRemove), ", ")
		slices.Sort(got)
		if want := []string{"cf-access-client-id", "cf-access-client-secret", "cf-access-token"}; !slices.Equal(got, want) {
			t.Errorf("%s = %q, want the set %q", headersToRemove, got, want)
		}
	})

	t.Run("preflight: answered at envoy, answer and render; misrouted at forward; bare 401 at nginx", func(t *testing.T) {
		for _, tt := range []struct {
			method, target string
			hdr            []string
			want           int
		}{
			{"OPTIONS", "/auth/envoy/api", cat([]string{"Host", "app.example.com"}, preflight), 204},
			{"OPTIONS", "/auth/answer/api", cat([]string{"X-Forwarded-Host", "app.example.com"}, preflight), 204},
			{"OPTIONS", "/auth/nginx/render", cat(nginxFacts("OPTIONS", "/api"), preflight), 204},
			{"GET", "/auth/nginx", cat(nginxFacts("OPTIONS", "/api"), preflight), 401},
			{"GET", "/auth/forward", cat(forwardFacts("OPTIONS", "/api"), preflight), 403},
		} {
			a := s.ask(t, tt.method, tt.target, tt.hdr...)
			if a.status != tt.want {
				t.Errorf("%s: status %d, want %d", tt.target, a.status, tt.want)
			}
			switch tt.want {
			case 204:
				if got := a.header.Get("Access-Control-Allow-Methods"); got != "GET, POST, PUT" {
					t.Errorf("%s: Access-Control-Allow-Methods = %q", tt.target, got)
				}
			case 401:
				if a.body != "" || a.header.Get("Www-Authenticate") != "" {
					t.Errorf("%s: 401 with body %q and WWW-Authenticate %q, want neither", tt.target, a.body, a.header.Get("Www-Authenticate"))
				}
			case 403:
				if r := reasonOf(t, a.body); r != "preflight_misrouted" {
					t.Errorf("%s: reason %q, want preflight_misrouted", tt.target, r)
				}
				if got := a.header.Get("Access-Control-Allow-Origin"); got != "" {
					t.Errorf("%s: misrouted answer carries Access-Control-Allow-Origin %q", tt.target, got)
				}
			}
		}
	})

	t.Run("answer: anything but a preflight is 400", func(t *testing.T) {
		for _, hdr := range [][]string{
			{"X-Forwarded-Host", "app.example.com", "Cookie", alice},       // a forward
			{"X-Forwarded-Host", "app.example.com", "Accept", "text/html"}, // a redirect
		} {
			a := s.ask(t, "GET", "/auth/answer/api", hdr...)
			if a.status != 400 || reasonOf(t, a.body) != "bad_request" {
				t.Errorf("GET /auth/answer/api: %d %q, want 400 bad_request", a.status, a.body)
			}
		}
	})

	t.Run("navigation without a token: bare 401 at nginx, 302 at render and forward", func(t *testing.T) {
		a := s.ask(t, "GET", "/auth/nginx", cat(nginxFacts("GET", "/reports?q=1"), navigation)...)
		if a.status != 401 || a.body != "" {
			t.Errorf("/auth/nginx: %d %q, want a bare 401", a.status, a.body)
		}
		for _, tt := range []struct {
			target, wantRedirect string
			hdr                  []string
		}{
			{"/auth/nginx/render", "https://app.example.com:8443/reports?q=1", cat(nginxFacts("GET", "/reports?q=1"), navigation)},
			{"/auth/forward", "https://app.example.com/reports?q=1", cat(forwardFacts("GET", "/reports?q=1"), navigation)},
		} {
			a := s.ask(t, "GET", tt.target, tt.hdr...)
			if a.status != 302 {
				t.Fatalf("%s: status %d, want 302", tt.target, a.status)
			}
			u, err := url.Parse(a.header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Query().Get("redirect_url"); got != tt.wantRedirect {
				t.Errorf("%s: redirect_url = %q, want %q", tt.target, got, tt.wantRedirect)
			}
		}
	})

	t.Run("API call without a token: 401 JSON with CORS", func(t *testing.T) {
		a := s.ask(t, "GET", "/auth/forward", cat(forwardFacts("GET", "/api"), api)...)
		if a.status != 401 || reasonOf(t, a.body) != "token_missing" {
			t.Fatalf("status %d %q, want 401 token_missing", a.status, a.body)
		}
		if a.header.Get("Access-Control-Allow-Origin") != "https://www.example.com" || a.header.Get("Www-Authenticate") == "" {
			t.Errorf("401 headers = %v", a.header)
		}
	})

	t.Run("blocked user: 403 at forward and render, bare 401 at nginx", func(t *testing.T) {
		a := s.ask(t, "GET", "/auth/forward", cat(forwardFacts("GET", "/api"), api, []string{"Cookie", bob})...)
		if a.status != 403 || reasonOf(t, a.body) != "blocked" {
			t.Errorf("/auth/forward: %d %q, want 403 blocked", a.status, a.body)
		}
		a = s.ask(t, "GET", "/auth/nginx/render", cat(nginxFacts("GET", "/api"), api, []string{"Cookie", bob})...)
		if a.status != 403 || reasonOf(t, a.body) != "blocked" {
			t.Errorf("/auth/nginx/render: %d %q, want 403 blocked", a.status, a.body)
		}
		a = s.ask(t, "GET", "/auth/nginx", cat(nginxFacts("GET", "/api"), api, []string{"Cookie", bob})...)
		if a.status != 401 || a.body != "" {
			t.Errorf("/auth/nginx: %d %q, want a bare 401", a.status, a.body)
		}
	})

	t.Run("render: a forward is a 307 retry to the original URL, port kept", func(t *testing.T) {
		a := s.ask(t, "GET", "/auth/nginx/render", cat(nginxFacts("GET", "/api/items?page=2"), []string{"Cookie", alice})...)
		if a.status != 307 || a.header.Get("Location") != "https://app.example.com:8443/api/items?page=2" || a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("status %d, Location %q, Cache-Control %q; want 307 to https://app.example.com:8443/api/items?page=2, no-store",
				a.status, a.header.Get("Location"), a.header.Get("Cache-Control"))
		}
	})

	t.Run("missing, repeated and oversized facts: 400, the bare 401 at nginx", func(t *testing.T) {
		for _, tt := range []struct {
			target string
			hdr    []string
			want   int
		}{
			{"/auth/forward", []string{"X-Forwarded-Host", "app.example.com", "X-Forwarded-Uri", "/"}, 400},
			{"/auth/nginx", []string{"X-Original-Method", "GET"}, 401},
			{"/auth/nginx/render", []string{"X-Original-Method", "GET"}, 400},
			{"/auth/forward", cat(forwardFacts("GET", "/"), []string{"X-Forwarded-Host", "app.example.com"}), 400},
			{"/auth/nginx", cat(nginxFacts("GET", "/public"), []string{"X-Original-URI", "/public"}), 401},
			{"/auth/nginx/render", cat(nginxFacts("GET", "/public"), []string{"X-Original-URI", "/public"}), 400},
			// A fact over the limit: the rebuilt request counts it.
			{"/auth/forward", forwardFacts("GET", "/public/"+strings.Repeat("a", 64<<10)), 400},
			{"/auth/nginx", nginxFacts("GET", "/public/"+strings.Repeat("a", 64<<10)), 401},
		} {
			a := s.ask(t, "GET", tt.target, tt.hdr...)
			if a.status != tt.want {
				t.Errorf("%s %v: status %d, want %d", tt.target, tt.hdr, a.status, tt.want)
			}
			if tt.want == 400 && reasonOf(t, a.body) != "bad_request" {
				t.Errorf("%s: body %q, want bad_request", tt.target, a.body)
			}
		}
	})

	t.Run("sign-in paths are misrouted", func(t *testing.T) {
		for _, target := range []string{"/cdn-cgi/access/authorized?code=x", "/CDN-CGI/access/logout", "/cdn-cgi/access"} {
			a := s.ask(t, "GET", "/auth/forward", cat(forwardFacts("GET", target), []string{"Cookie", alice})...)
			if a.status != 403 || reasonOf(t, a.body) != "signin_misrouted" {
				t.Errorf("%s: %d %q, want 403 signin_misrouted", target, a.status, a.body)
			}
		}
		// Only the whole segment counts.
		a := s.ask(t, "GET", "/auth/forward", cat(forwardFacts("GET", "/cdn-cgi/accessx"), []string{"Cookie", alice})...)
		if a.status != 200 {
			t.Errorf("/cdn-cgi/accessx: %d, want 200", a.status)
		}
	})

	t.Run("the source address is the rightmost X-Forwarded-For entry", func(t *testing.T) {
		office := func(xff ...string) int {
			hdr := []string{"X-Forwarded-Method", "GET", "X-Forwarded-Host", "office.example.com", "X-Forwarded-Uri", "/", "Accept", "application/json"}
			for _, v := range xff {
				hdr = append(hdr, "X-Forwarded-For", v)
			}
			return s.ask(t, "GET", "/auth/forward", hdr...).status
		}
		for _, tt := range []struct {
			xff  []string
			want int
		}{
			{[]string{"192.0.2.5"}, 200},
			{[]string{"192.0.2.5, 198.51.100.1"}, 401},        // the leftmost is the client's to write
			{[]string{"192.0.2.5, 10.1.1.1"}, 200},            // a trusted proxy: read on to the left
			{[]string{"192.0.2.5", "10.1.1.1"}, 200},          // two lines, one list
			{[]string{"198.51.100.1", "192.0.2.5:4711"}, 200}, // a port is ignored
			{nil, 401}, // the peer, 127.0.0.1
		} {
			if got := office(tt.xff...); got != tt.want {
				t.Errorf("X-Forwarded-For %q: status %d, want %d", tt.xff, got, tt.want)
			}
		}
	})

	t.Run("unknown paths are 404", func(t *testing.T) {
		for _, target := range []string{"/", "/auth", "/auth/forwardx", "/metrics"} {
			if a := s.ask(t, "GET", target, "Host", "app.example.com"); a.status != 404 {
				t.Errorf("%s: status %d, want 404", target, a.status)
			}
		}
	})
}

// TestHeaderLimitCountsRebuiltRequest sends requests whose rebuilt
// original request is exactly 64 KiB and one byte more: the limit counts
// the carried headers plus the facts, not the raw auth request.
func TestHeaderLimitCountsRebuiltRequest(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine)
	base := cat(forwardFacts("GET", "/public"), []string{"X-Forwarded-For", "203.0.113.1, 192.0.2.9", "Connection", "x-hop", "X-Hop", strings.Repeat("h", 5000)})
	// size of the rebuilt request with a pad header of n bytes.
	rebuilt := func(n int) int {
		lines := []string{"GET /auth/forward HTTP/1.1", "Host: accessgate"}
		hdr := append(base, "X-Pad", strings.Repeat("p", n))
		for i := 0; i < len(hdr); i += 2 {
			lines = append(lines, hdr[i]+": "+hdr[i+1])
		}
		r, ok := requestFrom(Forward, "", readRaw(t, lines...))
		if !ok {
			t.Fatal("requestFrom refused the request")
		}
		total := 0
		for k, v := range r.Headers {
			total += len(k) + len(v)
		}
		return total
	}
	pad := 64<<10 - (rebuilt(0))
	if got := rebuilt(pad); got != 64<<10 {
		t.Fatalf("rebuilt size with pad %d = %d, want %d", pad, got, 64<<10)
	}
	for _, tt := range []struct {
		pad  int
		want int
	}{{pad, 200}, {pad + 1, 400}} {
		// Raw, so that no client adds a header of its own.
		var b strings.Builder
		b.WriteString("GET /auth/forward HTTP/1.1\r\nHost: accessgate\r\n")
		hdr := append(base, "X-Pad", strings.Repeat("p", tt.pad))
		for i := 0; i < len(hdr); i += 2 {
			b.WriteString(hdr[i] + ": " + hdr[i+1] + "\r\n")
		}
		b.WriteString("Connection: close\r\n\r\n")
		out := rawExchange(t, s.addr, b.String())
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
		if err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("rebuilt request of %d bytes: status %d, want %d", rebuilt(tt.pad), resp.StatusCode, tt.want)
		}
	}
}

// rawExchange writes raw bytes on a new connection and reads until the
// server closes it (or the deadline, a failure).
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the server closes: %v (read %q)", err, out)
	}
	return string(out)
}

// TestBodyNeverRead sends requests that announce a body over raw TCP: each
// gets one answer with Connection: close and the connection closed, also
// when the body never comes; a request smuggled in a body is never served.
func TestBodyNeverRead(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine)
	facts := "X-Forwarded-Method: GET\r\nX-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: /public\r\n"
	smuggled := "GET /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "\r\n"
	tests := []struct {
		name string
		raw  string
		want int // the decision (the bypassed /public), or net/http's own refusal
	}{
		{"Content-Length with a second request as body",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled, 200},
		{"chunked body holding a second request",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "Transfer-Encoding: chunked\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled), 200},
		{"Content-Length and Transfer-Encoding",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\n" + smuggled, 200},
		{"a 10 MB body that never comes",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "Content-Length: 10485760\r\n\r\n", 200},
		{"a chunked body that never ends",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "Transfer-Encoding: chunked\r\n\r\n1000\r\nabc", 200},
		// net/http refuses a coding other than chunked itself, before any
		// handler, and closes the connection too.
		{"Transfer-Encoding gzip",
			"POST /auth/forward HTTP/1.1\r\nHost: accessgate\r\n" + facts + "Transfer-Encoding: gzip\r\n\r\n" + smuggled, 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := rawExchange(t, s.addr, tt.raw)
			if n := strings.Count(out, "HTTP/1.1 "); n != 1 {
				t.Fatalf("got %d answers, want 1:\n%s", n, out)
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(out)), nil)
			if err != nil {
				t.Fatalf("answer %q: %v", out, err)
			}
			// ReadResponse turns the Connection header into resp.Close.
			if resp.StatusCode != tt.want || !resp.Close || !strings.Contains(out, "\r\nConnection: close\r\n") {
				t.Errorf("answer %q: want %d with Connection: close", out, tt.want)
			}
		})
	}

	// The same CL+TE request against a stock net/http server is answered
	// twice (it reads the chunked body and serves what follows): the test
	// above would catch a server that behaves like it.
	t.Run("stock net/http serves the smuggled request", func(t *testing.T) {
		var mu sync.Mutex
		n := 0
		stock := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n++
			mu.Unlock()
			w.WriteHeader(200)
		})}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = stock.Serve(l) }()
		defer stock.Close()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, tests[2].raw)
		br := bufio.NewReader(c)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range 2 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("stock answer %d: %v", i+1, err)
			}
			resp.Body.Close()
		}
	})
}

// TestKeepAliveWithoutBody: requests without a body share one connection.
func TestKeepAliveWithoutBody(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine)
	one := "GET /auth/forward HTTP/1.1\r\nHost: accessgate\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: /public\r\nContent-Length: 0\r\n\r\n"
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, one+one)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Errorf("answer %d: %d, close %v; want 200 on a kept connection", i+1, resp.StatusCode, resp.Close)
		}
	}
}

// TestSlowClientIsCut: a client that never finishes its headers is
// disconnected by the header timeout.
func TestSlowClientIsCut(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine, WithTimeouts(200*time.Millisecond, 400*time.Millisecond))
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /auth/forward HTTP/1.1\r\nHost: accessgate\r\nX-Forwarded-Method: G")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server kept the connection of a client that never finished its headers")
	}
}

// TestH2C: HTTP/2 without TLS (prior knowledge), as Envoy's http_service
// may speak it.
func TestH2C(t *testing.T) {
	f := newFixture(t)
	s := serve(t, f.engine)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("OPTIONS", "http://"+s.addr+"/auth/envoy/api", nil)
	req.Host = "app.example.com"
	req.Header.Set("Origin", "https://www.example.com")
	req.Header.Set("Access-Control-Request-Method", "PUT")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 204 {
		t.Errorf("h2c preflight: %s %d, want HTTP/2 204", resp.Proto, resp.StatusCode)
	}
}

// TestTLSListener: with a TLS config the endpoints speak HTTP/2 and
// HTTP/1.1 over TLS.
func TestTLSListener(t *testing.T) {
	f := newFixture(t)
	srv := NewServer(f.engine, nil)
	cert, pool := selfSigned(t)
	hs := srv.HTTPServer(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(l, "", "") }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx, hs)
		<-done
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+l.Addr().String()+"/auth/forward", nil)
	for i := 0; i < len(forwardFacts("GET", "/public")); i += 2 {
		req.Header.Set(forwardFacts("GET", "/public")[i], forwardFacts("GET", "/public")[i+1])
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("over TLS: %s %d, want HTTP/2 200", resp.Proto, resp.StatusCode)
	}
}

// TestDecisionLogAndObserver: one decision line per request with the
// endpoint named, never a query string, cookie or token; the observer sees
// each decision with its endpoint; a misrouted preflight is warned about
// once a minute at most.
func TestDecisionLogAndObserver(t *testing.T) {
	f := newFixture(t)
	core, logs := observer.New(zapcore.DebugLevel)
	var mu sync.Mutex
	var seen []string
	srv := NewServer(f.engine, zap.New(core), WithObserver(func(ep Endpoint, r *authz.Request, d *authz.Decision, _ time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, ep.String()+" "+string(d.Reason))
	}))
	s := serveServer(t, srv)
	tok := f.token(t, "alice@example.com")
	s.ask(t, "GET", "/auth/forward", cat(forwardFacts("GET", "/api?secret=query-value"), []string{"Cookie", "CF_Authorization=" + tok})...)
	s.ask(t, "GET", "/auth/nginx", cat(nginxFacts("GET", "/x"), []string{"Accept", "application/json"})...)
	preflight := cat(forwardFacts("OPTIONS", "/api"), []string{"Origin", "https://www.example.com", "Access-Control-Request-Method", "PUT"})
	s.ask(t, "GET", "/auth/forward", preflight...)
	s.ask(t, "GET", "/auth/forward", preflight...)

	mu.Lock()
	got := strings.Join(seen, "; ")
	mu.Unlock()
	want := "auth/forward allowed; auth/nginx token_missing; auth/forward preflight_misrouted; auth/forward preflight_misrouted"
	if got != want {
		t.Errorf("observed %q, want %q", got, want)
	}
	decisions := logs.FilterMessage("decision").All()
	if len(decisions) != 4 {
		t.Fatalf("%d decision lines, want 4", len(decisions))
	}
	if ep := decisions[1].ContextMap()["endpoint"]; ep != "auth/nginx" {
		t.Errorf("endpoint field = %v, want auth/nginx", ep)
	}
	if st := decisions[1].ContextMap()["status"]; st != int64(401) {
		t.Errorf("status field = %v, want the answered 401", st)
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
		t.Errorf("%d misrouting warnings for two misrouted preflights, want 1", n)
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{tok, "query-value", "CF_Authorization"} {
			if strings.Contains(line, secret) {
				t.Errorf("log line holds %q: %s", secret, line)
			}
		}
	}
}

// TestShutdownDrains: Shutdown lets the request in flight finish.
func TestShutdownDrains(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	d := deciderFunc(func(context.Context, *authz.Request) authz.Decision {
		close(entered)
		<-release
		return authz.Decision{Verdict: authz.Forward, Status: 200, Reason: authz.ReasonBypass}
	})
	srv := NewServer(d, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(nil, nil)
	go func() { _ = hs.Serve(l) }()
	type result struct {
		status int
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/auth/forward", nil)
		for i, h := 0, forwardFacts("GET", "/"); i < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		resp.Body.Close()
		res <- result{status: resp.StatusCode}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- srv.Shutdown(ctx, hs)
	}()
	close(release)
	if r := <-res; r.err != nil || r.status != 200 {
		t.Errorf("request in flight at shutdown: %d, %v; want 200", r.status, r.err)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("the listener still accepts after Shutdown")
	}
}

type deciderFunc func(context.Context, *authz.Request) authz.Decision

func (f deciderFunc) Decide(ctx context.Context, r *authz.Request) authz.Decision { return f(ctx, r) }
