package envoy

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/accessgate/accessgate/authz"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const demoToken = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImRlbW8ifQ.eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJl"

var corsHeaders = []authz.Header{
	{Key: "access-control-allow-origin", Value: "https://www.example.com"},
	{Key: "access-control-allow-credentials", Value: "true"},
	{Key: "access-control-expose-headers", Value: "x-request-id"},
	{Key: "vary", Value: "Origin", Append: true},
}

// goldenDecisions are one Decision per kind of answer in contract section 4.
var goldenDecisions = []struct {
	name     string
	give     authz.Decision
	wantCode codes.Code
}{
	{
		name: "forward",
		give: authz.Decision{
			Verdict: authz.Forward, Status: 200, Reason: authz.ReasonAllowed, Application: "dashboard", Policy: "staff",
			Headers: []authz.Header{
				{Key: "cf-access-authenticated-user-email", Value: "alice@example.com"},
				{Key: "cf-access-jwt-assertion", Value: demoToken},
			},
			HeadersToRemove: []string{"cf-access-client-id", "cf-access-client-secret", "cf-access-token"},
			ResponseHeaders: corsHeaders,
		},
		wantCode: codes.OK,
	},
	{
		name: "preflight",
		give: authz.Decision{
			Verdict: authz.Deny, Status: 204, Reason: authz.ReasonPreflight, Application: "dashboard",
			ResponseHeaders: []authz.Header{
				{Key: "access-control-allow-origin", Value: "https://www.example.com"},
				{Key: "access-control-allow-methods", Value: "GET, POST, PUT"},
				{Key: "access-control-allow-headers", Value: "content-type, x-requested-with"},
				{Key: "access-control-max-age", Value: "600"},
				{Key: "access-control-allow-credentials", Value: "true"},
				{Key: "vary", Value: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers", Append: true},
			},
		},
		wantCode: codes.PermissionDenied,
	},
	{
		name: "redirect",
		give: authz.Decision{
			Verdict: authz.Deny, Status: 302, Reason: authz.ReasonTokenMissing, Application: "dashboard",
			ResponseHeaders: []authz.Header{
				{Key: "location", Value: "https://team.example.com/cdn-cgi/access/login/app.example.com?kid=32eafc76&redirect_url=https%3A%2F%2Fapp.example.com%2Freport%3Fq%3D1"},
				{Key: "cache-control", Value: "no-store"},
				{Key: "vary", Value: "Origin", Append: true},
			},
		},
		wantCode: codes.Unauthenticated,
	},
	{
		name: "unauthenticated",
		give: authz.Decision{
			Verdict: authz.Deny, Status: 401, Reason: authz.ReasonTokenExpired, Application: "dashboard",
			ResponseHeaders: append([]authz.Header{
				{Key: "content-type", Value: "application/json"},
				{Key: "cache-control", Value: "no-store"},
				{Key: "www-authenticate", Value: `Bearer realm="dashboard"`},
			}, corsHeaders...),
			Body: `{"error":"unauthenticated","reason":"token_expired","login_url":"https://team.example.com/cdn-cgi/access/login/app.example.com?kid=32eafc76&redirect_url=https%3A%2F%2Fwww.example.com%2F"}`,
		},
		wantCode: codes.Unauthenticated,
	},
	{
		name: "forbidden",
		give: authz.Decision{
			Verdict: authz.Deny, Status: 403, Reason: authz.ReasonBlocked, Application: "dashboard", Policy: "block-contractors",
			ResponseHeaders: []authz.Header{
				{Key: "content-type", Value: "application/json"},
				{Key: "cache-control", Value: "no-store"},
				{Key: "vary", Value: "Origin", Append: true},
			},
			Body: `{"error":"forbidden","reason":"blocked"}`,
		},
		wantCode: codes.PermissionDenied,
	},
	{name: "bad_request", give: authz.BadRequest(), wantCode: codes.PermissionDenied},
}

func TestResponseGolden(t *testing.T) {
	for _, tt := range goldenDecisions {
		t.Run(tt.name, func(t *testing.T) {
			resp := response(&tt.give)
			if err := resp.ValidateAll(); err != nil {
				t.Fatalf("response(%s).ValidateAll() = %v", tt.name, err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantCode {
				t.Errorf("response(%s): status = %v, want %v", tt.name, got, tt.wantCode)
			}
			checkAppendActions(t, resp)
			got := marshalGolden(t, resp)
			file := filepath.Join("testdata", tt.name+".json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test ./envoy -run TestResponseGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("response(%s) =\n%s\nwant (%s)\n%s", tt.name, got, file, want)
			}
		})
	}
}

// marshalGolden renders resp as stable, indented JSON. protojson's own
// whitespace is deliberately unstable, so it is re-indented.
func marshalGolden(t *testing.T, resp *authv3.CheckResponse) []byte {
	t.Helper()
	b, err := protojson.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// checkAppendActions asserts the research note's rule: only Append headers
// append; everything else overwrites, explicitly.
func checkAppendActions(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	var all []*corev3.HeaderValueOption
	all = append(all, resp.GetOkResponse().GetHeaders()...)
	all = append(all, resp.GetOkResponse().GetResponseHeadersToAdd()...)
	all = append(all, resp.GetDeniedResponse().GetHeaders()...)
	for _, h := range all {
		want := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		if h.GetHeader().GetKey() == "vary" {
			want = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		//lint:ignore SA1019 the test checks that the deprecated append field stays unset
		if h.GetAppendAction() != want || h.GetAppend() != nil {
			//lint:ignore SA1019 the message shows the deprecated field
			t.Errorf("header %s: append_action = %v (append %v), want %v", h.GetHeader().GetKey(), h.GetAppendAction(), h.GetAppend(), want)
		}
	}
}

func TestResponseEdgeCases(t *testing.T) {
	tests := []struct {
		name       string
		give       authz.Decision
		wantCode   codes.Code
		wantHTTP   int32
		wantRemove string // must be in headers_to_remove
		notHeader  string // must not be set
	}{
		{name: "zero decision fails closed", give: authz.Decision{}, wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "status outside Envoy's enum", give: authz.Decision{Verdict: authz.Deny, Status: 999}, wantCode: codes.PermissionDenied, wantHTTP: 403},
		{name: "other status kept", give: authz.Decision{Verdict: authz.Deny, Status: 503}, wantCode: codes.PermissionDenied, wantHTTP: 503},
		{
			name: "crlf in a set header is removed instead",
			give: authz.Decision{Verdict: authz.Forward, Status: 200, Headers: []authz.Header{
				{Key: "cf-access-authenticated-user-email", Value: "a@example.com\r\nx-evil: 1"},
			}},
			wantCode: codes.OK, wantRemove: "cf-access-authenticated-user-email", notHeader: "cf-access-authenticated-user-email",
		},
		{
			name: "oversized response header dropped",
			give: authz.Decision{Verdict: authz.Forward, Status: 200, ResponseHeaders: []authz.Header{
				{Key: "access-control-allow-origin", Value: "https://" + strings.Repeat("a", authz.MaxHeaderLen)},
			}},
			wantCode: codes.OK, notHeader: "access-control-allow-origin",
		},
		{
			name: "nul in a denied header dropped",
			give: authz.Decision{Verdict: authz.Deny, Status: 302, ResponseHeaders: []authz.Header{
				{Key: "location", Value: "https://x\x00"},
			}},
			wantCode: codes.Unauthenticated, wantHTTP: 302, notHeader: "location",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := response(&tt.give)
			if err := resp.ValidateAll(); err != nil {
				t.Fatalf("response(%s).ValidateAll() = %v", tt.name, err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantCode {
				t.Errorf("response(%s): status = %v, want %v", tt.name, got, tt.wantCode)
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
				t.Errorf("response(%s): http status = %d, want %d", tt.name, got, tt.wantHTTP)
			}
			if tt.wantRemove != "" && !contains(resp.GetOkResponse().GetHeadersToRemove(), tt.wantRemove) {
				t.Errorf("response(%s): headers_to_remove = %v, want it to hold %s", tt.name, resp.GetOkResponse().GetHeadersToRemove(), tt.wantRemove)
			}
			var all []*corev3.HeaderValueOption
			all = append(all, resp.GetOkResponse().GetHeaders()...)
			all = append(all, resp.GetOkResponse().GetResponseHeadersToAdd()...)
			all = append(all, resp.GetDeniedResponse().GetHeaders()...)
			for _, h := range all {
				if h.GetHeader().GetKey() == tt.notHeader {
					t.Errorf("response(%s): header %s sent", tt.name, tt.notHeader)
				}
			}
		})
	}
}

// TestResponseDoesNotShareRemoveList checks that adding a dropped header's
// key to headers_to_remove never writes into the Decision's own list, which
// the engine may share between requests.
func TestResponseDoesNotShareRemoveList(t *testing.T) {
	shared := make([]string, 1, 4)
	shared[0] = "cf-access-client-id"
	d := authz.Decision{Verdict: authz.Forward, Status: 200, HeadersToRemove: shared, Headers: []authz.Header{{Key: "cf-access-jwt-assertion", Value: "\n"}}}
	response(&d)
	if got := shared[:cap(shared)][1]; got != "" {
		t.Errorf("response wrote %q into the decision's headers_to_remove backing array", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestResponseForwardHeaderCounts: a forward's header lists are built in
// room inside its answer while it lasts (okInline headers), and in slices
// of their own beyond; either way each list holds exactly its headers, in
// order, and growing one list never overwrites the other.
func TestResponseForwardHeaderCounts(t *testing.T) {
	headers := func(prefix string, n int) []authz.Header {
		hs := make([]authz.Header, n)
		for i := range hs {
			hs[i] = authz.Header{Key: prefix + strings.Repeat("x", i+1), Value: prefix + "value", Append: i%2 == 1}
		}
		return hs
	}
	check := func(t *testing.T, what string, got []*corev3.HeaderValueOption, want []authz.Header) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d headers, want %d", what, len(got), len(want))
		}
		for i, o := range got {
			action := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			if want[i].Append {
				action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
			}
			if o.GetHeader().GetKey() != want[i].Key || o.GetHeader().GetValue() != want[i].Value || o.GetAppendAction() != action {
				t.Errorf("%s[%d] = %v, want %+v", what, i, o, want[i])
			}
		}
	}
	for _, tt := range []struct{ set, add int }{
		{0, 0}, {2, 0}, {0, 4}, {2, 4}, {okInline, 0}, {okInline - 1, 1}, {2, okInline - 1}, {okInline, okInline}, {1, 12},
	} {
		t.Run(fmt.Sprintf("%d+%d", tt.set, tt.add), func(t *testing.T) {
			d := authz.Decision{Verdict: authz.Forward, Status: 200, Headers: headers("set-", tt.set), ResponseHeaders: headers("add-", tt.add)}
			ok := response(&d).GetOkResponse()
			check(t, "Headers", ok.GetHeaders(), d.Headers)
			check(t, "ResponseHeadersToAdd", ok.GetResponseHeadersToAdd(), d.ResponseHeaders)
			// Growing the first list must leave the second alone.
			ok.Headers = append(ok.Headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "late", Value: "v"}})
			check(t, "ResponseHeadersToAdd after an append to Headers", ok.GetResponseHeadersToAdd(), d.ResponseHeaders)
		})
	}
}
