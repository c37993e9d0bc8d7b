package e2e

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/otlpreceiver"
)

// envoyTracing turns on Envoy's OpenTelemetry tracer in the shipped
// bootstrap, sending to an OTLP gRPC receiver at port on loopback. It is
// the opt-in section of docs/tracing.md, inserted into the connection
// manager, plus the collector's cluster.
func envoyTracing(port int) func(t *testing.T, cfg []byte) []byte {
	const hcm = "          stat_prefix: ingress_http\n"
	tracing := hcm + `          tracing:
            random_sampling: { value: 100 }
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service:
                  envoy_grpc: { cluster_name: otel_collector }
                  timeout: 2s
                service_name: envoy-edge
`
	const clusters = "  clusters:\n"
	cluster := clusters + fmt.Sprintf(`  - name: otel_collector
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: otel_collector
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: %d } } }
`, port)
	return func(t *testing.T, cfg []byte) []byte {
		s := string(cfg)
		if strings.Count(s, hcm) != 1 || strings.Count(s, clusters) != 1 {
			t.Fatalf("bootstrap: cannot find where the tracing section goes")
		}
		s = strings.Replace(s, hcm, tracing, 1)
		return []byte(strings.Replace(s, clusters, cluster, 1))
	}
}

// TestEnvoyTraces: a real Envoy with its OpenTelemetry tracer and
// accessgate with OTEL_* send to the same OTLP receiver; accessgate's
// accessgate.check span is the child of Envoy's ext_authz span, in the
// same trace.
func TestEnvoyTraces(t *testing.T) {
	rcv := otlpreceiver.New()
	addr := rcv.StartGRPC(t)
	_, port, _ := net.SplitHostPort(addr)
	var p int
	fmt.Sscan(port, &p)
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	e := newEnvWith(t, func(e *env) { e.rewrite = envoyTracing(p) })
	token := e.keys.token(t, "alice@example.com", time.Hour)

	r := e.send(t, "GET", "/reports?q=1", map[string]string{"cookie": "CF_Authorization=" + token})
	if r.StatusCode != 200 {
		t.Fatalf("through Envoy: %d, want 200", r.StatusCode)
	}
	check := rcv.WaitFor(t, 30*time.Second, 1, otlpreceiver.Named("accessgate.check"))[0]
	if check.Resource["service.name"].GetStringValue() != "accessgate" || check.Str("accessgate.endpoint") != "grpc" || check.Str("accessgate.reason") != "allowed" {
		t.Errorf("accessgate span: resource %v attributes %v", check.Resource, check.Attrs)
	}
	if check.ParentSpanID == "" {
		t.Fatalf("accessgate.check is a root; want a child of Envoy's ext_authz span")
	}
	parents := rcv.WaitFor(t, 30*time.Second, 1, func(s otlpreceiver.Span) bool { return s.SpanID == check.ParentSpanID })
	parent := parents[0]
	if parent.Resource["service.name"].GetStringValue() != "envoy-edge" {
		t.Errorf("parent span %q is not Envoy's (resource %v)", parent.Name, parent.Resource)
	}
	if parent.TraceID != check.TraceID {
		t.Errorf("parent trace %s, accessgate trace %s: not the same trace", parent.TraceID, check.TraceID)
	}
	if !strings.Contains(parent.Name, "Authorization.Check") && !strings.Contains(parent.Name, "ext_authz") {
		t.Errorf("parent span is %q, want Envoy's ext_authz span", parent.Name)
	}
	t.Logf("trace %s: %s -> accessgate.check", check.TraceID, parent.Name)
	scan := strings.Join([]string{token, "q=1", "alice@"}, "|")
	for _, s := range rcv.Spans() {
		if s.Resource["service.name"].GetStringValue() != "accessgate" {
			continue
		}
		for _, secret := range strings.Split(scan, "|") {
			if strings.Contains(s.Text(), secret) {
				t.Errorf("accessgate span %s holds %q", s.Name, secret)
			}
		}
	}
}
