// Package httpauth adapts accessgate's decision core to proxies that ask
// over HTTP (contract section 7): Envoy's ext_authz http_service, nginx
// auth_request, Traefik forwardAuth and Caddy forward_auth. It translates
// and nothing else: each endpoint's fact headers become the same
// authz.Request the gRPC adapter builds (requestFrom), the one Decider
// decides it, and the authz.Decision becomes the endpoint's HTTP answer
// (render).
//
// The listener believes the facts the proxy writes, so it must be
// reachable only by the proxies. Request bodies are never read: a request
// that announces one is answered at once and its connection closed.
package httpauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/accessgate/accessgate/authz"
)

// Decider decides one request; *authz.Engine is one.
type Decider interface {
	Decide(ctx context.Context, r *authz.Request) authz.Decision
}

// Observer is told about every decision after it is made, e.g. to count it
// in metrics. It must be cheap and must not keep r or d.
type Observer func(ep Endpoint, r *authz.Request, d *authz.Decision, took time.Duration)

// Listener limits (see HTTPServer).
const (
	// DefaultReadHeaderTimeout cuts a client that sends its headers too
	// slowly.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading one whole request; bodies are never
	// read, so it bounds the headers too.
	DefaultReadTimeout = 10 * time.Second
	// writeTimeout bounds writing one answer.
	writeTimeout = 10 * time.Second
	// idleTimeout closes a kept-alive connection with no request.
	idleTimeout = 120 * time.Second
	// maxHeaderBytes is net/http's limit on the auth request's header
	// block, above which it answers 431 itself. The contract's 64 KiB
	// counts the original request as rebuilt (carried headers plus the
	// facts) and is answered by the decision (400); this limit only has
	// to leave room for the facts and the proxy's own headers on top.
	maxHeaderBytes = 256 << 10
	// lingerTimeout is how long a connection closed after an answer stays
	// half-open (our side shut for writing) before it is closed: closing
	// a socket with unread bytes sends a reset, which can make the client
	// drop the answer it has not read yet. Nothing is read meanwhile.
	lingerTimeout = 500 * time.Millisecond
	// misroutedEvery is how often, at most, a misrouted preflight is
	// logged as a warning.
	misroutedEvery = time.Minute
)

// Decision-line sampling, as the gRPC adapter's: per second, the first
// samplingFirst lines, then one in samplingThereafter.
const (
	samplingFirst      = 100
	samplingThereafter = 100
)

// Server serves the HTTP authorization endpoints.
type Server struct {
	d        Decider
	log      *zap.Logger // decision lines only, sampled
	warn     *zap.Logger // warnings, not sampled (they are rate-limited)
	level    zapcore.Level
	observer Observer

	readHeaderTimeout, readTimeout time.Duration
	linger                         time.Duration

	lastMisrouted atomic.Int64 // UnixNano of the last misrouting warning
	hijacked      sync.WaitGroup
}

// Option configures a Server.
type Option func(*Server)

// WithDecisionLevel sets the level of the per-request decision line
// (default debug).
func WithDecisionLevel(l zapcore.Level) Option { return func(s *Server) { s.level = l } }

// WithObserver calls o after every decision.
func WithObserver(o Observer) Option { return func(s *Server) { s.observer = o } }

// WithTimeouts sets the listener's header and request read timeouts
// (defaults DefaultReadHeaderTimeout, DefaultReadTimeout).
func WithTimeouts(readHeader, read time.Duration) Option {
	return func(s *Server) { s.readHeaderTimeout, s.readTimeout = readHeader, read }
}

// NewServer returns a Server asking d. log receives one line per decision
// at the decision level, sampled, with the endpoint named.
func NewServer(d Decider, log *zap.Logger, opts ...Option) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{
		d: d, level: zapcore.DebugLevel,
		readHeaderTimeout: DefaultReadHeaderTimeout, readTimeout: DefaultReadTimeout,
		linger: lingerTimeout,
	}
	for _, o := range opts {
		o(s)
	}
	s.warn = log.Named("httpauth")
	s.log = s.warn.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, time.Second, samplingFirst, samplingThereafter)
	}))
	return s
}

// HTTPServer returns the hardened net/http server for s: header and
// request read timeouts, a bound on the header block, HTTP/1.1 and h2c
// (HTTP/2 over TLS when tlsConfig is set; it may require client
// certificates, i.e. mutual TLS). Serve it with Serve or ServeTLS, stop it
// with s.Shutdown.
func (s *Server) HTTPServer(tlsConfig *tls.Config, errorLog *zap.Logger) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	if tlsConfig != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		Protocols:         &p,
		TLSConfig:         tlsConfig,
		// An HTTP/2 request's body is never read either; keep what the
		// connection buffers for it small.
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10, MaxReceiveBufferPerConnection: 1 << 20},
		// OPTIONS * is a request like any other here (a 404).
		DisableGeneralOptionsHandler: true,
	}
	if errorLog != nil {
		hs.ErrorLog = zap.NewStdLog(errorLog)
	}
	return hs
}

