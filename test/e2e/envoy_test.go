package e2e

import (
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

// TestEnvoyValidate runs `envoy --mode validate` on the shipped bootstrap
// and on the substituted one the tests run.
func TestEnvoyValidate(t *testing.T) {
	bin := envoyPath(t)
	data, err := os.ReadFile(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := envoyconf.Substitute(data, envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: 18080},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: 19901},
		Accessgate: envoyconf.Addr{Host: "127.0.0.1", Port: 19001},
		Origin:     envoyconf.Addr{Host: "127.0.0.1", Port: 18000},
	})
	if err != nil {
		t.Fatal(err)
	}
	subFile := filepath.Join(t.TempDir(), "envoy.yaml")
	write(t, subFile, sub)
	for _, f := range []string{bootstrap, subFile} {
		out, err := exec.Command(bin, "--mode", "validate", "-c", f, "--log-level", "warn").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("envoy --mode validate -c %s: %v\n%s", f, err, out)
		}
	}
}

// cookie is a Cookie header carrying tok as the Access cookie.
func cookie(tok string) string { return "theme=dark; CF_Authorization=" + tok }

// unreached asserts that e's origin saw nothing during f.
func (e *env) unreached(t *testing.T, f func()) {
	t.Helper()
	before := e.origin.hits.Load()
	f()
	if n := e.origin.hits.Load() - before; n != 0 {
		t.Errorf("the origin was reached %d times, want 0", n)
	}
}

