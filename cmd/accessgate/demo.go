package main

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/accessgate/accessgate/authz"
)

// The demo configuration: DEMO ONLY. Its private key is public (it is in the
// source), so anything it signs proves nothing.
//
//go:embed demo/policy.yaml demo/jwks.json demo/DEMO-ONLY-private-key.jwk.json
var demoFS embed.FS

// Facts of demo/policy.yaml that the demo tokens and requests rely on.
const (
	demoIssuer       = "https://demo.accessgate.example"
	demoAudience     = "demo-dashboard-audience"
	demoClientID     = "demo-ci-bot.access"
	demoClientSecret = "accessgate-demo-secret"
	demoTokenTTL     = 12 * time.Hour
)

// demoFiles is a demo configuration written to a temporary folder, so that
// it is an ordinary policy file: `check` can read it, and editing it while
// serve runs shows a live reload.
type demoFiles struct {
	dir      string
	policy   string
	token    string // alice@example.com, allowed
	expires  time.Time
	examples []demoExample
}

// demoExample is one ready-made request showing one kind of decision.
type demoExample struct {
	name string
	what string // the expected answer, for the intro text
	req  requestFile
	file string
}

// writeDemo writes the demo policy, its key set and example requests (with
// tokens signed now) to a new temporary folder.
func writeDemo(now time.Time) (*demoFiles, error) {
	dir, err := os.MkdirTemp("", "accessgate-demo-")
	if err != nil {
		return nil, err
	}
	d, err := fillDemo(dir, now)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("demo mode: %w", err)
	}
	return d, nil
}

