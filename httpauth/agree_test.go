package httpauth_test

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/httpauth"
)

// fixed decides every request the same way.
type fixed struct{ d authz.Decision }

func (f fixed) Decide(context.Context, *authz.Request) authz.Decision { return f.d }

const token = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIn0.c2ln"

var cors = []authz.Header{
	{Key: "access-control-allow-origin", Value: "https://www.example.com"},
	{Key: "access-control-allow-credentials", Value: "true"},
	{Key: "access-control-expose-headers", Value: "x-request-id"},
	{Key: "vary", Value: "Origin", Append: true},
}

// decisions are one Decision per kind of answer of contract section 4,
// plus the edge cases each adapter guards against.
var decisions = []struct {
	name string
	d    authz.Decision
}{
	{"forward with identity and CORS", authz.Decision{
		Verdict: authz.Forward, Status: 200, Reason: authz.ReasonAllowed, Application: "dashboard", Policy: "staff",
		Headers: []authz.Header{
			{Key: "cf-access-authenticated-user-email", Value: "alice@example.com"},
			{Key: "cf-access-jwt-assertion", Value: token},
		},
		HeadersToRemove: []string{"cf-access-client-id", "cf-access-client-secret", "cf-access-token"},
		ResponseHeaders: cors,
	}},
	{"forward with a service token", authz.Decision{
		Verdict: authz.Forward, Status: 200, Reason: authz.ReasonServiceToken, Application: "dashboard", Policy: "bots",
		Headers:         []authz.Header{{Key: "cf-access-client-id", Value: "ci.access"}},
		HeadersToRemove: []string{"cf-access-authenticated-user-email", "cf-access-jwt-assertion", "cf-access-client-secret", "cf-access-token"},
	}},
	{"forward without identity", authz.Decision{
		Verdict: authz.Forward, Status: 200, Reason: authz.ReasonBypass, Application: "dashboard", Policy: "public",
		HeadersToRemove: []string{"cf-access-authenticated-user-email", "cf-access-jwt-assertion", "cf-access-client-id", "cf-access-client-secret", "cf-access-token"},
	}},
	{"forward with a header no proxy accepts", authz.Decision{
		Verdict: authz.Forward, Status: 200, Reason: authz.ReasonAllowed, Application: "dashboard",
		Headers: []authz.Header{
			{Key: "cf-access-authenticated-user-email", Value: "eve@example.com\r\nx-admin: 1"},
			{Key: "cf-access-jwt-assertion", Value: token},
		},
		HeadersToRemove: []string{"cf-access-client-id"},
		ResponseHeaders: []authz.Header{{Key: "access-control-allow-origin", Value: "https://a\nb"}},
	}},
	{"preflight allowed", authz.Decision{
		Verdict: authz.Deny, Status: 204, Reason: authz.ReasonPreflight, Application: "dashboard",
		ResponseHeaders: []authz.Header{
			{Key: "access-control-allow-origin", Value: "https://www.example.com"},
			{Key: "access-control-allow-methods", Value: "GET, POST, PUT"},
			{Key: "access-control-allow-headers", Value: "content-type"},
			{Key: "access-control-max-age", Value: "600"},
			{Key: "access-control-allow-credentials", Value: "true"},
			{Key: "vary", Value: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", Append: true},
		},
	}},
	{"preflight refused", authz.Decision{
		Verdict: authz.Deny, Status: 403, Reason: authz.ReasonPreflightOrigin, Application: "dashboard",
		ResponseHeaders: []authz.Header{{Key: "content-type", Value: "application/json"}, {Key: "cache-control", Value: "no-store"}},
		Body:            `{"error":"forbidden","reason":"preflight_origin"}`,
	}},
	{"redirect", authz.Decision{
		Verdict: authz.Deny, Status: 302, Reason: authz.ReasonTokenMissing, Application: "dashboard",
		ResponseHeaders: []authz.Header{
			{Key: "location", Value: "https://team.example.com/cdn-cgi/access/login/app.example.com?kid=aud&redirect_url=https%3A%2F%2Fapp.example.com%2F"},
			{Key: "cache-control", Value: "no-store"},
			{Key: "vary", Value: "Origin", Append: true},
		},
	}},
	{"unauthenticated with CORS", authz.Decision{
		Verdict: authz.Deny, Status: 401, Reason: authz.ReasonTokenExpired, Application: "dashboard",
		ResponseHeaders: append([]authz.Header{
			{Key: "content-type", Value: "application/json"},
			{Key: "cache-control", Value: "no-store"},
			{Key: "www-authenticate", Value: `Bearer realm="dashboard"`},
		}, cors...),
		Body: `{"error":"unauthenticated","reason":"token_expired","login_url":"https://team.example.com/x"}`,
	}},
	{"forbidden page", authz.Decision{
		Verdict: authz.Deny, Status: 403, Reason: authz.ReasonBlocked, Application: "dashboard", Policy: "block",
		ResponseHeaders: []authz.Header{{Key: "content-type", Value: "text/html; charset=utf-8"}, {Key: "cache-control", Value: "no-store"}},
		Body:            "<!doctype html><p>Forbidden</p>\n",
	}},
	{"bad request", authz.BadRequest()},
	{"no verdict fails closed", authz.Decision{Reason: authz.ReasonNoApplication}},
	{"a status no client can get fails closed", authz.Decision{Verdict: authz.Deny, Status: 999, Reason: authz.ReasonBlocked}},
}

// answer is what a client (through Envoy) would get, reduced to what both
// adapters must agree on.
type answer struct {
	Status  int
	Headers map[string][]string // lower-case names, in order per name
	Remove  []string            // sorted
	Body    string
}

// fromGRPC applies a CheckResponse as Envoy does: OVERWRITE sets,
// APPEND adds another value.
func fromGRPC(cr *authv3.CheckResponse) answer {
	a := answer{Headers: map[string][]string{}}
	apply := func(opts []*corev3.HeaderValueOption) {
		for _, o := range opts {
			k := strings.ToLower(o.GetHeader().GetKey())
			if o.GetAppendAction() == corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				a.Headers[k] = append(a.Headers[k], o.GetHeader().GetValue())
			} else {
				a.Headers[k] = []string{o.GetHeader().GetValue()}
			}
		}
	}
	if cr.GetStatus().GetCode() == int32(codes.OK) {
		ok := cr.GetOkResponse()
		a.Status = 200
		apply(ok.GetHeaders())
		apply(ok.GetResponseHeadersToAdd())
		a.Remove = append(a.Remove, ok.GetHeadersToRemove()...)
	} else {
		den := cr.GetDeniedResponse()
		a.Status = int(den.GetStatus().GetCode())
		apply(den.GetHeaders())
		a.Body = den.GetBody()
	}
	sort.Strings(a.Remove)
	return a
}

