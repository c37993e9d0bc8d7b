package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// signinFixture is an Engine on testdata/signin.yaml with a signing key and
// cookie secret generated in the test, and a Minter of the same login
// section (as the team domain has) to make codes and tokens.
type signinFixture struct {
	t      testing.TB
	set    *policies.Set
	engine *Engine
	minter *mint.Minter
	offset atomic.Int64 // clock offset, to expire codes
}

func (f *signinFixture) now() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }

func newSigninFixture(t testing.TB, teamDomain string) *signinFixture {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	policy, err := os.ReadFile("testdata/signin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"signing.pem": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"cookie.key":  secret,
		"cf.json":     testkit.JWKS(t, testkit.ES256(t, "cf1")),
		"signin.yaml": []byte(strings.ReplaceAll(string(policy), "TEAM", teamDomain)),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policies.Load(filepath.Join(dir, "signin.yaml"))
	if err != nil {
		t.Fatalf("load signin.yaml: %v", err)
	}
	f := &signinFixture{t: t, set: set}
	f.engine = New(fileKeySource{}, WithClock(f.now))
	f.engine.Swap(set)
	if f.minter, err = mint.New(set.Login, f.now); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *signinFixture) app(name string) *policies.Application {
	for _, a := range f.set.Applications {
		if a.Name == name {
			return a
		}
	}
	f.t.Fatalf("no application %q", name)
	return nil
}

// code makes a transfer code as the team domain does.
func (f *signinFixture) code(host, aud, nonce, redirect string) string {
	f.t.Helper()
	c, err := f.minter.Code(mint.Transfer{Host: host, Audience: aud, Nonce: nonce, Redirect: redirect,
		Identity: mint.Identity{Email: "alice@example.com", Groups: []string{"eng"}, IdP: "corp"}})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *signinFixture) decide(r *Request) Decision {
	return f.engine.Decide(context.Background(), r)
}

// respHeader returns the values of a response header, in order.
func respHeader(d Decision, key string) []string {
	var out []string
	for _, h := range d.ResponseHeaders {
		if h.Key == key {
			out = append(out, h.Value)
		}
	}
	return out
}

func navigation(scheme, host, path, cookie string) *Request {
	h := map[string]string{"sec-fetch-mode": "navigate", "accept": "text/html"}
	if cookie != "" {
		h["cookie"] = cookie
	}
	return &Request{Method: "GET", Scheme: scheme, Host: host, Path: path, Headers: h}
}

const testNonce = "nonce-0123456789abcdefghij"

// TestSigninRedirectSetsAppSession: the §4 302 and 401 of an issuer: login
// application set CF_AppSession and carry its nonce and the request's
// origin in the login URL; other issuers are left alone.
func TestSigninRedirectSetsAppSession(t *testing.T) {
	https := newSigninFixture(t, "https://auth.example.com")
	demo := newSigninFixture(t, "http://localhost:9003")
	api := func(scheme, host, cookie string) *Request {
		h := map[string]string{"accept": "application/json", "origin": "https://web.example.com", "sec-fetch-mode": "cors"}
		if cookie != "" {
			h["cookie"] = cookie
		}
		return &Request{Method: "GET", Scheme: scheme, Host: host, Path: "/data?x=1", Headers: h}
	}
	tests := []struct {
		name       string
		f          *signinFixture
		req        *Request
		wantStatus int
		wantCookie string // prefix of the Set-Cookie, "" for none
		wantAttrs  string // suffix of the Set-Cookie
		wantOrigin string // origin parameter of the login URL
		wantNonce  string // "" for a fresh one
	}{
		{"302 https fresh", https, navigation("https", "app.example.com", "/x?a=b", ""), 302,
			"__Host-CF_AppSession=", "; Path=/; Max-Age=600; Secure; HttpOnly; SameSite=Lax", "https://app.example.com", ""},
		{"302 https reuses the nonce present", https, navigation("https", "app.example.com:8443", "/", "a=1; __Host-CF_AppSession="+testNonce), 302,
			"__Host-CF_AppSession=" + testNonce, "; SameSite=Lax", "https://app.example.com:8443", testNonce},
		{"302 https ignores the plain name", https, navigation("https", "app.example.com", "/", "CF_AppSession="+testNonce), 302,
			"__Host-CF_AppSession=", "; SameSite=Lax", "https://app.example.com", ""},
		{"302 https refuses a nonce that is no cookie value", https, navigation("https", "app.example.com", "/", `__Host-CF_AppSession="a b"`), 302,
			"__Host-CF_AppSession=", "; SameSite=Lax", "https://app.example.com", ""},
		{"302 demo http", demo, navigation("http", "app.example.com:8080", "/", "CF_AppSession="+testNonce), 302,
			"CF_AppSession=" + testNonce, "; Path=/; Max-Age=600; HttpOnly; SameSite=Lax", "http://app.example.com:8080", testNonce},
		{"302 demo team domain, request over https", demo, navigation("https", "app.example.com", "/", ""), 302,
			"__Host-CF_AppSession=", "; Secure; HttpOnly; SameSite=Lax", "https://app.example.com", ""},
		{"401 https is SameSite=None", https, api("https", "app.example.com", ""), 401,
			"__Host-CF_AppSession=", "; Secure; HttpOnly; SameSite=None", "https://app.example.com", ""},
		{"401 over http is Lax", demo, api("http", "app.example.com:8080", ""), 401,
			"CF_AppSession=", "; HttpOnly; SameSite=Lax", "http://app.example.com:8080", ""},
		{"302 other issuer: no cookie", https, navigation("https", "legacy.example.com", "/", ""), 302, "", "", "", ""},
		{"401 other issuer: no cookie", https, api("https", "legacy.example.com", ""), 401, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.f.decide(tt.req)
			if d.Status != tt.wantStatus || d.Reason != ReasonTokenMissing {
				t.Fatalf("Decide: status %d reason %q, want %d token_missing", d.Status, d.Reason, tt.wantStatus)
			}
			var login string
			if d.Status == 302 {
				login = respHeader(d, "location")[0]
			} else {
				var body struct {
					LoginURL string `json:"login_url"`
				}
				if err := json.Unmarshal([]byte(d.Body), &body); err != nil {
					t.Fatalf("401 body %q: %v", d.Body, err)
				}
				login = body.LoginURL
			}
			u, err := url.Parse(login)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			cookies := respHeader(d, "set-cookie")
			if tt.wantCookie == "" {
				if len(cookies) != 0 || q.Has("nonce") || q.Has("origin") {
					t.Fatalf("non-login issuer: Set-Cookie %q, login URL %q; want neither cookie nor nonce", cookies, login)
				}
				return
			}
			if len(cookies) != 1 || !strings.HasPrefix(cookies[0], tt.wantCookie) || !strings.HasSuffix(cookies[0], tt.wantAttrs) {
				t.Fatalf("Set-Cookie = %q, want %q…%q", cookies, tt.wantCookie, tt.wantAttrs)
			}
			nonce := q.Get("nonce")
			if !strings.Contains(cookies[0], "="+nonce+";") || !mint.ValidNonce(nonce) {
				t.Errorf("login URL nonce %q is not the cookie's (%q)", nonce, cookies[0])
			}
			if tt.wantNonce != "" && nonce != tt.wantNonce {
				t.Errorf("nonce = %q, want the one present %q", nonce, tt.wantNonce)
			}
			if tt.wantNonce == "" && nonce == testNonce {
				t.Errorf("nonce reused from a cookie that must not count")
			}
			if got := q.Get("origin"); got != tt.wantOrigin {
				t.Errorf("origin = %q, want %q", got, tt.wantOrigin)
			}
			if q.Get("kid") != "app-aud" || !strings.HasPrefix(login, tt.f.set.Login.TeamDomain+"/cdn-cgi/access/login/app.") {
				t.Errorf("login URL %q: want the team domain's login for app-aud", login)
			}
		})
	}
}

