package envoy

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/accessgate/accessgate/authz"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDecider forwards requests to /ok, redirects everything else, and
// remembers the last request it saw.
type fakeDecider struct {
	calls atomic.Int64
	last  atomic.Pointer[authz.Request]
}

func (f *fakeDecider) Decide(_ context.Context, r *authz.Request) authz.Decision {
	f.calls.Add(1)
	f.last.Store(r)
	if strings.HasPrefix(r.Path, "/ok") {
		return goldenDecisions[0].give
	}
	return goldenDecisions[2].give
}

// realisticRequest is what Envoy sends for a browser's API call: a dozen
// headers and a ~700-byte token in the cookie.
func realisticRequest() *authv3.CheckRequest {
	token := "eyJhbGciOiJFUzI1NiIsImtpZCI6ImRlbW8iLCJ0eXAiOiJKV1QifQ." + strings.Repeat("eyJlbWFpbCI6ImFsaWNlQGV4YW1wbGUuY29tIn0", 15) + ".c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl"
	return checkRequest("GET", "app.example.com", "/ok/api/items?page=2&token=query-secret", map[string]string{
		":authority":        "app.example.com",
		":method":           "GET",
		":path":             "/ok/api/items?page=2&token=query-secret",
		":scheme":           "https",
		"accept":            "application/json",
		"accept-encoding":   "gzip, deflate, br",
		"accept-language":   "en-US,en;q=0.9",
		"cookie":            "_ga=GA1.2.3; CF_Authorization=" + token + "; theme=dark",
		"origin":            "https://www.example.com",
		"referer":           "https://www.example.com/reports",
		"sec-fetch-mode":    "cors",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
		"x-forwarded-for":   "203.0.113.9",
		"x-forwarded-proto": "https",
		"x-request-id":      "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11",
	}, "10.0.0.7")
}

// startServer serves s on 127.0.0.1:0 (a grpc.Server with opts) and
// returns a connected client.
func startServer(t *testing.T, s *Server, opts ...grpc.ServerOption) authv3.AuthorizationClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(opts...)
	s.Register(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		<-done
	})
	return authv3.NewAuthorizationClient(conn)
}

func TestCheckOverGRPC(t *testing.T) {
	f := &fakeDecider{}
	var observed atomic.Int64
	s := NewServer(f, zap.NewNop(), WithObserver(func(r *authz.Request, d *authz.Decision, took time.Duration) {
		if r != nil && d.Reason != "" && took >= 0 {
			observed.Add(1)
		}
	}))
	client := startServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	tests := []struct {
		name      string
		give      *authv3.CheckRequest
		wantCode  codes.Code
		wantHTTP  int32
		wantCalls int64 // Decide calls after this request
	}{
		{name: "forward", give: realisticRequest(), wantCode: codes.OK, wantCalls: 1},
		{name: "redirect", give: checkRequest("GET", "app.example.com", "/report", nil, "10.0.0.1"), wantCode: codes.Unauthenticated, wantHTTP: 302, wantCalls: 2},
		{name: "malformed: empty", give: &authv3.CheckRequest{}, wantCode: codes.PermissionDenied, wantHTTP: 400, wantCalls: 2},
		{name: "malformed: no host", give: checkRequest("GET", "", "/ok", nil, ""), wantCode: codes.PermissionDenied, wantHTTP: 400, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client.Check(ctx, tt.give)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if err := resp.ValidateAll(); err != nil {
				t.Fatalf("Check: response invalid: %v", err)
			}
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantCode {
				t.Errorf("Check: status = %v, want %v", got, tt.wantCode)
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantHTTP {
				t.Errorf("Check: http status = %d, want %d", got, tt.wantHTTP)
			}
			if got := f.calls.Load(); got != tt.wantCalls {
				t.Errorf("Decide calls = %d, want %d", got, tt.wantCalls)
			}
		})
	}
	if got := observed.Load(); got != int64(len(tests)) {
		t.Errorf("observer saw %d decisions, want %d", got, len(tests))
	}
	if r := f.last.Load(); r == nil || r.Headers["x-request-id"] != "" || r.Host != "app.example.com" {
		t.Errorf("last request seen by the Decider = %+v", r)
	}
}