// fromHTTP reads an /auth/envoy answer as Envoy's http_service does: a
// 200's x-envoy-auth-headers-to-remove is the removal list; net/http's own
// Date and Content-Length are no part of the decision.
func fromHTTP(rec *httptest.ResponseRecorder) answer {
	a := answer{Status: rec.Code, Headers: map[string][]string{}, Body: rec.Body.String()}
	for k, v := range rec.Result().Header {
		switch k {
		case "Date", "Content-Length":
			continue
		case "X-Envoy-Auth-Headers-To-Remove":
			for _, name := range strings.Split(v[0], ",") {
				a.Remove = append(a.Remove, strings.TrimSpace(name))
			}
			continue
		}
		a.Headers[strings.ToLower(k)] = v
	}
	sort.Strings(a.Remove)
	return a
}

// TestAdaptersAgree feeds the same decisions to the gRPC adapter
// (envoy.Server.Check) and to /auth/envoy, and compares status, headers,
// removals and body: the two answers of one decision cannot drift.
func TestAdaptersAgree(t *testing.T) {
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Host: "app.example.com", Path: "/", Scheme: "https"},
	}}}
	for _, tt := range decisions {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := envoy.NewServer(fixed{tt.d}, nil).Check(context.Background(), cr)
			if err != nil {
				t.Fatal(err)
			}
			grpcAnswer := fromGRPC(resp)

			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/auth/envoy/", nil)
			req.Host = "app.example.com"
			req.Header.Set("X-Forwarded-Proto", "https")
			httpauth.NewServer(fixed{tt.d}, nil).ServeHTTP(rec, req)
			httpAnswer := fromHTTP(rec)

			if !reflect.DeepEqual(grpcAnswer, httpAnswer) {
				t.Errorf("answers differ for one decision:\n gRPC %+v\n HTTP %+v", grpcAnswer, httpAnswer)
			}
			// Guard the comparison itself: a forward must show its
			// headers, removals and status on both sides.
			if tt.d.Verdict == authz.Forward && (httpAnswer.Status != 200 || len(httpAnswer.Remove) == 0) {
				t.Errorf("forward answered %d with removals %v", httpAnswer.Status, httpAnswer.Remove)
			}
			if tt.d.Verdict != authz.Forward && slices.Contains([]int{200, 0}, httpAnswer.Status) {
				t.Errorf("a deny answered %d", httpAnswer.Status)
			}
		})
	}
}

