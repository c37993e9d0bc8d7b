package tracing

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/test/otlpreceiver"
)

// otelVars are cleared before each test so that the machine's environment
// cannot turn tracing on or point it elsewhere.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER",
	"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
}

func clearOTel(t *testing.T) {
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
}

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"nothing set", nil, false},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{"exporter named", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{"console exporter", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, true},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, false},
		{"protocol alone", map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false},
		{"blank endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "  "}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Enabled(func(k string) string { return tc.env[k] }); got != tc.want {
				t.Errorf("Enabled = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewOffReturnsNil(t *testing.T) {
	clearOTel(t)
	tr, err := New(context.Background(), zap.NewNop(), prometheus.NewRegistry(), "test")
	if err != nil || tr != nil {
		t.Fatalf("New with no OTEL_* = %v, %v; want nil, nil", tr, err)
	}
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	if tr, err := New(context.Background(), zap.NewNop(), nil, "test"); err != nil || tr != nil {
		t.Fatalf("New with OTEL_TRACES_EXPORTER=none = %v, %v; want nil, nil", tr, err)
	}
	// A nil tracer shuts down quietly.
	if err := (*Tracer)(nil).Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadQueueSize(t *testing.T) {
	clearOTel(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
	if _, err := New(context.Background(), zap.NewNop(), nil, "test"); err == nil || !strings.Contains(err.Error(), "OTEL_BSP_MAX_QUEUE_SIZE") {
		t.Fatalf("err = %v, want one naming OTEL_BSP_MAX_QUEUE_SIZE", err)
	}
}

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
)

// TestDecisionSpans exports through the real OTLP exporter, configured by
// environment variables only, to a real receiver on loopback, over both
// protocols.
func TestDecisionSpans(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf", ""} {
		t.Run("protocol="+proto, func(t *testing.T) {
			clearOTel(t)
			rcv := otlpreceiver.New()
			switch proto {
			case "grpc":
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+rcv.StartGRPC(t))
				t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
			default: // http/protobuf is the default
				t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.StartHTTP(t))
				if proto != "" {
					t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
				}
			}
			reg := prometheus.NewRegistry()
			tr, err := New(context.Background(), zap.NewNop(), reg, "v-test")
			if err != nil || tr == nil {
				t.Fatalf("New = %v, %v", tr, err)
			}
			parented := &authz.Request{Headers: map[string]string{"traceparent": "00-" + parentTrace + "-" + parentSpan + "-01"}}
			tr.Decision("grpc", parented, &authz.Decision{
				Verdict: authz.Forward, Status: 200, Application: "app", Policy: "staff",
				Rule: "include[0].email_domain", Reason: authz.ReasonAllowed,
			}, 3*time.Millisecond)
			// No traceparent; a decision without application or policy.
			tr.Decision("auth/forward", &authz.Request{Headers: map[string]string{}}, &authz.Decision{
				Status: 401, Reason: authz.ReasonTokenMissing,
			}, time.Millisecond)
			// A parent that did not sample: no span.
			tr.Decision("grpc", &authz.Request{Headers: map[string]string{"traceparent": "00-" + parentTrace + "-" + parentSpan + "-00"}},
				&authz.Decision{Status: 403, Reason: authz.ReasonNoPolicyMatch}, time.Millisecond)
			// A malformed request: no request at all.
			tr.Decision("grpc", nil, &authz.Decision{Status: 400, Reason: authz.ReasonBadRequest}, 0)
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			spans := rcv.WaitFor(t, 10*time.Second, 3, otlpreceiver.Named(SpanName))
			if len(spans) != 3 {
				t.Fatalf("got %d spans, want 3 (the unsampled parent gets none)", len(spans))
			}
			byReason := map[string]otlpreceiver.Span{}
			for _, s := range spans {
				byReason[s.Str(AttrReason)] = s
				if got := s.Resource["service.name"].GetStringValue(); got != "accessgate" {
					t.Errorf("service.name = %q, want accessgate", got)
				}
				if s.Kind != tracepb.Span_SPAN_KIND_SERVER {
					t.Errorf("kind = %v, want server", s.Kind)
				}
			}
			p := byReason[string(authz.ReasonAllowed)]
			if p.TraceID != parentTrace || p.ParentSpanID != parentSpan {
				t.Errorf("parented span: trace %s parent %s, want %s %s", p.TraceID, p.ParentSpanID, parentTrace, parentSpan)
			}
			want := map[string]string{AttrEndpoint: "grpc", AttrApplication: "app", AttrPolicy: "staff", AttrRule: "include[0].email_domain", AttrReason: "allowed"}
			for k, v := range want {
				if got := p.Str(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if got := p.Attrs[AttrStatus].GetIntValue(); got != 200 {
				t.Errorf("%s = %v, want the integer 200", AttrStatus, p.Attrs[AttrStatus])
			}
			if d := p.Raw.GetEndTimeUnixNano() - p.Raw.GetStartTimeUnixNano(); d != uint64(3*time.Millisecond) {
				t.Errorf("span lasts %dns, want the decision's 3ms", d)
			}
			r := byReason[string(authz.ReasonTokenMissing)]
			if r.ParentSpanID != "" || r.TraceID == parentTrace || r.TraceID == "" {
				t.Errorf("unparented span: trace %q parent %q, want a new root", r.TraceID, r.ParentSpanID)
			}
			for _, k := range []string{AttrApplication, AttrPolicy, AttrRule} {
				if r.Has(k) {
					t.Errorf("attribute %s without a value is present: %v", k, r.Attrs[k])
				}
			}
			if got := r.Str(AttrEndpoint); got != "auth/forward" {
				t.Errorf("endpoint = %q", got)
			}
			if got := testutil.ToFloat64(tr.spans); got != 3 {
				t.Errorf("exported counter = %v, want 3", got)
			}
			if got := testutil.ToFloat64(tr.dropped); got != 0 {
				t.Errorf("dropped counter = %v, want 0", got)
			}
		})
	}
}

// TestServiceNameFromEnv: OTEL_SERVICE_NAME replaces the default.
func TestServiceNameFromEnv(t *testing.T) {
	clearOTel(t)
	rcv := otlpreceiver.New()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.StartHTTP(t))
	t.Setenv("OTEL_SERVICE_NAME", "gate-eu")
	tr, err := New(context.Background(), zap.NewNop(), nil, "v")
	if err != nil {
		t.Fatal(err)
	}
	tr.Decision("grpc", nil, &authz.Decision{Status: 400, Reason: authz.ReasonBadRequest}, 0)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := rcv.WaitFor(t, 10*time.Second, 1, otlpreceiver.Named(SpanName))[0]
	if got := s.Resource["service.name"].GetStringValue(); got != "gate-eu" {
		t.Errorf("service.name = %q, want gate-eu", got)
	}
}

