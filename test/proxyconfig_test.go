package test

// Checks of the configurations for the HTTP authorization endpoints
// (accessgate serve --auth-addr) without running the proxies: Envoy's
// http_service bootstrap (envoy/envoy-http.yaml) and the nginx, Traefik and
// Caddy files in proxies/. test/e2e runs each with the real binary.

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

const httpBootstrapFile = "../envoy/envoy-http.yaml"

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestHTTPBootstrapValidates(t *testing.T) {
	b, err := envoyconf.Parse([]byte(readFile(t, httpBootstrapFile)))
	if err != nil {
		t.Fatal(err)
	}
	if err := envoyconf.Validate(b); err != nil {
		t.Fatalf("%s: %v", httpBootstrapFile, err)
	}
}

// TestHTTPBootstrapSubstituteOnlyAddresses: the tests may change the five
// addresses and nothing else; put back, the file is unchanged.
func TestHTTPBootstrapSubstituteOnlyAddresses(t *testing.T) {
	data := readFile(t, httpBootstrapFile)
	orig, err := envoyconf.Parse([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := envoyconf.SubstituteHTTP([]byte(data), envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: 1},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: 2},
		Accessgate: envoyconf.Addr{Host: "127.0.0.1", Port: 3},
		Origin:     envoyconf.Addr{Host: "127.0.0.1", Port: 4},
		Login:      envoyconf.Addr{Host: "127.0.0.1", Port: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	back := strings.NewReplacer(
		"{ address: 127.0.0.1, port_value: 1 }", "{ address: 0.0.0.0, port_value: 8080 }",
		"{ address: 127.0.0.1, port_value: 2 }", "{ address: 127.0.0.1, port_value: 9901 }",
		"{ address: 127.0.0.1, port_value: 3 }", "{ address: accessgate, port_value: 9002 }",
		"{ address: 127.0.0.1, port_value: 4 }", "{ address: origin, port_value: 8000 }",
		"{ address: 127.0.0.1, port_value: 5 }", "{ address: accessgate, port_value: 9003 }",
	).Replace(string(sub))
	again, err := envoyconf.Parse([]byte(back))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(orig, again) {
		t.Error("the substituted bootstrap differs from envoy/envoy-http.yaml in more than the five addresses")
	}
}

func patterns(ms []*matcherv3.StringMatcher) []string {
	var out []string
	for _, m := range ms {
		switch {
		case m.GetExact() != "":
			out = append(out, m.GetExact())
		case m.GetPrefix() != "":
			out = append(out, m.GetPrefix()+"*")
		}
	}
	return out
}

// TestHTTPBootstrapSettings pins what the HTTP endpoints rely on.
func TestHTTPBootstrapSettings(t *testing.T) {
	b, err := envoyconf.Parse([]byte(readFile(t, httpBootstrapFile)))
	if err != nil {
		t.Fatal(err)
	}
	m := hcm(t, b)
	if !m.GetUseRemoteAddress().GetValue() {
		t.Error("use_remote_address must be true: a client's X-Forwarded-For and -Proto are never Envoy's own")
	}
	if m.GetForwardClientCertDetails() != hcmv3.HttpConnectionManager_SANITIZE_SET || !m.GetSetCurrentClientCertDetails().GetCert() {
		t.Error("X-Forwarded-Client-Cert must be set from the TLS connection (SANITIZE_SET with cert): a client's own never passes")
	}
	if !m.GetNormalizePath().GetValue() || !m.GetMergeSlashes() || m.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Error("path normalization as in envoy/envoy.yaml")
	}
	if m.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
		t.Error("headers_with_underscores_action must be REJECT_REQUEST (cf_access_* spoofing)")
	}
	var ea extauthzv3.ExtAuthz
	if err := m.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatal(err)
	}
	hs := ea.GetHttpService()
	if hs == nil || ea.GetGrpcService() != nil {
		t.Fatal("the ext_authz filter must use http_service")
	}
	if got := hs.GetPathPrefix(); got != "/auth/envoy" {
		t.Errorf("path_prefix = %q, want /auth/envoy", got)
	}
	if ea.GetFailureModeAllow() || ea.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable {
		t.Error("an outage must fail closed with 503")
	}
	allowed := patterns(ea.GetAllowedHeaders().GetPatterns())
	for _, want := range []string{"cookie", "origin", "access-control-request-*", "accept", "sec-fetch-*", "referer", "x-requested-with", "cf-access-*", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-client-cert"} {
		if !slices.Contains(allowed, want) {
			t.Errorf("allowed_headers lacks %s: accessgate would never see it", want)
		}
	}
	ar := hs.GetAuthorizationResponse()
	upstream := patterns(ar.GetAllowedUpstreamHeaders().GetPatterns())
	for _, want := range []string{"cf-access-authenticated-user-email", "cf-access-jwt-assertion", "cf-access-client-id"} {
		if !slices.Contains(upstream, want) {
			t.Errorf("allowed_upstream_headers lacks %s", want)
		}
	}
	onSuccess := patterns(ar.GetAllowedClientHeadersOnSuccess().GetPatterns())
	for _, want := range []string{"access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers", "vary"} {
		if !slices.Contains(onSuccess, want) {
			t.Errorf("allowed_client_headers_on_success lacks %s", want)
		}
	}
	if ar.GetAllowedClientHeaders() != nil {
		t.Error("allowed_client_headers must stay unset: every header of a denial (Location, CORS, Set-Cookie) reaches the client")
	}
	var dropped []string
	for _, r := range m.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		if r.GetRoute().GetCluster() == "origin" {
			dropped = r.GetResponseHeadersToRemove()
		}
	}
	for _, want := range []string{"access-control-allow-origin", "access-control-allow-credentials", "access-control-expose-headers"} {
		if !slices.Contains(dropped, want) {
			t.Errorf("the origin route keeps the origin's %s: Envoy would append accessgate's to it", want)
		}
	}
	if got := hs.GetServerUri().GetCluster(); got != "accessgate" {
		t.Errorf("server_uri cluster = %q, want accessgate", got)
	}
}