// TestThroughEnvoy sends real HTTP through the real Envoy to accessgate and
// the origin. Its subtests change nothing in the stack, so any one runs
// alone (-run) or in any order.
func TestThroughEnvoy(t *testing.T) {
	e := newEnv(t)
	alice := e.keys.token(t, "alice@example.com", time.Hour)
	bob := e.keys.token(t, "bob@contractor.example.com", time.Hour)
	unreached := e.unreached
	// corsFor asserts the CORS headers accessgate adds for an allowed Origin.
	corsFor := func(t *testing.T, r *response) {
		t.Helper()
		if got := r.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != e.pageOrigin() {
			t.Errorf("Access-Control-Allow-Origin = %q, want exactly [%s]", got, e.pageOrigin())
		}
		if got := r.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
			t.Errorf("Access-Control-Allow-Credentials = %q, want true", got)
		}
		if !hasValue(r.Header, "Vary", "Origin") {
			t.Errorf("Vary = %q, want it to contain Origin", r.Header.Values("Vary"))
		}
	}

	t.Run("preflight answered without the origin", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodOptions, "/api/items/1", map[string]string{
				"Origin":                         e.pageOrigin(),
				"Access-Control-Request-Method":  "PUT",
				"Access-Control-Request-Headers": "content-type,x-custom",
			})
			if r.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204; body %q", r.StatusCode, r.body)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      e.pageOrigin(),
				"Access-Control-Allow-Methods":     "GET, POST, PUT, DELETE",
				"Access-Control-Allow-Headers":     "content-type, x-custom",
				"Access-Control-Max-Age":           "600",
				"Access-Control-Allow-Credentials": "true",
			}
			for k, v := range want {
				if got := r.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, v := range []string{"Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
				if !hasValue(r.Header, "Vary", v) {
					t.Errorf("Vary = %q, want it to contain %s", r.Header.Values("Vary"), v)
				}
			}
			if len(r.body) != 0 {
				t.Errorf("body = %q, want none", r.body)
			}
		})
	})

	t.Run("preflight from a disallowed origin refused", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodOptions, "/api/items/1", map[string]string{
				"Origin":                        e.evilOrigin(),
				"Access-Control-Request-Method": "PUT",
			})
			if r.StatusCode != http.StatusForbidden {
				t.Errorf("status = %d, want 403", r.StatusCode)
			}
			for k := range r.Header {
				if strings.HasPrefix(strings.ToLower(k), "access-control-allow-") {
					t.Errorf("refused preflight carries %s: %q", k, r.Header.Get(k))
				}
			}
		})
	})

	t.Run("cookie GET reaches the origin with identity and CORS", func(t *testing.T) {
		before := e.origin.hits.Load()
		r := e.send(t, http.MethodGet, "/api/items?page=2", map[string]string{
			"Origin": e.pageOrigin(),
			"Accept": "application/json",
			"Cookie": cookie(alice),
		})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %q", r.StatusCode, r.body)
		}
		if n := e.origin.hits.Load() - before; n != 1 {
			t.Errorf("origin hits = %d, want 1", n)
		}
		got := r.echo(t)
		if v, _ := got.header("cf-access-authenticated-user-email"); v != "alice@example.com" {
			t.Errorf("origin got cf-access-authenticated-user-email %q, want alice@example.com", v)
		}
		if v, _ := got.header("cf-access-jwt-assertion"); v != alice {
			t.Errorf("origin got cf-access-jwt-assertion %q, want the token", v)
		}
		if got.URI != "/api/items?page=2" {
			t.Errorf("origin got %q, want /api/items?page=2", got.URI)
		}
		corsFor(t, r)
		if !hasValue(r.Header, "Vary", "Accept-Encoding") {
			t.Errorf("Vary = %q: the origin's own Accept-Encoding was lost", r.Header.Values("Vary"))
		}
		if got := r.Header.Get("Access-Control-Expose-Headers"); got != "x-request-id" {
			t.Errorf("Access-Control-Expose-Headers = %q, want x-request-id", got)
		}
	})

	t.Run("accessgate CORS overwrites the origin's", func(t *testing.T) {
		r := e.send(t, http.MethodGet, "/origin-cors/x", map[string]string{
			"Origin": e.pageOrigin(),
			"Cookie": cookie(alice),
		})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", r.StatusCode)
		}
		corsFor(t, r)
	})

	t.Run("client identity headers never reach the origin", func(t *testing.T) {
		spoof := map[string]string{
			"Cf-Access-Authenticated-User-Email": "mallory@example.com",
			"Cf-Access-Client-Id":                "forged.access",
			"Cf-Access-Client-Secret":            "forged",
		}
		withToken := map[string]string{"Cookie": cookie(alice)}
		for k, v := range spoof {
			withToken[k] = v
		}
		got := e.send(t, http.MethodGet, "/api/me", withToken).echo(t)
		if v, _ := got.header("cf-access-authenticated-user-email"); v != "alice@example.com" {
			t.Errorf("with a token: origin got user email %q, want alice@example.com", v)
		}
		for _, h := range []string{"cf-access-client-id", "cf-access-client-secret"} {
			if v, ok := got.header(h); ok {
				t.Errorf("with a token: origin got %s: %q", h, v)
			}
		}

		// A bypass path forwards without a token; nothing spoofed survives.
		spoof["Cf-Access-Jwt-Assertion"] = "forged.jwt.value"
		spoof["cf-access-token"] = "forged"
		r := e.send(t, http.MethodGet, "/public/info", spoof)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("bypass: status = %d, want 200", r.StatusCode)
		}
		got = r.echo(t)
		for h := range spoof {
			if v, ok := got.header(strings.ToLower(h)); ok {
				t.Errorf("without a token: origin got %s: %q", h, v)
			}
		}
	})

	t.Run("underscore variant of an identity header refused", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/public/info", map[string]string{
				"Cf_Access_Authenticated_User_Email": "mallory@example.com",
			})
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400 (headers_with_underscores_action)", r.StatusCode)
			}
		})
	})

	t.Run("navigation without a token redirects to login", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/dashboard?tab=1&q=a%20b", map[string]string{
				"Accept":         "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
				"Sec-Fetch-Mode": "navigate",
			})
			if r.StatusCode != http.StatusFound {
				t.Fatalf("status = %d, want 302; body %q", r.StatusCode, r.body)
			}
			loc, err := url.Parse(r.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != e.loginPrefix() {
				t.Errorf("Location = %s, want it under %s", loc, e.loginPrefix())
			}
			if got := loc.Query().Get("kid"); got != audience {
				t.Errorf("kid = %q, want %q", got, audience)
			}
			if got, want := loc.Query().Get("redirect_url"), e.appOrigin()+"/dashboard?tab=1&q=a%20b"; got != want {
				t.Errorf("redirect_url = %q, want %q", got, want)
			}
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	})

	t.Run("API call without a token gets 401 JSON readable cross-origin", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/api/items", map[string]string{
				"Origin":  e.pageOrigin(),
				"Accept":  "application/json",
				"Referer": e.pageOrigin() + "/inbox?x=1",
			})
			if r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status = %d, want 401; body %q", r.StatusCode, r.body)
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if got, want := r.Header.Get("WWW-Authenticate"), `Bearer realm="app"`; got != want {
				t.Errorf("WWW-Authenticate = %q, want %q", got, want)
			}
			var body struct {
				Error    string `json:"error"`
				Reason   string `json:"reason"`
				LoginURL string `json:"login_url"`
			}
			r.json(t, &body)
			if body.Error != "unauthenticated" || body.Reason != "token_missing" {
				t.Errorf("body = %s, want error unauthenticated, reason token_missing", r.body)
			}
			lu, err := url.Parse(body.LoginURL)
			if err != nil || !strings.HasPrefix(body.LoginURL, e.loginPrefix()+"?") {
				t.Fatalf("login_url = %q, want it under %s", body.LoginURL, e.loginPrefix())
			}
			// After logging in, the user lands back on the web app.
			if got, want := lu.Query().Get("redirect_url"), e.pageOrigin()+"/inbox?x=1"; got != want {
				t.Errorf("login_url redirect_url = %q, want the Referer %q", got, want)
			}
			corsFor(t, r)
		})
	})

	t.Run("expired token gets 401", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/api/items", map[string]string{
				"Cookie": cookie(e.keys.token(t, "alice@example.com", -time.Hour)),
			})
			var body struct{ Error, Reason string }
			r.json(t, &body)
			if r.StatusCode != http.StatusUnauthorized || body.Reason != "token_expired" {
				t.Errorf("status = %d, body %s; want 401 token_expired", r.StatusCode, r.body)
			}
		})
	})

	t.Run("blocked user gets 403", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/api/items", map[string]string{
				"Origin": e.pageOrigin(),
				"Cookie": cookie(bob),
			})
			if r.StatusCode != http.StatusForbidden {
				t.Fatalf("status = %d, want 403; body %q", r.StatusCode, r.body)
			}
			var body struct{ Error, Reason string }
			r.json(t, &body)
			if body.Error != "forbidden" || body.Reason != "blocked" {
				t.Errorf("body = %s, want error forbidden, reason blocked", r.body)
			}
			corsFor(t, r)
		})
	})

	t.Run("bypass path reaches the origin without a token", func(t *testing.T) {
		r := e.send(t, http.MethodGet, "/public/status", nil)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %q", r.StatusCode, r.body)
		}
		if got := r.echo(t).URI; got != "/public/status" {
			t.Errorf("origin got %q", got)
		}
	})

	t.Run("Envoy normalizes the path before accessgate judges it", func(t *testing.T) {
		unreached(t, func() {
			// Dot-segments are resolved: this is /api/items, not a bypass.
			for _, target := range []string{"/public/../api/items", "/public/%2e%2e/api/items", "/public/./../api//items", "/x/../public/../api/items"} {
				r := e.send(t, http.MethodGet, target, map[string]string{"Accept": "application/json"})
				if r.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s: status = %d, want 401 (judged as /api/items)", target, r.StatusCode)
				}
			}
			// Encoded slashes and backslashes are refused outright.
			for _, target := range []string{"/public%2F..%2Fapi/items", "/public%5c..%5capi/items"} {
				r := e.send(t, http.MethodGet, target, nil)
				if r.StatusCode != http.StatusBadRequest {
					t.Errorf("GET %s: status = %d, want 400", target, r.StatusCode)
				}
			}
		})
	})

	t.Run("Envoy health skips ext_authz", func(t *testing.T) {
		unreached(t, func() {
			r := e.send(t, http.MethodGet, "/envoy-health", nil)
			if r.StatusCode != http.StatusOK || string(r.body) != "ok\n" {
				t.Errorf("status = %d, body %q; want 200 ok", r.StatusCode, r.body)
			}
		})
	})

}

