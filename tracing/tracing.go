// Package tracing exports OpenTelemetry traces of accessgate's decisions:
// one accessgate.check span per decision, a child of the W3C traceparent
// the proxy sent. It is configured only by the standard OTEL_* environment
// variables and is off unless they name an exporter or an OTLP endpoint.
//
// Off means free: New returns a nil *Tracer, and the servers are given no
// extra Observer, so a decision neither allocates nor calls into the
// OpenTelemetry API. On, a span is recorded after the decision (from its
// start time and duration) and handed to a bounded queue; a collector that
// is down or slow fills the queue, and what does not fit is dropped and
// counted, so a decision never waits for the collector.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/accessgate/accessgate/authz"
)

// SpanName is the name of the decision span.
const SpanName = "accessgate.check"

// The decision span's attributes (contract §11).
const (
	AttrEndpoint    = "accessgate.endpoint"
	AttrApplication = "accessgate.application"
	AttrPolicy      = "accessgate.policy"
	AttrRule        = "accessgate.rule"
	AttrReason      = "accessgate.reason"
	AttrStatus      = "http.response.status_code"
)

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME (or
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "accessgate"

// FlushTimeout bounds the flush of the spans still queued at shutdown.
const FlushTimeout = time.Second

// defaultMaxQueue is the queue's bound unless OTEL_BSP_MAX_QUEUE_SIZE sets
// it (the SDK's default).
const defaultMaxQueue = 2048

// instrumentationName names the tracer (the instrumentation scope).
const instrumentationName = "github.com/accessgate/accessgate"

// Enabled reports whether the environment turns tracing on: an exporter
// named by OTEL_TRACES_EXPORTER other than none, or an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
// OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn it off.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if e := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); e != "" {
		return e != "none"
	}
	return strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")) != "" ||
		strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) != ""
}

// Tracer records decision spans and exports them. A nil *Tracer is off.
type Tracer struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer

	// queued counts spans handed to the batch processor and not yet
	// through the exporter; above max a span is dropped rather than
	// queued (the processor would drop it silently).
	queued  atomic.Int64
	max     int64
	dropped prometheus.Counter
	spans   prometheus.Counter

	// abort ends exports still running when Shutdown gives up, so that
	// nothing outlives it for long; mu orders the exporter's counting
	// against Shutdown's count of what is left (abandoned).
	abort     context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex
	abandoned bool
}

// New builds the tracer the environment asks for, or returns nil when
// tracing is off. Its metrics are registered on reg. Errors of the
// exporter (a collector that is down) are logged on log, at most once a
// minute.
func New(ctx context.Context, log *zap.Logger, reg prometheus.Registerer, version string) (*Tracer, error) {
	if !Enabled(os.Getenv) {
		return nil, nil
	}
	max := int64(defaultMaxQueue)
	if s := os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("OTEL_BSP_MAX_QUEUE_SIZE %q: want a positive whole number", s)
		}
		max = int64(n)
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil && res == nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	t := &Tracer{
		max: max,
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessgate_trace_spans_dropped_total",
			Help: "Spans not exported: the queue was full or the collector refused or could not be reached. A decision never waits for the collector.",
		}),
		spans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessgate_trace_spans_exported_total",
			Help: "Spans the collector accepted.",
		}),
	}
	if reg != nil {
		if err := reg.Register(t.dropped); err != nil {
			_ = exp.Shutdown(ctx)
			return nil, err
		}
		if err := reg.Register(t.spans); err != nil {
			_ = exp.Shutdown(ctx)
			return nil, err
		}
	}
	t.abort, t.cancel = context.WithCancel(context.Background())
	bsp := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, t: t}, sdktrace.WithMaxQueueSize(int(max)))
	// The sampler is the SDK's: parent-based (the proxy's sampled flag
	// decides; a root is sampled), or what OTEL_TRACES_SAMPLER says.
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(queryRedactor{}),
		sdktrace.WithSpanProcessor(&boundedProcessor{SpanProcessor: bsp, t: t}))
	t.tracer = t.tp.Tracer(instrumentationName, trace.WithInstrumentationVersion(version))
	otel.SetErrorHandler(limitedErrors(log))
	return t, nil
}

// TracerProvider is the provider of the sign-in spans.
func (t *Tracer) TracerProvider() trace.TracerProvider { return t.tp }

// Shutdown exports what is queued, for at most FlushTimeout (or until ctx
// ends), and stops the exporter. Spans left are counted as dropped.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, FlushTimeout)
	defer cancel()
	err := t.tp.Shutdown(ctx)
	t.mu.Lock()
	t.abandoned = true
	if left := t.queued.Swap(0); left > 0 {
		t.dropped.Add(float64(left))
	}
	t.mu.Unlock()
	t.cancel() // an export still trying gives up now
	return err
}