// recorder keeps the request it was asked about.
type recorder struct{ got *authz.Request }

func (r *recorder) Decide(_ context.Context, req *authz.Request) authz.Decision {
	cp := *req
	cp.Headers = maps.Clone(req.Headers)
	r.got = &cp
	return authz.BadRequest()
}

// TestAdaptersBuildTheSameRequest sends one browser request the way Envoy
// describes it over gRPC (a CheckRequest) and over http_service (an
// /auth/envoy request with the allowed headers and the X-Forwarded-For
// Envoy appends the peer to), and compares the authz.Request each adapter
// hands to the decision. Two differences are by design: over gRPC the
// peer is source.address and also the last X-Forwarded-For entry, over
// HTTP it is that last entry, taken off the list (trusted_proxies reads
// both the same way; TestAnswerTable checks it); and X-Forwarded-Proto is
// a fact over HTTP (the scheme), not a carried header.
func TestAdaptersBuildTheSameRequest(t *testing.T) {
	hdr := map[string]string{
		"accept":                        "application/json",
		"cookie":                        "a=1; CF_Authorization=tok",
		"origin":                        "https://www.example.com",
		"access-control-request-method": "PUT",
		"sec-fetch-mode":                "cors",
		"referer":                       "https://www.example.com/page",
		"cf-access-client-id":           "ci.access",
		"x-request-id":                  "req-1",
		"x-forwarded-proto":             "https",
	}
	const client, peer = "203.0.113.9", "10.0.0.7"

	grpcHeaders := maps.Clone(hdr)
	grpcHeaders[":authority"] = "app.example.com:8443"
	grpcHeaders[":method"] = "PUT"
	grpcHeaders[":path"] = "/api/items?page=2"
	grpcHeaders[":scheme"] = "https"
	grpcHeaders["x-forwarded-for"] = client + "," + peer
	cr := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: peer, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "PUT", Host: "app.example.com:8443", Path: "/api/items?page=2", Scheme: "https", Headers: grpcHeaders,
		}},
	}}
	var viaGRPC recorder
	if _, err := envoy.NewServer(&viaGRPC, nil).Check(context.Background(), cr); err != nil {
		t.Fatal(err)
	}

	req := httptest.NewRequest("PUT", "/auth/envoy/api/items?page=2", nil)
	req.Host = "app.example.com:8443"
	req.RemoteAddr = "127.0.0.1:5555" // Envoy's own address, never the client's
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Forwarded-For", client+","+peer)
	var viaHTTP recorder
	httpauth.NewServer(&viaHTTP, nil).ServeHTTP(httptest.NewRecorder(), req)

	g, h := viaGRPC.got, viaHTTP.got
	if g == nil || h == nil {
		t.Fatal("an adapter never asked the decision")
	}
	if g.SourceIP != h.SourceIP || g.SourceIP.String() != peer {
		t.Errorf("source: gRPC %v, HTTP %v, want %s for both", g.SourceIP, h.SourceIP, peer)
	}
	if g.Headers["x-forwarded-for"] != client+","+peer || h.Headers["x-forwarded-for"] != client {
		t.Errorf("x-forwarded-for: gRPC %q, HTTP %q", g.Headers["x-forwarded-for"], h.Headers["x-forwarded-for"])
	}
	if _, carried := h.Headers["x-forwarded-proto"]; carried || g.Scheme != h.Scheme {
		t.Errorf("X-Forwarded-Proto over HTTP: carried %v, scheme %q; want only the scheme %q", carried, h.Scheme, g.Scheme)
	}
	// HeaderBytes is what each adapter knows of the headers' size: the
	// HTTP adapter counts while building the map, so its count is exact.
	n := 0
	for k, v := range h.Headers {
		n += len(k) + len(v)
	}
	if h.HeaderBytes != n {
		t.Errorf("HTTP HeaderBytes = %d, want the rebuilt headers' %d", h.HeaderBytes, n)
	}
	delete(g.Headers, "x-forwarded-for")
	delete(h.Headers, "x-forwarded-for")
	delete(g.Headers, "x-forwarded-proto")
	g.SourceIP, h.SourceIP = netip.Addr{}, netip.Addr{}
	g.HeaderBytes, h.HeaderBytes = 0, 0
	if !reflect.DeepEqual(g, h) {
		t.Errorf("the adapters built different requests:\n gRPC %+v\n HTTP %+v", g, h)
	}
}
