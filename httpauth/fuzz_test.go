package httpauth

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/authz"
)

// FuzzHTTPRequest feeds raw auth requests, parsed as net/http parses them,
// to every endpoint's fact parsing and to the whole handler. Properties:
// no panic; a request refused when a fact the endpoint reads comes twice;
// an accepted request carries no fact and no hop-by-hop header, has its
// facts as pseudo-headers and a scheme of http or https; every answer has a
// status a client can get.
func FuzzHTTPRequest(f *testing.F) {
	seeds := []string{
		"GET /auth/forward HTTP/1.1\r\nHost: a\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: /x?y\r\n\r\n",
		"GET /auth/nginx HTTP/1.1\r\nHost: app.example.com\r\nX-Original-Method: OPTIONS\r\nX-Original-URI: /\r\nOrigin: https://www.example.com\r\nAccess-Control-Request-Method: PUT\r\n\r\n",
		"OPTIONS /auth/envoy/a/b?c=d HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-For: 1.2.3.4, [::1]:80\r\nConnection: x-a, close\r\nX-A: 1\r\n\r\n",
		"GET /auth/answer/ HTTP/1.1\r\nHost: x\r\nX-Forwarded-Client-Cert: By=a;Cert=\"%2D%2D\";Subject=\"a,b\"\r\n\r\n",
		"GET /auth/nginx/render?x HTTP/1.1\r\nHost: h:1\r\nX-Original-Method: GET\r\nX-Original-Uri: /cdn-cgi/access/x\r\nX-Original-Uri: /b\r\n\r\n",
		"GET /auth/forward HTTP/1.1\r\nHost: a\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Host: app.example.com\r\nX-Forwarded-Uri: /\r\nX-Forwarded-Proto: HTTPS\r\nX-Forwarded-Upgrade: websocket\r\nCookie: a=b\r\nCookie: c=d\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	forward := authz.Decision{Verdict: authz.Forward, Status: 200, Reason: authz.ReasonAllowed,
		Headers: []authz.Header{{Key: "cf-access-authenticated-user-email", Value: "a@example.com"}}, HeadersToRemove: []string{"cf-access-token"}}
	srv := NewServer(deciderFunc(func(context.Context, *authz.Request) authz.Decision { return forward }), nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			return
		}
		hr.RemoteAddr = "192.0.2.1:1234"
		ep, rest, found := route(hr.RequestURI)
		eps := []struct {
			ep   Endpoint
			rest string
		}{{ep, rest}}
		if !found {
			eps = nil
			for _, e := range Endpoints {
				eps = append(eps, struct {
					ep   Endpoint
					rest string
				}{e, hr.RequestURI})
			}
		}
		for _, e := range eps {
			r, ok := requestFrom(e.ep, e.rest, hr)
			if r == nil {
				t.Fatalf("%v: nil request", e.ep)
			}
			for _, name := range singleFacts[e.ep] {
				if len(hr.Header[name]) > 1 && ok {
					t.Fatalf("%v: %s given %d times, accepted", e.ep, name, len(hr.Header[name]))
				}
			}
			if !ok {
				continue
			}
			if r.Scheme != "http" && r.Scheme != "https" {
				t.Fatalf("%v: scheme %q", e.ep, r.Scheme)
			}
			for k := range r.Headers {
				canon := http.CanonicalHeaderKey(k)
				if facts[canon] && k != "x-forwarded-for" {
					t.Fatalf("%v: fact %s carried as a header", e.ep, k)
				}
				if hopByHop[canon] && k != "upgrade" {
					t.Fatalf("%v: hop-by-hop %s carried", e.ep, k)
				}
				if k != strings.ToLower(k) {
					t.Fatalf("%v: header name %q not lower-case", e.ep, k)
				}
			}
			if _, ok := r.Headers["upgrade"]; ok && first(hr.Header, hForwardedUpg, "") == "" {
				t.Fatalf("%v: upgrade carried without X-Forwarded-Upgrade", e.ep)
			}
			if r.Headers[":method"] != r.Method || r.Headers[":authority"] != r.Host || r.Headers[":path"] != r.Path || r.Headers[":scheme"] != r.Scheme {
				t.Fatalf("%v: pseudo-headers %v disagree with %+v", e.ep, r.Headers, r)
			}
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, hr.WithContext(context.Background()))
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("answer status %d", rec.Code)
		}
	})
}
