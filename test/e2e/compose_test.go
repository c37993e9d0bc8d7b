package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const composeDir = "../../envoy/compose"

// TestComposeDemo replays the docs' docker-compose curl lines without
// Docker: the compose policy (with only its jwks_url pointed at a loopback
// copy of the demo issuer), the committed demo tokens, and the same
// envoy.yaml, so the documented answers are the real ones.
func TestComposeDemo(t *testing.T) {
	envoyPath(t)
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/cdn-cgi/access/certs" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		http.ServeFile(w, r, filepath.Join(composeDir, "issuer", "jwks.json"))
	}))
	t.Cleanup(issuer.Close)

	data, err := os.ReadFile(filepath.Join(composeDir, "accessgate", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const jwksURL = "jwks_url: http://issuer/cdn-cgi/access/certs"
	if strings.Count(string(data), jwksURL) != 1 {
		t.Fatalf("compose policy: %q not found once", jwksURL)
	}
	policy := strings.Replace(string(data), jwksURL, "jwks_url: "+issuer.URL+"/cdn-cgi/access/certs", 1)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, policyFile, []byte(policy))

	e := &env{t: t, host: "localhost"}
	e.start(t, policyFile)
	token := func(name string) string {
		b, err := os.ReadFile(filepath.Join(composeDir, "tokens", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	const webApp = "http://localhost:3000"

	// curl -si -X OPTIONS http://localhost:8080/api/items -H 'Origin: http://localhost:3000' \
	//   -H 'Access-Control-Request-Method: PUT' -H 'Access-Control-Request-Headers: content-type'
	r := e.send(t, http.MethodOptions, "/api/items", map[string]string{
		"Origin":                         webApp,
		"Access-Control-Request-Method":  "PUT",
		"Access-Control-Request-Headers": "content-type",
	})
	if r.StatusCode != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != webApp {
		t.Errorf("preflight: status %d, Access-Control-Allow-Origin %q; want 204 and %s", r.StatusCode, r.Header.Get("Access-Control-Allow-Origin"), webApp)
	}

	// curl -si http://localhost:8080/api/items -H 'Origin: http://localhost:3000' \
	//   --cookie "CF_Authorization=$(cat envoy/compose/tokens/alice.jwt)"
	r = e.send(t, http.MethodGet, "/api/items", map[string]string{
		"Origin": webApp,
		"Cookie": "CF_Authorization=" + token("alice.jwt"),
	})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("alice: status %d, body %s; want 200", r.StatusCode, r.body)
	}
	if v, _ := r.echo(t).header("cf-access-authenticated-user-email"); v != "alice@example.com" {
		t.Errorf("alice: origin got user email %q", v)
	}

	// curl -si http://localhost:8080/dashboard -H 'Accept: text/html'
	r = e.send(t, http.MethodGet, "/dashboard", map[string]string{"Accept": "text/html"})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusFound || loc == nil ||
		!strings.HasPrefix(loc.String(), "http://localhost:8081/cdn-cgi/access/login/localhost?") ||
		loc.Query().Get("redirect_url") != e.appOrigin()+"/dashboard" {
		t.Errorf("navigation: status %d, Location %q; want 302 to the demo login page", r.StatusCode, r.Header.Get("Location"))
	}

	// curl -si http://localhost:8080/api/items \
	//   --cookie "CF_Authorization=$(cat envoy/compose/tokens/bob-contractor.jwt)"
	r = e.send(t, http.MethodGet, "/api/items", map[string]string{"Cookie": "CF_Authorization=" + token("bob-contractor.jwt")})
	if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), `"blocked"`) {
		t.Errorf("bob: status %d, body %s; want 403 blocked", r.StatusCode, r.body)
	}

	// curl -si http://localhost:8080/api/items
	r = e.send(t, http.MethodGet, "/api/items", nil)
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(r.body), `"login_url"`) {
		t.Errorf("no token: status %d, body %s; want 401 with login_url", r.StatusCode, r.body)
	}

	// curl -si http://localhost:8080/public/hello
	if r = e.send(t, http.MethodGet, "/public/hello", nil); r.StatusCode != http.StatusOK {
		t.Errorf("bypass: status %d; want 200", r.StatusCode)
	}
}