// TestEnvoyFailsClosed: with accessgate stopped, Envoy denies everything
// that needs a decision (status_on_error 503) and still answers its own
// health route.
func TestEnvoyFailsClosed(t *testing.T) {
	e := newEnv(t)
	alice := e.keys.token(t, "alice@example.com", time.Hour)
	stop(t, e.accessgate)
	e.unreached(t, func() {
		for _, c := range []struct {
			method string
			hdr    map[string]string
		}{
			{http.MethodGet, map[string]string{"Cookie": cookie(alice)}},
			{http.MethodGet, nil},
			{http.MethodOptions, map[string]string{"Origin": e.pageOrigin(), "Access-Control-Request-Method": "PUT"}},
		} {
			r := e.send(t, c.method, "/api/items", c.hdr)
			if r.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("%s with %v: status = %d, want 503 (status_on_error)", c.method, c.hdr, r.StatusCode)
			}
		}
		// The bypass path is accessgate's decision too: closed as well.
		if r := e.send(t, http.MethodGet, "/public/status", nil); r.StatusCode == http.StatusOK {
			t.Errorf("bypass path with accessgate down: status 200, want a denial")
		}
	})
	if r := e.send(t, http.MethodGet, "/envoy-health", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/envoy-health with accessgate down: status = %d, want 200", r.StatusCode)
	}
}
