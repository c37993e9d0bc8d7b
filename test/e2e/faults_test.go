package e2e

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// stubMode is how the stub ext_authz server answers a check.
type stubMode int32

const (
	stubAllow             stubMode = iota + 1 // a valid forward, to prove the stub is in the path
	stubSlow                                  // no answer until Envoy gives up (past its 0.5 s timeout)
	stubUnimplemented                         // gRPC UNIMPLEMENTED
	stubResourceExhausted                     // what accessgate answers a message over its receive limit
	stubDeniedNoStatus                        // PERMISSION_DENIED with a DeniedHttpResponse whose HTTP status is 0
	stubContradictory                         // PERMISSION_DENIED carrying an OkHttpResponse
	stubUnknownCode                           // gRPC status code 99, no response
)

// stubAuthz replaces accessgate at its address in the shipped envoy.yaml:
// a gRPC server with the ext_authz service, answering as mode says, and
// gRPC health SERVING (so that Envoy's health checks keep the endpoint in
// rotation and every denial comes from the answer under test).
type stubAuthz struct {
	authv3.UnimplementedAuthorizationServer
	mode   atomic.Int32
	checks atomic.Int64
	port   int
}

func newStubAuthz(t *testing.T) *stubAuthz {
	t.Helper()
	s := &stubAuthz{}
	s.mode.Store(int32(stubAllow))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, s)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, hs)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	return s
}

func (s *stubAuthz) Check(ctx context.Context, _ *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	s.checks.Add(1)
	switch stubMode(s.mode.Load()) {
	case stubAllow:
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
		}, nil
	case stubSlow:
		// Bounded: Envoy cancels the call at its 0.5 s timeout.
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return nil, status.Error(codes.DeadlineExceeded, "too slow")
	case stubUnimplemented:
		return nil, status.Error(codes.Unimplemented, "stub: no ext_authz here")
	case stubResourceExhausted:
		return nil, status.Error(codes.ResourceExhausted, "grpc: received message larger than max")
	case stubDeniedNoStatus:
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
				Status: &typev3.HttpStatus{Code: 0},
			}},
		}, nil
	case stubContradictory:
		return &authv3.CheckResponse{
			Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-stub", Value: "ok"}}},
			}},
		}, nil
	case stubUnknownCode:
		return &authv3.CheckResponse{Status: &rpcstatus.Status{Code: 99}}, nil
	}
	return nil, status.Error(codes.Internal, "stub: unknown mode")
}

// garbageAuthz is a TCP server at the accessgate address that answers
// every connection with bytes that are not HTTP/2 and closes it.
func garbageAuthz(t *testing.T) (port int, conns *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns = &atomic.Int64{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\ngarbage\x00\xff\xfe"))
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).Port, conns
}

// startEnvoyFor runs the real Envoy on the shipped bootstrap with
// accessgate's address replaced by authzPort, in front of a new origin,
// and returns an env whose send goes through it.
func startEnvoyFor(t *testing.T, authzPort int) *env {
	t.Helper()
	e := &env{t: t, host: appHost, origin: newOrigin(t), client: newClient(t)}
	e.startEnvoy(t, authzPort)
	return e
}

// TestEnvoyFaults replaces accessgate with a stub that is slow past
// Envoy's ext_authz timeout or answers garbage: the real Envoy, on the
// shipped bootstrap, must deny every request and never reach the origin.
// (accessgate stopped is TestThroughEnvoy's last subtest.)
func TestEnvoyFaults(t *testing.T) {
	stub := newStubAuthz(t)
	e := startEnvoyFor(t, stub.port)

	// The stub is in the path: its OK forwards to the origin.
	if r := e.send(t, http.MethodGet, "/api/items", nil); r.StatusCode != http.StatusOK || e.origin.hits.Load() != 1 {
		t.Fatalf("stub allowing: status %d, origin hits %d; want 200 and 1", r.StatusCode, e.origin.hits.Load())
	}

	tests := []struct {
		name string
		give stubMode
		want int
	}{
		{"slow past the 0.5 s timeout", stubSlow, http.StatusServiceUnavailable},
		{"UNIMPLEMENTED", stubUnimplemented, http.StatusServiceUnavailable},
		{"RESOURCE_EXHAUSTED (message over the receive limit)", stubResourceExhausted, http.StatusServiceUnavailable},
		{"denial with HTTP status 0", stubDeniedNoStatus, http.StatusForbidden},
		{"denial carrying an OK response", stubContradictory, http.StatusForbidden},
		{"unknown gRPC status code", stubUnknownCode, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stub.mode.Store(int32(tt.give))
			checks, hits := stub.checks.Load(), e.origin.hits.Load()
			for _, c := range []struct {
				method, target string
				hdr            map[string]string
			}{
				{http.MethodGet, "/api/items", map[string]string{"Cookie": "CF_Authorization=" + newKeys(t).token(t, "alice@example.com", time.Hour)}},
				{http.MethodGet, "/public/status", nil},
				{http.MethodPost, "/api/items", map[string]string{"Content-Type": "application/json"}},
			} {
				r := e.send(t, c.method, c.target, c.hdr)
				if r.StatusCode != tt.want {
					t.Errorf("%s %s: status %d, want %d; body %q", c.method, c.target, r.StatusCode, tt.want, r.body)
				}
				if v := r.Header.Get("x-stub"); v != "" {
					t.Errorf("%s %s: the stub's OK header reached the client", c.method, c.target)
				}
			}
			if n := stub.checks.Load() - checks; n < 3 {
				t.Errorf("the stub saw %d checks, want 3: the denial did not come from its answer", n)
			}
			if n := e.origin.hits.Load() - hits; n != 0 {
				t.Errorf("the origin was reached %d times, want 0", n)
			}
		})
	}

	stub.mode.Store(int32(stubAllow))
	if r := e.send(t, http.MethodGet, "/api/items", nil); r.StatusCode != http.StatusOK {
		t.Errorf("stub allowing again: status %d, want 200", r.StatusCode)
	}
}

// TestEnvoyFaultNotGRPC: whatever listens at accessgate's address answers
// bytes that are not HTTP/2 and hangs up; Envoy denies with 503.
func TestEnvoyFaultNotGRPC(t *testing.T) {
	port, conns := garbageAuthz(t)
	e := startEnvoyFor(t, port)
	for _, target := range []string{"/api/items", "/public/status"} {
		r := e.send(t, http.MethodGet, target, nil)
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET %s: status %d, want 503; body %q", target, r.StatusCode, r.body)
		}
	}
	if n := e.origin.hits.Load(); n != 0 {
		t.Errorf("the origin was reached %d times, want 0", n)
	}
	if conns.Load() == 0 {
		t.Error("Envoy never connected to the garbage server: the denial proves nothing")
	}
}
