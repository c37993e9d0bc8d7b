package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	_ "net/http/pprof" // heap profiles of the server under test, on loopback
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/load/emptyauthz"
)

// serve is the child process: `loadgen serve -kind empty|gate`. It listens
// on loopback ports of its own choosing and prints them as its first line
// of output: "grpc=ADDR debug=ADDR". It exits on SIGTERM or when its stdin
// closes, so it never outlives the load generator.
//
// The gate is wired as cmd/accessgate wires it (key manager, engine with
// the token cache bound, the envoy adapter, gRPC health), with decision
// logging off as at the default info level, plus a loopback debug server
// for heap profiles and memory statistics.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	kind := fs.String("kind", "gate", "empty or gate")
	config := fs.String("config", "", "policy file (gate)")
	cache := fs.Int("cache", authz.DefaultVerifierCacheSize, "verified-token cache bound (gate)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	g := grpc.NewServer(grpc.MaxConcurrentStreams(1024))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(g, hs)
	switch *kind {
	case "empty":
		emptyauthz.Register(g)
	case "gate":
		set, err := policies.Load(*config)
		if err != nil {
			return err
		}
		km := jwks.New(zap.NewNop())
		defer km.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		km.Sync(ctx, set)
		cancel()
		if missing := km.Ready(set); len(missing) > 0 {
			return fmt.Errorf("no keys for issuers %v", missing)
		}
		e := authz.New(km, authz.WithTokenCache(*cache))
		e.Swap(set)
		envoy.NewServer(e, zap.NewNop()).Register(g)
	default:
		return fmt.Errorf("unknown kind %q", *kind)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	dlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	http.HandleFunc("/memstats", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("gc") == "1" {
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		_ = json.NewEncoder(w).Encode(memStats{HeapInuse: m.HeapInuse, HeapAlloc: m.HeapAlloc, Sys: m.Sys, NumGC: m.NumGC, Goroutines: runtime.NumGoroutine()})
	})
	go func() { _ = http.Serve(dlis, nil) }()
	go func() { _ = g.Serve(lis) }()
	fmt.Printf("grpc=%s debug=%s\n", lis.Addr(), dlis.Addr())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case <-stop:
	case <-stdinClosed:
	}
	g.Stop()
	return nil
}

// memStats is what a child's /memstats reports.
type memStats struct {
	HeapInuse, HeapAlloc, Sys uint64
	NumGC                     uint32
	Goroutines                int
}

// child is a running server process.
type child struct {
	name       string
	cmd        *exec.Cmd
	stdin      io.WriteCloser
	grpcAddr   string
	debugAddr  string // "" for a process without the debug server
	httpAddr   string // accessgate's /metrics listener (startBinary only)
	done       chan struct{}
	waitErr    error
	stderrTail *tail
}

// tail keeps the last bytes written to it, for error messages.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

// startServe starts `loadgen serve` with args and waits (at most 30 s) for
// its address line.
func startServe(name string, args ...string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: exec.Command(self, append([]string{"serve"}, args...)...), done: make(chan struct{}), stderrTail: &tail{}}
	c.cmd.Stderr = c.stderrTail
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case s := <-line:
		for _, f := range strings.Fields(s) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "grpc":
				c.grpcAddr = v
			case "debug":
				c.debugAddr = v
			}
		}
		if c.grpcAddr == "" {
			c.stop()
			return nil, fmt.Errorf("%s: no address line (%q): %s", name, s, c.stderrTail.b)
		}
		return c, nil
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("%s: not ready within 30s: %s", name, c.stderrTail.b)
	}
}

// startBinary runs the real accessgate binary (`serve --config`) on free
// loopback ports and waits for /readyz. It has no debug server: RSS only.
func startBinary(bin, config string) (*child, error) {
	grpcPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &child{name: "accessgate-binary", done: make(chan struct{}), stderrTail: &tail{}}
	c.cmd = exec.Command(bin, "serve", "--config", config,
		"--grpc-addr", "127.0.0.1:"+strconv.Itoa(grpcPort), "--http-addr", "127.0.0.1:"+strconv.Itoa(httpPort),
		"--log-level", "info")
	c.cmd.Stdout, c.cmd.Stderr = c.stderrTail, c.stderrTail
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.done)
	}()
	c.grpcAddr = "127.0.0.1:" + strconv.Itoa(grpcPort)
	c.httpAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	url := "http://127.0.0.1:" + strconv.Itoa(httpPort) + "/readyz"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c, nil
			}
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("accessgate exited (%v): %s", c.waitErr, c.stderrTail.b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	c.stop()
	return nil, fmt.Errorf("accessgate not ready within 30s: %s", c.stderrTail.b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stop sends SIGTERM to the child's process group and waits up to 10 s,
// then kills it.
func (c *child) stop() {
	if c.cmd.Process == nil {
		return
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// rss returns the child's resident set size and its peak, from
// /proc/PID/status (Linux).
func (c *child) rss() (cur, peak uint64, err error) {
	return procRSS(c.cmd.Process.Pid)
}

func procRSS(pid int) (cur, peak uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "VmRSS":
			cur = n << 10
		case "VmHWM":
			peak = n << 10
		}
	}
	if cur == 0 {
		return 0, 0, errors.New("no VmRSS in /proc status")
	}
	return cur, peak, nil
}

// memstats fetches the child's /memstats (gc=true forces a GC first).
func (c *child) memstats(gc bool) (memStats, error) {
	var m memStats
	if c.debugAddr == "" {
		return m, errors.New("no debug server")
	}
	url := "http://" + c.debugAddr + "/memstats"
	if gc {
		url += "?gc=1"
	}
	resp, err := http.Get(url)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	return m, json.NewDecoder(resp.Body).Decode(&m)
}

// heapProfile saves the child's heap profile (after a GC) to file.
func (c *child) heapProfile(file string) error {
	if c.debugAddr == "" {
		return errors.New("no debug server")
	}
	resp, err := http.Get("http://" + c.debugAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
