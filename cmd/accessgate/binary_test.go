package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestBinarySignals builds the real binary and drives it with real signals:
// SIGHUP reloads; SIGTERM starts the drain (gRPC health NOT_SERVING,
// /readyz 503, checks still answered), a second SIGTERM ends the drain
// delay, and the process exits 0.
func TestBinarySignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "accessgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	d := demoDir(t)
	var stderr syncBuffer
	cmd := exec.Command(bin, "serve", "--config", d.policy, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--drain-delay", "10m")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	httpAddr, grpcAddr := "", ""
	eventually(t, "the started log line", func() bool {
		httpAddr = logField(stderr.String(), "accessgate started", "http_addr")
		grpcAddr = logField(stderr.String(), "accessgate started", "grpc_addr")
		return httpAddr != ""
	})
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a reload after SIGHUP", func() bool {
		return logField(stderr.String(), "config reloaded", "config") == d.policy
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	eventually(t, "/readyz 503 after SIGTERM", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health while draining = %v, %v; want NOT_SERVING", h.GetStatus(), err)
	}
	if resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, envoyRequest(d.token)); err != nil || resp.GetOkResponse() == nil {
		t.Errorf("Check while draining = %v, %v; want OK", resp.GetStatus(), err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil { // ends the drain delay
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0; stderr:\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped line:\n%s", stderr.String())
	}
}

// logField returns field of the first JSON log line with message msg.
func logField(logs, msg, field string) string {
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != msg {
			continue
		}
		s, _ := m[field].(string)
		return s
	}
	return ""
}
