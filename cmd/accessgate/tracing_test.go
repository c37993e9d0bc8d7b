package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/otlpreceiver"
	"github.com/accessgate/accessgate/tracing"
)

const (
	tpTrace  = "0af7651916cd43dd8448eb211c80319c"
	tpParent = "b7ad6b7169203331"
)

// traceEnv clears the OTEL_* variables the OpenTelemetry SDK reads from
// the process environment and sets those given.
func traceEnv(t *testing.T, set map[string]string) {
	t.Helper()
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, set[k])
	}
}

// TestServeTraces: serve with OTEL_* pointing at a real OTLP receiver on
// loopback exports one accessgate.check span per decision, over gRPC and
// the HTTP endpoints, parented by the request's traceparent or a root
// without one; on SIGTERM the queued spans are flushed. No span holds the
// token, the cookie, the query or the email.
func TestServeTraces(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf"} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlpreceiver.New()
			endpoint := rcv.StartHTTP(t)
			if proto == "grpc" {
				endpoint = "http://" + rcv.StartGRPC(t)
			}
			traceEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": proto})
			d := demoDir(t)
			addr := freeAddr(t)
			s := startServe(t, loopbackEnv(map[string]string{"ACCESSGATE_AUTH_ADDR": addr}), "--config", d.policy)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			client := authv3.NewAuthorizationClient(s.dial())

			parented := envoyRequest(d.token)
			parented.Attributes.Request.Http.Headers["traceparent"] = "00-" + tpTrace + "-" + tpParent + "-01"
			for _, req := range []*authv3.CheckRequest{parented, envoyRequest(d.token)} {
				resp, err := client.Check(ctx, req)
				if err != nil || resp.GetOkResponse() == nil {
					t.Fatalf("Check: %v %v, want an allow", resp, err)
				}
			}
			hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for _, ask := range []struct{ path, traceparent, cookie string }{
				{"/auth/forward", "00-" + tpTrace + "-" + tpParent + "-01", "CF_Authorization=" + d.token},
				{"/auth/nginx", "", "theme=dark"}, // no token: 401
			} {
				req, _ := http.NewRequest("GET", "http://"+addr+ask.path, nil)
				req.Header.Set("X-Forwarded-Method", "GET")
				req.Header.Set("X-Forwarded-Host", "app.example.com")
				req.Header.Set("X-Forwarded-Uri", "/reports?q=secretquery")
				req.Header.Set("X-Original-Method", "GET")
				req.Header.Set("X-Original-URI", "/reports?q=secretquery")
				req.Header.Set("Cookie", ask.cookie)
				if ask.traceparent != "" {
					req.Header.Set("Traceparent", ask.traceparent)
				}
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if code := s.stop(); code != exitOK {
				t.Fatalf("serve exited %d", code)
			}
			spans := rcv.WaitFor(t, 10*time.Second, 4, otlpreceiver.Named(tracing.SpanName))
			byEndpoint := map[string][]otlpreceiver.Span{}
			for _, sp := range spans {
				byEndpoint[sp.Str(tracing.AttrEndpoint)] = append(byEndpoint[sp.Str(tracing.AttrEndpoint)], sp)
			}
			if len(spans) != 4 || len(byEndpoint["grpc"]) != 2 || len(byEndpoint["auth/forward"]) != 1 || len(byEndpoint["auth/nginx"]) != 1 {
				t.Fatalf("spans by endpoint: %v, want 2 grpc, 1 auth/forward, 1 auth/nginx", byEndpoint)
			}
			var roots, children int
			for _, sp := range byEndpoint["grpc"] {
				switch {
				case sp.TraceID == tpTrace && sp.ParentSpanID == tpParent:
					children++
				case sp.ParentSpanID == "" && sp.TraceID != tpTrace:
					roots++
				}
				if sp.Str(tracing.AttrApplication) != "dashboard" || sp.Str(tracing.AttrReason) != "allowed" ||
					sp.Str(tracing.AttrPolicy) == "" || sp.Str(tracing.AttrRule) == "" || sp.Attrs[tracing.AttrStatus].GetIntValue() != 200 {
					t.Errorf("grpc span attributes: %v", sp.Attrs)
				}
			}
			if roots != 1 || children != 1 {
				t.Errorf("grpc spans: %d roots and %d children of the traceparent, want 1 and 1", roots, children)
			}
			if f := byEndpoint["auth/forward"][0]; f.TraceID != tpTrace || f.ParentSpanID != tpParent || f.Attrs[tracing.AttrStatus].GetIntValue() != 200 {
				t.Errorf("auth/forward span: trace %s parent %s attrs %v", f.TraceID, f.ParentSpanID, f.Attrs)
			}
			n := byEndpoint["auth/nginx"][0]
			if n.ParentSpanID != "" || n.Str(tracing.AttrReason) != "token_missing" || n.Has(tracing.AttrPolicy) || n.Has(tracing.AttrRule) {
				t.Errorf("auth/nginx span: parent %q attrs %v; want a root, token_missing, no policy or rule", n.ParentSpanID, n.Attrs)
			}
			scanSpans(t, rcv.Spans(), d.token, "theme=dark", "CF_Authorization", "secretquery", "access_token", "@")
		})
	}
}