func fillDemo(dir string, now time.Time) (*demoFiles, error) {
	for _, name := range []string{"policy.yaml", "jwks.json"} {
		b, err := demoFS.ReadFile("demo/" + name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	keyJSON, err := demoFS.ReadFile("demo/DEMO-ONLY-private-key.jwk.json")
	if err != nil {
		return nil, err
	}
	key, err := jwk.ParseKey(keyJSON)
	if err != nil {
		return nil, err
	}
	d := &demoFiles{dir: dir, policy: filepath.Join(dir, "policy.yaml"), expires: now.Add(demoTokenTTL)}
	if d.token, err = demoToken(key, "alice@example.com", now); err != nil {
		return nil, err
	}
	blocked, err := demoToken(key, "carol@contractor.example.com", now)
	if err != nil {
		return nil, err
	}
	d.examples = demoExamples(d.token, blocked)
	if err := os.Mkdir(filepath.Join(dir, "requests"), 0o755); err != nil {
		return nil, err
	}
	for i := range d.examples {
		ex := &d.examples[i]
		ex.file = filepath.Join(dir, "requests", ex.name+".json")
		b, err := json.MarshalIndent(ex.req, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(ex.file, append(b, '\n'), 0o644); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// demoToken signs an Access-style token for email with the demo key.
func demoToken(key jwk.Key, email string, now time.Time) (string, error) {
	tok, err := jwt.NewBuilder().
		Issuer(demoIssuer).
		Audience([]string{demoAudience}).
		Subject(email).
		IssuedAt(now).
		NotBefore(now).
		Expiration(now.Add(demoTokenTTL)).
		Claim("email", email).
		Claim("type", "app").
		Claim("country", "US").
		Build()
	if err != nil {
		return "", err
	}
	b, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
	return string(b), err
}

// demoExamples are the requests the intro offers: one per kind of answer.
func demoExamples(allowed, blocked string) []demoExample {
	nav := func(h map[string]string) map[string]string {
		h["accept"] = "text/html,application/xhtml+xml"
		h["sec-fetch-mode"] = "navigate"
		h["user-agent"] = "Mozilla/5.0 (demo)"
		return h
	}
	req := func(method, host, path string, h map[string]string) requestFile {
		return requestFile{Method: method, Scheme: "https", Host: host, Path: path, Headers: h, SourceIP: "203.0.113.10"}
	}
	return []demoExample{
		{name: "allow", what: "200 forward: alice@example.com is staff; identity headers set",
			req: req("GET", "app.example.com", "/reports?month=2026-01", nav(map[string]string{"cookie": "CF_Authorization=" + allowed}))},
		{name: "cors", what: "200 forward with CORS response headers: a cross-origin API call with the token",
			req: req("GET", "api.example.com", "/v1/items", map[string]string{"origin": "https://www.example.com", "accept": "application/json", "sec-fetch-mode": "cors", "cookie": "CF_Authorization=" + allowed})},
		{name: "preflight", what: "204 CORS preflight answered by accessgate, no token needed",
			req: req("OPTIONS", "api.example.com", "/v1/items", map[string]string{"origin": "https://www.example.com", "access-control-request-method": "PUT", "access-control-request-headers": "content-type"})},
		{name: "redirect", what: "302 to the login page: a browser navigation without a token",
			req: req("GET", "app.example.com", "/reports?month=2026-01", nav(map[string]string{}))},
		{name: "unauthenticated", what: "401 JSON with login_url: an API call without a token",
			req: req("GET", "api.example.com", "/v1/items", map[string]string{"origin": "https://www.example.com", "accept": "application/json", "sec-fetch-mode": "cors"})},
		{name: "blocked", what: "403: carol@contractor.example.com is blocked",
			req: req("GET", "app.example.com", "/reports", map[string]string{"accept": "application/json", "authorization": "Bearer " + blocked})},
		{name: "bypass", what: "200 forward without a token: the /healthz bypass policy",
			req: req("GET", "app.example.com", "/healthz", map[string]string{})},
		{name: "service-token", what: "200 forward: the ci-bot service token",
			req: req("POST", "api.example.com", "/v1/deploy", map[string]string{"cf-access-client-id": demoClientID, "cf-access-client-secret": demoClientSecret})},
		{name: "no-application", what: "403 no_application: no application covers the host (default_action: deny)",
			req: req("GET", "intranet.example.net", "/", map[string]string{})},
	}
}

// register serves the examples on mux: GET /demo/ lists them, GET
// /demo/NAME decides one with the live engine and answers check's JSON.
func (d *demoFiles) register(mux *http.ServeMux, e *authz.Engine) {
	mux.HandleFunc("GET /demo/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, ex := range d.examples {
			fmt.Fprintf(w, "/demo/%-16s %s\n", ex.name, ex.what)
		}
	})
	mux.HandleFunc("GET /demo/{name}", func(w http.ResponseWriter, r *http.Request) {
		for _, ex := range d.examples {
			if ex.name != r.PathValue("name") {
				continue
			}
			b, _ := json.Marshal(ex.req)
			req, err := readRequest(b)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			dec := e.Decide(context.WithoutCancel(r.Context()), req)
			w.Header().Set("Content-Type", "application/json")
			w.Write(explain(&dec))
			return
		}
		http.NotFound(w, r)
	})
}

// printIntro tells a newcomer what to try. It goes to stdout, not the log:
// it holds a (demo) token, and logs never hold tokens.
func (d *demoFiles) printIntro(w io.Writer, httpAddr net.Addr) {
	base := "http://" + reachable(httpAddr)
	fmt.Fprintf(w, `
accessgate DEMO MODE: NOT FOR PRODUCTION (the demo signing key is public)

Policy file (edit it: it is reloaded live):
  %s

Demo Access token for alice@example.com, valid until %s:
  %s

See each kind of decision, no Envoy needed:
`, d.policy, d.expires.UTC().Format(time.RFC3339), d.token)
	for _, ex := range d.examples {
		fmt.Fprintf(w, "  curl -s %s/demo/%-16s # %s\n", base, ex.name, ex.what)
	}
	fmt.Fprintf(w, `
The same with the CLI (request files in %s):
  go run ./cmd/accessgate check --config %s --request %s

Behind Envoy, send the token as a cookie: curl -H 'Cookie: CF_Authorization=<token>' ...
`, filepath.Join(d.dir, "requests"), d.policy, d.examples[0].file)
}

// reachable turns a listener address into one a local client can dial:
// 0.0.0.0 and :: become loopback.
func reachable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
