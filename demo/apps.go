package main

import (
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"sort"
	"strings"
)

// received is what the origin saw of one request: the identity headers
// accessgate set, the token's claims, and the names (never the values) of
// the cookies that reached it.
type received struct {
	Host        string         `json:"host"`
	Path        string         `json:"path"`
	Email       string         `json:"cf_access_authenticated_user_email"`
	TokenClaims map[string]any `json:"cf_access_jwt_assertion_claims,omitempty"`
	Cookies     []string       `json:"cookie_names"`
	Origin      string         `json:"origin,omitempty"`
}

func receivedOf(r *http.Request) received {
	rc := received{
		Host:    r.Host,
		Path:    r.URL.Path,
		Email:   r.Header.Get("Cf-Access-Authenticated-User-Email"),
		Origin:  r.Header.Get("Origin"),
		Cookies: []string{},
	}
	// The claims, decoded for display only: accessgate verified the token
	// before the request got here.
	if parts := strings.Split(r.Header.Get("Cf-Access-Jwt-Assertion"), "."); len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(raw, &rc.TokenClaims)
		}
	}
	for _, c := range r.Cookies() {
		rc.Cookies = append(rc.Cookies, c.Name)
	}
	sort.Strings(rc.Cookies)
	return rc
}

var originPage = template.Must(template.New("origin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.App}} — accessgate demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto}</style>
</head><body>
<h1 id="app">{{.App}}</h1>
<p>Signed in as <strong id="email">{{.Received.Email}}</strong>. This page is served by the origin behind Envoy; accessgate let the request through and told the origin who you are.</p>
<p><a href="{{.Web}}">Back to the web app</a> · <a href="/cdn-cgi/access/get-identity">get-identity</a> · <a id="logout" href="/cdn-cgi/access/logout">Sign out</a></p>
<h2>What the origin received</h2>
<pre id="received">{{.JSON}}</pre>
</body></html>
`))

// originHandler is the demo's origin: the API on api.localhost and the
// reports app on reports.localhost, both behind accessgate.
func originHandler(webURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := receivedOf(r)
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == "/whoami" {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(rc)
			return
		}
		app := "The API"
		if strings.HasPrefix(r.Host, "reports.") {
			app = "The reports app"
		}
		js, _ := json.MarshalIndent(rc, "", "  ")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		originPage.Execute(w, map[string]any{"App": app, "Received": rc, "JSON": string(js), "Web": webURL})
	})
}

var webPage = template.Must(template.New("web").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Web app — accessgate demo</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}pre{background:#f4f4f4;padding:1rem;overflow:auto;min-height:3rem}.hidden{display:none}</style>
</head><body>
<h1>A web app on another origin</h1>
<p>This page is <code>{{.Web}}</code>. It calls the API on <code>{{.API}}</code> with
<code>fetch(…, {credentials: "include"})</code>. accessgate guards the API and signs you in through the
example OpenID Connect provider (user <code>test-user@localhost</code>, password <code>verysecure</code>).</p>
<p id="state">Calling the API…</p>
<p><a id="signin" class="hidden" href="#">Sign in</a></p>
<h2>What the API's origin received</h2>
<pre id="received"></pre>
<p><button id="identity-button" type="button">Ask get-identity</button></p>
<pre id="identity"></pre>
<p><a id="reports" href="{{.Reports}}">Open the reports app</a> (a second application: no provider form, the team domain's session signs you in)
 · <a id="logout" href="{{.API}}/cdn-cgi/access/logout">Sign out</a></p>
<script>
const api = {{.API}};
async function callAPI() {
  const state = document.getElementById("state");
  const r = await fetch(api + "/whoami", {credentials: "include"});
  const body = await r.json();
  if (r.status === 401) {
    // The 401 carries the login URL (and set the sign-in nonce cookie):
    // sending the browser there signs in and comes back to this page.
    state.textContent = "Not signed in (the API answered 401).";
    const a = document.getElementById("signin");
    a.href = body.login_url;
    a.classList.remove("hidden");
    return;
  }
  state.textContent = "Signed in: the API answered " + r.status + ".";
  document.getElementById("received").textContent = JSON.stringify(body, null, 2);
}
async function getIdentity() {
  const r = await fetch(api + "/cdn-cgi/access/get-identity", {credentials: "include"});
  document.getElementById("identity").textContent = r.status + " " + JSON.stringify(await r.json(), null, 2);
}
document.getElementById("identity-button").addEventListener("click", getIdentity);
callAPI().catch(err => { document.getElementById("state").textContent = "The call failed: " + err; });
</script>
</body></html>
`))

// webHandler is the demo's web app: a public page on web.localhost.
func webHandler(webURL, apiURL, reportsURL string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		webPage.Execute(w, map[string]string{"Web": webURL, "API": apiURL, "Reports": reportsURL})
	})
}
