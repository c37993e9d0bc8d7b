package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/accessgate/accessgate/envoy"
)

// TestServeDrain: on SIGTERM, gRPC health says NOT_SERVING (overall and
// for the Authorization service, to a watcher and to a new Check) and
// /readyz 503, while checks on an open connection and on a new one still
// get their decisions, for as long as the drain delay lasts (here until a
// second SIGTERM ends it). Then serve exits 0.
func TestServeDrain(t *testing.T) {
	d := demoDir(t)
	s := startServe(t, loopbackEnv(map[string]string{envName("drain-delay"): "10m"}), "--config", d.policy)
	h := healthpb.NewHealthClient(s.dial())
	authz := authv3.NewAuthorizationClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	allowed := func(c authv3.AuthorizationClient, when string) {
		t.Helper()
		resp, err := c.Check(ctx, envoyRequest(d.token))
		if err != nil || codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			t.Fatalf("Check %s = %v, %v; want OK", when, resp.GetStatus(), err)
		}
	}
	allowed(authz, "before SIGTERM")
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	stream, err := h.Watch(wctx, &healthpb.HealthCheckRequest{Service: envoy.ServiceName})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: first status %v, %v; want SERVING", r.GetStatus(), err)
	}

	s.sigs <- syscall.SIGTERM
	if r, err := stream.Recv(); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("watch after SIGTERM: %v, %v; want NOT_SERVING", r.GetStatus(), err)
	}
	for _, svc := range []string{"", envoy.ServiceName} {
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health %q while draining = %v, %v; want NOT_SERVING", svc, resp.GetStatus(), err)
		}
	}
	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining = %d %q, want 503 shutting down", code, body)
	}
	if code, _ := s.get("/healthz"); code != 200 {
		t.Errorf("/healthz while draining = %d, want 200 (the process is up)", code)
	}
	allowed(authz, "during the drain delay, open connection")
	allowed(authv3.NewAuthorizationClient(s.dial()), "during the drain delay, new connection")
	select {
	case code := <-s.done:
		t.Fatalf("serve exited %d during the drain delay", code)
	default:
	}

	wcancel()                 // an open watch would hold the graceful stop to its timeout
	s.sigs <- syscall.SIGTERM // a second signal ends the delay
	select {
	case code := <-s.done:
		s.done <- code
		if code != 0 {
			t.Errorf("serve exit = %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop after the second SIGTERM")
	}
	if !strings.Contains(s.stderr.String(), "second stop signal") {
		t.Errorf("no log line for the shortened drain:\n%s", s.stderr)
	}
}

// TestServeDrainInFlight: a check still in flight when the listeners close
// (here, held up by a key refresh the JWKS endpoint delays) gets its
// answer within --shutdown-timeout; past the timeout it is cut, and serve
// still exits 0.
func TestServeDrainInFlight(t *testing.T) {
	tests := []struct {
		name    string
		timeout string
		release bool // answer the held fetch once serve closes its listeners
	}{
		{name: "finished within the timeout", timeout: "1m", release: true},
		{name: "cut at the timeout", timeout: "1ms", release: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := newSigner(t, "k1")
			doc := jwksDoc(t, key)
			var fetches atomic.Int32
			held, release := make(chan struct{}), make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if fetches.Add(1) > 1 { // the start's fetch is answered; the refresh is held
					close(held)
					select {
					case <-release:
					case <-r.Context().Done():
						return
					}
				}
				w.Header().Set("Content-Type", "application/json")
				w.Write(doc)
			}))
			defer srv.Close()
			defer close(release)
			const iss, aud = "https://remote.example.com", "remote-aud"
			policy := writeFile(t, t.TempDir(), "policy.yaml", remotePolicy(iss, aud, srv.URL))
			s := startServe(t, loopbackEnv(map[string]string{envName("shutdown-timeout"): tt.timeout}), "--config", policy)
			conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			// A token with a kid the key set lacks: the check waits for a
			// refresh, which the endpoint holds.
			unknown := newSigner(t, "k2").token(t, iss, aud, "alice@example.com")
			type answer struct {
				resp *authv3.CheckResponse
				err  error
			}
			answered := make(chan answer, 1)
			go func() {
				resp, err := authv3.NewAuthorizationClient(conn).Check(context.Background(), envoyRequest(unknown))
				answered <- answer{resp, err}
			}()
			<-held
			s.sigs <- syscall.SIGTERM // drain delay 0: the listeners close now
			if tt.release {
				eventually(t, "the listeners closing", func() bool { return strings.Contains(s.stderr.String(), "closing listeners") })
				release <- struct{}{}
			}
			select {
			case a := <-answered:
				switch {
				case tt.release && (a.err != nil || a.resp.GetDeniedResponse() == nil):
					t.Errorf("in-flight check = %v, %v; want its decision (a denial: unknown key)", a.resp.GetStatus(), a.err)
				case !tt.release && status.Code(a.err) != codes.Unavailable:
					t.Errorf("in-flight check past the timeout = %v, %v; want the connection cut (Unavailable)", a.resp.GetStatus(), a.err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the in-flight check got no answer")
			}
			select {
			case code := <-s.done:
				s.done <- code
				if code != 0 {
					t.Errorf("serve exit = %d, want 0", code)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
	}
}

// remotePolicy is a policy with one issuer fetching its keys from jwksURL
// and one application, app.example.com, open to example.com addresses.
func remotePolicy(iss, aud, jwksURL string) string {
	return `issuers:
  - name: remote
    issuer: ` + iss + `
    jwks_url: ` + jwksURL + `
    login_url: https://remote.example.com/login?r={redirect}
applications:
  - name: app
    domains: [app.example.com]
    issuer: remote
    audience: ` + aud + `
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`
}
