package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/test/otlpreceiver"
)

// BenchmarkTracingCachedAllow measures one ext_authz Check of a cached
// allow through the real envoy.Server, engine and metrics, wired as serve
// wires them: tracing off (no OTEL_*), tracing on (the real OTLP gRPC
// exporter to a receiver on loopback that discards what it gets), with
// the Envoy-style traceparent sampled or not, and the audit log on with
// tracing off. "off" is the hot path as it was before tracing existed.
func BenchmarkTracingCachedAllow(b *testing.B) {
	e, token := demoEngine(b)
	for _, mode := range []string{"off", "on", "on_unsampled", "audit"} {
		b.Run(mode, func(b *testing.B) {
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER"} {
				b.Setenv(k, "")
			}
			req := envoyRequest(token)
			var rcv *otlpreceiver.Receiver
			if mode == "on" || mode == "on_unsampled" {
				rcv = otlpreceiver.New()
				rcv.Discard = true
				b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+rcv.StartGRPC(b))
				b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
				flags := "-01"
				if mode == "on_unsampled" {
					flags = "-00"
				}
				req.Attributes.Request.Http.Headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331" + flags
			}
			g := &gate{log: zap.NewNop(), metrics: newMetrics(), ctx: context.Background()}
			if err := g.startTracing(); err != nil {
				b.Fatal(err)
			}
			if (g.tracer != nil) != (rcv != nil) {
				b.Fatalf("tracer %v with receiver %v", g.tracer, rcv)
			}
			if mode == "audit" {
				g.metrics.audit = openAudit(filepath.Join(b.TempDir(), "audit.log"), zap.NewNop(), g.metrics.session)
			}
			s := envoy.NewServer(e, zap.NewNop(), envoy.WithObserver(g.metrics.observe), g.traced())
			ctx := context.Background()
			if resp, _ := s.Check(ctx, req); resp.GetOkResponse() == nil {
				b.Fatalf("not an allow: %v", resp)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Check(ctx, req)
			}
			b.StopTimer()
			if g.tracer != nil {
				t := g.tracer
				g.stopTracing()
				b.ReportMetric(testutil.ToFloat64(t.DroppedCounter())/float64(b.N), "dropped/op")
			}
			if g.metrics.audit != nil {
				g.metrics.audit.Close()
			}
		})
	}
}
