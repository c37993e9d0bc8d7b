package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

// editBootstrap parses the (substituted) shipped bootstrap, lets edit change
// its route configuration and clusters, and returns it as JSON, which
// Envoy reads as YAML.
func editBootstrap(t *testing.T, cfg []byte, edit func(hcm *hcmv3.HttpConnectionManager, clusters *[]*clusterv3.Cluster)) []byte {
	t.Helper()
	b, err := envoyconf.Parse(cfg)
	if err != nil {
		t.Fatal(err)
	}
	filter := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	var hcm hcmv3.HttpConnectionManager
	if err := filter.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	edit(&hcm, &b.StaticResources.Clusters)
	packed, err := anypb.New(&hcm)
	if err != nil {
		t.Fatal(err)
	}
	filter.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: packed}
	if err := envoyconf.Validate(b); err != nil {
		t.Fatalf("edited bootstrap: %v", err)
	}
	out, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vhost returns the virtual host named name.
func vhost(t *testing.T, hcm *hcmv3.HttpConnectionManager, name string) *routev3.VirtualHost {
	t.Helper()
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if vh.GetName() == name {
			return vh
		}
	}
	t.Fatalf("no virtual host %q in the shipped bootstrap", name)
	return nil
}

// boundTo is the ext_authz per-route config binding a route to app.
func boundTo(t *testing.T, app string) map[string]*anypb.Any {
	t.Helper()
	a, err := anypb.New(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_CheckSettings{
		CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: map[string]string{"accessgate-application": app}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*anypb.Any{"envoy.filters.http.ext_authz": a}
}

// clusterTo clones the origin cluster as name, pointing at port.
func clusterTo(t *testing.T, clusters []*clusterv3.Cluster, name string, port int) *clusterv3.Cluster {
	t.Helper()
	for _, c := range clusters {
		if c.GetName() == "origin" {
			cl := proto.Clone(c).(*clusterv3.Cluster)
			cl.Name = name
			cl.LoadAssignment.ClusterName = name
			sa := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			sa.PortSpecifier = &corev3.SocketAddress_PortValue{PortValue: uint32(port)}
			return cl
		}
	}
	t.Fatal("no origin cluster")
	return nil
}

const bindingPolicy = `# end-to-end policy of TestEnvoyRouteBinding
default_action: deny
issuers:
  - name: team
    issuer: {{ISSUER}}
    jwks_file: jwks.json
    login_url: http://{{LOGIN}}/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [{{APP}}]
    issuer: team
    audience: {{AUD}}
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
  # The admin console is another backend under /admin. It is written
  # case-sensitive here, while its route in Envoy (like the console itself)
  # takes /ADMIN and /admin;x alike: the host-and-path lookup would judge
  # /ADMIN;x/users as "app", the route's binding judges it as "admin".
  - name: admin
    domains: [{{APP}}/admin]
    case_sensitive_paths: true
    issuer: team
    audience: {{AUD}}
    policies:
      - name: root
        action: allow
        include: [{email: [root@example.com]}]
`

// TestEnvoyRouteBinding: the shipped bootstrap's bound virtual host, with
// two backends behind two routes, each route naming its application. A
// request the admin route takes is judged by the admin policies whatever
// its path string looks like; the same request judged by host and path
// alone (check without "application") would have passed.
func TestEnvoyRouteBinding(t *testing.T) {
	admin := newOrigin(t)
	e := newEnvWith(t, func(e *env) {
		e.policy = bindingPolicy
		e.rewrite = func(t *testing.T, cfg []byte) []byte {
			return editBootstrap(t, cfg, func(hcm *hcmv3.HttpConnectionManager, clusters *[]*clusterv3.Cluster) {
				vh := vhost(t, hcm, "demo-app")
				vh.Domains = []string{appHost, appHost + ":*"}
				adminRoute := &routev3.Route{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `(?i)/admin(;[^/]*)?(/.*)?`}}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "admin"},
					}},
					TypedPerFilterConfig: boundTo(t, "admin"),
				}
				// The shipped routes keep their order (health, upgrade, /),
				// bound to "app"; the admin route goes before "/".
				var routes []*routev3.Route
				for _, r := range vh.GetRoutes() {
					if _, bound := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]; bound && r.GetDirectResponse() == nil {
						r.TypedPerFilterConfig = boundTo(t, "app")
					}
					if r.GetMatch().GetPrefix() == "/" && len(r.GetMatch().GetHeaders()) == 0 {
						routes = append(routes, adminRoute)
					}
					routes = append(routes, r)
				}
				vh.Routes = routes
				*clusters = append(*clusters, clusterTo(t, *clusters, "admin", admin.port()))
			})
		}
	})
	staff := "CF_Authorization=" + e.keys.token(t, "alice@example.com", time.Hour)
	root := "CF_Authorization=" + e.keys.token(t, "root@example.com", time.Hour)
	api := map[string]string{"Accept": "application/json"}
	with := func(cookie string) map[string]string {
		return map[string]string{"Accept": "application/json", "Cookie": cookie}
	}

	tests := []struct {
		name       string
		target     string
		hdr        map[string]string
		wantStatus int
		wantReason string
		wantAdmin  bool // reached the admin backend
	}{
		{"staff on the app", "/users", with(staff), 200, "", false},
		{"staff on the console", "/admin/users", with(staff), 403, "no_policy_match", false},
		{"the trick, staff", "/ADMIN;x/users", with(staff), 403, "no_policy_match", false},
		{"the trick, root", "/ADMIN;x/users", with(root), 200, "", true},
		{"root on the console", "/admin/users", with(root), 200, "", true},
		{"no token on the console", "/Admin/x", api, 401, "token_missing", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := admin.hits.Load()
			r := e.send(t, http.MethodGet, tt.target, tt.hdr)
			if r.StatusCode != tt.wantStatus {
				t.Fatalf("GET %s: %d %s, want %d", tt.target, r.StatusCode, r.body, tt.wantStatus)
			}
			if tt.wantReason != "" && !strings.Contains(string(r.body), `"reason":"`+tt.wantReason+`"`) {
				t.Errorf("GET %s: body %s, want reason %s", tt.target, r.body, tt.wantReason)
			}
			if got := admin.hits.Load() > before; got != tt.wantAdmin {
				t.Errorf("GET %s reached the admin backend: %v, want %v", tt.target, got, tt.wantAdmin)
			}
		})
	}

	// The control: judged by host and path alone, the trick passes as
	// "app". That is exactly what the binding takes out of the string's
	// hands.
	dir := t.TempDir()
	reqFile := filepath.Join(dir, "req.json")
	policyFile := filepath.Join(dir, "policy.yaml")
	write(t, filepath.Join(dir, "jwks.json"), e.keys.jwks)
	data := strings.NewReplacer("{{ISSUER}}", issuerID, "{{LOGIN}}", "login.example", "{{APP}}", appHost, "{{AUD}}", audience).Replace(bindingPolicy)
	write(t, policyFile, []byte(data))
	for _, c := range []struct {
		application string
		want        string
	}{{"", `"reason": "allowed"`}, {`,"application":"admin"`, `"reason": "no_policy_match"`}} {
		write(t, reqFile, []byte(fmt.Sprintf(`{"method":"GET","scheme":"http","host":%q,"path":"/ADMIN;x/users","headers":{"cookie":%q}%s}`, appHost, staff, c.application)))
		out, err := exec.Command(accessgatePath(t), "check", "--config", policyFile, "--request", reqFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("check %s: %v\n%s\nwant %s", c.application, err, out, c.want)
		}
	}
}

