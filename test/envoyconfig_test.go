// Package test checks the deployment files shipped in envoy/ (the Envoy
// bootstrap, docker-compose and the Istio manifests) without running them.
// The end-to-end tests in test/e2e run them.
package test

import (
	"os"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
)

const bootstrapFile = "../envoy/envoy.yaml"

func loadBootstrap(t *testing.T) (*bootstrapv3.Bootstrap, []byte) {
	t.Helper()
	data, err := os.ReadFile(bootstrapFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoyconf.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", bootstrapFile, err)
	}
	return b, data
}

func TestBootstrapValidates(t *testing.T) {
	b, _ := loadBootstrap(t)
	if err := envoyconf.Validate(b); err != nil {
		t.Fatalf("%s: %v", bootstrapFile, err)
	}
}

// The validator must catch what ValidateAll alone misses (research §4).
func TestValidatorCatchesErrors(t *testing.T) {
	_, data := loadBootstrap(t)
	tests := []struct {
		name       string
		from, to   string
		parseError bool
	}{
		{"typo inside an Any", "failure_mode_allow: false", "failure_mode_alow: false", true},
		{"bad enum inside an Any", "path_with_escaped_slashes_action: REJECT_REQUEST", "path_with_escaped_slashes_action: REJECT", true},
		{"invalid status inside an Any", "status_on_error: { code: ServiceUnavailable }", "status_on_error: { code: 42 }", false},
		{"empty cluster name inside an Any", "envoy_grpc: { cluster_name: accessgate }", `envoy_grpc: { cluster_name: "" }`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Count(string(data), tt.from) != 1 {
				t.Fatalf("%q not found once in %s", tt.from, bootstrapFile)
			}
			bad := strings.Replace(string(data), tt.from, tt.to, 1)
			b, err := envoyconf.Parse([]byte(bad))
			if tt.parseError {
				if err == nil {
					t.Fatal("Parse accepted the broken bootstrap")
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := envoyconf.Validate(b); err == nil {
				t.Fatal("Validate accepted the broken bootstrap")
			}
		})
	}
}

// TestSubstituteOnlyAddresses proves that the tests run the shipped file:
// substituting the four well-known addresses changes nothing else.
func TestSubstituteOnlyAddresses(t *testing.T) {
	orig, data := loadBootstrap(t)
	to := envoyconf.Addrs{
		Listener:   envoyconf.Addr{Host: "127.0.0.1", Port: 18080},
		Admin:      envoyconf.Addr{Host: "127.0.0.1", Port: 19901},
		Accessgate: envoyconf.Addr{Host: "127.0.0.1", Port: 19001},
		Origin:     envoyconf.Addr{Host: "127.0.0.1", Port: 18000},
	}
	sub, err := envoyconf.Substitute(data, to)
	if err != nil {
		t.Fatal(err)
	}
	got, err := envoyconf.Parse(sub)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, sa *corev3.SocketAddress, want, reset envoyconf.Addr) {
		t.Helper()
		if sa.GetAddress() != want.Host || int(sa.GetPortValue()) != want.Port {
			t.Errorf("%s = %s:%d, want %s:%d", name, sa.GetAddress(), sa.GetPortValue(), want.Host, want.Port)
		}
		sa.Address, sa.PortSpecifier = reset.Host, &corev3.SocketAddress_PortValue{PortValue: uint32(reset.Port)}
	}
	sr := got.GetStaticResources()
	check("listener", sr.GetListeners()[0].GetAddress().GetSocketAddress(), to.Listener, envoyconf.DefaultListener)
	check("admin", got.GetAdmin().GetAddress().GetSocketAddress(), to.Admin, envoyconf.DefaultAdmin)
	check("accessgate", endpoint(t, got, "accessgate"), to.Accessgate, envoyconf.DefaultAccessgate)
	check("origin", endpoint(t, got, "origin"), to.Origin, envoyconf.DefaultOrigin)
	if !proto.Equal(got, orig) {
		t.Error("the substituted bootstrap differs from envoy/envoy.yaml in more than the four addresses")
	}
}

