package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/accessgate/accessgate/test/testkit"
)

// The whole gRPC server in one process, wired exactly as `accessgate
// serve` wires it (it is serve, run in-process: metrics observer, info
// logging, gRPC options), answering a browser's API call with a cached
// ES256 token on an application with CORS, at the concurrency of the load
// tool (50 in flight over two connections, as Envoy's two workers open).
// The client runs in the same process: ns/op and allocs/op include its
// share; the CPU profile tells them apart (`-cpuprofile`, then pprof with
// -focus 'envoy|grpc.\(\*Server\)'). docs/benchmarks.md has the commands.

const (
	benchIssuer   = "https://team.bench.example.com"
	benchAudience = "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"
	benchHost     = "app.example.com"
	benchPath     = "/api/v1/items?page=2"
)

// benchPolicy is the load tool's small policy: the application under load
// with CORS and three policies, and two neighbours.
const benchPolicy = `default_action: deny
issuers:
  - name: team
    issuer: ` + benchIssuer + `
    jwks_file: jwks.json
    login_url: https://team.bench.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: dashboard
    domains: [` + benchHost + `, "*.app.example.com", api.example.com/v1]
    issuer: team
    audience: ` + benchAudience + `
    cors:
      allow_origins: [https://www.example.com, "https://*.example.com"]
      allow_methods: [GET, POST, PUT]
      allow_headers: [content-type, x-requested-with]
      expose_headers: [x-request-id]
      allow_credentials: true
      max_age: 600
    policies:
      - name: health
        action: bypass
        paths: [/healthz]
        include: [{everyone: true}]
      - name: block-contractors
        action: block
        include: [{email_domain: [contractor.example.com]}]
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}, {email: [alice@partner.org]}]
        exclude: [{email: [mallory@example.com]}]
  - name: wiki
    domains: [wiki.example.com]
    issuer: team
    audience: ` + benchAudience + `
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`

// benchServe starts serve in-process on the bench policy, with args added,
// and returns its addresses, a Cloudflare-shaped token it accepts, and a
// stop function.
func benchServe(b *testing.B, args ...string) (addrs map[string]string, token string, stop func()) {
	b.Helper()
	dir := b.TempDir()
	priv := testkit.ES256(b, "c2a93f1d5b7e4a6c8d0f2e4b6a8c0d2f4e6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c")
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), testkit.JWKS(b, priv), 0o600); err != nil {
		b.Fatal(err)
	}
	policy := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(benchPolicy), 0o600); err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer(benchIssuer).Audience([]string{benchAudience}).
		Subject("7335d417-61da-459d-899c-000000000001").IssuedAt(now.Add(-time.Minute)).
		NotBefore(now.Add(-time.Minute)).Expiration(now.Add(24*time.Hour)).
		Claim("email", "user000001@example.com").Claim("type", "app").
		Claim("identity_nonce", "6ei69kawdKzMIAPF").Claim("country", "NL").
		Claim("custom", map[string]any{"groups": []string{"eng", "ops"}, "department": "engineering"}).Build()
	if err != nil {
		b.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv))
	if err != nil {
		b.Fatal(err)
	}
	var out, errOut syncBuffer
	c := newCLI(&out, &errOut, func(string) string { return "" })
	sigs := make(chan os.Signal, 1)
	c.signals = sigs
	started := make(chan map[string]string, 1)
	c.started = func(a map[string]string) { started <- a }
	done := make(chan int, 1)
	go func() {
		done <- c.run(context.Background(), append([]string{"serve", "--config", policy,
			"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--log-level", "info", "--drain-delay", "0s"}, args...))
	}()
	select {
	case addrs = <-started:
	case code := <-done:
		b.Fatalf("serve exited %d: %s", code, &errOut)
	case <-time.After(20 * time.Second):
		b.Fatalf("serve did not listen within 20s: %s", &errOut)
	}
	return addrs, string(signed), func() {
		sigs <- syscall.SIGTERM
		<-done
	}
}

// benchBrowserHeaders are the headers Envoy reports for a browser's API
// call with the Access cookie among others, as the load tool sends them.
func benchBrowserHeaders(token string) map[string]string {
	return map[string]string{
		":authority":        benchHost,
		":method":           "GET",
		":path":             benchPath,
		":scheme":           "https",
		"accept":            "application/json, text/plain, */*",
		"accept-encoding":   "gzip, deflate, br, zstd",
		"accept-language":   "en-US,en;q=0.9,nl;q=0.8",
		"cookie":            "_ga=GA1.2.1234567890.1700000000; theme=dark; CF_Authorization=" + token + "; _gid=GA1.2.987654321.1700000000",
		"origin":            "https://www.example.com",
		"referer":           "https://www.example.com/reports",
		"sec-fetch-mode":    "cors",
		"sec-fetch-site":    "same-site",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"x-forwarded-for":   "203.0.113.9",
		"x-forwarded-proto": "https",
		"x-request-id":      "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11",
	}
}

func BenchmarkServeCheck(b *testing.B) {
	addrs, token, stop := benchServe(b)
	defer stop()
	sock := func(addr string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sock("203.0.113.9", 52814)},
		Destination: &authv3.AttributeContext_Peer{Address: sock("10.0.0.2", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "12480911716829395341", Method: "GET", Headers: benchBrowserHeaders(token),
			Path: benchPath, Host: benchHost, Scheme: "https", Protocol: "HTTP/1.1",
		}},
	}}
	var clients [2]authv3.AuthorizationClient
	for i := range clients {
		conn, err := grpc.NewClient(addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		clients[i] = authv3.NewAuthorizationClient(conn)
	}
	ctx := context.Background()
	if resp, err := clients[0].Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
		b.Fatalf("Check = %v, %v; want an OK answer", resp, err)
	}
	var worker, bad atomic.Int64
	b.SetParallelism(max(1, 50/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[worker.Add(1)%2]
		for pb.Next() {
			if resp, err := c.Check(ctx, req); err != nil || resp.GetOkResponse() == nil {
				bad.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := bad.Load(); n > 0 {
		b.Fatalf("%d answers were not OK", n)
	}
}
