package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/cmd/accessgate/internal/watch"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
)

// gRPC server limits.
const (
	// grpcMaxRecvMsgSize bounds one CheckRequest. Requests carry headers
	// (the contract refuses more than 64 KiB of them, and Envoy's own
	// default limit is 60 KiB) and, only if Envoy is told to, a body that
	// accessgate never reads; 4 MiB leaves room for generous header
	// limits and small bodies. A larger message is refused with
	// RESOURCE_EXHAUSTED, which Envoy treats as a failed check (denied
	// with failure_mode_allow: false).
	grpcMaxRecvMsgSize = 4 << 20
	// grpcMaxConcurrentStreams bounds the checks in flight on one HTTP/2
	// connection. Envoy opens another connection when it needs more, so
	// this caps per-connection memory, not throughput.
	grpcMaxConcurrentStreams = 1024
	// grpcMinPingInterval is the shortest keepalive ping interval a client
	// may use. grpc-go's default (5 min) answers anything more frequent
	// with GOAWAY "too_many_pings", which would cut Envoy's connection if
	// its http2 connection_keepalive is set to the usual tens of seconds.
	grpcMinPingInterval = 5 * time.Second
)

// gate is the running server's live state: the engine and key manager, and
// how to reload them.
type gate struct {
	log     *zap.Logger
	path    string
	engine  *authz.Engine
	keys    *jwks.Manager
	metrics *metrics
	ctx     context.Context // cancelled at shutdown; bounds key syncs
	live    atomic.Pointer[authz.Engine]
	// draining is set at shutdown: /readyz fails from then on, so that a
	// load balancer stops sending while in-flight checks finish.
	draining atomic.Bool
	// signin runs the team domain of a login section (login.go).
	signin *signin
}

// keysChanged tells the engine that the keys served changed, so that it
// drops verifications made with keys that may be gone. It is the key
// manager's change hook, which may fire from a fetcher before the engine
// exists, hence the atomic load.
func (g *gate) keysChanged() {
	if e := g.live.Load(); e != nil {
		e.KeysChanged()
	}
}

// load makes set live: keys first (so that tokens of a new issuer verify as
// soon as its policies apply), then the set, atomically.
func (g *gate) load(set *policies.Set) {
	ctx, cancel := context.WithTimeout(g.ctx, keySyncTimeout)
	g.keys.Sync(ctx, set)
	cancel()
	g.engine.Swap(set) // also drops the verified-token cache
	g.signin.load(set)
	g.metrics.reloaded(true, time.Now())
	if missing := g.keys.Ready(set); len(missing) > 0 {
		g.log.Warn("issuers without usable keys, not ready", zap.Strings("issuers", missing))
	}
}

// reload parses data as the policy file and makes it live; on failure it
// logs every problem and keeps the previous set.
func (g *gate) reload(data []byte) {
	set, err := policies.Parse(g.path, data)
	if err != nil {
		g.metrics.reloaded(false, time.Now())
		var list policies.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				g.log.Error("invalid policy file", zap.String("problem", e.Error()))
			}
		} else {
			g.log.Error("invalid policy file", zap.Error(err))
		}
		g.log.Warn("keeping previous config", zap.String("config", g.path))
		return
	}
	g.load(set)
	g.log.Info("config reloaded", zap.String("config", g.path), zap.Int("applications", len(set.Applications)))
}

