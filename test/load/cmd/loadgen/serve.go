package main

import (
	"bufio"
	"context"
	"encoding/base64"
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

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/accessgate/accessgate/test/internal/proc"
	"github.com/accessgate/accessgate/test/load/emptyauthz"
)

// serveEmpty is the child process `loadgen serve-empty`: the empty
// ext_authz server on a loopback port of its own choosing, printed as its
// first line of output ("grpc=ADDR"). It exits on SIGTERM or when its stdin
// closes, so it never outlives the load generator. Its gRPC options are
// accessgate's defaults that matter for throughput (stream limit); the
// rest is grpc-go's.
//
// With a first line on stdin (the base64 of a marshalled CheckResponse,
// as startEmptyAnswering writes), it answers every check with that answer
// instead of an empty OK.
func serveEmpty() error {
	in := bufio.NewReader(os.Stdin)
	g := grpc.NewServer(grpc.MaxConcurrentStreams(1024))
	if len(os.Args) > 2 && os.Args[2] == "-answer" {
		line, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("answer line: %w", err)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
		if err != nil {
			return err
		}
		answer := &authv3.CheckResponse{}
		if err := proto.Unmarshal(raw, answer); err != nil {
			return err
		}
		authv3.RegisterAuthorizationServer(g, emptyauthz.Fixed{Answer: answer})
	} else {
		emptyauthz.Register(g)
	}
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
		_, _ = io.Copy(io.Discard, in)
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
	return startChild("empty server", pinned(exec.Command(self, "serve-empty")), "grpc=", nil)
}

// startEmptyAnswering starts `loadgen serve-empty -answer`: the empty
// server answering every check with answer.
func startEmptyAnswering(answer *authv3.CheckResponse) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	raw, err := proto.Marshal(answer)
	if err != nil {
		return nil, err
	}
	line := base64.StdEncoding.EncodeToString(raw) + "\n"
	return startChild("empty server (same answer)", pinned(exec.Command(self, "serve-empty", "-answer")), "grpc=", []byte(line))
}

// startChild starts one of this binary's server children, writes input
// to its stdin (kept open: closing it stops the child) and waits, at most
// 30 s, for its address line "PREFIX ADDR", which becomes grpcAddr.
func startChild(name string, cmd *exec.Cmd, prefix string, input []byte) (*server, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	p, err := proc.Start(name, cmd, nil)
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, stdin: stdin}
	defer func() {
		if s.grpcAddr == "" {
			s.stop()
		}
	}()
	if len(input) > 0 {
		if _, err := stdin.Write(input); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if line, _, ok := strings.Cut(p.Out.String(), "\n"); ok {
			addr, found := strings.CutPrefix(line, prefix)
			if !found {
				return nil, fmt.Errorf("%s: no address line: %q", name, line)
			}
			s.grpcAddr = addr
			return s, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("%s exited (%v): %s", name, p.Err(), p.Out)
		case <-deadline.C:
			return nil, fmt.Errorf("%s: no address within 30s: %s", name, p.Out)
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
	cmd := pinned(exec.Command(bin, append([]string{"serve", "--config", config,
		"--grpc-addr", s.grpcAddr, "--http-addr", s.httpAddr, "--log-level", "info", "--drain-delay", "0s"}, args...)...))
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

// pinCPUs is -server-cpus: the CPUs the measured servers may run on ("":
// any). Pinning the servers to one core and the load tool to another
// (`taskset -c 1 loadgen -server-cpus 0`, as make bench-load does on a
// machine with two cores or more) keeps the client's work off the server's
// core, so both servers are measured on the same, undivided core.
var pinCPUs string

// pinned returns cmd run under `taskset -c pinCPUs` when -server-cpus is
// set. taskset execs the program, so the process (and its PID) is the
// program's own, and every thread it starts inherits the CPU set.
func pinned(cmd *exec.Cmd) *exec.Cmd {
	if pinCPUs == "" {
		return cmd
	}
	return exec.Command("taskset", append([]string{"-c", pinCPUs, cmd.Path}, cmd.Args[1:]...)...)
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
