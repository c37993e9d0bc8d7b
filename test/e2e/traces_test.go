package e2e

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/otlpreceiver"
)

// tracingSection is the opt-in file that turns on Envoy's OpenTelemetry
// tracer.
const tracingSection = "../../envoy/tracing.yaml"

// envoyTracing inserts envoy/tracing.yaml into the shipped bootstrap, as
// its header says, with the collector at port on loopback: the tracing
// section into the connection manager, the collector's cluster into the
// clusters.
func envoyTracing(port int) func(t *testing.T, cfg []byte) []byte {
	return func(t *testing.T, cfg []byte) []byte {
		t.Helper()
		data, err := os.ReadFile(tracingSection)
		if err != nil {
			t.Fatal(err)
		}
		const collector = "address: otel-collector, port_value: 4317"
		text := strings.Replace(string(data), collector, fmt.Sprintf("address: 127.0.0.1, port_value: %d", port), 1)
		start := strings.Index(text, "\ntracing:\n")
		split := strings.Index(text, "\nclusters:\n")
		if start < 0 || split < start || !strings.Contains(string(data), collector) {
			t.Fatalf("%s: want a tracing: section, then clusters:, and the collector's address", tracingSection)
		}
		indent := func(lines, by string) string {
			var b strings.Builder
			for _, l := range strings.Split(strings.TrimRight(lines, "\n"), "\n") {
				b.WriteString(by + l + "\n")
			}
			return b.String()
		}
		tracing := indent(text[start+1:split+1], "          ")
		clusters := indent(text[split+len("\nclusters:\n"):], "  ")

		const hcm = "          stat_prefix: ingress_http\n"
		const clustersKey = "  clusters:\n"
		s := string(cfg)
		if strings.Count(s, hcm) != 1 || strings.Count(s, clustersKey) != 1 {
			t.Fatalf("bootstrap: cannot find where the tracing section goes")
		}
		s = strings.Replace(s, hcm, hcm+tracing, 1)
		return []byte(strings.Replace(s, clustersKey, clustersKey+clusters, 1))
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
