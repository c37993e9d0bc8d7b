// Command demo runs accessgate's sign-in in a browser on one machine
// (`make demo`): Envoy, accessgate with a login section, the zitadel
// example OpenID Connect provider, an origin with two applications and a
// web app on another origin, all on loopback under *.localhost names
// (browsers resolve them to loopback). It prints one URL; Ctrl-C stops
// everything.
//
// The end-to-end test (test/e2e/signin_test.go) runs this very program.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"flag"
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
	"text/template"
	"time"
)

//go:embed envoy.yaml
var envoyTemplate string

// policyTemplate is the demo's policy file.
const policyTemplate = `# accessgate policy of ` + "`make demo`" + `.
default_action: deny

login:
  team_domain: http://auth.demo.localhost:{{.Port}}   # http: only on loopback
  signing_key_files: [signing.pem]              # accessgate keygen --out signing.pem
  cookie_secret_file: cookie.key
  session_duration: 8h
  providers:
    - name: zitadel-example
      issuer: http://localhost:{{.IdPPort}}/
      client_id: web                            # the example provider's confidential client
      client_secret_file: idp.secret

applications:
  - name: api
    domains: [api.demo.localhost]
    issuer: login
    audience: demo-api
    cookie: {same_site: lax, http_only: true}
    cors:
      allow_origins: [http://web.demo.localhost:{{.Port}}]
      allow_methods: [GET]
      allow_credentials: true
    policies:
      - name: example users
        action: allow
        include: [{email_domain: [zitadel.ch]}]
  - name: reports
    domains: [reports.demo.localhost]
    issuer: login
    audience: demo-reports
    policies:
      - name: example users
        action: allow
        include: [{email_domain: [zitadel.ch]}]
`

// readyLine starts the line with the demo's one URL, printed once every
// part answers (the end-to-end test waits for it).
const readyLine = "Open"

// ports of one demo stack.
type ports struct {
	Port, IdPPort                            int // Envoy's listener, the provider
	AdminPort, GRPCPort, HTTPPort, LoginPort int
	WebPort, OriginPort                      int
}

func main() {
	os.Exit(run())
}

func run() int {
	port := flag.Int("port", envInt("DEMO_PORT", 8080), "Envoy's listener: the port of every URL (env DEMO_PORT)")
	idpPort := flag.Int("idp-port", envInt("DEMO_IDP_PORT", 9998), "the example OpenID Connect provider's port (env DEMO_IDP_PORT)")
	envoyBin := flag.String("envoy", envStr("ENVOY", "envoy"), "Envoy 1.40 binary (env ENVOY)")
	agBin := flag.String("accessgate", "bin/accessgate", "accessgate binary")
	opBin := flag.String("oidcop", "bin/oidcop", "the example provider (test/oidcop)")
	dir := flag.String("dir", "", "working folder for keys, configs and logs (default: a temporary one, removed at exit)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, *port, *idpPort, *envoyBin, *agBin, *opBin, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, port, idpPort int, envoyBin, agBin, opBin, dir string) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "accessgate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	p := ports{Port: port, IdPPort: idpPort}
	for _, f := range []*int{&p.AdminPort, &p.GRPCPort, &p.HTTPPort, &p.LoginPort} {
		n, err := freePort()
		if err != nil {
			return err
		}
		*f = n
	}
	base := func(host string) string { return fmt.Sprintf("http://%s:%d", host, port) }
	webURL, apiURL, reportsURL := base("web.demo.localhost"), base("api.demo.localhost"), base("reports.demo.localhost")

	// The origin and the web app run in this process.
	origin, err := serveHTTP(originHandler(webURL+"/"), &p.OriginPort)
	if err != nil {
		return err
	}
	defer origin.Close()
	web, err := serveHTTP(webHandler(webURL, apiURL, reportsURL), &p.WebPort)
	if err != nil {
		return err
	}
	defer web.Close()

	// Keys and configuration.
	if out, err := exec.Command(agBin, "keygen", "--out", filepath.Join(dir, "signing.pem")).CombinedOutput(); err != nil {
		return fmt.Errorf("accessgate keygen: %v: %s", err, out)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	files := map[string]string{
		"cookie.key":  hex.EncodeToString(secret) + "\n",
		"idp.secret":  "secret\n", // the example provider's client "web"
		"policy.yaml": render(policyTemplate, p),
		"envoy.yaml":  render(envoyTemplate, p),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return err
		}
	}

	var procs []*child
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	startChild := func(name, bin string, env []string, args ...string) (*child, error) {
		c, err := startProc(name, filepath.Join(dir, name+".log"), bin, env, args...)
		if err == nil {
			procs = append(procs, c)
		}
		return c, err
	}

	op, err := startChild("oidcop", opBin, []string{
		"PORT=" + strconv.Itoa(idpPort),
		"REDIRECT_URI=" + base("auth.demo.localhost") + "/cdn-cgi/access/callback",
	})
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, op, fmt.Sprintf("http://127.0.0.1:%d/.well-known/openid-configuration", idpPort), "200"); err != nil {
		return err
	}
	ag, err := startChild("accessgate", agBin, []string{"ACCESSGATE_LOG_FORMAT=console"}, "serve",
		"--config", filepath.Join(dir, "policy.yaml"),
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", p.GRPCPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", p.HTTPPort),
		"--login-addr", fmt.Sprintf("127.0.0.1:%d", p.LoginPort))
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, ag, fmt.Sprintf("http://127.0.0.1:%d/readyz", p.HTTPPort), "200"); err != nil {
		return err
	}
	ev, err := startChild("envoy", envoyBin, nil, "-c", filepath.Join(dir, "envoy.yaml"),
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "warn")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, ev, fmt.Sprintf("http://127.0.0.1:%d/ready", p.AdminPort), "200"); err != nil {
		return err
	}

	fmt.Printf(`
accessgate sign-in demo: Envoy, accessgate, the example OpenID Connect provider,
an API and a web app, all on this machine. Logs and configs: %s
Sign in as test-user@localhost, password verysecure. Ctrl-C stops everything.

%s %s/
`, dir, readyLine, webURL)

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping")
		return nil
	case <-op.done:
		return op.failed()
	case <-ag.done:
		return ag.failed()
	case <-ev.done:
		return ev.failed()
	}
}

func render(tmpl string, p ports) string {
	var b strings.Builder
	template.Must(template.New("").Parse(tmpl)).Execute(&b, p)
	return b.String()
}

// serveHTTP serves h on a kernel-chosen loopback port, stored in *port.
func serveHTTP(h http.Handler, port *int) (*http.Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	*port = l.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	return srv, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// child is a process of the stack, in its own process group.
type child struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error
}

func startProc(name, logFile, bin string, env []string, args ...string) (*child, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	c := &child{name: name, log: logFile, done: make(chan struct{})}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	// Its own group (a pip `envoy` launcher and the real binary stop
	// together), and killed with the demo if the demo dies.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// failed describes an early exit with the end of the process's log.
func (c *child) failed() error {
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", c.name, c.err, c.log, tail(c.log, 20))
}

func tail(file string, n int) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers with a status starting with want,
// the process exits, or 60 seconds pass.
func waitHTTP(ctx context.Context, c *child, url, want string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(url); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if strings.HasPrefix(strconv.Itoa(resp.StatusCode), want) {
				return nil
			}
		}
		select {
		case <-c.done:
			return c.failed()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s not ready at %s within 60s; end of %s:\n%s", c.name, url, c.log, tail(c.log, 20))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func envStr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