func cluster(t *testing.T, b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

func endpoint(t *testing.T, b *bootstrapv3.Bootstrap, name string) *corev3.SocketAddress {
	t.Helper()
	eps := cluster(t, b, name).GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("cluster %q: want exactly one endpoint", name)
	}
	return eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
}

func hcm(t *testing.T, b *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 || len(ls[0].GetFilterChains()) != 1 || len(ls[0].GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatal("want one listener with one filter chain holding one network filter")
	}
	var m hcmv3.HttpConnectionManager
	if err := ls[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&m); err != nil {
		t.Fatalf("http_connection_manager: %v", err)
	}
	return &m
}

// TestBootstrapSettings pins the settings the contract and the docs rely on.
func TestBootstrapSettings(t *testing.T) {
	b, _ := loadBootstrap(t)
	m := hcm(t, b)

	if !m.GetNormalizePath().GetValue() || !m.GetMergeSlashes() {
		t.Error("normalize_path and merge_slashes must be on: accessgate must judge the path the origin serves")
	}
	if m.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_REJECT_REQUEST {
		t.Errorf("path_with_escaped_slashes_action = %v, want REJECT_REQUEST (contract: %%2F/%%5C → 400)", m.GetPathWithEscapedSlashesAction())
	}
	if got := m.GetMaxRequestHeadersKb().GetValue(); got != 64 {
		t.Errorf("max_request_headers_kb = %d, want 64", got)
	}
	if !m.GetUseRemoteAddress().GetValue() {
		t.Error("use_remote_address must be true (Envoy is the edge)")
	}
	if m.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction() != corev3.HttpProtocolOptions_REJECT_REQUEST {
		t.Error("headers_with_underscores_action must be REJECT_REQUEST (cf_access_* spoofing)")
	}

	filters := m.GetHttpFilters()
	var names []string
	for _, f := range filters {
		names = append(names, f.GetName())
	}
	if got, want := strings.Join(names, ","), "envoy.filters.http.ext_authz,envoy.filters.http.router"; got != want {
		t.Fatalf("http_filters = %s, want %s (no CORS filter: accessgate answers preflights)", got, want)
	}
	var ea extauthzv3.ExtAuthz
	if err := filters[0].GetTypedConfig().UnmarshalTo(&ea); err != nil {
		t.Fatal(err)
	}
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Error("ext_authz transport_api_version must be V3")
	}
	if got := ea.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != "accessgate" {
		t.Errorf("ext_authz cluster = %q, want accessgate", got)
	}
	if d := ea.GetGrpcService().GetTimeout().AsDuration(); d <= 0 || d > 2e9 {
		t.Errorf("ext_authz timeout = %v, want set and at most 2s", d)
	}
	if ea.GetFailureModeAllow() {
		t.Error("failure_mode_allow must be false: an outage fails closed")
	}
	if got := ea.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("status_on_error = %v, want ServiceUnavailable", got)
	}
	if !ea.GetIncludePeerCertificate() {
		t.Error("include_peer_certificate must be true (valid_certificate selector)")
	}
	var router routerv3.Router
	if err := filters[1].GetTypedConfig().UnmarshalTo(&router); err != nil {
		t.Fatal(err)
	}

	// The accessgate cluster speaks HTTP/2 (gRPC).
	var po httpv3.HttpProtocolOptions
	ag := cluster(t, b, "accessgate")
	if err := ag.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&po); err != nil {
		t.Fatalf("accessgate cluster protocol options: %v", err)
	}
	if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("accessgate cluster must use HTTP/2")
	}
	cluster(t, b, "origin")

	// Admin only on loopback.
	if got := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); got != "127.0.0.1" {
		t.Errorf("admin address = %s, want 127.0.0.1", got)
	}

	// /envoy-health skips ext_authz; every other route keeps it, and may
	// only add the application binding (contract §10) to its check.
	vhs := m.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 2 {
		t.Fatalf("want two virtual hosts (the bound demo-app and the catch-all), got %d", len(vhs))
	}
	for _, vh := range vhs {
		if len(vh.GetTypedPerFilterConfig()) != 0 {
			t.Errorf("virtual host %s must not configure ext_authz (or CORS) for all its routes", vh.GetName())
		}
		var health, upgrade bool
		binding := ""
		for _, r := range vh.GetRoutes() {
			if ups := r.GetRoute().GetUpgradeConfigs(); len(ups) > 0 {
				// WebSocket routes: enabled, and a cap on the socket's life.
				if len(ups) != 1 || ups[0].GetUpgradeType() != "websocket" || ups[0].GetEnabled() != nil && !ups[0].GetEnabled().GetValue() {
					t.Errorf("%s: route %v: upgrade_configs %v, want websocket enabled", vh.GetName(), r.GetMatch(), ups)
				}
				if d := r.GetRoute().GetMaxStreamDuration().GetMaxStreamDuration().AsDuration(); d <= 0 {
					t.Errorf("%s: upgrade route without max_stream_duration", vh.GetName())
				}
				upgrade = true
			}
			pf, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_authz"]
			if !ok {
				if binding != "" {
					t.Errorf("%s: route %v is not bound while others are", vh.GetName(), r.GetMatch())
				}
				continue
			}
			var per extauthzv3.ExtAuthzPerRoute
			if err := pf.UnmarshalTo(&per); err != nil {
				t.Fatal(err)
			}
			if per.GetDisabled() {
				if r.GetMatch().GetPath() != "/envoy-health" || r.GetDirectResponse() == nil {
					t.Errorf("route %v: only the direct /envoy-health route may disable ext_authz", r.GetMatch())
				}
				health = true
				continue
			}
			ext := per.GetCheckSettings().GetContextExtensions()
			if len(ext) != 1 || ext["accessgate-application"] == "" || per.GetCheckSettings().GetWithRequestBody() != nil {
				t.Errorf("%s: route %v: check_settings %v, want only the accessgate-application binding", vh.GetName(), r.GetMatch(), per.GetCheckSettings())
			}
			binding = ext["accessgate-application"]
		}
		if !health || !upgrade {
			t.Errorf("%s: /envoy-health route %v, WebSocket route %v; want both", vh.GetName(), health, upgrade)
		}
		if vh.GetName() == "demo-app" && binding != "demo-app" {
			t.Errorf("demo-app routes bound to %q, want demo-app (the compose policy's application)", binding)
		}
	}
	var ups []string
	for _, u := range m.GetUpgradeConfigs() {
		ups = append(ups, u.GetUpgradeType())
		if u.GetEnabled() == nil || u.GetEnabled().GetValue() {
			t.Errorf("HCM upgrade %s enabled for every route; want it off except on upgrade routes", u.GetUpgradeType())
		}
	}
	if len(ups) != 1 || ups[0] != "websocket" {
		t.Errorf("HCM upgrade_configs = %v, want websocket (disabled by default)", ups)
	}
}