// Shutdown stops hs gracefully: no new connections, in-flight requests
// finish, then the connections close; answers written on a hijacked
// connection (a request that announced a body) are waited for too. When ctx
// ends first, the remaining connections are closed.
func (s *Server) Shutdown(ctx context.Context, hs *http.Server) error {
	err := hs.Shutdown(ctx)
	if err != nil {
		hs.Close()
	}
	done := make(chan struct{})
	go func() {
		s.hijacked.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

// ServeHTTP answers one auth request.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	start := time.Now()
	ep, rest, found := route(hr.RequestURI)
	if !found {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		s.write(w, hr, http.StatusNotFound, "not found\n")
		return
	}
	r, ok := requestFrom(ep, rest, hr)
	var d authz.Decision
	switch {
	case !ok:
		d = authz.BadRequest()
	case isSigninPath(r.Path):
		d = misrouted(authz.ReasonSigninMisrouted, "")
	default:
		d = s.d.Decide(hr.Context(), r)
	}
	d = answered(ep, d)
	took := time.Since(start)
	if s.observer != nil {
		s.observer(ep, r, &d, took)
	}
	if d.Reason == authz.ReasonPreflightMisrouted {
		s.warnMisrouted(r, &d)
	}
	status, body := render(ep, r, &d, w.Header())
	if ce := s.log.Check(s.level, "decision"); ce != nil {
		path, _, _ := strings.Cut(r.Path, "?") // never log the query
		ce.Write(
			zap.String("endpoint", ep.String()),
			zap.String("reason", string(d.Reason)),
			zap.String("app", d.Application),
			zap.String("policy", d.Policy),
			zap.String("rule", d.Rule),
			zap.Int("status", status),
			zap.Duration("took", took),
			zap.String("method", r.Method),
			zap.String("host", r.Host),
			zap.String("path", path),
			zap.String("request_id", r.Headers["x-request-id"]),
		)
	}
	s.write(w, hr, status, body)
}

// warnMisrouted logs a preflight that reached /auth/forward, at most once
// a minute: the proxy configuration lacks its preflight route.
func (s *Server) warnMisrouted(r *authz.Request, d *authz.Decision) {
	now := time.Now().UnixNano()
	last := s.lastMisrouted.Load()
	if now-last < int64(misroutedEvery) || !s.lastMisrouted.CompareAndSwap(last, now) {
		return
	}
	s.warn.Warn("CORS preflight sent to /auth/forward; route preflights to /auth/answer (logged at most once a minute)",
		zap.String("host", r.Host), zap.String("application", d.Application))
}

// write sends the answer. A request that announced a body (Content-Length
// above 0, or any Transfer-Encoding) is answered on the raw connection,
// with Connection: close, which is then closed: net/http would otherwise
// read a small body to reuse the connection (so a request smuggled in it
// would be served next) and wait for one that never comes.
func (s *Server) write(w http.ResponseWriter, hr *http.Request, status int, body string) {
	if hr.ProtoMajor == 1 && (hr.ContentLength != 0 || len(hr.TransferEncoding) > 0) {
		if s.writeAndClose(w, hr, status, body) {
			return
		}
		w.Header().Set("Connection", "close")
	}
	w.WriteHeader(status)
	if body != "" && hr.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// writeAndClose writes the answer on the hijacked connection and closes
// it. It reports false when the connection cannot be hijacked.
func (s *Server) writeAndClose(w http.ResponseWriter, hr *http.Request, status int, body string) bool {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return false
	}
	h := w.Header().Clone()
	// Counted before the hijack: until then net/http's Shutdown waits for
	// this connection, so the Add always happens before Shutdown's Wait.
	s.hijacked.Add(1)
	defer s.hijacked.Done()
	conn, _, err := hj.Hijack()
	if err != nil {
		return false
	}
	defer conn.Close()
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 ")
	b.WriteString(strconv.Itoa(status))
	b.WriteByte(' ')
	b.WriteString(http.StatusText(status))
	b.WriteString("\r\n")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	if status != http.StatusNoContent && status != http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(body)))
	}
	_ = h.Write(&b) // sanitizes CR and LF in values
	b.WriteString("\r\n")
	if hr.Method != http.MethodHead {
		b.WriteString(body)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := conn.Write(b.Bytes()); err != nil {
		return true
	}
	// Send FIN after the answer, then close after a short grace (see
	// lingerTimeout). Nothing is read.
	var cw interface{ CloseWrite() error }
	if tc, ok := conn.(*tls.Conn); ok {
		cw = tc
	} else if tc, ok := conn.(*net.TCPConn); ok {
		cw = tc
	}
	if cw != nil && cw.CloseWrite() == nil && s.linger > 0 {
		t := time.NewTimer(s.linger)
		<-t.C
	}
	return true
}
