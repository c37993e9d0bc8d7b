package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// TestServeRefusesOversizeMessage: a CheckRequest over the gRPC receive
// limit is refused with RESOURCE_EXHAUSTED before it is decoded (Envoy,
// with failure_mode_allow: false, answers that with a denial; see
// test/e2e/faults_test.go), and the server keeps serving.
func TestServeRefusesOversizeMessage(t *testing.T) {
	d := demoDir(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	client := authv3.NewAuthorizationClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	big := envoyRequest(d.token)
	big.GetAttributes().GetRequest().GetHttp().GetHeaders()["x-padding"] = strings.Repeat("a", grpcMaxRecvMsgSize)
	if n := proto.Size(big); n <= grpcMaxRecvMsgSize {
		t.Fatalf("request is %d bytes, want over %d", n, grpcMaxRecvMsgSize)
	}
	resp, err := client.Check(ctx, big)
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("Check of a %d-byte request = %v, %v; want RESOURCE_EXHAUSTED", proto.Size(big), resp, err)
	}
	resp, err = client.Check(ctx, envoyRequest(d.token))
	if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		t.Fatalf("Check after the refused one = %v, %v; want OK", resp.GetStatus(), err)
	}
}

// TestServeLoadsTenThousandApplications: serve starts on a policy file
// with 10,000 applications (plus the demo's) and decides for the last
// one. The start-up time is logged for docs/reliability.md, not asserted.
func TestServeLoadsTenThousandApplications(t *testing.T) {
	const apps = 10_000
	d := demoDir(t)
	demo, err := os.ReadFile(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.Write(demo) // applications is the demo file's last key
	for i := range apps {
		fmt.Fprintf(&b, `  - name: app%05d
    domains: [app%05d.example.com, api.example.com/svc%05d]
    issuer: demo
    audience: %s
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`, i, i, i, demoAudience)
	}
	if err := os.WriteFile(d.policy, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	took := time.Since(start)
	t.Logf("serve started on %d applications (%d KiB) in %v", apps+1, b.Len()>>10, took)

	client := authv3.NewAuthorizationClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, host := range []string{fmt.Sprintf("app%05d.example.com", apps-1), "app.example.com"} {
		req := envoyRequest(d.token)
		h := req.GetAttributes().GetRequest().GetHttp()
		h.Host, h.Headers[":authority"] = host, host
		resp, err := client.Check(ctx, req)
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Errorf("Check %s = %v, %v; want OK", host, resp.GetStatus(), err)
		}
	}
}
