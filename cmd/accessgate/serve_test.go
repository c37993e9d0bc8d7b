package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/accessgate/accessgate/envoy"
)

// served is a `serve` running in-process.
type served struct {
	t                  *testing.T
	grpcAddr, httpAddr string
	sigs               chan os.Signal
	done               chan int
	stdout, stderr     *syncBuffer
	http               *http.Client
}

// startServe runs serve with args (and env) on loopback ports chosen by the
// kernel, and waits until it listens. The test ends with a SIGTERM if the
// server still runs.
func startServe(t *testing.T, env map[string]string, args ...string) *served {
	t.Helper()
	s := &served{
		t:      t,
		sigs:   make(chan os.Signal, 1),
		done:   make(chan int, 1),
		stdout: &syncBuffer{},
		stderr: &syncBuffer{},
		http:   &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second},
	}
	c := newCLI(s.stdout, s.stderr, func(k string) string { return env[k] })
	c.signals = s.sigs
	started := make(chan [2]string, 1)
	c.started = func(g, h string) { started <- [2]string{g, h} }
	go func() { s.done <- c.run(context.Background(), append([]string{"serve"}, args...)) }()
	select {
	case a := <-started:
		s.grpcAddr, s.httpAddr = a[0], a[1]
	case code := <-s.done:
		t.Fatalf("serve exited %d before listening; stderr:\n%s", code, s.stderr)
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not listen within 20s; stderr:\n%s", s.stderr)
	}
	t.Cleanup(func() {
		select {
		case s.sigs <- syscall.SIGTERM:
			<-s.done
		case <-s.done:
		}
	})
	return s
}

// stop sends SIGTERM and returns serve's exit code.
func (s *served) stop() int {
	s.t.Helper()
	s.sigs <- syscall.SIGTERM
	select {
	case code := <-s.done:
		s.done <- code // for Cleanup
		return code
	case <-time.After(30 * time.Second):
		s.t.Fatal("serve did not stop within 30s")
		return -1
	}
}