const mtlsBootstrapFile = "../envoy/envoy-mtls.yaml"

func loadMTLSBootstrap(t *testing.T) (*bootstrapv3.Bootstrap, []byte) {
	t.Helper()
	data, err := os.ReadFile(mtlsBootstrapFile)
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoyconf.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", mtlsBootstrapFile, err)
	}
	return b, data
}

func TestMTLSBootstrapValidates(t *testing.T) {
	b, _ := loadMTLSBootstrap(t)
	if err := envoyconf.Validate(b); err != nil {
		t.Fatalf("%s: %v", mtlsBootstrapFile, err)
	}
}

// TestMTLSBootstrapOnlyAddsTLS: envoy/envoy-mtls.yaml is envoy/envoy.yaml
// plus the accessgate cluster's transport socket, and nothing else, so
// every setting pinned by TestBootstrapSettings holds for it too.
func TestMTLSBootstrapOnlyAddsTLS(t *testing.T) {
	plain, _ := loadBootstrap(t)
	mtls, _ := loadMTLSBootstrap(t)
	ag := cluster(t, mtls, "accessgate")
	if ag.GetTransportSocket() == nil {
		t.Fatal("the mTLS bootstrap's accessgate cluster has no transport_socket")
	}
	for _, c := range plain.GetStaticResources().GetClusters() {
		if c.GetTransportSocket() != nil {
			t.Errorf("%s: cluster %s has a transport_socket", bootstrapFile, c.GetName())
		}
	}
	ag.TransportSocket = nil
	if !proto.Equal(mtls, plain) {
		t.Errorf("%s differs from %s in more than the accessgate cluster's transport_socket", mtlsBootstrapFile, bootstrapFile)
	}
}