// TestCheckLogsNoSecrets sends a token in every place a client can put one
// and asserts that no log line holds it, nor the query string.
func TestCheckLogsNoSecrets(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := NewServer(&fakeDecider{}, zap.New(core))
	const token = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2Vu.c2ln"
	cr := realisticRequest()
	h := cr.Attributes.Request.Http
	h.Headers["cookie"] = "CF_Authorization=" + token
	h.Headers["authorization"] = "Bearer " + token
	h.Headers["cf-access-jwt-assertion"] = token
	h.Headers["cf-access-client-secret"] = token
	h.Path = "/ok?token=" + token
	if _, err := s.Check(context.Background(), cr); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 1 {
		t.Fatalf("log lines = %d, want 1 decision line", logs.Len())
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, _ := v.(string); strings.Contains(s, token) || strings.Contains(s, "token=") {
				t.Errorf("log field %s = %q holds the token or query", k, s)
			}
		}
		want := map[string]any{"reason": "allowed", "app": "dashboard", "policy": "staff", "status": int64(200), "path": "/ok", "method": "GET", "host": "app.example.com", "request_id": "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11"}
		got := e.ContextMap()
		for k, v := range want {
			if got[k] != v {
				t.Errorf("decision line %s = %v, want %v", k, got[k], v)
			}
		}
		if _, ok := got["took"]; !ok {
			t.Error("decision line has no took")
		}
	}
}

func TestCheckDecisionLevel(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	s := NewServer(&fakeDecider{}, zap.New(core))
	if _, err := s.Check(context.Background(), realisticRequest()); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("debug decision line logged at info: %d lines", logs.Len())
	}
	s = NewServer(&fakeDecider{}, zap.New(core), WithDecisionLevel(zapcore.InfoLevel))
	if _, err := s.Check(context.Background(), realisticRequest()); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 1 {
		t.Errorf("info decision lines = %d, want 1", logs.Len())
	}
}

func TestCheckSamplesDecisionLines(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := NewServer(&fakeDecider{}, zap.New(core))
	n := samplingFirst + 10*samplingThereafter
	for range n {
		if _, err := s.Check(context.Background(), realisticRequest()); err != nil {
			t.Fatal(err)
		}
	}
	// Within one second: the first 100, then 1 in 100. A slow machine
	// crossing a second boundary only logs more, never fewer.
	if got := logs.Len(); got < samplingFirst+10 || got >= n {
		t.Errorf("decision lines for %d checks = %d, want sampled (about %d)", n, got, samplingFirst+10)
	}
}

func BenchmarkCheck(b *testing.B) {
	s := NewServer(&fakeDecider{}, zap.NewNop())
	cr := realisticRequest()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Check(ctx, cr); err != nil {
			b.Fatal(err)
		}
	}
}

func TestServiceName(t *testing.T) {
	if got := authv3.Authorization_ServiceDesc.ServiceName; got != ServiceName {
		t.Errorf("ServiceName = %q, want %q", ServiceName, got)
	}
}

// TestCheckMessageSize: on a server with ServerOptions the Request carries
// the size of the CheckRequest's encoding as HeaderBytes, a bound on its
// header bytes; without them it is 0 (unknown), and an interceptor that
// swaps the request drops it.
func TestCheckMessageSize(t *testing.T) {
	swap := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, proto.Clone(req.(proto.Message)))
	})
	keep := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return h(ctx, req)
	})
	give := realisticRequest()
	size := proto.Size(give)
	// Raw headers (encode_raw_headers): duplicates are joined with a
	// separator the message does not hold; each costs more framing than
	// its separator, so the size still bounds the joined map.
	raw := checkRequest("GET", "app.example.com", "/ok", nil, "10.0.0.7")
	var hvs []*corev3.HeaderValue
	for _, v := range []string{"a", "b", "c", "d"} {
		hvs = append(hvs, &corev3.HeaderValue{Key: "x", RawValue: []byte(v)}, &corev3.HeaderValue{Key: "cookie", RawValue: []byte(v)})
	}
	raw.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: hvs}
	tests := []struct {
		name string
		give *authv3.CheckRequest
		opts []grpc.ServerOption
		want int
	}{
		{"with ServerOptions", give, ServerOptions(), size},
		{"without", give, nil, 0},
		{"with ServerOptions and an interceptor", give, append(ServerOptions(), keep), size},
		{"with ServerOptions and a request swapped", give, append(ServerOptions(), swap), 0},
		{"raw headers, duplicates joined", raw, ServerOptions(), proto.Size(raw)},
	}
	for _, tt := range tests {
		give := tt.give
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeDecider{}
			client := startServer(t, NewServer(f, zap.NewNop()), tt.opts...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := client.Check(ctx, give); err != nil {
				t.Fatal(err)
			}
			r := f.last.Load()
			if r == nil {
				t.Fatal("the decider was not asked")
			}
			if r.HeaderBytes != tt.want {
				t.Errorf("HeaderBytes = %d, want %d", r.HeaderBytes, tt.want)
			}
			n := 0
			for k, v := range r.Headers {
				n += len(k) + len(v)
			}
			if r.HeaderBytes != 0 && r.HeaderBytes < n {
				t.Errorf("HeaderBytes %d is below the headers' %d bytes: not a bound", r.HeaderBytes, n)
			}
		})
	}
}