// get fetches path from the HTTP listener.
func (s *served) get(path string) (int, string) {
	s.t.Helper()
	resp, err := s.http.Get("http://" + s.httpAddr + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metric scrapes /metrics and returns the value of the sample whose name
// and labels are exactly series (e.g. `x_total{result="success"}`), or -1.
func (s *served) metric(series string) float64 {
	s.t.Helper()
	_, body := s.get("/metrics")
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil {
				s.t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return -1
}

// dial connects a gRPC client to the server.
func (s *served) dial() *grpc.ClientConn {
	s.t.Helper()
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

const (
	reloadsOK     = `accessgate_config_reloads_total{result="success"}`
	reloadsFailed = `accessgate_config_reloads_total{result="failure"}`
)

// loopbackEnv puts both listeners on kernel-chosen loopback ports through
// the environment, so that the ACCESSGATE_*_ADDR fallbacks are exercised.
func loopbackEnv(extra map[string]string) map[string]string {
	env := map[string]string{envGRPCAddr: "127.0.0.1:0", envHTTPAddr: "127.0.0.1:0"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func TestServeHTTPEndpoints(t *testing.T) {
	d := demoDir(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)

	if code, body := s.get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	if code, body := s.get("/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz = %d %q, want 200 ok", code, body)
	}
	for _, series := range []string{reloadsOK, `accessgate_check_duration_seconds_count{endpoint="grpc"}`, "go_goroutines"} {
		if v := s.metric(series); v < 0 {
			t.Errorf("/metrics has no %s", series)
		}
	}
	if v := s.metric(reloadsOK); v != 1 {
		t.Errorf("%s = %v after start, want 1", reloadsOK, v)
	}
	if v := s.metric("accessgate_config_last_reload_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last reload timestamp = %v, want about now", v)
	}
	if code, _ := s.get("/demo/"); code != 404 {
		t.Errorf("/demo/ outside demo mode = %d, want 404", code)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("serve exit = %d after SIGTERM, want 0", code)
	}
}

// TestServeReadyzWithoutKeys: an issuer whose JWKS cannot be fetched keeps
// /readyz at 503 naming it, while /healthz says the process is up.
func TestServeReadyzWithoutKeys(t *testing.T) {
	jwks := httpDown(t)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.yaml", `issuers:
  - name: remote
    issuer: https://remote.example.com
    jwks_url: `+jwks+`
    login_url: https://remote.example.com/login?r={redirect}
applications:
  - name: app
    domains: [app.example.com]
    issuer: remote
    audience: aud
    policies:
      - name: all
        action: allow
        include: [{everyone: true}]
`)
	s := startServe(t, loopbackEnv(nil), "--config", policy)
	if code, _ := s.get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d, want 200", code)
	}
	code, body := s.get("/readyz")
	if code != 503 || !strings.Contains(body, "remote") {
		t.Errorf("/readyz = %d %q, want 503 naming issuer remote", code, body)
	}
	eventually(t, "a failed JWKS fetch counted", func() bool {
		return s.metric(`accessgate_jwks_fetches_total{issuer="remote",result="failure"}`) >= 1
	})
}

// httpDown returns a URL on a loopback port nothing listens on.
func httpDown(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/certs"
}

func TestServeGRPCHealth(t *testing.T) {
	d := demoDir(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	h := healthpb.NewHealthClient(s.dial())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, svc := range []string{"", envoy.ServiceName} {
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health %q = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}

	// A watcher sees NOT_SERVING once shutdown begins, before the server
	// stops: Envoy's health checks take the instance out of rotation while
	// in-flight checks drain.
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
	// The open stream is an in-flight RPC the graceful stop waits for, so
	// the HTTP listener is still up: it must say not ready.
	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz while draining = %d %q, want 503 shutting down", code, body)
	}
	wcancel()
	select {
	case code := <-s.done:
		s.done <- code
		if code != 0 {
			t.Errorf("serve exit = %d, want 0", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestServeReload: the policy file is rewritten in place, replaced by
// rename, swapped through a symlink, broken and fixed, and reloaded on
// SIGHUP; each valid version is loaded, an invalid one is logged with its
// FILE:LINE:COL problems and the previous one stays.
func TestServeReload(t *testing.T) {
	d := demoDir(t)
	orig, err := os.ReadFile(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	// The config path is a symlink, as in a Kubernetes ConfigMap volume.
	dir := filepath.Dir(d.policy)
	if err := os.Rename(d.policy, filepath.Join(dir, "v1.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v1.yaml", d.policy); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	want := 1.0
	waitReloads := func(how string) {
		t.Helper()
		want++
		eventually(t, how+" reloaded", func() bool { return s.metric(reloadsOK) == want })
	}

	// Every version differs, so that each one is a change.
	version := func(n int) []byte { return append(append([]byte{}, orig...), "# version "+strconv.Itoa(n)+"\n"...) }

	// 1. Rename-and-replace, as editors save.
	writeFile(t, dir, ".v2.tmp", string(version(2)))
	if err := os.Rename(filepath.Join(dir, ".v2.tmp"), filepath.Join(dir, "v1.yaml")); err != nil {
		t.Fatal(err)
	}
	waitReloads("rename-replace")

	// 2. Symlink swap, as Kubernetes updates a ConfigMap.
	writeFile(t, dir, "v3.yaml", string(version(3)))
	if err := os.Symlink("v3.yaml", filepath.Join(dir, "tmp-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "tmp-link"), d.policy); err != nil {
		t.Fatal(err)
	}
	waitReloads("symlink swap")

	// 3. Invalid: logged with positions, previous config kept.
	writeFile(t, dir, "v3.yaml", string(version(4))+"colour: blue\n")
	// (A read that lands between the write's truncate and its data also
	// counts as a failure, hence >= 1.)
	eventually(t, "the invalid version refused", func() bool { return s.metric(reloadsFailed) >= 1 })
	logs := s.stderr.String()
	for _, w := range []string{"keeping previous config", d.policy + ":"} {
		if !strings.Contains(logs, w) {
			t.Errorf("logs lack %q after an invalid reload:\n%s", w, logs)
		}
	}
	if code, _ := s.get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d after an invalid reload, want 200 (previous config in force)", code)
	}

	// 4. Valid again, written in place.
	writeFile(t, dir, "v3.yaml", string(version(5)))
	waitReloads("fixed file")

	// 5. SIGHUP reloads even an unchanged file.
	s.sigs <- syscall.SIGHUP
	waitReloads("SIGHUP")

	if code := s.stop(); code != 0 {
		t.Errorf("serve exit = %d, want 0", code)
	}
}

func TestServeInvalidConfig(t *testing.T) {
	path := writeFile(t, t.TempDir(), "bad.yaml", invalidPolicy)
	code, out, errOut := runCLI(t, loopbackEnv(nil), "serve", "--config", path)
	if code != 1 {
		t.Errorf("serve invalid: exit %d, want 1", code)
	}
	if !strings.Contains(errOut, path+":1:") || !strings.Contains(errOut, path+":7:1:") {
		t.Errorf("serve invalid: stderr lacks FILE:LINE:COL problems:\n%s", errOut)
	}
	if out != "" {
		t.Errorf("serve invalid: stdout %q, want nothing", out)
	}
}

func TestServeListenError(t *testing.T) {
	d := demoDir(t)
	code, _, errOut := runCLI(t, nil, "serve", "--config", d.policy, "--grpc-addr", "256.0.0.1:1", "--http-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(errOut, "listen") {
		t.Errorf("serve on a bad address: exit %d, stderr %q; want 1 and a listen error", code, errOut)
	}
}

func TestServeDemo(t *testing.T) {
	s := startServe(t, loopbackEnv(nil))
	out := s.stdout.String()
	for _, want := range []string{"DEMO MODE", "NOT FOR PRODUCTION", "/demo/allow", "/demo/preflight", "/demo/redirect", "/demo/blocked", "check --config"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo intro lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(s.stderr.String(), "demo mode, not for production") {
		t.Errorf("log lacks the demo warning:\n%s", s.stderr)
	}
	code, body := s.get("/demo/")
	if code != 200 || !strings.Contains(body, "/demo/preflight") {
		t.Errorf("/demo/ = %d %q", code, body)
	}
	if code, _ := s.get("/demo/nope"); code != 404 {
		t.Errorf("/demo/nope = %d, want 404", code)
	}
	if code, _ := s.get("/readyz"); code != 200 {
		t.Errorf("/readyz in demo mode = %d, want 200", code)
	}
	// The demo folder is an ordinary policy file that validate accepts.
	policy := demoPolicyPath(t, out)
	if code, _, errOut := runCLI(t, nil, "validate", "--config", policy); code != 0 {
		t.Errorf("validate demo policy: exit %d: %s", code, errOut)
	}
	if code := s.stop(); code != 0 {
		t.Errorf("serve exit = %d, want 0", code)
	}
	if _, err := os.Stat(policy); !os.IsNotExist(err) {
		t.Errorf("demo folder left behind after exit: stat %s: %v", policy, err)
	}
}

// demoPolicyPath finds the policy file path in the demo intro.
func demoPolicyPath(t *testing.T, intro string) string {
	t.Helper()
	for _, l := range strings.Split(intro, "\n") {
		if l = strings.TrimSpace(l); strings.HasSuffix(l, "policy.yaml") {
			return l
		}
	}
	t.Fatalf("no policy path in demo intro:\n%s", intro)
	return ""
}

// TestServeDecisionLogLevel: the decision line follows
// --decision-log-level (or its variable), and is off at the default debug
// level when the log level is info.
func TestServeDecisionLogLevel(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantLine bool
	}{
		{"default debug, log level info", nil, nil, false},
		{"flag info", nil, []string{"--decision-log-level", "info"}, true},
		{"variable info", map[string]string{envDecisionLogLevel: "info"}, nil, true},
		{"flag beats variable", map[string]string{envDecisionLogLevel: "info"}, []string{"--decision-log-level", "debug"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := demoDir(t)
			env := loopbackEnv(tt.env)
			env[envLogLevel] = "info"
			s := startServe(t, env, append([]string{"--config", d.policy}, tt.args...)...)
			if _, err := authv3.NewAuthorizationClient(s.dial()).Check(context.Background(), envoyRequest(d.token)); err != nil {
				t.Fatalf("Check: %v", err)
			}
			s.stop()
			if got := strings.Contains(s.stderr.String(), `"msg":"decision"`); got != tt.wantLine {
				t.Errorf("decision line logged = %v, want %v:\n%s", got, tt.wantLine, s.stderr)
			}
		})
	}
}

// TestServeTokenCacheSize: --token-cache-size (or its variable) sizes the
// verified-token cache, 0 turns it off and checks still work.
func TestServeTokenCacheSize(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want float64
	}{
		{"default", nil, nil, 10000},
		{"flag", nil, []string{"--token-cache-size", "50"}, 50},
		{"variable", map[string]string{envTokenCacheSize: "7"}, nil, 7},
		{"flag beats variable", map[string]string{envTokenCacheSize: "7"}, []string{"--token-cache-size", "0"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := demoDir(t)
			s := startServe(t, loopbackEnv(tt.env), append([]string{"--config", d.policy}, tt.args...)...)
			client := authv3.NewAuthorizationClient(s.dial())
			for range 2 { // the second check of a token is the cached one
				resp, err := client.Check(context.Background(), envoyRequest(d.token))
				if err != nil || resp.GetOkResponse() == nil {
					t.Fatalf("Check: %v %v, want OK", resp.GetStatus(), err)
				}
			}
			s.stop()
			if got := logNumber(s.stderr.String(), "accessgate started", "token_cache_size"); got != tt.want {
				t.Errorf("token_cache_size = %v, want %v", got, tt.want)
			}
		})
	}
}

// logNumber returns the numeric field of the first JSON log line with
// message msg, or -1.
func logNumber(logs, msg, field string) float64 {
	for _, l := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != msg {
			continue
		}
		if f, ok := m[field].(float64); ok {
			return f
		}
	}
	return -1
}

func TestServeBadDecisionAndCacheFlags(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"decision level warn", nil, []string{"--decision-log-level", "warn"}},
		{"decision level variable", map[string]string{envDecisionLogLevel: "loud"}, nil},
		{"negative cache", nil, []string{"--token-cache-size", "-1"}},
		{"cache not a number", nil, []string{"--token-cache-size", "many"}},
		{"cache variable not a number", map[string]string{envTokenCacheSize: "many"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, loopbackEnv(tt.env), append([]string{"serve"}, tt.args...)...)
			if code != exitUsage || stderr == "" {
				t.Errorf("serve %v (env %v): exit %d, stderr %q; want exit 2 with a message", tt.args, tt.env, code, stderr)
			}
		})
	}
}
