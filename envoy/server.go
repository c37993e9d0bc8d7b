// Package envoy adapts accessgate's decision core to Envoy's external
// authorization API (envoy.service.auth.v3.Authorization, gRPC). It is the
// only package that imports go-control-plane: Check turns the CheckRequest
// into an authz.Request (requestFrom), asks the Decider, and turns the
// authz.Decision into a CheckResponse (response).
package envoy

import (
	"context"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"

	"github.com/accessgate/accessgate/authz"
)

// Decider decides one request; *authz.Engine is one.
type Decider interface {
	Decide(ctx context.Context, r *authz.Request) authz.Decision
}

// Observer is told about every decision after it is made, e.g. to count it
// in metrics. It must be cheap and must not keep r or d.
type Observer func(r *authz.Request, d *authz.Decision, took time.Duration)

// Server is the ext_authz gRPC service.
type Server struct {
	authv3.UnimplementedAuthorizationServer

	d        Decider
	log      *zap.Logger // decision lines only, sampled
	level    zapcore.Level
	observer Observer
	traced   Traced
	// bindingWarnings limits the unknown-binding warning (binding.go).
	bindingWarnings *authz.WarnLimiter
}

var _ authv3.AuthorizationServer = (*Server)(nil)

// Option configures a Server.
type Option func(*Server)

// WithDecisionLevel sets the level of the per-request decision line
// (default debug).
func WithDecisionLevel(l zapcore.Level) Option { return func(s *Server) { s.level = l } }

// WithObserver calls o after every decision.
func WithObserver(o Observer) Option { return func(s *Server) { s.observer = o } }

// Traced is told about every decision with the call's context, whose gRPC
// metadata carries the caller's trace context (Envoy's ext_authz span).
type Traced func(ctx context.Context, r *authz.Request, d *authz.Decision, took time.Duration)

// WithTraced calls f after every decision (tracing; unset when off).
func WithTraced(f Traced) Option { return func(s *Server) { s.traced = f } }

// Decision-line sampling: per second, the first samplingFirst lines with the
// same message and level are logged, then one in samplingThereafter. Only
// decision lines go through the sampled logger, so start, reload and error
// lines are never dropped.
const (
	samplingFirst      = 100
	samplingThereafter = 100
)

// NewServer returns a Server asking d. log receives one line per decision
// at the decision level (see WithDecisionLevel), sampled.
func NewServer(d Decider, log *zap.Logger, opts ...Option) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{d: d, level: zapcore.DebugLevel, bindingWarnings: authz.NewWarnLimiter(unknownBindingEvery)}
	for _, o := range opts {
		o(s)
	}
	s.log = log.Named("envoy").WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, samplingFirst, samplingThereafter)
	}))
	return s
}

// ServiceName is the gRPC name of the ext_authz service, for health checks.
const ServiceName = "envoy.service.auth.v3.Authorization"

// Register registers s as the Authorization service of g.
func (s *Server) Register(g grpc.ServiceRegistrar) { authv3.RegisterAuthorizationServer(g, s) }

// Check answers one ext_authz request. It never returns an error: a
// malformed CheckRequest gets the 400 bad_request answer, so Envoy always
// receives a decision rather than falling back to status_on_error.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	r, ok := requestFrom(cr)
	var d authz.Decision
	if ok {
		d = s.d.Decide(ctx, r)
	} else {
		d = authz.BadRequest()
	}
	took := time.Since(start)
	if s.observer != nil {
		s.observer(r, &d, took)
	}
	if s.traced != nil {
		s.traced(ctx, r, &d, took)
	}
	s.warnUnknownBinding(r, &d)
	if ce := s.log.Check(s.level, "decision"); ce != nil {
		path, _, _ := strings.Cut(r.Path, "?") // never log the query
		ce.Write(
			zap.String("reason", string(d.Reason)),
			zap.String("application", d.Application),
			zap.String("policy", d.Policy),
			zap.String("rule", d.Rule),
			zap.Int("status", d.Status),
			zap.Duration("latency", took),
			zap.String("method", r.Method),
			zap.String("host", r.Host),
			zap.String("path", path),
			zap.String("request_id", r.Headers["x-request-id"]),
		)
	}
	return response(&d), nil
}