// TestCollectorDown: a collector that cannot be reached fills the bounded
// queue; the spans that do not fit are dropped and counted, recording
// never blocks, and Shutdown gives up after its flush bound, counting what
// is left.
func TestCollectorDown(t *testing.T) {
	clearOTel(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+addr)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
	tr, err := New(context.Background(), zap.NewNop(), nil, "v")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for range n {
		tr.Decision("grpc", nil, &authz.Decision{Status: 400, Reason: authz.ReasonBadRequest}, 0)
	}
	// At most the queue's 4 are waiting for the exporter; the rest were
	// dropped as they came.
	if got := testutil.ToFloat64(tr.dropped); got < n-4 {
		t.Errorf("dropped = %v right after %d decisions, want at least %d", got, n, n-4)
	}
	_ = tr.Shutdown(context.Background()) // the collector is down: an error is expected
	if got := testutil.ToFloat64(tr.dropped); got != n {
		t.Errorf("dropped after shutdown = %v, want all %d", got, n)
	}
	if got := testutil.ToFloat64(tr.spans); got != 0 {
		t.Errorf("exported = %v, want 0", got)
	}
}

// BenchmarkDecision is the cost of one decision span with tracing on (the
// collector accepts everything).
func BenchmarkDecision(b *testing.B) {
	for _, k := range otelVars {
		b.Setenv(k, "")
	}
	rcv := otlpreceiver.New()
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+rcv.StartGRPC(b))
	b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	tr, err := New(context.Background(), zap.NewNop(), nil, "v")
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background()) //nolint:errcheck
	r := &authz.Request{Headers: map[string]string{"traceparent": "00-" + parentTrace + "-" + parentSpan + "-01"}}
	d := &authz.Decision{Status: 200, Application: "app", Policy: "staff", Rule: "include[0].email_domain", Reason: authz.ReasonAllowed}
	b.ReportAllocs()
	for b.Loop() {
		tr.Decision("grpc", r, d, time.Millisecond)
	}
}

