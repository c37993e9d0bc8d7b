package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
	"github.com/accessgate/accessgate/test/internal/proc"
)

// The ext_authz filter and its per-route switch in envoy/envoy.yaml, cut out
// (as whole lines) for the Envoy-without-accessgate baseline.
const (
	extAuthzStart  = "          - name: envoy.filters.http.ext_authz\n"
	extAuthzEnd    = "          - name: envoy.filters.http.router\n"
	perRouteStart  = "                typed_per_filter_config:\n"
	perRouteEndTok = "disabled: true\n"
)

// withoutExtAuthz returns the bootstrap with the ext_authz filter (and the
// per-route setting that names it) removed, checked to still be a valid
// bootstrap. It is generated for the comparison only, never shipped.
func withoutExtAuthz(yaml []byte) ([]byte, error) {
	s := string(yaml)
	i, j := strings.Index(s, extAuthzStart), strings.Index(s, extAuthzEnd)
	if i < 0 || j < i {
		return nil, errors.New("ext_authz filter not found in the bootstrap")
	}
	s = s[:i] + s[j:]
	if k := strings.Index(s, perRouteStart); k >= 0 {
		end := strings.Index(s[k:], perRouteEndTok)
		if end < 0 {
			return nil, errors.New("per-route ext_authz setting not closed")
		}
		s = s[:k] + s[k+end+len(perRouteEndTok):]
	}
	if strings.Contains(s, "envoy.filters.http.ext_authz") {
		return nil, errors.New("ext_authz still named in the bootstrap")
	}
	b, err := envoyconf.Parse([]byte(s))
	if err != nil {
		return nil, err
	}
	if err := envoyconf.Validate(b); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// envoyProc is a running Envoy and the loopback port of its listener.
type envoyProc struct {
	*proc.Proc
	port int
}

// Envoy setups of the comparison.
const (
	envoyAlone = "envoy alone"
	envoyGRPC  = "envoy + accessgate (gRPC)"
	envoyHTTP  = "envoy + accessgate (http_service)"
)

// startEnvoy runs Envoy in one of the setups: envoy/envoy.yaml without its
// ext_authz filter (envoyAlone), as shipped asking gateAddr over gRPC
// (envoyGRPC), or envoy/envoy-http.yaml asking authAddr, accessgate's
// --auth-addr (envoyHTTP); the files' addresses substituted as the e2e
// tests do. Requests go to originPort. It waits for a request through it
// to succeed.
func startEnvoy(bin, dir, setup string, bootstrap, bootstrapHTTP []byte, gateAddr, authAddr string, originPort int, probe func(port int) error) (*envoyProc, error) {
	lport, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	aport, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := gateAddr
	if setup == envoyHTTP {
		addr = authAddr
	}
	gh, gp, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	gport, _ := strconv.Atoi(gp)
	addrs := envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: lport},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: aport},
		Accessgate: envoyconf.Addr{Host: gh, Port: gport},
		Origin:     envoyconf.Addr{Host: "127.0.0.1", Port: originPort},
	}
	var cfg []byte
	if setup == envoyHTTP {
		cfg, err = envoyconf.SubstituteHTTP(bootstrapHTTP, addrs)
	} else {
		cfg, err = envoyconf.Substitute(bootstrap, addrs)
	}
	if err != nil {
		return nil, err
	}
	if setup == envoyAlone {
		if cfg, err = withoutExtAuthz(cfg); err != nil {
			return nil, err
		}
	}
	name := "envoy-" + map[string]string{envoyAlone: "alone", envoyGRPC: "grpc", envoyHTTP: "http"}[setup]
	file := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		return nil, err
	}
	// --concurrency 2: one worker per core of the benchmark machine.
	cmd := exec.Command(bin, "-c", file, "--disable-hot-restart", "--concurrency", "2", "--log-level", "error")
	cmd.Stdout = io.Discard // the access log
	pr, err := proc.Start(name, cmd, &proc.Output{Max: 16 << 10})
	if err != nil {
		return nil, err
	}
	p := &envoyProc{Proc: pr, port: lport}
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe(lport)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, fmt.Errorf("envoy %s exited: %s", name, p.Out)
		case <-deadline.C:
			p.stop()
			return nil, fmt.Errorf("envoy %s not ready within 30s (%v): %s", name, err, p.Out)
		case <-tick.C:
		}
	}
}

func (p *envoyProc) stop() { p.Stop(10 * time.Second) }

// startOrigin serves a small 200 answer on loopback, as a fast upstream.
func startOrigin() (*http.Server, int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	body := []byte(`{"items":[1,2,3]}` + "\n")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv, l.Addr().(*net.TCPAddr).Port, nil
}

// httpClient is a keep-alive client with room for conc connections.
func httpClient(conc int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conc * 2,
			MaxIdleConnsPerHost: conc * 2,
			DisableCompression:  true,
		},
	}
}

// browserGet is the browser's API call of the gRPC load, over HTTP.
func browserGet(c *http.Client, port int, token string) error {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+appPath, nil)
	if err != nil {
		return err
	}
	req.Host = appHost
	for k, v := range browserHeaders(appHost, appPath, token) {
		if !strings.HasPrefix(k, ":") && k != "x-forwarded-for" && k != "x-forwarded-proto" {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