// TestSigninAuthorized redeems transfer codes on application hosts.
func TestSigninAuthorized(t *testing.T) {
	f := newSigninFixture(t, "https://auth.example.com")
	cookie := "__Host-CF_AppSession=" + testNonce
	good := f.code("app.example.com", "app-aud", testNonce, "https://web.example.com/page?q=1")
	tests := []struct {
		name   string
		req    *Request
		status int
		app    string
	}{
		{"valid", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, cookie), 302, "app"},
		{"valid, port kept in host", navigation("https", "app.example.com:8443", "/cdn-cgi/access/authorized?code="+good, cookie), 302, "app"},
		{"second application of the host", navigation("https", "app.example.com",
			"/cdn-cgi/access/authorized?code="+f.code("app.example.com", "admin-aud", testNonce, "/admin/"), cookie), 302, "app-admin"},
		{"no code", navigation("https", "app.example.com", "/cdn-cgi/access/authorized", cookie), 400, "app"},
		{"code twice", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good+"&code="+good, cookie), 400, "app"},
		{"tampered code", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good[:len(good)-2]+"AA", cookie), 400, "app"},
		{"no CF_AppSession (login CSRF)", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, ""), 400, "app"},
		{"another nonce", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, "__Host-CF_AppSession=other-nonce"), 400, "app"},
		{"plain cookie name on https", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, "CF_AppSession="+testNonce), 400, "app"},
		{"code replayed on another host", navigation("https", "other.example.com", "/cdn-cgi/access/authorized?code="+good, cookie), 400, "other"},
		{"code for an audience not on this host", navigation("https", "app.example.com",
			"/cdn-cgi/access/authorized?code="+f.code("app.example.com", "other-aud", testNonce, "/"), cookie), 400, "app"},
		{"nonce in a second Cookie header (Envoy joins them with ,)", navigation("https", "app.example.com",
			"/cdn-cgi/access/authorized?code="+good, "theme=dark, __Host-CF_AppSession="+testNonce), 302, "app"},
		{"oversized query", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+strings.Repeat("A", 9000), cookie), 400, "app"},
		{"oversized nonce, bound in the code", navigation("https", "app.example.com",
			"/cdn-cgi/access/authorized?code="+f.code("app.example.com", "app-aud", strings.Repeat("n", 300), "/"),
			"__Host-CF_AppSession="+strings.Repeat("n", 300)), 400, "app"},
		{"CRLF in the code", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code=%0d%0aSet-Cookie:%20x=1", cookie), 400, "app"},
		{"POST", &Request{Method: "POST", Scheme: "https", Host: "app.example.com", Path: "/cdn-cgi/access/authorized?code=" + good,
			Headers: map[string]string{"cookie": cookie}}, 400, "app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := f.decide(tt.req)
			if d.Status != tt.status || d.Reason != ReasonSignin || d.Application != tt.app {
				t.Fatalf("Decide: status %d reason %q app %q, want %d signin %q (body %q)", d.Status, d.Reason, d.Application, tt.status, tt.app, d.Body)
			}
			if got := respHeader(d, "cache-control"); len(got) != 1 || got[0] != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := respHeader(d, "referrer-policy"); len(got) != 1 || got[0] != "no-referrer" {
				t.Errorf("Referrer-Policy = %q, want no-referrer", got)
			}
			if tt.status == 400 {
				if len(respHeader(d, "set-cookie")) != 0 || strings.Contains(d.Body, good) {
					t.Errorf("400 sets a cookie or echoes the code: %+v", d)
				}
			}
		})
	}

	// The valid answer in full: the redirect, the cookies, and a token
	// that the same engine then accepts for that application.
	d := f.decide(navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, cookie))
	if loc := respHeader(d, "location"); len(loc) != 1 || loc[0] != "https://web.example.com/page?q=1" {
		t.Errorf("Location = %q, want the bound redirect", loc)
	}
	cookies := respHeader(d, "set-cookie")
	if len(cookies) != 2 {
		t.Fatalf("Set-Cookie = %q, want CF_Authorization and the expired CF_AppSession", cookies)
	}
	for _, h := range d.ResponseHeaders {
		if h.Key == "set-cookie" && !h.Append {
			t.Errorf("Set-Cookie %q without Append: the second would overwrite the first", h.Value)
		}
	}
	tok, attrs, ok := strings.Cut(strings.TrimPrefix(cookies[0], "CF_Authorization="), ";")
	if !ok || !strings.HasPrefix(cookies[0], "CF_Authorization=") {
		t.Fatalf("first Set-Cookie %q, want CF_Authorization", cookies[0])
	}
	if want := " Path=/; Max-Age=28800; Secure; HttpOnly; SameSite=None"; attrs != want {
		t.Errorf("CF_Authorization attributes %q, want %q (8h, same_site none, host-only)", attrs, want)
	}
	if want := "__Host-CF_AppSession=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax"; cookies[1] != want {
		t.Errorf("second Set-Cookie %q, want %q", cookies[1], want)
	}
	fwd := f.decide(&Request{Method: "GET", Scheme: "https", Host: "app.example.com", Path: "/",
		Headers: map[string]string{"cookie": "CF_Authorization=" + tok}})
	if fwd.Verdict != Forward || fwd.Reason != ReasonAllowed {
		t.Errorf("the minted token on app: %v %q, want forward allowed", fwd.Verdict, fwd.Reason)
	}
	// A token for application A is refused on B.
	other := f.decide(&Request{Method: "GET", Scheme: "https", Host: "other.example.com", Path: "/",
		Headers: map[string]string{"cookie": "CF_Authorization=" + tok}})
	if other.Status != 401 || other.Reason != ReasonTokenAudience {
		t.Errorf("app's token on other: %d %q, want 401 token_audience", other.Status, other.Reason)
	}

	// A code is valid 60 seconds.
	f.offset.Store(int64(mint.CodeTTL + time.Second))
	if d := f.decide(navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+good, cookie)); d.Status != 400 {
		t.Errorf("expired code: status %d, want 400", d.Status)
	}
}