// scanSpans fails when any exported span (name, attributes, events,
// links, status, resource) holds one of the secrets.
func scanSpans(t *testing.T, spans []otlpreceiver.Span, secrets ...string) {
	t.Helper()
	if len(spans) == 0 {
		t.Fatal("no spans to scan")
	}
	for _, sp := range spans {
		text := sp.Text()
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("span %s holds %q:\n%s", sp.Name, s, text)
			}
		}
	}
}

// TestServeTracesCollectorDown: with the collector unreachable, decisions
// are answered as ever, spans that do not fit the bounded queue are
// dropped and counted, and serve still stops.
func TestServeTracesCollectorDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	traceEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + down, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_BSP_MAX_QUEUE_SIZE": "2"})
	d := demoDir(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	const n = 20
	for range n {
		if got := checkReason(t, s, d.token); got != "allowed" {
			t.Fatalf("decision with the collector down: %q, want allowed", got)
		}
	}
	if got := s.metric("accessgate_trace_spans_dropped_total"); got < n-2 {
		t.Errorf("accessgate_trace_spans_dropped_total = %v after %d decisions with a queue of 2, want at least %d", got, n, n-2)
	}
	if got := s.metric("accessgate_trace_spans_exported_total"); got != 0 {
		t.Errorf("accessgate_trace_spans_exported_total = %v, want 0", got)
	}
	if code := s.stop(); code != exitOK {
		t.Errorf("serve exited %d", code)
	}
}

// TestServeTracesOff: without OTEL_* nothing is exported and no tracing
// metric exists.
func TestServeTracesOff(t *testing.T) {
	traceEnv(t, nil)
	d := demoDir(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	if got := checkReason(t, s, d.token); got != "allowed" {
		t.Fatalf("decision: %q", got)
	}
	if got := s.metric("accessgate_trace_spans_dropped_total"); got != -1 {
		t.Errorf("accessgate_trace_spans_dropped_total = %v with tracing off, want no such metric", got)
	}
}

// TestTracingOffIsFree: wired as serve wires it, a decision with tracing
// off allocates exactly what it does on a server built without any
// tracing option, and tracing on does not (so the comparison can fail).
func TestTracingOffIsFree(t *testing.T) {
	d := demoDir(t)
	set, err := policies.Load(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	km := jwks.New(zap.NewNop())
	defer km.Close()
	km.Sync(context.Background(), set)
	e := authz.New(km)
	e.Swap(set)
	req := envoyRequest(d.token)
	req.Attributes.Request.Http.Headers["traceparent"] = "00-" + tpTrace + "-" + tpParent + "-01"
	allocs := func(s *envoy.Server) float64 {
		ctx := context.Background()
		if resp, _ := s.Check(ctx, req); resp.GetOkResponse() == nil {
			t.Fatalf("not an allow: %v", resp)
		}
		return testing.AllocsPerRun(200, func() { s.Check(ctx, req) })
	}
	m := newMetrics()
	plain := allocs(envoy.NewServer(e, zap.NewNop(), envoy.WithObserver(m.observe)))

	traceEnv(t, nil)
	off := &gate{log: zap.NewNop(), metrics: m, ctx: context.Background()}
	if err := off.startTracing(); err != nil || off.tracer != nil {
		t.Fatalf("startTracing without OTEL_*: %v, %v", off.tracer, err)
	}
	if got := allocs(envoy.NewServer(e, zap.NewNop(), envoy.WithObserver(m.observe), off.traced())); got != plain {
		t.Errorf("tracing off: %v allocs per decision, want %v as without tracing", got, plain)
	}

	rcv := otlpreceiver.New()
	rcv.Discard = true
	traceEnv(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.StartHTTP(t)})
	on := &gate{log: zap.NewNop(), metrics: newMetrics(), ctx: context.Background()}
	if err := on.startTracing(); err != nil || on.tracer == nil {
		t.Fatalf("startTracing with an endpoint: %v, %v", on.tracer, err)
	}
	defer on.stopTracing()
	if got := allocs(envoy.NewServer(e, zap.NewNop(), envoy.WithObserver(on.metrics.observe), on.traced())); got <= plain {
		t.Errorf("tracing on: %v allocs per decision, want more than %v (the span)", got, plain)
	}
}
