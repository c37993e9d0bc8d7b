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
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

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

// Register registers s as the Authorization service of g. Its Check
// handler decodes the CheckRequest into a sizedCheckRequest, so that on a
// grpc.Server built with ServerOptions the decision learns the size of
// the message its headers came in; on any other server it works as the
// generated handler does.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	desc := authv3.Authorization_ServiceDesc // a copy: the generated one stays as it is
	desc.Methods = []grpc.MethodDesc{{MethodName: "Check", Handler: checkHandler}}
	g.RegisterService(&desc, s)
}

// ServerOptions are the options of the grpc.Server s is registered on that
// let Check skip a pass over the headers: a codec (grpc-go's proto codec)
// that also records the size of each CheckRequest it decodes. Every
// header name and value is inside that message, so its size bounds their
// total and the engine's 64 KiB header check (authz.Request.HeaderBytes)
// needs no count of its own for any request under 64 KiB.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(sizingCodec{encoding.GetCodecV2(protoCodecName)})}
}

// protoCodecName is the name grpc-go registers its proto codec under.
const protoCodecName = "proto"

// sizedCheckRequest is a CheckRequest with the size of its encoding, as
// sizingCodec decoded it (0 when another codec did).
type sizedCheckRequest struct {
	authv3.CheckRequest
	size int
}

// sizingCodec is a codec that records the message size of a
// sizedCheckRequest and otherwise is the codec it wraps.
type sizingCodec struct{ encoding.CodecV2 }

func (c sizingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*sizedCheckRequest); ok {
		m.size = data.Len()
		return c.CodecV2.Unmarshal(data, &m.CheckRequest)
	}
	return c.CodecV2.Unmarshal(data, v)
}

// checkHandler is the generated Check handler, decoding into a
// sizedCheckRequest. An interceptor that hands on another request than
// the one decoded loses the size (it no longer describes that request).
func checkHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := &sizedCheckRequest{}
	if err := dec(in); err != nil {
		return nil, err
	}
	s := srv.(*Server)
	if interceptor == nil {
		return s.check(ctx, &in.CheckRequest, in.size)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: authv3.Authorization_Check_FullMethodName}
	return interceptor(ctx, &in.CheckRequest, info, func(ctx context.Context, req any) (any, error) {
		cr, _ := req.(*authv3.CheckRequest)
		size := in.size
		if cr != &in.CheckRequest {
			size = 0
		}
		return s.check(ctx, cr, size)
	})
}

// Check answers one ext_authz request. It never returns an error: a
// malformed CheckRequest gets the 400 bad_request answer, so Envoy always
// receives a decision rather than falling back to status_on_error.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return s.check(ctx, cr, 0)
}

// check is Check for a CheckRequest whose encoding was size bytes long (0:
// unknown).
func (s *Server) check(ctx context.Context, cr *authv3.CheckRequest, size int) (*authv3.CheckResponse, error) {
	start := time.Now()
	r, ok := requestFrom(cr)
	r.HeaderBytes = size
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
			zap.String("app", d.Application),
			zap.String("policy", d.Policy),
			zap.String("rule", d.Rule),
			zap.Int("status", d.Status),
			zap.Duration("took", took),
			zap.String("method", r.Method),
			zap.String("host", r.Host),
			zap.String("path", path),
			zap.String("request_id", r.Headers["x-request-id"]),
		)
	}
	return response(&d), nil
}
