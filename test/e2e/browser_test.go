package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowser drives headless Chromium (chromedp, DevTools protocol) against
// the stack: a web app page on www.demo.localtest calls the app on
// app.demo.localtest through Envoy with fetch(credentials: 'include').
//
// Cookies: the hosts share the registrable domain demo.localtest, so the
// page and the app are different origins but the same site, and a
// SameSite=Lax CF_Authorization cookie goes with a credentialed cross-origin
// fetch over plain http. (SameSite=None would need Secure, hence https.)
func TestBrowser(t *testing.T) {
	chromiumPath(t)
	e := newEnv(t)
	alice := e.keys.token(t, "alice@example.com", time.Hour)

	bctx := startBrowser(t, "MAP *.localtest 127.0.0.1", 90*time.Second)

	run := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	get := func(t *testing.T, a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(bctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	httpOnly := true
	setCookie := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: "CF_Authorization", Value: alice,
			Domain: appHost, Path: "/", HTTPOnly: &httpOnly,
			SameSite: network.CookieSameSiteLax,
		})
		return err
	})
	clearCookies := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return err
	})
	// fetchJS runs fetch() in the page and returns what the script saw.
	type seen struct {
		Status   int    `json:"status"`
		Body     string `json:"body"`
		Rejected string `json:"rejected"`
	}
	fetchJS := func(t *testing.T, page, call string) seen {
		t.Helper()
		js := fmt.Sprintf(`(async () => {
			try {
				const r = await %s;
				return JSON.stringify({status: r.status, body: await r.text()});
			} catch (err) {
				return JSON.stringify({rejected: String(err)});
			}
		})()`, call)
		run(t, chromedp.Navigate(page))
		out := get(t, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		var s seen
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("script result %q: %v", out, err)
		}
		return s
	}
	putCall := fmt.Sprintf(`fetch(%q, {method: 'PUT', credentials: 'include',
		headers: {'Content-Type': 'application/json', 'X-Custom': 'from-browser'},
		body: JSON.stringify({name: 'widget'})})`, e.appOrigin()+"/api/items/42")

	t.Run("preflighted PUT with a cookie succeeds and the script reads the body", func(t *testing.T) {
		run(t, clearCookies, setCookie)
		before := e.origin.hits.Load()
		e.origin.mu.Lock()
		e.origin.methods = nil
		e.origin.mu.Unlock()
		s := fetchJS(t, e.pageOrigin()+"/app", putCall)
		if s.Rejected != "" || s.Status != 200 {
			t.Fatalf("fetch: status %d, rejected %q, body %q; want 200", s.Status, s.Rejected, s.Body)
		}
		var got echo
		if err := json.Unmarshal([]byte(s.Body), &got); err != nil {
			t.Fatalf("body %q: %v", s.Body, err)
		}
		if got.Method != "PUT" || got.URI != "/api/items/42" {
			t.Errorf("origin got %s %s, want PUT /api/items/42", got.Method, got.URI)
		}
		if v, _ := got.header("cf-access-authenticated-user-email"); v != "alice@example.com" {
			t.Errorf("origin got user email %q, want alice@example.com (was the cookie sent?)", v)
		}
		if v, _ := got.header("x-custom"); v != "from-browser" {
			t.Errorf("origin got x-custom %q", v)
		}
		// The preflight was answered by accessgate: the origin saw only the PUT.
		e.origin.mu.Lock()
		methods := strings.Join(e.origin.methods, ",")
		e.origin.mu.Unlock()
		if n := e.origin.hits.Load() - before; n != 1 || methods != "PUT" {
			t.Errorf("origin saw %d requests (%s), want only the PUT", n, methods)
		}
	})

	t.Run("the same call from a disallowed origin fails in the browser", func(t *testing.T) {
		run(t, clearCookies, setCookie)
		before := e.origin.hits.Load()
		s := fetchJS(t, e.evilOrigin()+"/app", putCall)
		if !strings.HasPrefix(s.Rejected, "TypeError") {
			t.Fatalf("fetch from %s: status %d, body %q, rejected %q; want a TypeError from CORS", e.evilOrigin(), s.Status, s.Body, s.Rejected)
		}
		if n := e.origin.hits.Load() - before; n != 0 {
			t.Errorf("the origin was reached %d times, want 0 (the preflight is refused)", n)
		}
	})

	t.Run("unauthenticated fetch gets 401 and the script reads login_url", func(t *testing.T) {
		run(t, clearCookies)
		s := fetchJS(t, e.pageOrigin()+"/inbox", fmt.Sprintf(`fetch(%q, {credentials: 'include'})`, e.appOrigin()+"/api/items"))
		if s.Rejected != "" || s.Status != 401 {
			t.Fatalf("fetch: status %d, rejected %q, body %q; want a readable 401", s.Status, s.Rejected, s.Body)
		}
		var body struct {
			Error    string `json:"error"`
			LoginURL string `json:"login_url"`
		}
		if err := json.Unmarshal([]byte(s.Body), &body); err != nil {
			t.Fatalf("body %q: %v", s.Body, err)
		}
		if body.Error != "unauthenticated" || !strings.HasPrefix(body.LoginURL, e.loginPrefix()+"?") {
			t.Fatalf("body = %s, want error unauthenticated and a login_url under %s", s.Body, e.loginPrefix())
		}
		// Chromium sends the page's origin as Referer cross-origin
		// (strict-origin-when-cross-origin): after login, back to the web app.
		lu, _ := url.Parse(body.LoginURL)
		if got := lu.Query().Get("redirect_url"); !strings.HasPrefix(got, e.pageOrigin()+"/") {
			t.Errorf("login_url redirect_url = %q, want the web app %s", got, e.pageOrigin())
		}
	})

	t.Run("top-level navigation without a cookie lands on the login page", func(t *testing.T) {
		run(t, clearCookies)
		target := e.appOrigin() + "/dashboard?tab=2"
		run(t, chromedp.Navigate(target))
		loc, title := get(t, chromedp.Location()), get(t, chromedp.Title())
		u, err := url.Parse(loc)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Scheme + "://" + u.Host + u.Path; got != e.loginPrefix() || title != "login stub" {
			t.Fatalf("landed on %s (title %q), want the login page %s", loc, title, e.loginPrefix())
		}
		if got := u.Query().Get("redirect_url"); got != target {
			t.Errorf("redirect_url = %q, want %q", got, target)
		}
		if got := u.Query().Get("kid"); got != audience {
			t.Errorf("kid = %q, want %q", got, audience)
		}
	})
}