// wsOrigin is an upgrade-capable origin: it echoes every WebSocket message
// back. It accepts any Origin itself, so that every refusal seen through
// Envoy is accessgate's.
type wsOrigin struct {
	srv     *httptest.Server
	upgrade atomic.Int64
	origins chan string
}

func newWSOrigin(t *testing.T) *wsOrigin {
	o := newWSEcho()
	o.srv = httptest.NewServer(o)
	t.Cleanup(o.srv.Close)
	return o
}

// newWSEcho is a wsOrigin without a server of its own: its ServeHTTP
// answers upgrades for another origin (newOriginUpgrading).
func newWSEcho() *wsOrigin { return &wsOrigin{origins: make(chan string, 16)} }

func (o *wsOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	o.upgrade.Add(1)
	select {
	case o.origins <- r.Header.Get("Origin"):
	default:
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if err := c.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}

func (o *wsOrigin) port() int { return o.srv.Listener.Addr().(*net.TCPAddr).Port }

// TestEnvoyWebSocket: §11's WebSocket rule through the real Envoy on the
// shipped bootstrap's upgrade route: the app's own page and an allowed
// origin open a socket that echoes, another origin gets 403
// websocket_origin, and a client without Origin but with a valid token
// connects.
func TestEnvoyWebSocket(t *testing.T) {
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
	staff := "CF_Authorization=" + e.keys.token(t, "alice@example.com", time.Hour)
	dial := func(origin, cookie, bearer string) (*websocket.Conn, *http.Response, error) {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		if cookie != "" {
			h.Set("Cookie", cookie)
		}
		if bearer != "" {
			h.Set("Authorization", "Bearer "+bearer)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/socket", e.envoyPort), &websocket.DialOptions{
			HTTPHeader: h,
			Host:       fmt.Sprintf("%s:%d", appHost, e.envoyPort),
			HTTPClient: &http.Client{Transport: &http.Transport{Proxy: nil}},
		})
	}
	tests := []struct {
		name       string
		origin     string
		cookie     string
		bearer     string
		wantStatus int // 0: the socket opens and echoes
		wantReason string
	}{
		{"own page", e.appOrigin(), staff, "", 0, ""},
		{"allowed web app", e.pageOrigin(), staff, "", 0, ""},
		{"other origin", e.evilOrigin(), staff, "", 403, "websocket_origin"},
		{"other origin without token", e.evilOrigin(), "", "", 403, "websocket_origin"},
		{"origin null", "null", staff, "", 403, "websocket_origin"},
		{"no Origin, valid token", "", "", strings.TrimPrefix(staff, "CF_Authorization="), 0, ""},
		{"no Origin, no token", "", "", "", 401, "token_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ws.upgrade.Load()
			c, resp, err := dial(tt.origin, tt.cookie, tt.bearer)
			if tt.wantStatus != 0 {
				if err == nil {
					c.CloseNow()
					t.Fatalf("the socket opened, want %d %s", tt.wantStatus, tt.wantReason)
				}
				if resp == nil || resp.StatusCode != tt.wantStatus {
					t.Fatalf("dial: %v (response %v), want %d", err, resp, tt.wantStatus)
				}
				var body struct{ Reason string }
				_ = json.NewDecoder(resp.Body).Decode(&body)
				if body.Reason != tt.wantReason {
					t.Errorf("reason %q, want %q", body.Reason, tt.wantReason)
				}
				if ws.upgrade.Load() != before {
					t.Error("the refused upgrade reached the origin")
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v (response %v)", err, resp)
			}
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			msg := "hello " + tt.name
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != msg {
				t.Fatalf("echo = %q, %v; want %q", got, err, msg)
			}
			select {
			case seen := <-ws.origins:
				if seen != tt.origin {
					t.Errorf("origin saw Origin %q, want %q", seen, tt.origin)
				}
			case <-ctx.Done():
				t.Error("the origin never reported the upgrade")
			}
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
}

// TestEnvoyWebSocketLifetime: the upgrade route's max_stream_duration ends
// an open socket, so it cannot outlive the session that opened it. The
// route's cap is set to 1s here; the origin would keep the socket for 30s,
// and the client waits up to 20s: only Envoy can have closed it.
func TestEnvoyWebSocketLifetime(t *testing.T) {
	ws := newWSOrigin(t)
	e := newEnvWith(t, func(e *env) {
		e.rewrite = func(t *testing.T, cfg []byte) []byte {
			return editBootstrap(t, cfg, func(hcm *hcmv3.HttpConnectionManager, clusters *[]*clusterv3.Cluster) {
				for i, c := range *clusters {
					if c.GetName() == "origin" {
						(*clusters)[i] = clusterTo(t, *clusters, "origin", ws.port())
					}
				}
				capped := 0
				for _, r := range vhost(t, hcm, "origin").GetRoutes() {
					if msd := r.GetRoute().GetMaxStreamDuration(); msd != nil && len(r.GetRoute().GetUpgradeConfigs()) > 0 {
						msd.MaxStreamDuration = durationpb.New(time.Second)
						capped++
					}
				}
				if capped != 1 {
					t.Fatalf("%d upgrade routes with max_stream_duration in the catch-all host, want 1", capped)
				}
			})
		}
	})
	token := e.keys.token(t, "alice@example.com", time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/socket", e.envoyPort), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
		Host:       fmt.Sprintf("%s:%d", appHost, e.envoyPort),
		HTTPClient: &http.Client{Transport: &http.Transport{Proxy: nil}},
	})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != "hi" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
	// Nothing more is sent: the next read ends when the stream does.
	_, _, err = c.Read(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("read after the cap: %v (context: %v); want the socket closed by Envoy before the deadline", err, ctx.Err())
	}
}