// TestSigninAuthorizedOverHTTP is the demo: team domain http on loopback,
// application hosts over http: plain names, no Secure, None falls back to
// Lax.
func TestSigninAuthorizedOverHTTP(t *testing.T) {
	f := newSigninFixture(t, "http://localhost:9003")
	code := f.code("app.localhost", "app-aud", testNonce, "http://app.localhost:8080/")
	d := f.decide(navigation("http", "app.localhost:8080", "/cdn-cgi/access/authorized?code="+code, "CF_AppSession="+testNonce))
	if d.Status != 403 || d.Reason != ReasonNoApplication {
		t.Fatalf("app.localhost is no application's host: %d %q, want the usual 403 no_application", d.Status, d.Reason)
	}
	code = f.code("app.example.com", "app-aud", testNonce, "/")
	d = f.decide(navigation("http", "app.example.com", "/cdn-cgi/access/authorized?code="+code, "CF_AppSession="+testNonce))
	if d.Status != 302 {
		t.Fatalf("status %d, want 302 (body %q)", d.Status, d.Body)
	}
	cookies := respHeader(d, "set-cookie")
	if len(cookies) != 2 || !strings.HasSuffix(cookies[0], "; Path=/; Max-Age=28800; HttpOnly; SameSite=Lax") ||
		cookies[1] != "CF_AppSession=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax" {
		t.Errorf("Set-Cookie over http = %q", cookies)
	}
}