// The fact headers every shipped configuration must overwrite (contract
// section 7), per proxy, besides those the proxy writes itself.
func TestNginxOverwritesEveryFact(t *testing.T) {
	conf := readFile(t, "../proxies/nginx/accessgate.conf")
	// Both the auth_request location and the render location.
	blocks := regexp.MustCompile(`(?s)location (= /\.accessgate/auth|@accessgate_render) \{.*?\n    \}`).FindAllString(conf, -1)
	if len(blocks) != 2 {
		t.Fatalf("found %d accessgate locations, want 2 (auth and render)", len(blocks))
	}
	for _, block := range blocks {
		for _, want := range []string{
			"proxy_set_header X-Original-Method $request_method;",
			"proxy_set_header X-Original-URI $request_uri;",
			"proxy_set_header X-Forwarded-Host $http_host;",
			"proxy_set_header X-Forwarded-Proto $scheme;",
			"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
			"proxy_set_header X-Forwarded-Upgrade $http_upgrade;",
			`proxy_set_header X-Forwarded-Client-Cert "Cert=$ssl_client_escaped_cert";`,
			"proxy_set_header X-Accessgate-Application ",
			"proxy_pass_request_body off;",
			`proxy_set_header Content-Length "";`,
		} {
			if !strings.Contains(block, want) {
				t.Errorf("%s: lacks %q", strings.SplitN(block, "\n", 2)[0], want)
			}
		}
	}
	if !strings.Contains(conf, "error_page 401 403 = @accessgate_render;") {
		t.Error("no error_page 401 403 = @accessgate_render")
	}
	for _, h := range []string{"Cf-Access-Authenticated-User-Email", "Cf-Access-Jwt-Assertion", "Cf-Access-Client-Id", "Cf-Access-Client-Secret", "Cf-Access-Token"} {
		if !strings.Contains(conf, "proxy_set_header "+h+" ") {
			t.Errorf("the origin's %s is not overwritten", h)
		}
	}
}

