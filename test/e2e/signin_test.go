package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// demoUser is the example provider's first user (its login name on a
// provider at http://localhost:PORT/) and the email it reports.
const (
	demoUser     = "test-user@localhost"
	demoPassword = "verysecure"
	demoEmail    = "test-user@zitadel.ch"
)

// oidcopPath returns bin/oidcop (built by .ci/run and `make demo`), or
// builds test/oidcop, its own module, into the test's folder.
func oidcopPath(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs("../../bin/oidcop"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	out := filepath.Join(binDir, "oidcop")
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = "../oidcop"
	if b, err := cmd.CombinedOutput(); err != nil {
		// The build needs the provider's module from the Go proxy.
		if os.Getenv("CI") != "" {
			t.Fatalf("build test/oidcop: %v\n%s", err, b)
		}
		t.Skipf("build test/oidcop (run bash .ci/run or make demo first): %v\n%s", err, b)
	}
	return out
}

// demoPath builds ./demo, the `make demo` stack.
func demoPath(t *testing.T) string {
	t.Helper()
	out := filepath.Join(binDir, "demo")
	if b, err := exec.Command("go", "build", "-o", out, "github.com/accessgate/accessgate/demo").CombinedOutput(); err != nil {
		t.Fatalf("go build ./demo: %v\n%s", err, b)
	}
	return out
}

// TestSignInDemo runs `make demo`'s stack — Envoy, accessgate with a login
// section, the zitadel example OpenID Connect provider (a real provider
// process with a real login form), the API and the web app — and signs in
// with headless Chromium, the way a user would.
func TestSignInDemo(t *testing.T) {
	chromiumPath(t)
	envoyBin := envoyPath(t)
	ag := accessgatePath(t)
	op := oidcopPath(t)
	demo := demoPath(t)

	port, idpPort := freePort(t), freePort(t)
	dir := t.TempDir()
	p := start(t, "demo", demo, "-port", strconv.Itoa(port), "-idp-port", strconv.Itoa(idpPort),
		"-envoy", envoyBin, "-accessgate", ag, "-oidcop", op, "-dir", dir)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			for _, name := range []string{"accessgate", "envoy", "oidcop"} {
				b, _ := os.ReadFile(filepath.Join(dir, name+".log"))
				t.Logf("---- %s.log ----\n%s", name, b)
			}
		}
	})
	ready := time.After(90 * time.Second)
	for !strings.Contains(p.Out.String(), "\nOpen http://") {
		select {
		case <-p.Done():
			t.Fatalf("demo exited (%v):\n%s", p.Err(), p.Out.String())
		case <-ready:
			t.Fatalf("demo not ready within 90s:\n%s", p.Out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	url := func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, port, path) }
	api, web, reports := url("api.demo.localhost", "/"), url("web.demo.localhost", "/"), url("reports.demo.localhost", "/")
	providerLogin := fmt.Sprintf("http://localhost:%d/login/username", idpPort)

	bctx := startBrowser(t, "MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1", 3*time.Minute, chromedp.WindowSize(1000, 820))

	do := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	location := func(t *testing.T) string {
		t.Helper()
		l, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	text := func(t *testing.T, sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// waitJS polls a script until it returns true, to a deadline.
	waitJS := func(t *testing.T, what, js string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			ok, err := chromedp.Run(bctx, chromedp.Evaluate[bool](js))
			if err == nil && ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (last error %v) at %s", what, err, location(t))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	cookies := func(t *testing.T, u string) map[string]*network.Cookie {
		t.Helper()
		var got []*network.Cookie
		do(t, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			r, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
			got = r.Cookies
			return err
		}))
		m := map[string]*network.Cookie{}
		for _, c := range got {
			m[c.Name] = c
		}
		return m
	}
	signInAtProvider := func(t *testing.T) {
		t.Helper()
		do(t, chromedp.WaitVisible(chromedp.ID("username")))
		if l := location(t); !strings.HasPrefix(l, providerLogin) {
			t.Fatalf("login form at %q, want the provider's %s", l, providerLogin)
		}
		do(t,
			chromedp.SendKeys(chromedp.ID("username"), demoUser),
			chromedp.SendKeys(chromedp.ID("password"), demoPassword),
			chromedp.Submit(chromedp.ID("password")),
		)
	}
	var secrets []string // every token the browser held, for the log scan

	t.Run("navigation signs in through the provider's form", func(t *testing.T) {
		do(t, chromedp.Navigate(api))
		signInAtProvider(t)
		do(t, chromedp.WaitVisible(chromedp.ID("email")))
		if l := location(t); l != api {
			t.Errorf("landed on %q, want the application %s", l, api)
		}
		if got := text(t, "email"); got != demoEmail {
			t.Errorf("the origin saw %q, want %s", got, demoEmail)
		}
		c := cookies(t, api)
		tok := c["CF_Authorization"]
		switch {
		case tok == nil:
			t.Fatalf("no CF_Authorization on %s (cookies %v)", api, c)
		case !tok.HTTPOnly || tok.SameSite != network.CookieSameSiteLax || tok.Domain != "api.demo.localhost" || tok.Path != "/" || tok.Session:
			t.Errorf("CF_Authorization: HttpOnly %v, SameSite %q, Domain %q, Path %q, session %v; want HttpOnly, Lax (configured), host-only on api.demo.localhost, /, with Max-Age",
				tok.HTTPOnly, tok.SameSite, tok.Domain, tok.Path, tok.Session)
		}
		if c["CF_AppSession"] != nil {
			t.Errorf("CF_AppSession still set after the code was redeemed")
		}
		secrets = append(secrets, tok.Value)
		for _, oc := range cookies(t, url("auth.demo.localhost", "/")) {
			secrets = append(secrets, oc.Value) // the org session
		}
	})

	t.Run("the web app calls the API cross-origin with the cookie", func(t *testing.T) {
		do(t, chromedp.Navigate(web))
		waitJS(t, "the API call", `document.getElementById("state").textContent.startsWith("Signed in")`)
		var rc struct {
			Email   string         `json:"cf_access_authenticated_user_email"`
			Origin  string         `json:"origin"`
			Cookies []string       `json:"cookie_names"`
			Claims  map[string]any `json:"cf_access_jwt_assertion_claims"`
		}
		if err := json.Unmarshal([]byte(text(t, "received")), &rc); err != nil {
			t.Fatal(err)
		}
		if rc.Email != demoEmail || rc.Origin != strings.TrimSuffix(web, "/") || rc.Claims["type"] != "app" || rc.Claims["idp"] != "zitadel-example" {
			t.Errorf("the origin received %+v", rc)
		}
		shot, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "signin-demo.png")
		if os.Getenv("UPDATE_SCREENSHOT") != "" {
			out = "../../docs/signin-demo.png" // the README's picture
		}
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("get-identity from the web app", func(t *testing.T) {
		do(t, chromedp.Click(chromedp.ID("identity-button")))
		waitJS(t, "get-identity", `document.getElementById("identity").textContent.startsWith("200 ")`)
		var doc struct {
			Email string `json:"email"`
			IdP   struct {
				ID string `json:"id"`
			} `json:"idp"`
		}
		body := strings.TrimPrefix(text(t, "identity"), "200 ")
		if err := json.Unmarshal([]byte(body), &doc); err != nil || doc.Email != demoEmail || doc.IdP.ID != "zitadel-example" {
			t.Errorf("get-identity = %q (%v)", body, err)
		}
	})

	t.Run("a second application signs in through the org session", func(t *testing.T) {
		do(t, chromedp.Navigate(reports))
		// No form: had the provider asked, the page would stop there.
		do(t, chromedp.WaitVisible(chromedp.ID("email")))
		if l, got := location(t), text(t, "email"); l != reports || got != demoEmail {
			t.Errorf("reports: at %q as %q, want %s as %s", l, got, reports, demoEmail)
		}
		logs, _ := os.ReadFile(filepath.Join(dir, "accessgate.log"))
		if !strings.Contains(string(logs), "org_session") {
			t.Errorf("accessgate logged no transfer from the org session")
		}
		if c := cookies(t, reports)["CF_Authorization"]; c != nil {
			secrets = append(secrets, c.Value)
		}
	})

	t.Run("logout, then the next navigation signs in again", func(t *testing.T) {
		do(t, chromedp.Navigate(url("api.demo.localhost", "/cdn-cgi/access/logout")))
		waitJS(t, "the team domain's logout page", `document.body.textContent.includes("signed out")`)
		if l := location(t); l != url("auth.demo.localhost", "/cdn-cgi/access/logout") {
			t.Errorf("logout ended at %q, want the team domain's logout", l)
		}
		if c := cookies(t, api)["CF_Authorization"]; c != nil {
			t.Errorf("CF_Authorization still set on the API after logout")
		}
		do(t, chromedp.Navigate(api))
		do(t, chromedp.WaitVisible(chromedp.ID("username")))
		if l := location(t); !strings.HasPrefix(l, providerLogin) {
			t.Errorf("after logout the API sent the browser to %q, want the provider's form", l)
		}
	})

	t.Run("fetch → 401 → login_url signs in and comes back to the web app", func(t *testing.T) {
		do(t, chromedp.Navigate(web))
		waitJS(t, "the 401", `document.getElementById("state").textContent.startsWith("Not signed in")`)
		href, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("signin").href`))
		if err != nil || !strings.HasPrefix(href, url("auth.demo.localhost", "/cdn-cgi/access/login/api.demo.localhost?")) || !strings.Contains(href, "&nonce=") {
			t.Fatalf("sign-in link %q (%v), want the team domain's login with a nonce", href, err)
		}
		do(t, chromedp.Click(chromedp.ID("signin")))
		signInAtProvider(t)
		waitJS(t, "the web app signed in", `location.href === `+strconv.Quote(web)+` && document.getElementById("state").textContent.startsWith("Signed in")`)
	})

	t.Run("no token or cookie value in any log", func(t *testing.T) {
		if len(secrets) < 3 {
			t.Fatalf("collected %d secret values; the scan would prove little", len(secrets))
		}
		for _, name := range []string{"accessgate.log", "envoy.log", "oidcop.log"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if len(s) >= 16 && strings.Contains(string(b), s) {
					t.Errorf("%s holds a token or cookie value", name)
				}
			}
		}
	})
}