// TestSigninIdentityAndLogout: get-identity and logout on an application
// host.
func TestSigninIdentityAndLogout(t *testing.T) {
	f := newSigninFixture(t, "https://auth.example.com")
	id := mint.Identity{Email: "alice@example.com", Groups: []string{"eng"}, IdP: "corp"}
	appTok, _, err := f.minter.AppToken(id, f.app("app"))
	if err != nil {
		t.Fatal(err)
	}
	orgTok, _, err := f.minter.OrgToken(id)
	if err != nil {
		t.Fatal(err)
	}
	identity := func(cookie, origin string) Decision {
		h := map[string]string{"cookie": cookie}
		if origin != "" {
			h["origin"] = origin
		}
		return f.decide(&Request{Method: "GET", Scheme: "https", Host: "app.example.com", Path: "/cdn-cgi/access/get-identity", Headers: h})
	}

	d := identity("CF_Authorization="+appTok, "https://web.example.com")
	if d.Status != 200 || d.Reason != ReasonSignin {
		t.Fatalf("get-identity with the app token: %d %q, want 200 signin (body %q)", d.Status, d.Reason, d.Body)
	}
	var doc mint.IdentityDocument
	if err := json.Unmarshal([]byte(d.Body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Email != id.Email || doc.IdP.ID != "corp" || doc.IdP.Type != "oidc" || doc.UserUUID != f.minter.Subject(id.Email) ||
		len(doc.Groups) != 1 || doc.IAT == 0 {
		t.Errorf("identity document %+v", doc)
	}
	if got := respHeader(d, "access-control-allow-origin"); len(got) != 1 || got[0] != "https://web.example.com" {
		t.Errorf("get-identity from the web app: Access-Control-Allow-Origin = %q", got)
	}
	if strings.Contains(d.Body, appTok) {
		t.Error("get-identity echoes the token")
	}

	for name, cookie := range map[string]string{
		"no token":           "",
		"org token":          "CF_Authorization=" + orgTok,
		"garbage":            "CF_Authorization=abc.def.ghi",
		"token of other app": "CF_Authorization=" + mustAppToken(t, f, id, "other"),
	} {
		d := identity(cookie, "")
		if d.Status != 401 || !strings.HasPrefix(d.Body, `{"error":"unauthenticated"`) {
			t.Errorf("get-identity with %s: %d %q, want 401 JSON", name, d.Status, d.Body)
		}
	}

	d = f.decide(navigation("https", "app.example.com", "/cdn-cgi/access/logout", "CF_Authorization="+appTok))
	if d.Status != 302 || respHeader(d, "location")[0] != "https://auth.example.com/cdn-cgi/access/logout" {
		t.Errorf("logout: %d %q, want 302 to the team domain's logout", d.Status, respHeader(d, "location"))
	}
	if got := respHeader(d, "set-cookie"); len(got) != 1 || got[0] != "CF_Authorization=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Lax" {
		t.Errorf("logout Set-Cookie = %q", got)
	}
}

func mustAppToken(t *testing.T, f *signinFixture, id mint.Identity, app string) string {
	t.Helper()
	tok, _, err := f.minter.AppToken(id, f.app(app))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestSigninPathsElsewhere: other /cdn-cgi/access/ paths, and the sign-in
// paths on hosts of other issuers, go through the usual decision.
func TestSigninPathsElsewhere(t *testing.T) {
	f := newSigninFixture(t, "https://auth.example.com")
	tests := []struct {
		host, path string
		reason     Reason
	}{
		{"app.example.com", "/cdn-cgi/access/certs", ReasonTokenMissing},
		{"app.example.com", "/cdn-cgi/access/authorizedx?code=1", ReasonTokenMissing},
		{"legacy.example.com", "/cdn-cgi/access/authorized?code=1", ReasonTokenMissing},
		{"unknown.example.com", "/cdn-cgi/access/logout", ReasonNoApplication},
	}
	for _, tt := range tests {
		d := f.decide(navigation("https", tt.host, tt.path, ""))
		if d.Reason != tt.reason {
			t.Errorf("Decide(%s%s): reason %q, want %q", tt.host, tt.path, d.Reason, tt.reason)
		}
	}
}

// TestSigninNoHTTPServerCode: the sign-in answers are pure input and
// output; authz itself imports neither net/http nor the team-domain
// package (only the pure login/mint).
func TestSigninNoHTTPServerCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .Imports "\n"}}`, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	imports := strings.Fields(string(out))
	if !slices.Contains(imports, "github.com/accessgate/accessgate/login/mint") {
		t.Fatalf("authz does not import login/mint; the check below would prove nothing: %q", imports)
	}
	for _, imp := range imports {
		if imp == "net/http" || imp == "github.com/accessgate/accessgate/login" {
			t.Errorf("authz imports %s", imp)
		}
	}
}

// TestSigninOnly: SignIn answers the sign-in endpoints as Decide does and
// judges nothing else.
func TestSigninOnly(t *testing.T) {
	f := newSigninFixture(t, "https://auth.example.com")
	code := f.code("app.example.com", "app-aud", testNonce, "/")
	tests := []struct {
		name   string
		req    *Request
		ok     bool
		status int
	}{
		{"authorized", navigation("https", "app.example.com", "/cdn-cgi/access/authorized?code="+code, "__Host-CF_AppSession="+testNonce), true, 302},
		{"logout", navigation("https", "app.example.com", "/cdn-cgi/access/logout", ""), true, 302},
		{"get-identity without a token", navigation("https", "app.example.com", "/cdn-cgi/access/get-identity", ""), true, 401},
		{"an application path", navigation("https", "app.example.com", "/", ""), false, 0},
		{"another issuer's host", navigation("https", "legacy.example.com", "/cdn-cgi/access/logout", ""), false, 0},
		{"no host", navigation("https", "", "/cdn-cgi/access/logout", ""), false, 0},
	}
	for _, tt := range tests {
		d, ok := f.engine.SignIn(context.Background(), tt.req)
		if ok != tt.ok || d.Status != tt.status {
			t.Errorf("SignIn(%s) = %v %d, want %v %d", tt.name, ok, d.Status, tt.ok, tt.status)
		}
		if ok {
			if want := f.decide(tt.req); want.Status != d.Status || want.Reason != d.Reason {
				t.Errorf("SignIn(%s) = %d %q, Decide = %d %q", tt.name, d.Status, d.Reason, want.Status, want.Reason)
			}
		}
	}
}

// FuzzSignIn feeds arbitrary request targets and Cookie headers to the
// application-host sign-in endpoints: no panic, a 302 only with a code made
// for this browser, and no answer that echoes the Cookie header.
func FuzzSignIn(f *testing.F) {
	fx := newSigninFixture(f, "https://auth.example.com")
	good := fx.code("app.example.com", "app-aud", testNonce, "/")
	f.Add("/cdn-cgi/access/authorized?code="+good, "__Host-CF_AppSession="+testNonce)
	f.Add("/cdn-cgi/access/authorized?code="+good+"&code=x", "__Host-CF_AppSession="+testNonce)
	f.Add("/cdn-cgi/access/authorized?code=%zz", `__Host-CF_AppSession="`)
	f.Add("/cdn-cgi/access/get-identity", "CF_Authorization=a.b.c, CF_Authorization=")
	f.Add("/cdn-cgi/access/logout?x", ";;,,=")
	f.Fuzz(func(t *testing.T, target, cookie string) {
		d, ok := fx.engine.SignIn(context.Background(), navigation("https", "app.example.com", target, cookie))
		if !ok {
			return
		}
		if d.Status == 302 && strings.Contains(target, "authorized") && !strings.Contains(cookie, testNonce) {
			t.Fatalf("authorized without the nonce: %+v", d)
		}
		for _, h := range d.ResponseHeaders {
			if len(cookie) > 8 && strings.Contains(h.Value, cookie) {
				t.Fatalf("header %s echoes the Cookie header", h.Key)
			}
		}
	})
}