func TestTraefikOverwritesEveryFact(t *testing.T) {
	var dyn struct {
		HTTP struct {
			Routers map[string]struct {
				Rule, Service string
				Middlewares   []string
			}
			Middlewares map[string]map[string]map[string]any
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "../proxies/traefik/dynamic.yaml")), &dyn); err != nil {
		t.Fatal(err)
	}
	facts := dyn.HTTP.Middlewares["dashboard-facts"]["headers"]["customRequestHeaders"].(map[string]any)
	for _, h := range []string{"X-Accessgate-Application", "X-Forwarded-Client-Cert", "X-Forwarded-Upgrade"} {
		if _, ok := facts[h]; !ok {
			t.Errorf("dashboard-facts does not overwrite %s", h)
		}
	}
	if v := facts["X-Forwarded-Client-Cert"]; v != "" {
		t.Errorf("X-Forwarded-Client-Cert = %q, want cleared", v)
	}
	fa := dyn.HTTP.Middlewares["accessgate"]["forwardAuth"]
	if fa["trustForwardHeader"] != false {
		t.Error("forwardAuth must not trust a client's X-Forwarded-* headers")
	}
	var listed []string
	for _, h := range fa["authResponseHeaders"].([]any) {
		listed = append(listed, h.(string))
	}
	for _, h := range []string{"Cf-Access-Authenticated-User-Email", "Cf-Access-Jwt-Assertion", "Cf-Access-Client-Id", "Cf-Access-Client-Secret", "Cf-Access-Token"} {
		if !slices.Contains(listed, h) {
			t.Errorf("authResponseHeaders lacks %s: a client's copy would reach the origin", h)
		}
	}
	app, pre := dyn.HTTP.Routers["dashboard"], dyn.HTTP.Routers["dashboard-preflight"]
	if !slices.Equal(app.Middlewares, []string{"dashboard-facts", "accessgate", "dashboard-cors"}) {
		t.Errorf("dashboard middlewares = %v: the facts first, the CORS headers after forwardAuth", app.Middlewares)
	}
	if pre.Service != "accessgate" || !slices.Contains(pre.Middlewares, "accessgate-answer") || slices.Contains(pre.Middlewares, "dashboard-cors") {
		t.Errorf("dashboard-preflight = %+v: preflights go to /auth/answer, never through a CORS headers middleware", pre)
	}
	if !strings.Contains(readFile(t, "../proxies/traefik/traefik.yaml"), "aliasHeadersStrategy: delete") {
		t.Error("the entry point must drop aliases of header names (Cf_Access_*)")
	}
}

func TestCaddyOverwritesEveryFact(t *testing.T) {
	conf := readFile(t, "../proxies/caddy/Caddyfile")
	fa := regexp.MustCompile(`(?ms)^\t\tforward_auth \S+ \{.*?^\t\t\}`).FindString(conf)
	if fa == "" {
		t.Fatal("no forward_auth block")
	}
	for _, want := range []string{
		"uri /auth/forward",
		"header_up X-Accessgate-Application ",
		"header_up -X-Forwarded-Client-Cert",
		"header_up X-Forwarded-Upgrade {http.request.header.Upgrade}",
		"copy_headers Cf-Access-Authenticated-User-Email Cf-Access-Jwt-Assertion Cf-Access-Client-Id Cf-Access-Client-Secret Cf-Access-Token",
	} {
		if !strings.Contains(fa, want) {
			t.Errorf("forward_auth lacks %q", want)
		}
	}
	pre := regexp.MustCompile(`(?s)handle @preflight \{.*?\n\t\}`).FindString(conf)
	for _, want := range []string{"rewrite /auth/answer{uri}", "header_up X-Accessgate-Application ", "header_up -X-Forwarded-Client-Cert"} {
		if !strings.Contains(pre, want) {
			t.Errorf("the preflight route lacks %q", want)
		}
	}
	if !strings.Contains(conf, "defer") || !strings.Contains(conf, "Access-Control-Allow-Origin {http.request.header.Origin}") {
		t.Error("the CORS response headers of forwarded requests must be set, deferred, for allowed origins")
	}
}

