package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// envoyRequest is what Envoy sends for a browser's GET with the token in
// the cookie (and, carelessly, in the query too).
func envoyRequest(token string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: "203.0.113.10", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 40000}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "app.example.com", Scheme: "https", Path: "/reports?access_token=" + token,
			Headers: map[string]string{
				":authority": "app.example.com", ":method": "GET", ":path": "/reports?access_token=" + token, ":scheme": "https",
				"accept":        "application/json",
				"cookie":        "theme=dark; CF_Authorization=" + token,
				"authorization": "Bearer " + token,
				"x-request-id":  "req-e2e-1",
			},
		}},
	}}
}

// TestServeEndToEnd drives the running server over real gRPC with the real
// engine and keys: a decision is made, counted and logged without the
// token, and a policy change applies to the next check.
func TestServeEndToEnd(t *testing.T) {
	d := demoDir(t)
	s := startServe(t, loopbackEnv(map[string]string{envLogLevel: "debug"}), "--config", d.policy)
	client := authv3.NewAuthorizationClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	resp, err := client.Check(ctx, envoyRequest(d.token))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := resp.ValidateAll(); err != nil {
		t.Fatalf("Check: invalid response: %v", err)
	}
	if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK {
		t.Fatalf("Check alice: status %v, want OK (%v)", c, resp)
	}
	var email string
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "cf-access-authenticated-user-email" {
			email = h.GetHeader().GetValue()
		}
	}
	if email != "alice@example.com" {
		t.Errorf("Check alice: identity header = %q, want alice@example.com", email)
	}
	if v := s.metric(`accessgate_decisions_total{application="dashboard",endpoint="grpc",reason="allowed"}`); v != 1 {
		t.Errorf("decisions_total{allowed} = %v, want 1", v)
	}
	if v := s.metric(`accessgate_check_duration_seconds_count{endpoint="grpc"}`); v != 1 {
		t.Errorf("check_duration_seconds_count = %v, want 1", v)
	}

	// The decision line is there, with the path but never its query, and
	// no log line anywhere holds the token.
	logs := s.stderr.String()
	if !strings.Contains(logs, `"msg":"decision"`) || !strings.Contains(logs, `"request_id":"req-e2e-1"`) || !strings.Contains(logs, `"path":"/reports"`) {
		t.Errorf("no decision line with request id and path:\n%s", logs)
	}
	if strings.Contains(logs, d.token) || strings.Contains(logs, "access_token") {
		t.Errorf("logs hold the token or the query:\n%s", logs)
	}

	// Block everyone at example.com: the next check of alice is refused.
	orig, err := os.ReadFile(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	blocked := strings.Replace(string(orig), "email_domain: [contractor.example.com]", "email_domain: [contractor.example.com, example.com]", 1)
	if blocked == string(orig) {
		t.Fatal("demo policy changed: block rule not found")
	}
	writeFile(t, d.dir, "policy.yaml", blocked)
	eventually(t, "the new block rule applied", func() bool {
		resp, err := client.Check(ctx, envoyRequest(d.token))
		return err == nil && resp.GetDeniedResponse().GetStatus().GetCode() == 403
	})
	if strings.Contains(s.stderr.String(), d.token) {
		t.Error("logs hold the token after the reload")
	}
}

// TestServeDemoDecisions: the demo's /demo/NAME pages answer with the live
// engine what the intro promises.
func TestServeDemoDecisions(t *testing.T) {
	s := startServe(t, loopbackEnv(nil))
	for name, want := range map[string]string{
		"allow":     `"reason": "allowed"`,
		"preflight": `"status": 204`,
		"redirect":  `"status": 302`,
		"blocked":   `"reason": "blocked"`,
	} {
		if code, body := s.get("/demo/" + name); code != 200 || !strings.Contains(body, want) {
			t.Errorf("/demo/%s = %d %s, want %s", name, code, body, want)
		}
	}
}
