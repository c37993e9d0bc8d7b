package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserThroughProxies drives headless Chromium through nginx, Caddy
// and Traefik on their shipped configurations: a web app on www.example.com
// sends a credentialed cross-origin PUT with a custom header to
// app.example.com. It succeeds from the allowed web app (preflight answered
// by accessgate, CORS headers on the answer) and fails from another origin.
func TestBrowserThroughProxies(t *testing.T) {
	chromiumPath(t)
	bctx := startBrowser(t, "MAP *.example.com 127.0.0.1", 3*time.Minute)

	for _, p := range proxies {
		if p.name == "envoy-http" {
			continue // Envoy's answers are the gRPC ones; TestBrowser covers them
		}
		t.Run(p.name, func(t *testing.T) {
			s := newProxyStack(t, p)
			browserPUT(t, bctx, s)
		})
	}
}

// browserPUT runs the credentialed cross-origin PUT from the allowed web app
// and from another origin.
func browserPUT(t *testing.T, bctx context.Context, s *proxyStack) {
	alice := s.keys.token(t, "alice@example.com", time.Hour)
	run := func(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatal(err)
		}
	}
	httpOnly := true
	setCookie := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: "CF_Authorization", Value: alice,
			Domain: proxyAppHost, Path: "/", HTTPOnly: &httpOnly,
			SameSite: network.CookieSameSiteLax,
		})
		return err
	})
	type seen struct {
		Status   int    `json:"status"`
		Body     string `json:"body"`
		Rejected string `json:"rejected"`
	}
	put := fmt.Sprintf(`(async () => {
		try {
			const r = await fetch(%q, {method: 'PUT', credentials: 'include',
				headers: {'Content-Type': 'application/json', 'X-Custom': 'from-browser'},
				body: JSON.stringify({name: 'widget'})});
			return JSON.stringify({status: r.status, body: await r.text()});
		} catch (err) {
			return JSON.stringify({rejected: String(err)});
		}
	})()`, s.appOrigin()+"/api/items/42")
	fetchFrom := func(t *testing.T, page string) seen {
		t.Helper()
		run(t, setCookie, chromedp.Navigate(page))
		out, err := chromedp.Run(bctx, chromedp.Evaluate[string](put, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		var v seen
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("script result %q: %v", out, err)
		}
		return v
	}

	t.Run("from the allowed web app the PUT succeeds", func(t *testing.T) {
		s.origin.mu.Lock()
		s.origin.methods = nil
		s.origin.mu.Unlock()
		v := fetchFrom(t, s.pageOrigin()+"/app")
		if v.Rejected != "" || v.Status != 200 {
			t.Fatalf("fetch: status %d, rejected %q, body %q; want 200", v.Status, v.Rejected, v.Body)
		}
		var got echo
		if err := json.Unmarshal([]byte(v.Body), &got); err != nil {
			t.Fatalf("body %q: %v", v.Body, err)
		}
		if got.Method != "PUT" || got.URI != "/api/items/42" {
			t.Errorf("origin got %s %s, want PUT /api/items/42", got.Method, got.URI)
		}
		if e, _ := got.header("cf-access-authenticated-user-email"); e != "alice@example.com" {
			t.Errorf("origin got user email %q, want alice@example.com (was the cookie sent?)", e)
		}
		if x, _ := got.header("x-custom"); x != "from-browser" {
			t.Errorf("origin got x-custom %q", x)
		}
		s.origin.mu.Lock()
		methods := strings.Join(s.origin.methods, ",")
		s.origin.mu.Unlock()
		if methods != "PUT" {
			t.Errorf("origin saw %q, want only the PUT (the preflight answered by accessgate)", methods)
		}
	})

	t.Run("from another origin the PUT fails", func(t *testing.T) {
		before := s.origin.hits.Load()
		v := fetchFrom(t, s.evilOrigin()+"/app")
		if !strings.HasPrefix(v.Rejected, "TypeError") {
			t.Fatalf("fetch from %s: status %d, body %q, rejected %q; want a TypeError from CORS", s.evilOrigin(), v.Status, v.Body, v.Rejected)
		}
		if n := s.origin.hits.Load() - before; n != 0 {
			t.Errorf("the origin was reached %d times, want 0 (the preflight is refused)", n)
		}
	})
}