// TestParentFromMetadata: over gRPC the caller's trace context comes in
// the call's metadata (Envoy's ext_authz client span) and wins over a
// traceparent among the request's headers; without either the span is a
// root.
func TestParentFromMetadata(t *testing.T) {
	clearOTel(t)
	rcv := otlpreceiver.New()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.StartHTTP(t))
	tr, err := New(context.Background(), zap.NewNop(), nil, "v")
	if err != nil {
		t.Fatal(err)
	}
	const (
		mdTrace = "11111111111111111111111111111111"
		mdSpan  = "2222222222222222"
	)
	headers := &authz.Request{Headers: map[string]string{"traceparent": "00-" + parentTrace + "-" + parentSpan + "-01"}}
	for _, tc := range []struct {
		reason      authz.Reason
		md          metadata.MD
		r           *authz.Request
		trace, span string
	}{
		{authz.ReasonAllowed, metadata.Pairs("traceparent", "00-"+mdTrace+"-"+mdSpan+"-01"), headers, mdTrace, mdSpan},
		{authz.ReasonBypass, metadata.Pairs("x-request-id", "1"), headers, parentTrace, parentSpan},
		{authz.ReasonBlocked, nil, &authz.Request{}, "", ""},
	} {
		ctx := context.Background()
		if tc.md != nil {
			ctx = metadata.NewIncomingContext(ctx, tc.md)
		}
		tr.DecisionContext(ctx, "grpc", tc.r, &authz.Decision{Status: 200, Reason: tc.reason}, time.Millisecond)
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rcv.WaitFor(t, 10*time.Second, 3, otlpreceiver.Named(SpanName))
	got := map[string]otlpreceiver.Span{}
	for _, s := range spans {
		got[s.Str(AttrReason)] = s
	}
	for reason, want := range map[authz.Reason][2]string{
		authz.ReasonAllowed: {mdTrace, mdSpan},
		authz.ReasonBypass:  {parentTrace, parentSpan},
	} {
		if s := got[string(reason)]; s.TraceID != want[0] || s.ParentSpanID != want[1] {
			t.Errorf("%s: trace %s parent %s, want %s %s", reason, s.TraceID, s.ParentSpanID, want[0], want[1])
		}
	}
	if s := got[string(authz.ReasonBlocked)]; s.ParentSpanID != "" {
		t.Errorf("no trace context: parent %s, want a root", s.ParentSpanID)
	}
}

// TestQueryRedacted: a span started with url.full holding a query (as
// otelhttp starts a provider call's) is exported without the query.
func TestQueryRedacted(t *testing.T) {
	clearOTel(t)
	rcv := otlpreceiver.New()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.StartHTTP(t))
	tr, err := New(context.Background(), zap.NewNop(), nil, "v")
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.TracerProvider().Tracer("test").Start(context.Background(), "call",
		trace.WithAttributes(attribute.String("url.full", "https://idp.example/token?code=SECRETCODE#frag"), attribute.String("url.query", "code=SECRETCODE")))
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := rcv.WaitFor(t, 10*time.Second, 1, otlpreceiver.Named("call"))[0]
	if got := s.Str("url.full"); got != "https://idp.example/token" {
		t.Errorf("url.full = %q, want it without query and fragment", got)
	}
	if strings.Contains(s.Text(), "SECRETCODE") {
		t.Errorf("span holds the query: %v", s.Raw)
	}
}