// Decision records the span of one decision made at endpoint ("grpc",
// "auth/forward", ...) that took took and ended now. r may be nil (a
// malformed request). It reads no header but traceparent and tracestate,
// and no identity: the span holds no token, cookie, query or email.
func (t *Tracer) Decision(endpoint string, r *authz.Request, d *authz.Decision, took time.Duration) {
	t.DecisionContext(context.Background(), endpoint, r, d, took)
}

// DecisionContext is Decision for a gRPC call: a traceparent in ctx's
// incoming metadata is the parent (Envoy's ext_authz client span sends it
// there), else the one among the request's headers.
func (t *Tracer) DecisionContext(ctx context.Context, endpoint string, r *authz.Request, d *authz.Decision, took time.Duration) {
	end := time.Now()
	parent := context.Background()
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get("traceparent")) > 0 {
		parent = propagation.TraceContext{}.Extract(parent, mdCarrier(md))
	} else if r != nil && r.Headers["traceparent"] != "" {
		parent = propagation.TraceContext{}.Extract(parent, propagation.MapCarrier(r.Headers))
	}
	ctx = parent
	_, span := t.tracer.Start(ctx, SpanName, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(end.Add(-took)))
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 6)
		attrs = appendString(attrs, AttrEndpoint, endpoint)
		attrs = appendString(attrs, AttrApplication, d.Application)
		attrs = appendString(attrs, AttrPolicy, d.Policy)
		attrs = appendString(attrs, AttrRule, d.Rule)
		attrs = appendString(attrs, AttrReason, string(d.Reason))
		if d.Status != 0 {
			attrs = append(attrs, attribute.Int(AttrStatus, d.Status))
		}
		span.SetAttributes(attrs...)
	}
	span.End(trace.WithTimestamp(end))
}

// mdCarrier reads the trace context from gRPC metadata.
type mdCarrier metadata.MD

func (c mdCarrier) Get(k string) string {
	if v := metadata.MD(c).Get(k); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c mdCarrier) Set(k, v string) { metadata.MD(c).Set(k, v) }
func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// appendString adds a string attribute that has a value: an attribute with
// no value is left out.
func appendString(attrs []attribute.KeyValue, k, v string) []attribute.KeyValue {
	if v == "" {
		return attrs
	}
	return append(attrs, attribute.String(k, v))
}

// queryRedactor cuts the query off url.full as a span starts: the HTTP
// client instrumentation of the sign-in's provider calls records the whole
// URL, and no span may hold a query string.
type queryRedactor struct{}

func (queryRedactor) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	for _, kv := range s.Attributes() {
		if kv.Key == "url.full" || kv.Key == "http.url" {
			if v := kv.Value.AsString(); strings.ContainsAny(v, "?#") {
				v, _, _ = strings.Cut(v, "#")
				v, _, _ = strings.Cut(v, "?")
				s.SetAttributes(attribute.String(string(kv.Key), v))
			}
		}
		if kv.Key == "url.query" {
			s.SetAttributes(attribute.String("url.query", ""))
		}
	}
}
func (queryRedactor) OnEnd(sdktrace.ReadOnlySpan)      {}
func (queryRedactor) Shutdown(context.Context) error   { return nil }
func (queryRedactor) ForceFlush(context.Context) error { return nil }

// boundedProcessor keeps the batch processor's queue from overflowing
// unseen: a span that would not fit is dropped here and counted.
type boundedProcessor struct {
	sdktrace.SpanProcessor
	t *Tracer
}

func (p *boundedProcessor) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return // the batch processor would not queue it either
	}
	if p.t.queued.Add(1) > p.t.max {
		p.t.queued.Add(-1)
		p.t.dropped.Inc()
		return
	}
	p.SpanProcessor.OnEnd(s)
}

// countingExporter counts what the collector accepted and what it did not.
type countingExporter struct {
	sdktrace.SpanExporter
	t *Tracer
}

func (e *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(e.t.abort, cancel)()
	err := e.SpanExporter.ExportSpans(ctx, spans)
	e.t.mu.Lock()
	defer e.t.mu.Unlock()
	if e.t.abandoned {
		return err // counted as dropped by Shutdown
	}
	e.t.queued.Add(-int64(len(spans)))
	if err != nil {
		e.t.dropped.Add(float64(len(spans)))
	} else {
		e.t.spans.Add(float64(len(spans)))
	}
	return err
}

// limitedErrors logs the SDK's errors (a failed export, every batch while
// the collector is down) at most once a minute.
func limitedErrors(log *zap.Logger) otel.ErrorHandler {
	if log == nil {
		log = zap.NewNop()
	}
	var last atomic.Int64
	return otel.ErrorHandlerFunc(func(err error) {
		now := time.Now().UnixNano()
		prev := last.Load()
		if now-prev < int64(time.Minute) || !last.CompareAndSwap(prev, now) {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.New("export timed out")
		}
		log.Warn("trace export failed; spans are dropped and counted (logged at most once a minute)", zap.Error(err))
	})
}

// DroppedCounter is the counter of dropped spans (for benchmarks).
func (t *Tracer) DroppedCounter() prometheus.Counter { return t.dropped }