// ready reports whether the gate can decide: a set is loaded and every
// issuer has usable keys. why says what is missing.
func (g *gate) ready() (ok bool, why string) {
	if g.draining.Load() {
		return false, "shutting down"
	}
	set := g.engine.Set()
	if set == nil {
		return false, "no policy loaded"
	}
	if missing := g.keys.Ready(set); len(missing) > 0 {
		return false, "no usable keys for issuers: " + strings.Join(missing, ", ")
	}
	if err := g.signin.ready(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// serve implements `accessgate serve`.
func (c *cli) serve(ctx context.Context, args []string) int {
	fs := c.flagSet("serve")
	config := fs.String("config", c.env(envConfig, ""), "policy file; none runs the built-in demo (env "+envConfig+")")
	grpcAddr := fs.String("grpc-addr", c.env(envGRPCAddr, defaultGRPCAddr), "ext_authz gRPC listen address (env "+envGRPCAddr+")")
	httpAddr := fs.String("http-addr", c.env(envHTTPAddr, defaultHTTPAddr), "/healthz, /readyz and /metrics listen address (env "+envHTTPAddr+")")
	logLevel := fs.String("log-level", c.env(envLogLevel, "info"), "debug, info, warn or error; debug logs one line per decision (env "+envLogLevel+")")
	logFormat := fs.String("log-format", c.env(envLogFormat, "json"), "json or console (env "+envLogFormat+")")
	loginAddr := fs.String("login-addr", c.env(envLoginAddr, defaultLoginAddr), "team domain listener, started only when the policy file has a login section (env "+envLoginAddr+")")
	shutdownTimeout := fs.Duration("shutdown-timeout", defaultShutdownTimeout, "how long SIGTERM waits for in-flight checks")
	var grpcTLS, httpTLS tlsFiles
	fs.StringVar(&grpcTLS.cert, "tls-cert", c.env(envTLSCert, ""), "PEM certificate chain: serve gRPC over TLS (needs --tls-key; re-read when it changes) (env "+envTLSCert+")")
	fs.StringVar(&grpcTLS.key, "tls-key", c.env(envTLSKey, ""), "PEM private key of --tls-cert (env "+envTLSKey+")")
	fs.StringVar(&grpcTLS.clientCA, "client-ca", c.env(envClientCA, ""), "PEM CA bundle: require gRPC clients (Envoy) to present a certificate it signed, i.e. mutual TLS (needs --tls-cert; re-read when it changes) (env "+envClientCA+")")
	fs.StringVar(&httpTLS.cert, "http-tls-cert", c.env(envHTTPTLSCert, ""), "PEM certificate chain: serve /healthz, /readyz and /metrics over HTTPS (needs --http-tls-key) (env "+envHTTPTLSCert+")")
	fs.StringVar(&httpTLS.key, "http-tls-key", c.env(envHTTPTLSKey, ""), "PEM private key of --http-tls-cert (env "+envHTTPTLSKey+")")
	decisionLevel := fs.String("decision-log-level", c.env(envDecisionLogLevel, "debug"), "level of the one line logged per decision: debug or info (env "+envDecisionLogLevel+")")
	cacheDefault, err := c.envInt(envTokenCacheSize, authz.DefaultVerifierCacheSize)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitUsage
	}
	tokenCache := fs.Int("token-cache-size", cacheDefault, "verified tokens remembered, so a repeated token skips its signature check; 0 turns the cache off (env "+envTokenCacheSize+")")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	log, err := newLogger(*logLevel, *logFormat, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitUsage
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit
	decisionLvl, err := parseDecisionLevel(*decisionLevel)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitUsage
	}
	if *tokenCache < 0 {
		fmt.Fprintf(c.stderr, "accessgate serve: --token-cache-size %d: want 0 (off) or more\n", *tokenCache)
		return exitUsage
	}
	if err := grpcTLS.check("tls-cert", "tls-key", "client-ca"); err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitFail
	}
	if err := httpTLS.check("http-tls-cert", "http-tls-key", ""); err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitFail
	}
	var grpcTLSConfig, httpTLSConfig *tls.Config
	if grpcTLS.enabled() {
		if grpcTLSConfig, err = serverTLS("grpc", grpcTLS, log.Named("tls")); err != nil {
			fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
			return exitFail
		}
	}
	if httpTLS.enabled() {
		if httpTLSConfig, err = serverTLS("http", httpTLS, log.Named("tls")); err != nil {
			fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
			return exitFail
		}
	}

	sigs := c.signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(ch)
		sigs = ch
	}

	path := *config
	var demo *demoFiles
	if path == "" {
		demo, err = writeDemo(time.Now())
		if err != nil {
			log.Error("demo mode", zap.Error(err))
			return exitFail
		}
		defer os.RemoveAll(demo.dir)
		path = demo.policy
		log.Warn("demo mode, not for production", zap.String("config", path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: read policy file: %v\n", err)
		return exitFail
	}
	set, err := policies.Parse(path, data)
	if err != nil {
		c.printLoadError(err)
		return exitFail
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newMetrics()
	g := &gate{log: log, path: path, metrics: m, ctx: ctx}
	// The engine is built after the key manager it needs; the change hook
	// may fire from a fetcher before that, hence keysChanged's atomic load.
	km := jwks.New(log.Named("keys"), jwks.WithFetchHook(m.jwksFetched), jwks.WithChangeHook(g.keysChanged))
	defer km.Close()
	g.keys = km
	g.engine = authz.New(km, authz.WithTokenCache(*tokenCache))
	g.live.Store(g.engine)
	g.signin = newSignin(ctx, log.Named("login"), m.reg, g.engine, g.rereadPolicy)
	defer g.signin.close()
	g.load(set)

	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		log.Error("listen grpc", zap.Error(err))
		return exitFail
	}
	hl, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		gl.Close()
		log.Error("listen http", zap.Error(err))
		return exitFail
	}
	ll, err := g.signin.listen(*loginAddr, set)
	if err != nil {
		gl.Close()
		hl.Close()
		log.Error("listen login", zap.Error(err))
		return exitFail
	}

	gopts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcMaxRecvMsgSize),
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPingInterval, PermitWithoutStream: true}),
	}
	if grpcTLSConfig != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(grpcTLSConfig)))
	}
	gs := grpc.NewServer(gopts...)
	envoy.NewServer(g.engine, log, envoy.WithObserver(m.observe), envoy.WithDecisionLevel(decisionLvl)).Register(gs)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(envoy.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hs)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ok, why := g.ready(); !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", why)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", m.handler())
	if demo != nil {
		demo.register(mux, g.engine)
	}
	hsrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log.Named("http")), TLSConfig: httpTLSConfig}

	serveErr := make(chan error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := gs.Serve(gl); err != nil {
			serveErr <- fmt.Errorf("grpc: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		serve := hsrv.Serve
		if httpTLSConfig != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			serve = func(l net.Listener) error { return hsrv.ServeTLS(l, "", "") }
		}
		if err := serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("http: %w", err)
		}
	}()

	stopLogin := g.signin.serve(ll, serveErr, &wg)

	w, err := watch.New(path, data, watch.DefaultDebounce, log.Named("watch"))
	if err != nil {
		// Serving without hot reload beats not serving; SIGHUP still works.
		log.Error("config file watch unavailable; reload with SIGHUP", zap.Error(err))
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchDone := make(chan struct{})
	if w != nil {
		go func() {
			defer close(watchDone)
			w.Run(watchCtx, g.reload)
		}()
	} else {
		close(watchDone)
	}

	log.Info("accessgate started",
		zap.String("version", buildVersion()),
		zap.String("config", path),
		zap.String("grpc_addr", gl.Addr().String()),
		zap.String("grpc_tls", tlsMode(grpcTLS)),
		zap.String("http_addr", hl.Addr().String()),
		zap.String("http_tls", tlsMode(httpTLS)),
		zap.Int("token_cache_size", *tokenCache),
		zap.Stringer("decision_log_level", decisionLvl))
	if demo != nil {
		demo.printIntro(c.stdout, hl.Addr())
	}
	if c.started != nil {
		c.started(gl.Addr().String(), hl.Addr().String())
	}

	code := exitOK
loop:
	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				log.Info("SIGHUP: reloading config", zap.String("config", path))
				if w != nil {
					w.Trigger()
				} else if data, err := os.ReadFile(path); err != nil {
					log.Error("policy file unreadable, keeping previous config", zap.Error(err))
				} else {
					g.reload(data)
				}
				continue
			}
			log.Info("shutting down", zap.String("signal", s.String()))
			break loop
		case <-ctx.Done():
			log.Info("shutting down")
			break loop
		case err := <-serveErr:
			log.Error("server failed", zap.Error(err))
			code = exitFail
			break loop
		}
	}

	// Tell health checkers first (gRPC health and /readyz), so Envoy and
	// load balancers stop sending new checks, then let the checks in
	// flight finish, up to the deadline.
	g.draining.Store(true)
	hs.Shutdown()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	deadline := time.NewTimer(*shutdownTimeout)
	select {
	case <-stopped:
	case <-deadline.C:
		log.Warn("shutdown deadline passed, closing remaining checks", zap.Duration("timeout", *shutdownTimeout))
		gs.Stop()
		<-stopped
	}
	deadline.Stop()
	hctx, hcancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	if err := hsrv.Shutdown(hctx); err != nil {
		hsrv.Close()
	}
	stopLogin(hctx)
	hcancel()
	stopWatch()
	<-watchDone
	wg.Wait()
	log.Info("stopped")
	return code
}

// parseDecisionLevel parses --decision-log-level: debug (the default, off
// at the default log level) or info.
func parseDecisionLevel(s string) (zapcore.Level, error) {
	switch s {
	case "debug":
		return zapcore.DebugLevel, nil
	case "info":
		return zapcore.InfoLevel, nil
	}
	return 0, fmt.Errorf("decision log level %q: want debug or info", s)
}

// tlsMode names a listener's transport for the start line.
func tlsMode(f tlsFiles) string {
	switch {
	case f.clientCA != "":
		return "mtls"
	case f.cert != "":
		return "tls"
	}
	return "off"
}