// TestHTTPBootstrapSignInUpgradeBinding pins what the sign-in route, the
// WebSocket rule and the per-route binding rely on in
// envoy/envoy-http.yaml: /cdn-cgi/access/ goes to the login cluster with
// ext_authz off; every route that asks accessgate carries its own copy of
// the filter's http_service that adds the binding (and nothing else
// differs); the only upgrade route has a max_stream_duration.
func TestHTTPBootstrapSignInUpgradeBinding(t *testing.T) {
	b, err := envoyconf.Parse([]byte(readFile(t, httpBootstrapFile)))
	if err != nil {
		t.Fatal(err)
	}
	m := hcm(t, b)
	var ea extauthzv3.ExtAuthz
	if err := m.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatal(err)
	}
	filterHS := ea.GetHttpService()
	added := func(hs *extauthzv3.HttpService) map[string]string {
		out := map[string]string{}
		for _, h := range hs.GetAuthorizationRequest().GetHeadersToAdd() {
			out[h.GetKey()] = h.GetValue()
		}
		return out
	}
	if got := added(filterHS); got["x-forwarded-upgrade"] != "%REQ(upgrade)%" {
		t.Errorf("the filter's headers_to_add = %v: x-forwarded-upgrade must be the original Upgrade", got)
	}
	if _, ok := added(filterHS)["x-accessgate-application"]; ok {
		t.Error("the filter-wide http_service binds an application: only routes may (a route without a binding must get no_application)")
	}
	for _, ws := range m.GetUpgradeConfigs() {
		if ws.GetUpgradeType() == "websocket" && ws.GetEnabled().GetValue() {
			t.Error("WebSockets must be off on the connection manager, on only on the upgrade route")
		}
	}
	var signin, upgrade, bound int
	for _, vh := range m.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			var per extauthzv3.ExtAuthzPerRoute
			if a := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]; a != nil {
				if err := a.UnmarshalTo(&per); err != nil {
					t.Fatal(err)
				}
			}
			name := r.GetMatch().GetPrefix() + r.GetMatch().GetPath()
			switch {
			case r.GetMatch().GetPrefix() == "/cdn-cgi/access/":
				signin++
				if r.GetRoute().GetCluster() != "login" || !per.GetDisabled() {
					t.Errorf("%s: cluster %q, ext_authz disabled %v; want the login cluster without ext_authz", name, r.GetRoute().GetCluster(), per.GetDisabled())
				}
			case per.GetDisabled():
				if r.GetDirectResponse() == nil {
					t.Errorf("%s: ext_authz disabled on a route that forwards", name)
				}
			default:
				hs := per.GetCheckSettings().GetHttpService()
				if hs == nil {
					t.Errorf("%s: no check_settings.http_service: the route names no application", name)
					continue
				}
				bound++
				if got := added(hs)["x-accessgate-application"]; got == "" {
					t.Errorf("%s: no x-accessgate-application in its http_service", name)
				}
				// Apart from the binding, the copy is the filter's.
				copyHS := proto.Clone(hs).(*extauthzv3.HttpService)
				var keep []*corev3.HeaderValue
				for _, h := range copyHS.GetAuthorizationRequest().GetHeadersToAdd() {
					if h.GetKey() != "x-accessgate-application" {
						keep = append(keep, h)
					}
				}
				copyHS.AuthorizationRequest.HeadersToAdd = keep
				if !proto.Equal(copyHS, filterHS) {
					t.Errorf("%s: its http_service differs from the filter's in more than the binding", name)
				}
				if len(r.GetRoute().GetUpgradeConfigs()) > 0 {
					upgrade++
					if r.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration() == nil {
						t.Errorf("%s: an upgrade route without max_stream_duration", name)
					}
				}
			}
		}
	}
	if signin != 1 || upgrade != 1 || bound < 2 {
		t.Errorf("found %d sign-in, %d upgrade and %d bound routes; want 1, 1 and at least 2", signin, upgrade, bound)
	}
}

