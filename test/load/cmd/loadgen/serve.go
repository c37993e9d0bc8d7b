package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/accessgate/accessgate/test/internal/proc"
	"github.com/accessgate/accessgate/test/load/emptyauthz"
)

// serveEmpty is the child process `loadgen serve-empty`: the empty
// ext_authz server on a loopback port of its own choosing, printed as its
// first line of output ("grpc=ADDR"). It exits on SIGTERM or when its stdin
// closes, so it never outlives the load generator. Its gRPC options are
// accessgate's defaults that matter for throughput (stream limit); the
// rest is grpc-go's.
func serveEmpty() error {
	g := grpc.NewServer(grpc.MaxConcurrentStreams(1024))
	emptyauthz.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = g.Serve(lis) }()
	fmt.Printf("grpc=%s\n", lis.Addr())

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

// server is a running server process under load: the empty server or the
// accessgate binary.
type server struct {
	*proc.Proc
	grpcAddr string
	httpAddr string // accessgate's /healthz, /readyz, /metrics; "" for the empty server
	stdin    io.Closer
}

// stop stops the server, killing it after 10 s.
func (s *server) stop() {
	if s.stdin != nil {
		s.stdin.Close()
	}
	s.Stop(10 * time.Second)
}

// startEmpty starts `loadgen serve-empty` (this binary) and waits, at most
// 30 s, for its address line.
func startEmpty() (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve-empty")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p, err := proc.Start("empty", cmd, nil)
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, stdin: stdin}
	defer func() {
		if s.grpcAddr == "" {
			s.stop()
		}
	}()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if line, _, ok := strings.Cut(p.Out.String(), "\n"); ok {
			addr, found := strings.CutPrefix(line, "grpc=")
			if !found {
				return nil, fmt.Errorf("empty server: no address line: %q", line)
			}
			s.grpcAddr = addr
			return s, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("empty server exited (%v): %s", p.Err(), p.Out)
		case <-deadline.C:
			return nil, fmt.Errorf("empty server: no address within 30s: %s", p.Out)
		case <-tick.C:
		}
	}
}

// startAccessgate runs the accessgate binary, `serve --config config`, as
// shipped (metrics, info logging, gRPC options) plus args, on free loopback
// ports, and waits up to 30 s for /readyz. Its drain delay is 0, so that
// stopping it between runs takes no time.
func startAccessgate(name, bin, config string, args ...string) (*server, error) {
	grpcPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	s := &server{grpcAddr: "127.0.0.1:" + strconv.Itoa(grpcPort), httpAddr: "127.0.0.1:" + strconv.Itoa(httpPort)}
	cmd := exec.Command(bin, append([]string{"serve", "--config", config,
		"--grpc-addr", s.grpcAddr, "--http-addr", s.httpAddr, "--log-level", "info", "--drain-delay", "0s"}, args...)...)
	// The log's tail is enough for an error message.
	if s.Proc, err = proc.Start(name, cmd, &proc.Output{Max: 16 << 10}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = proc.WaitHTTP(ctx, s.Proc, "http://"+s.httpAddr+"/readyz", func(r *http.Response, _ []byte) bool { return r.StatusCode == http.StatusOK })
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("%w: %s", err, s.Out)
	}
	return s, nil
}

// accessgateBinary returns bin, or builds ./cmd/accessgate into dir when
// bin is "".
func accessgateBinary(bin, dir string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err != nil {
			return "", err
		}
		return bin, nil
	}
	bin = filepath.Join(dir, "accessgate")
	fmt.Println("building ./cmd/accessgate...")
	if err := proc.Build("github.com/accessgate/accessgate/cmd/accessgate", bin); err != nil {
		return "", err
	}
	return bin, nil
}

// cpuWindow measures the CPU time a server uses over a window.
type cpuWindow struct {
	pid   int
	start time.Duration
	err   error
}

func startCPU(s *server) *cpuWindow {
	c := &cpuWindow{pid: s.Pid()}
	c.start, c.err = proc.CPUTime(c.pid)
	return c
}

// perRequest is the CPU time used since startCPU divided by n requests.
func (c *cpuWindow) perRequest(n int64) (time.Duration, error) {
	if c.err != nil {
		return 0, c.err
	}
	if n == 0 {
		return 0, errors.New("no requests")
	}
	end, err := proc.CPUTime(c.pid)
	if err != nil {
		return 0, err
	}
	return (end - c.start) / time.Duration(n), nil
}
