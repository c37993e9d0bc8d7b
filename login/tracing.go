package login

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Sign-in spans (contract §11): one for the callback, and one for each
// provider call (discovery, key fetch, code exchange, userinfo) through
// otelhttp's client instrumentation. They hold no code, state, token,
// cookie or email: the callback span records only its status, and the
// provider calls' URLs lose their query in the tracer provider.

// CallbackSpan is the name of the callback's span.
const CallbackSpan = "accessgate.signin.callback"

// tracedClient wraps c's transport so that each provider call is a span.
func tracedClient(c *http.Client, tp trace.TracerProvider) *http.Client {
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	traced := *c
	traced.Transport = otelhttp.NewTransport(base,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return "accessgate.signin.provider " + r.Method
		}))
	return &traced
}

// tracedCallback runs the callback inside its span, a child of the
// request's traceparent when it has one.
func (s *Server) tracedCallback(w http.ResponseWriter, r *http.Request) {
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, CallbackSpan, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.handleCallback(sw, r.WithContext(ctx))
	span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
}

// statusWriter remembers the status of the answer.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}
