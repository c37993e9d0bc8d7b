package login

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"github.com/oauth2-proxy/mockoidc"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// testNonce is a CF_AppSession nonce as the decision core makes them.
const testNonce = "appsession-nonce-0123456789"

// clock is a test clock that starts at the real time (the mock provider
// signs with real time) and can be moved forward.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time      { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) add(d time.Duration) { c.offset.Add(int64(d)) }

// startMock runs a mockoidc provider on loopback; mw, when set, wraps its
// handlers (to tamper with requests).
func startMock(t *testing.T, mw func(http.Handler) http.Handler) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if mw != nil {
		if err := m.AddMiddleware(mw); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// mockProvider is the login.providers entry for m.
func mockProvider(name string, m *mockoidc.MockOIDC, extra string) logintest.Provider {
	return logintest.Provider{Name: name, Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret, Extra: extra}
}

// env is a running team domain with its provider(s).
type env struct {
	t     *testing.T
	set   *policies.Set
	srv   *Server
	http  *httptest.Server
	clock *clock
	logs  *observer.ObservedLogs

	mu      sync.Mutex
	counts  map[string]int // OnSignIn calls by "provider/outcome"
	revoked string         // an email whose sessions Options.Revoked cuts
}

// count returns how often OnSignIn reported provider/outcome.
func (e *env) count(key string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts[key]
}

// newEnv loads cfg, starts the Server and waits until every provider is
// discovered.
func newEnv(t *testing.T, cfg logintest.Config) *env {
	t.Helper()
	return newEnvWith(t, cfg, nil)
}

// newEnvWith is newEnv with more Options set by opts.
func newEnvWith(t *testing.T, cfg logintest.Config, opts func(*Options)) *env {
	t.Helper()
	set := logintest.Load(t, cfg)
	core, logs := observer.New(zap.DebugLevel)
	c := &clock{}
	e := &env{t: t, set: set, clock: c, logs: logs, counts: map[string]int{}}
	changed := make(chan struct{}, 16)
	o := Options{
		Log:        zap.New(core),
		Now:        c.now,
		BackoffMin: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond,
		OnChange:   func() { changed <- struct{}{} },
		OnSignIn: func(p, o string) {
			e.mu.Lock()
			e.counts[p+"/"+o]++
			e.mu.Unlock()
		},
		Revoked: func(id *authz.Identity) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.revoked != "" && strings.EqualFold(id.Email, e.revoked)
		},
	}
	if opts != nil {
		opts(&o)
	}
	srv, err := New(set, o)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	t.Cleanup(srv.Close)
	waitReady(t, srv, changed)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e.srv, e.http = srv, hs
	return e
}

// waitReady waits, up to a deadline, for Ready to report every provider.
func waitReady(t *testing.T, srv *Server, changed <-chan struct{}) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for srv.Ready() != nil {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("providers not discovered in time: %v", srv.Ready())
		}
	}
}

// browser keeps the team domain's cookies (by name, as a browser would
// for one host) and never follows redirects, so that each hop is checked.
type browser struct {
	t       *testing.T
	e       *env
	client  *http.Client
	mu      sync.Mutex
	cookies map[string]*http.Cookie
	// seen collects every cookie value, code and state the test saw, for
	// the log scan.
	seen []string
}

func (e *env) browser() *browser {
	return &browser{
		t: e.t, e: e,
		client:  &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		cookies: map[string]*http.Cookie{},
	}
}

// team requests pathAndQuery from the team domain with the jar's cookies
// and records what it sets.
func (b *browser) team(pathAndQuery string) *http.Response {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.http.URL+pathAndQuery, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	b.mu.Unlock()
	return b.do(req)
}

func (b *browser) do(req *http.Request) *http.Response {
	b.t.Helper()
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { resp.Body.Close() })
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			b.seen = append(b.seen, c.Value)
		}
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
			continue
		}
		b.cookies[c.Name] = c
	}
	return resp
}

// provider follows a redirect to the mock provider's authorization
// endpoint and returns the callback path and query it sends the browser
// back to.
func (b *browser) provider(loc string) string {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, loc, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	resp := b.do(req)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("provider authorize: status %d, want 302", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != "https://auth.example.com/cdn-cgi/access/callback" {
		b.t.Fatalf("provider redirects to %s, want the registered callback", got)
	}
	b.seen = append(b.seen, u.Query().Get("code"), u.Query().Get("state"))
	return u.RequestURI()
}

// loginPath is a valid login URL of app (host, aud) with the test nonce
// and origin.
func loginPath(host, aud, redirect, origin string) string {
	q := url.Values{"kid": {aud}, "redirect_url": {redirect}, "nonce": {testNonce}, "origin": {origin}}
	return pathLogin + host + "?" + q.Encode()
}

// signIn runs a whole sign-in for app.example.com and returns the
// transfer Location.
func (b *browser) signIn() *url.URL {
	b.t.Helper()
	resp := b.team(loginPath("app.example.com", "app-aud", "https://app.example.com/dash?tab=1", "https://app.example.com:8443"))
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("login: status %d, want 302 to the provider\n%s", resp.StatusCode, body(b.t, resp))
	}
	cb := b.provider(resp.Header.Get("Location"))
	resp = b.team(cb)
	if resp.StatusCode != http.StatusFound {
		b.t.Fatalf("callback: status %d, want 302 (transfer)\n%s", resp.StatusCode, body(b.t, resp))
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		b.t.Fatal(err)
	}
	b.seen = append(b.seen, loc.Query().Get("code"))
	return loc
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// checkHeaders asserts the headers every sign-in answer carries.
func checkHeaders(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for k, want := range map[string]string{
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": contentSecurityPolicy,
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", what, k, got, want)
		}
	}
}

// redeem opens a transfer Location's code as the decision core will.
func (e *env) redeem(loc *url.URL, host, aud, nonce string) (mint.Identity, string, error) {
	return e.srv.Minter().Redeem(loc.Query().Get("code"), host, aud, nonce)
}

func (e *env) logText() string {
	var b strings.Builder
	for _, entry := range e.logs.All() {
		fmt.Fprintf(&b, "%s %v\n", entry.Message, entry.ContextMap())
	}
	return b.String()
}
