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
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// TestBrowserWebSocket: a real page opens a WebSocket to the app through
// Envoy with the user's cookie. From the allowed web app it echoes; the
// same script on another page of the same site (so the SameSite=Lax cookie
// goes along: the cross-site WebSocket hijacking setup) is refused before
// the origin sees the upgrade.
func TestBrowserWebSocket(t *testing.T) {
	chromiumPath(t)
	ws := newWSOrigin(t)
	e := newEnvWith(t, func(e *env) {
		e.rewrite = func(t *testing.T, cfg []byte) []byte {
			return editBootstrap(t, cfg, func(_ *hcmv3.HttpConnectionManager, clusters *[]*clusterv3.Cluster) {
				for i, c := range *clusters {
					if c.GetName() == "origin" {
						(*clusters)[i] = clusterTo(t, *clusters, "origin", ws.port())
					}
				}
			})
		}
	})
	alice := e.keys.token(t, "alice@example.com", time.Hour)

	bctx := startBrowser(t, "MAP *.localtest 127.0.0.1", 90*time.Second)
	httpOnly := true
	setCookie := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, network.SetCookie, network.SetCookieParams{
			Name: "CF_Authorization", Value: alice,
			Domain: appHost, Path: "/", HTTPOnly: &httpOnly,
			SameSite: network.CookieSameSiteLax,
		})
		return err
	})
	socketURL := fmt.Sprintf("ws://%s:%d/socket", appHost, e.envoyPort)
	// The page's script: open, send, resolve with the echo or how it ended.
	js := fmt.Sprintf(`new Promise((resolve) => {
		const ws = new WebSocket(%q);
		ws.onopen = () => ws.send("ping from " + location.host);
		ws.onmessage = (m) => { resolve(JSON.stringify({echo: String(m.data)})); ws.close(); };
		ws.onclose = (ev) => resolve(JSON.stringify({closed: ev.code}));
		setTimeout(() => resolve(JSON.stringify({timeout: true})), 15000);
	})`, socketURL)
	type result struct {
		Echo    string `json:"echo"`
		Closed  int    `json:"closed"`
		Timeout bool   `json:"timeout"`
	}
	open := func(t *testing.T, page string) result {
		t.Helper()
		if err := chromedp.Do(bctx, setCookie, chromedp.Navigate(page)); err != nil {
			t.Fatal(err)
		}
		out, err := chromedp.Run(bctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		var r result
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("script result %q: %v", out, err)
		}
		return r
	}

	t.Run("the allowed web app opens the socket and it echoes", func(t *testing.T) {
		r := open(t, e.pageOrigin()+"/chat")
		if want := fmt.Sprintf("ping from %s:%d", pageHost, e.webPort); r.Echo != want {
			t.Fatalf("script saw %+v, want the echo %q", r, want)
		}
	})
	t.Run("the same page on another origin of the site is refused", func(t *testing.T) {
		before := ws.upgrade.Load()
		r := open(t, e.evilOrigin()+"/chat")
		if r.Echo != "" || r.Timeout || r.Closed != 1006 {
			t.Fatalf("script saw %+v, want the handshake refused (close 1006)", r)
		}
		if n := ws.upgrade.Load() - before; n != 0 {
			t.Errorf("the origin accepted %d upgrades from the foreign page, want 0", n)
		}
		// accessgate refused it for its Origin (not for a missing cookie:
		// the page is same-site, so the Lax cookie went along).
		if !strings.Contains(e.accessgate.Out.String(), `"reason":"websocket_origin"`) {
			t.Error("accessgate logged no websocket_origin decision")
		}
	})
}
