package main

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/httpauth"
	"github.com/accessgate/accessgate/tracing"
)

// Traces (contract §11): configured by the OTEL_* environment variables
// only, off unless they name an exporter or an OTLP endpoint. Off, the
// servers get the very observers they get without tracing, so the hot
// path is unchanged; on, each observer also records the decision's span.

// startTracing builds the tracer the environment asks for (nil: off).
func (g *gate) startTracing() error {
	t, err := tracing.New(g.ctx, g.log.Named("tracing"), g.metrics.reg, buildVersion())
	if err != nil {
		return err
	}
	g.tracer = t
	if t != nil {
		g.log.Info("tracing on: exporting decision spans over OTLP")
	}
	return nil
}

// stopTracing flushes the spans still queued, for at most
// tracing.FlushTimeout, and stops the exporter. It may be called twice.
func (g *gate) stopTracing() {
	if g.tracer == nil {
		return
	}
	if err := g.tracer.Shutdown(context.Background()); err != nil {
		g.log.Warn("trace flush at shutdown incomplete; the spans left are counted as dropped", zap.Error(err))
	}
	g.tracer = nil
}

// tracerProvider is the sign-in spans' provider; nil when tracing is off.
func (g *gate) tracerProvider() trace.TracerProvider {
	if g.tracer == nil {
		return nil
	}
	return g.tracer.TracerProvider()
}

// traced is the ext_authz server's tracing option: none when tracing is
// off, so a decision costs what it did without tracing.
func (g *gate) traced() envoy.Option {
	t := g.tracer
	if t == nil {
		return func(*envoy.Server) {}
	}
	return envoy.WithTraced(func(ctx context.Context, r *authz.Request, d *authz.Decision, took time.Duration) {
		t.DecisionContext(ctx, endpointGRPC, r, d, took)
	})
}

// httpObserver is the HTTP endpoints' Observer: metrics (and the audit
// log), plus the decision span when tracing is on.
func httpObserver(m *metrics, t *tracing.Tracer) httpauth.Observer {
	if t == nil {
		return m.observeHTTP
	}
	return func(ep httpauth.Endpoint, r *authz.Request, d *authz.Decision, took time.Duration) {
		m.observeHTTP(ep, r, d, took)
		t.Decision(ep.String(), r, d, took)
	}
}
