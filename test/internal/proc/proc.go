// Package proc runs the processes that the end-to-end tests and the load
// tool drive (accessgate, Envoy, load-tool children): each in a process
// group of its own, so that a launcher and the program it starts stop
// together; output kept in a buffer safe for concurrent use; stopped with
// SIGTERM, then SIGKILL after a grace period. It also reads what the load
// tool reports about a process from /proc (Linux): CPU time and RSS.
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Output collects a process's output. It is safe for concurrent use: the
// process's copying goroutines write while tests and error messages read.
// With a Max, only the last Max bytes are kept.
type Output struct {
	Max int // bytes kept; 0 keeps everything

	mu  sync.Mutex
	buf []byte
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	if o.Max > 0 && len(o.buf) > o.Max {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-o.Max:]...)
	}
	return len(p), nil
}

// String returns the output kept so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return string(o.buf)
}

// Proc is a running child process.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Out  *Output // stdout and stderr, unless the caller set Cmd's own

	done chan struct{}
	err  error
	once sync.Once
}

// Start runs cmd in its own process group, its stdout and stderr (unless
// already set) going to out (a new Output when nil), which becomes p.Out.
func Start(name string, cmd *exec.Cmd, out *Output) (*Proc, error) {
	if out == nil {
		out = &Output{}
	}
	p := &Proc{Name: name, Cmd: cmd, Out: out, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit (Wait's error); valid once Done is closed.
func (p *Proc) Err() error { return p.err }

// Pid is the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process alone (not its group).
func (p *Proc) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop sends SIGTERM to the process group and waits up to grace, then
// kills the group. It reports whether the kill was needed. Later calls do
// nothing.
func (p *Proc) Stop(grace time.Duration) (killed bool) {
	p.once.Do(func() {
		pgid := p.Cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			killed = true
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
		}
	})
	return killed
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	handedMu.Lock()
	defer handedMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		// The kernel may hand a just-closed port out again: a port this
		// process already gave to one listener must not go to another.
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port that was not handed out already")
}

// handed are the ports FreePort returned, so that it never returns one twice.
var (
	handedMu sync.Mutex
	handed   = map[int]bool{}
)

// WaitHTTP polls url until ok accepts an answer, p exits or ctx ends.
func WaitHTTP(ctx context.Context, p *Proc, url string, ok func(*http.Response, []byte) bool) error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if ok(resp, body) {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		} else {
			last = err.Error()
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%s exited (%v) before %s was ready (last: %s)", p.Name, p.Err(), url, last)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w (last: %s)", p.Name, url, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 on every architecture Go supports (sysconf(_SC_CLK_TCK)
// would need cgo).
const userHZ = 100

// CPUTime is the CPU time, user and system, that process pid has used so
// far, from /proc/PID/stat (utime + stime, summed over its threads).
func CPUTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return statCPU(data)
}

// statCPU is utime + stime of a /proc/PID/stat line.
func statCPU(data []byte) (time.Duration, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after the last ')'. utime and stime are fields 14 and
	// 15, so the 12th and 13th after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want 13 or more", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat: %w", err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// RSS returns process pid's resident set size and its peak, from
// /proc/PID/status.
func RSS(pid int) (cur, peak uint64, err error) {
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

// Build builds the Go package pkg (an import path) into out.
func Build(pkg, out string) error {
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