// TestProxiesRouteSignIn: each proxy sends the application host's
// /cdn-cgi/access/* to accessgate's --login-addr without the auth check.
func TestProxiesRouteSignIn(t *testing.T) {
	nginx := readFile(t, "../proxies/nginx/accessgate.conf")
	loc := regexp.MustCompile(`(?s)\n    location /cdn-cgi/access/ \{.*?\n    \}`).FindString(nginx)
	if loc == "" || !strings.Contains(loc, "proxy_pass http://accessgate_login;") || strings.Contains(loc, "auth_request") {
		t.Errorf("nginx: location /cdn-cgi/access/ must proxy_pass to accessgate_login without auth_request:\n%s", loc)
	}
	if !strings.Contains(loc, "proxy_set_header Host $http_host;") || !strings.Contains(loc, "proxy_set_header X-Forwarded-Proto $scheme;") {
		t.Error("nginx: the sign-in location must pass the host and the scheme")
	}
	if !regexp.MustCompile(`upstream accessgate_login \{\s+server 127\.0\.0\.1:9003;`).MatchString(nginx) {
		t.Error("nginx: no accessgate_login upstream at 127.0.0.1:9003")
	}

	var dyn struct {
		HTTP struct {
			Routers map[string]struct {
				Rule, Service string
				Middlewares   []string
				Priority      int
			}
			Services map[string]struct {
				LoadBalancer struct{ Servers []struct{ URL string } } `json:"loadBalancer"`
			}
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "../proxies/traefik/dynamic.yaml")), &dyn); err != nil {
		t.Fatal(err)
	}
	r := dyn.HTTP.Routers["dashboard-signin"]
	if !strings.Contains(r.Rule, "PathPrefix(`/cdn-cgi/access/`)") || len(r.Middlewares) != 0 || r.Service != "accessgate-login" {
		t.Errorf("traefik: dashboard-signin = %+v, want PathPrefix /cdn-cgi/access/ to accessgate-login without middlewares", r)
	}
	for name, other := range dyn.HTTP.Routers {
		if name != "dashboard-signin" && other.Priority >= r.Priority {
			t.Errorf("traefik: router %s has priority %d, not below dashboard-signin's %d", name, other.Priority, r.Priority)
		}
	}
	if s := dyn.HTTP.Services["accessgate-login"].LoadBalancer.Servers; len(s) != 1 || s[0].URL != "http://127.0.0.1:9003" {
		t.Errorf("traefik: accessgate-login servers = %+v", s)
	}

	caddy := readFile(t, "../proxies/caddy/Caddyfile")
	h := regexp.MustCompile(`(?s)\thandle /cdn-cgi/access/\* \{.*?\n\t\}`).FindString(caddy)
	if !strings.Contains(h, "reverse_proxy 127.0.0.1:9003") || strings.Contains(h, "forward_auth") {
		t.Errorf("caddy: handle /cdn-cgi/access/* must reverse_proxy to 127.0.0.1:9003 without forward_auth:\n%s", h)
	}
}

// TestProxiesUpgradeSettings: the WebSocket pieces of nginx, Traefik and
// Caddy (Envoy's are in TestHTTPBootstrapSignInUpgradeBinding).
func TestProxiesUpgradeSettings(t *testing.T) {
	nginx := readFile(t, "../proxies/nginx/accessgate.conf")
	root := regexp.MustCompile(`(?s)\n    location / \{.*?\n    \}`).FindString(nginx)
	for _, want := range []string{"proxy_http_version 1.1;", "proxy_set_header Upgrade $http_upgrade;", "proxy_set_header Connection $accessgate_connection;"} {
		if !strings.Contains(root, want) {
			t.Errorf("nginx: location / lacks %q: WebSockets would not pass", want)
		}
	}
	if !strings.Contains(nginx, "proxy_read_timeout") || !strings.Contains(nginx, "idle timeouts") {
		t.Error("nginx: the file must say that its timeouts are idle timeouts, not a lifetime")
	}

	var dyn struct {
		HTTP struct {
			Routers map[string]struct {
				Rule, Service string
				Middlewares   []string
			}
			Middlewares map[string]map[string]map[string]any
		}
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "../proxies/traefik/dynamic.yaml")), &dyn); err != nil {
		t.Fatal(err)
	}
	ws := dyn.HTTP.Routers["dashboard-websocket"]
	if !strings.Contains(ws.Rule, "HeaderRegexp(`Upgrade`, `(?i)^websocket$`)") || !slices.Equal(ws.Middlewares, []string{"dashboard-websocket-facts", "accessgate"}) {
		t.Errorf("traefik: dashboard-websocket = %+v", ws)
	}
	facts := dyn.HTTP.Middlewares["dashboard-websocket-facts"]["headers"]["customRequestHeaders"].(map[string]any)
	plain := dyn.HTTP.Middlewares["dashboard-facts"]["headers"]["customRequestHeaders"].(map[string]any)
	if facts["X-Forwarded-Upgrade"] != "websocket" || plain["X-Forwarded-Upgrade"] != "" {
		t.Errorf("traefik: X-Forwarded-Upgrade is %q on upgrades and %q otherwise; want websocket and cleared", facts["X-Forwarded-Upgrade"], plain["X-Forwarded-Upgrade"])
	}
	for k, v := range plain {
		if k != "X-Forwarded-Upgrade" && facts[k] != v {
			t.Errorf("traefik: dashboard-websocket-facts sets %s to %q, dashboard-facts to %q: they must differ only in the upgrade", k, facts[k], v)
		}
	}

	caddy := readFile(t, "../proxies/caddy/Caddyfile")
	if !regexp.MustCompile(`(?s)reverse_proxy 127\.0\.0\.1:8000 \{\s+stream_timeout \S+`).MatchString(caddy) {
		t.Error("caddy: the origin's reverse_proxy must cap a socket's life with stream_timeout")
	}
}