// TestMTLSBootstrapSettings pins the upstream TLS settings docs/deploy.md
// describes: a client certificate, a CA and a SAN to verify accessgate.
func TestMTLSBootstrapSettings(t *testing.T) {
	b, _ := loadMTLSBootstrap(t)
	ts := cluster(t, b, "accessgate").GetTransportSocket()
	if ts.GetName() != "envoy.transport_sockets.tls" {
		t.Errorf("transport_socket name = %q, want envoy.transport_sockets.tls", ts.GetName())
	}
	var up tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatalf("transport_socket: %v", err)
	}
	ctx := up.GetCommonTlsContext()
	dir := envoyconf.DefaultTLSDir + "/"
	if certs := ctx.GetTlsCertificates(); len(certs) != 1 ||
		certs[0].GetCertificateChain().GetFilename() != dir+"client.crt" ||
		certs[0].GetPrivateKey().GetFilename() != dir+"client.key" {
		t.Errorf("tls_certificates = %v, want %sclient.crt and client.key", certs, dir)
	}
	vc := ctx.GetValidationContext()
	if got := vc.GetTrustedCa().GetFilename(); got != dir+"ca.crt" {
		t.Errorf("trusted_ca = %q, want %sca.crt", got, dir)
	}
	if sans := vc.GetMatchTypedSubjectAltNames(); len(sans) != 1 || sans[0].GetMatcher().GetExact() != envoyconf.DefaultAccessgate.Host {
		t.Errorf("match_typed_subject_alt_names = %v, want exactly DNS %s", sans, envoyconf.DefaultAccessgate.Host)
	}
	if got := ctx.GetTlsParams().GetTlsMinimumProtocolVersion(); got != tlsv3.TlsParameters_TLSv1_2 {
		t.Errorf("tls_minimum_protocol_version = %v, want TLSv1_2", got)
	}
	if got := ctx.GetAlpnProtocols(); len(got) != 1 || got[0] != "h2" {
		t.Errorf("alpn_protocols = %v, want [h2]", got)
	}
}

// TestSubstituteTLSDir: the tests' substitution of the TLS folder changes
// the three file names and nothing else.
func TestSubstituteTLSDir(t *testing.T) {
	orig, data := loadMTLSBootstrap(t)
	sub, err := envoyconf.SubstituteTLSDir(data, "/tmp/e2e-tls")
	if err != nil {
		t.Fatal(err)
	}
	got, err := envoyconf.Parse(sub)
	if err != nil {
		t.Fatal(err)
	}
	ts := cluster(t, got, "accessgate").GetTransportSocket()
	var up tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&up); err != nil {
		t.Fatal(err)
	}
	ctx := up.GetCommonTlsContext()
	for _, ds := range []*corev3.DataSource{
		ctx.GetTlsCertificates()[0].GetCertificateChain(),
		ctx.GetTlsCertificates()[0].GetPrivateKey(),
		ctx.GetValidationContext().GetTrustedCa(),
	} {
		f := ds.GetFilename()
		if !strings.HasPrefix(f, "/tmp/e2e-tls/") {
			t.Errorf("filename %q not substituted", f)
		}
		ds.Specifier = &corev3.DataSource_Filename{Filename: envoyconf.DefaultTLSDir + strings.TrimPrefix(f, "/tmp/e2e-tls")}
	}
	if err := ts.GetTypedConfig().MarshalFrom(&up); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, orig) {
		t.Error("the substituted bootstrap differs from envoy/envoy-mtls.yaml in more than the TLS folder")
	}
	if _, err := envoyconf.SubstituteTLSDir([]byte("filename: /etc/accessgate-tls/ca.crt"), "/x"); err == nil {
		t.Error("SubstituteTLSDir accepted a bootstrap naming one TLS file")
	}
}
