package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/accessgate/accessgate/test/internal/proc"
)

// The HTTP authorization endpoints (/auth/envoy, /auth/forward) against a
// minimal net/http handler that answers the same 200 with the same
// headers: the price of the endpoints over net/http's own per-request work
// (connection, parsing, a goroutine per connection, writing the answer).

// authRequest is the browser's API call as a proxy asks about it at the
// endpoint: Envoy's http_service sends the original request under
// /auth/envoy with its headers; Traefik and Caddy send X-Forwarded-* facts
// to /auth/forward.
func authRequest(port int, endpoint, token string) (*http.Request, error) {
	target := "/auth/forward"
	if endpoint == "auth/envoy" {
		target = "/auth/envoy" + appPath
	}
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+target, nil)
	if err != nil {
		return nil, err
	}
	req.Host = appHost
	for k, v := range browserHeaders(appHost, appPath, token) {
		if !strings.HasPrefix(k, ":") {
			req.Header.Set(k, v)
		}
	}
	if endpoint == "auth/forward" {
		req.Header.Set("X-Forwarded-Method", http.MethodGet)
		req.Header.Set("X-Forwarded-Host", appHost)
		req.Header.Set("X-Forwarded-Uri", appPath)
	}
	return req, nil
}

// httpAsk sends req (a template, cloned) on c and returns the answer's
// status and headers, the body read and discarded.
func httpAsk(c *http.Client, req *http.Request) (int, http.Header, error) {
	resp, err := c.Do(req.Clone(req.Context()))
	if err != nil {
		return 0, nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// serveHTTPBaseline is the child process `loadgen serve-http`: a minimal
// net/http handler answering every request with 200 and the headers read
// as JSON from stdin's first line, on a loopback port printed as its first
// line of output ("http=ADDR"). It exits on SIGTERM or when stdin closes.
func serveHTTPBaseline() error {
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("headers line: %w", err)
	}
	var hdr http.Header
	if err := json.Unmarshal(line, &hdr); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		for k, v := range hdr {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(lis) }()
	fmt.Printf("http=%s\n", lis.Addr())

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
	return srv.Close()
}

// startHTTPBaseline starts `loadgen serve-http` answering with hdr.
func startHTTPBaseline(hdr http.Header) (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := pinned(exec.Command(self, "serve-http"))
	line, err := json.Marshal(hdr)
	if err != nil {
		return nil, err
	}
	s, err := startChild("net/http handler", cmd, "http=", append(line, '\n'))
	if err != nil {
		return nil, err
	}
	s.httpAddr = s.grpcAddr
	s.grpcAddr = ""
	return s, nil
}

// answerHeaders are the headers of an answer that a handler sets (those
// net/http adds itself, Date and Content-Length, left out).
func answerHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if k != "Date" && k != "Content-Length" {
			out[k] = v
		}
	}
	return out
}

// httpComparison measures /auth/envoy and /auth/forward of accessgate
// (--auth-addr, small policy) and a minimal net/http handler that answers
// /auth/forward's 200 with the same headers, in one run, alternating.
func httpComparison(o *options, fx *fixture, token string, rep *report) error {
	authPort, err := proc.FreePort()
	if err != nil {
		return err
	}
	authAddr := "127.0.0.1:" + strconv.Itoa(authPort)
	gate, err := startAccessgate("accessgate-http", o.bin, fx.small, "--auth-addr", authAddr)
	if err != nil {
		return err
	}
	defer gate.stop()
	probe := httpClient(1)
	defer probe.CloseIdleConnections()
	endpoints := []string{"auth/envoy", "auth/forward"}
	reqs := map[string]*http.Request{}
	var answer http.Header
	for _, ep := range endpoints {
		if reqs[ep], err = authRequest(authPort, ep, token); err != nil {
			return err
		}
		code, h, err := httpAsk(probe, reqs[ep])
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("accessgate /%s does not answer 200 to the benchmark request: %d %v", ep, code, err)
		}
		if ep == "auth/forward" {
			answer = answerHeaders(h)
		}
	}
	base, err := startHTTPBaseline(answer)
	if err != nil {
		return err
	}
	defer base.stop()
	_, bport, _ := net.SplitHostPort(base.httpAddr)
	basePort, _ := strconv.Atoi(bport)
	if reqs["net/http"], err = authRequest(basePort, "auth/forward", token); err != nil {
		return err
	}
	if code, h, err := httpAsk(probe, reqs["net/http"]); err != nil || code != http.StatusOK || !sameHeaders(answerHeaders(h), answer) {
		return fmt.Errorf("the net/http handler does not answer as accessgate: %d %v %v", code, h, err)
	}

	names := []string{"net/http", "auth/envoy", "auth/forward"}
	servers := map[string]*server{"net/http": base, "auth/envoy": gate, "auth/forward": gate}
	var firstErr atomic.Pointer[string]
	httpRun := func(name string, d time.Duration) result {
		c := httpClient(o.conc)
		defer c.CloseIdleConnections()
		req := reqs[name]
		return run(o.conc, d, func(_, _ int) bool {
			code, _, err := httpAsk(c, req)
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("status %d", code)
			}
			if err != nil {
				msg := name + ": " + err.Error()
				firstErr.CompareAndSwap(nil, &msg)
			}
			return err == nil
		})
	}
	for _, name := range names {
		httpRun(name, o.warmup)
	}
	for _, name := range names {
		m := &measurement{name: name}
		if name != "net/http" {
			m.name = "accessgate /" + name
		}
		profile := "http-" + strings.ReplaceAll(name, "/", "-")
		if err := measure(servers[name], m, o.prof, profile, func() result { return httpRun(name, o.duration) }); err != nil {
			return err
		}
		if m.c50.errs > 0 {
			return fmt.Errorf("%s: %d requests failed, the first: %s", m.name, m.c50.errs, *firstErr.Load())
		}
		rep.http = append(rep.http, m)
	}
	return nil
}

// sameHeaders reports whether a and b hold the same names and values.
func sameHeaders(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		v, w = append([]string(nil), v...), append([]string(nil), w...)
		sort.Strings(v)
		sort.Strings(w)
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}
