package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
)

// signinPolicy is a policy file with a login section: team domain
// http://auth.localhost (the demo's shape), provider corp at issuer, one
// application on app.localhost.
const signinPolicy = `default_action: deny
login:
  team_domain: http://auth.localhost
  signing_key_files: [signing-a.pem, signing-b.pem]
  cookie_secret_file: cookie.key
  providers:
    - {name: corp, issuer: %q, client_id: %q, client_secret_file: corp.secret}
applications:
  - name: app
    domains: [app.localhost]
    issuer: login
    audience: app-aud
    policies:
      - {name: staff, action: allow, include: [{email_domain: [example.com]}]}
`

// writeSigninConfig writes the policy file, two fresh signing keys, a
// cookie secret and the client secret into a temporary folder.
func writeSigninConfig(t *testing.T, issuer, clientID, clientSecret string) (dir, policy string) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, dir, "signing-a.pem", newKeyPEM(t))
	writeFile(t, dir, "signing-b.pem", newKeyPEM(t))
	secret := make([]byte, 24)
	rand.Read(secret)
	writeFile(t, dir, "cookie.key", fmt.Sprintf("%x\n", secret))
	writeFile(t, dir, "corp.secret", clientSecret+"\n")
	return dir, writeFile(t, dir, "policy.yaml", fmt.Sprintf(signinPolicy, issuer, clientID))
}

func newKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// startMockOIDC runs a mockoidc provider on loopback whose discovery
// answers 503 until discoverable is set; discoveries counts the answered
// ones.
func startMockOIDC(t *testing.T, discoverable *atomic.Bool, discoveries *atomic.Int64) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddMiddleware(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") && !discoverable.Load() {
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			if strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration") {
				discoveries.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}); err != nil {
		t.Fatal(err)
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

var loginAddrRE = regexp.MustCompile(`"login_addr":"([^"]+)"`)

// loginAddr waits for the team domain's start line and returns its address.
func (s *served) loginAddr() string {
	s.t.Helper()
	var addr string
	eventually(s.t, "the team domain's start line", func() bool {
		m := loginAddrRE.FindStringSubmatch(s.stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	return addr
}

// browser is an HTTP client with a cookie jar for which auth.localhost is
// the team domain listener; it stops at the application host.
func browser(t *testing.T, loginAddr string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{}
	return &http.Client{
		Jar: jar,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == "auth.localhost:80" {
				addr = loginAddr
			}
			return dialer.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Hostname() == "app.localhost" {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

// appCheck asks the gRPC listener about a browser navigation on
// http://app.localhost.
func appCheck(t *testing.T, s *served, path, cookie string) *authv3.CheckResponse {
	t.Helper()
	h := map[string]string{":authority": "app.localhost", ":method": "GET", ":path": path, ":scheme": "http",
		"sec-fetch-mode": "navigate", "accept": "text/html"}
	if cookie != "" {
		h["cookie"] = cookie
	}
	resp, err := authv3.NewAuthorizationClient(s.dial()).Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "app.localhost", Scheme: "http", Path: path, Headers: h,
		}},
	}})
	if err != nil {
		t.Fatalf("Check %s: %v", path, err)
	}
	return resp
}

// deniedHeaders returns a denied answer's headers (several Set-Cookie
// values joined by "\n").
func deniedHeaders(resp *authv3.CheckResponse) (status int, h map[string]string) {
	d := resp.GetDeniedResponse()
	if d == nil {
		return 200, nil
	}
	h = map[string]string{}
	for _, o := range d.GetHeaders() {
		k := o.GetHeader().GetKey()
		if h[k] != "" {
			h[k] += "\n"
		}
		h[k] += o.GetHeader().GetValue()
	}
	return int(d.GetStatus().GetCode()), h
}

// TestServeSignIn runs a whole sign-in through serve: the decision's 302
// with CF_AppSession, the team domain on --login-addr, a real OpenID
// Connect provider process (mockoidc, on loopback), the code redeemed by
// the decision, and the application forwarded. /readyz waits for
// discovery, the sign-in is counted, and no secret it handled is logged.
func TestServeSignIn(t *testing.T) {
	var discoverable atomic.Bool
	var discoveries atomic.Int64
	m := startMockOIDC(t, &discoverable, &discoveries)
	_, policy := writeSigninConfig(t, m.Issuer(), m.ClientID, m.ClientSecret)
	s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_LOG_LEVEL": "debug", "ACCESSGATE_DECISION_LOG_LEVEL": "info", "ACCESSGATE_LOGIN_ADDR": "127.0.0.1:0"}), "--config", policy)
	loginAddr := s.loginAddr()

	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "corp") {
		t.Errorf("/readyz before discovery = %d %q, want 503 naming corp", code, body)
	}
	discoverable.Store(true)
	eventually(t, "/readyz after discovery", func() bool { code, _ := s.get("/readyz"); return code == 200 })

	var seen []string // every secret value of the sign-in, to scan the logs for

	// 1. The application redirects to the team domain and sets the nonce.
	status, h := deniedHeaders(appCheck(t, s, "/home?x=1", ""))
	if status != 302 || !strings.HasPrefix(h["location"], "http://auth.localhost/cdn-cgi/access/login/app.localhost?") {
		t.Fatalf("navigation: %d %q, want 302 to the team domain", status, h["location"])
	}
	nonce, _, ok := strings.Cut(strings.TrimPrefix(h["set-cookie"], "CF_AppSession="), ";")
	if !ok || !strings.HasPrefix(h["set-cookie"], "CF_AppSession=") || !strings.Contains(h["location"], "&nonce="+nonce+"&origin=http%3A%2F%2Fapp.localhost") {
		t.Fatalf("302 Set-Cookie %q and Location %q: want the same nonce in both", h["set-cookie"], h["location"])
	}
	seen = append(seen, nonce)

	// 2. The browser: team domain → provider → callback → transfer.
	b := browser(t, loginAddr)
	resp, err := b.Get(h["location"])
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	transfer, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != 302 || err != nil || transfer.Host != "app.localhost" || transfer.Path != "/cdn-cgi/access/authorized" {
		t.Fatalf("after the provider: %d %q, want 302 to http://app.localhost/cdn-cgi/access/authorized", resp.StatusCode, resp.Header.Get("Location"))
	}
	code := transfer.Query().Get("code")
	seen = append(seen, code)
	for _, c := range b.Jar.Cookies(&url.URL{Scheme: "http", Host: "auth.localhost", Path: "/"}) {
		seen = append(seen, c.Value) // the org session
	}

	// 3. The application host redeems the code, with the browser's nonce.
	if st, _ := deniedHeaders(appCheck(t, s, transfer.RequestURI(), "CF_AppSession=another")); st != 400 {
		t.Errorf("code with another nonce: %d, want 400", st)
	}
	status, h = deniedHeaders(appCheck(t, s, transfer.RequestURI(), "CF_AppSession="+nonce))
	if status != 302 || h["location"] != "http://app.localhost/home?x=1" {
		t.Fatalf("authorized: %d %q, want 302 to the original URL", status, h["location"])
	}
	token, _, _ := strings.Cut(strings.TrimPrefix(h["set-cookie"], "CF_Authorization="), ";")
	if !strings.HasPrefix(h["set-cookie"], "CF_Authorization=") || len(token) < 50 {
		t.Fatalf("authorized Set-Cookie = %q, want CF_Authorization", h["set-cookie"])
	}
	seen = append(seen, token)

	// 4. The application, with the cookie.
	if resp := appCheck(t, s, "/home", "CF_Authorization="+token); resp.GetOkResponse() == nil {
		st, hh := deniedHeaders(resp)
		t.Fatalf("with the minted token: denied %d %v, want forwarded", st, hh)
	}

	// 5. The same endpoints through the team domain's listener, where
	// proxies without ext_authz gRPC route an application host's
	// /cdn-cgi/access/* (the code may be redeemed again within 60s).
	direct := func(host, target, cookie string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", "http://"+loginAddr+target, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	r := direct("app.localhost", transfer.RequestURI(), "CF_AppSession="+nonce)
	if sc := r.Header.Values("Set-Cookie"); r.StatusCode != 302 || r.Header.Get("Location") != "http://app.localhost/home?x=1" ||
		len(sc) != 2 || !strings.HasPrefix(sc[0], "CF_Authorization=") || !strings.HasPrefix(sc[1], "CF_AppSession=;") {
		t.Errorf("authorized on the login listener: %d %q %q, want the decision's 302 with both cookies", r.StatusCode, r.Header.Get("Location"), sc)
	}
	r = direct("app.localhost", "/cdn-cgi/access/get-identity", "CF_Authorization="+token)
	if body, _ := io.ReadAll(r.Body); r.StatusCode != 200 || !strings.Contains(string(body), `"email":"jane.doe@example.com"`) {
		t.Errorf("get-identity on the login listener for app.localhost: %d %s", r.StatusCode, body)
	}
	r = direct("auth.localhost", "/cdn-cgi/access/get-identity", "CF_Authorization="+token)
	if body, _ := io.ReadAll(r.Body); r.StatusCode != 401 {
		t.Errorf("the app token as the team domain's session: %d %s, want 401", r.StatusCode, body)
	}
	r = direct("127.0.0.1", "/cdn-cgi/access/get-identity", "")
	if body, _ := io.ReadAll(r.Body); r.StatusCode != 401 || strings.Contains(string(body), "reason") {
		t.Errorf("get-identity for a host no application covers: %d %s, want the team domain's own 401", r.StatusCode, body)
	}

	if got := s.metric(`accessgate_signins_total{outcome="signed_in",provider="corp"}`); got != 1 {
		t.Errorf("sign-ins counted = %v, want 1", got)
	}
	logs := s.stderr.String()
	if !strings.Contains(logs, "sign-in transferred") {
		t.Fatalf("no sign-in in the logs; the scan below would prove nothing:\n%s", logs)
	}
	for _, v := range seen {
		if len(v) >= 8 && strings.Contains(logs, v) {
			t.Errorf("the logs hold a secret value the sign-in used (%d bytes)", len(v))
		}
	}
}

// TestServeSignInProviderDown: a provider that never answers discovery
// keeps /readyz false and gets a clear 502 page at sign-in, while a
// session minted earlier keeps working.
func TestServeSignInProviderDown(t *testing.T) {
	down := strings.TrimSuffix(httpDown(t), "/certs")
	dir, policy := writeSigninConfig(t, down, "accessgate", "secret")
	s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_LOGIN_ADDR": "127.0.0.1:0"}), "--config", policy)
	loginAddr := s.loginAddr()

	if code, body := s.get("/readyz"); code != 503 || !strings.Contains(body, "corp") {
		t.Errorf("/readyz = %d %q, want 503 naming corp", code, body)
	}
	status, h := deniedHeaders(appCheck(t, s, "/", ""))
	if status != 302 {
		t.Fatalf("navigation: %d, want 302", status)
	}
	resp, err := browser(t, loginAddr).Get(h["location"])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !strings.Contains(string(body), "corp") {
		t.Errorf("sign-in with the provider down: %d, want a 502 page naming corp:\n%s", resp.StatusCode, body)
	}

	set, err := policies.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mt, err := mint.New(set.Login, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := mt.AppToken(mint.Identity{Email: "bob@example.com", IdP: "corp"}, set.Applications[0])
	if err != nil {
		t.Fatal(err)
	}
	if resp := appCheck(t, s, "/", "CF_Authorization="+tok); resp.GetOkResponse() == nil {
		t.Errorf("an existing session during the outage is denied: %v", resp.GetDeniedResponse())
	}
}

// TestServeSignInKeyRotation: a signing key file replaced on disk is
// re-read like the policy file; the key still listed stays published, and
// the reload keeps the provider's discovery (no refetch, still ready).
func TestServeSignInKeyRotation(t *testing.T) {
	var discoverable atomic.Bool
	var discoveries atomic.Int64
	discoverable.Store(true)
	m := startMockOIDC(t, &discoverable, &discoveries)
	dir, policy := writeSigninConfig(t, m.Issuer(), m.ClientID, m.ClientSecret)
	s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_LOGIN_ADDR": "127.0.0.1:0"}), "--config", policy)
	certs := func() []string {
		resp, err := http.Get("http://" + s.loginAddr() + "/cdn-cgi/access/certs")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		var kids []string
		for _, k := range doc.Keys {
			kids = append(kids, k.Kid)
		}
		return kids
	}
	eventually(t, "/readyz after discovery", func() bool { code, _ := s.get("/readyz"); return code == 200 })
	discovered := discoveries.Load()
	before := certs()
	if len(before) != 2 {
		t.Fatalf("certs before = %q, want two keys", before)
	}
	writeFile(t, dir, "signing-b.pem", newKeyPEM(t))
	eventually(t, "the new key published", func() bool {
		now := certs()
		return len(now) == 2 && now[0] == before[0] && now[1] != before[1]
	})
	if got := s.metric(reloadsOK); got < 2 {
		t.Errorf("reloads = %v, want the key change counted as a reload", got)
	}
	if code, body := s.get("/readyz"); code != 200 || discoveries.Load() != discovered {
		t.Errorf("after the reload: /readyz %d %q, discoveries %d → %d; want ready with no new discovery",
			code, body, discovered, discoveries.Load())
	}
}
