package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/accessgate/accessgate/authz"
)

// serveConfig is serve's command line, parsed and checked.
type serveConfig struct {
	config             string
	grpcAddr, httpAddr string
	authAddr           string
	loginAddr          string
	auditLog           string
	logLevel           string
	logFormat          string
	decisionLevel      string
	tokenCache         int
	grpcTLS, httpTLS   tlsFiles
	drainDelay         time.Duration
	shutdownTimeout    time.Duration
}

// serveFlagSet is serve's flags, filling o.
func (c *cli) serveFlagSet(o *serveConfig) *flag.FlagSet {
	fs := c.flagSet("serve")
	fs.StringVar(&o.config, "config", "", "policy file; none runs the built-in demo")
	fs.StringVar(&o.grpcAddr, "grpc-addr", defaultGRPCAddr, "ext_authz gRPC listen address (with gRPC health)")
	fs.StringVar(&o.httpAddr, "http-addr", defaultHTTPAddr, "/healthz, /readyz and /metrics listen address")
	fs.StringVar(&o.authAddr, "auth-addr", "", "HTTP authorization endpoints (nginx, Traefik, Caddy, Envoy http_service) listen address; empty: off; TLS as --tls-cert/--tls-key/--client-ca")
	fs.StringVar(&o.loginAddr, "login-addr", defaultLoginAddr, "team domain listener (built-in sign-in), started only when the policy file has a login section")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error; debug logs one line per decision")
	fs.StringVar(&o.logFormat, "log-format", "json", "json or console")
	fs.StringVar(&o.decisionLevel, "decision-log-level", "debug", "level of the one line logged per decision: debug or info")
	fs.IntVar(&o.tokenCache, "token-cache-size", authz.DefaultVerifierCacheSize, "verified tokens remembered, so a repeated token skips its signature check; 0 turns the cache off")
	fs.StringVar(&o.grpcTLS.cert, "tls-cert", "", "PEM certificate chain: serve gRPC over TLS (needs --tls-key; re-read when it changes)")
	fs.StringVar(&o.grpcTLS.key, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.grpcTLS.clientCA, "client-ca", "", "PEM CA bundle: require gRPC clients (Envoy) to present a certificate it signed, i.e. mutual TLS (needs --tls-cert; re-read when it changes)")
	fs.StringVar(&o.httpTLS.cert, "http-tls-cert", "", "PEM certificate chain: serve /healthz, /readyz and /metrics over HTTPS (needs --http-tls-key)")
	fs.StringVar(&o.httpTLS.key, "http-tls-key", "", "PEM private key of --http-tls-cert")
	fs.StringVar(&o.auditLog, "audit-log", "", "append one JSON line per decision to FILE (- for stdout); reopened on SIGUSR1")
	fs.DurationVar(&o.drainDelay, "drain-delay", defaultDrainDelay, "after SIGTERM or SIGINT, how long to keep answering while reporting not ready, so load balancers notice")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "after the drain delay, how long to wait for in-flight checks")
	return fs
}

// serveFlags parses serve's command line; ok is false when serve should
// stop with code.
func (c *cli) serveFlags(args []string) (o *serveConfig, code int, ok bool) {
	o = &serveConfig{}
	if code, ok := c.parse(c.serveFlagSet(o), args); !ok {
		return nil, code, false
	}
	if o.tokenCache < 0 {
		fmt.Fprintf(c.stderr, "accessgate serve: --token-cache-size %d: want 0 (off) or more\n", o.tokenCache)
		return nil, exitUsage, false
	}
	if o.drainDelay < 0 || o.shutdownTimeout < 0 {
		fmt.Fprintln(c.stderr, "accessgate serve: --drain-delay and --shutdown-timeout cannot be negative")
		return nil, exitUsage, false
	}
	if _, err := parseDecisionLevel(o.decisionLevel); err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return nil, exitUsage, false
	}
	for _, err := range []error{
		o.grpcTLS.check("tls-cert", "tls-key", "client-ca"),
		o.httpTLS.check("http-tls-cert", "http-tls-key", ""),
	} {
		if err != nil {
			fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
			return nil, exitFail, false
		}
	}
	return o, exitOK, true
}

// serve implements `accessgate serve`: load the policy file, listen, answer
// until a stop signal (reloading on change and on SIGHUP), then drain.
func (c *cli) serve(ctx context.Context, args []string) int {
	o, code, ok := c.serveFlags(args)
	if !ok {
		return code
	}
	log, err := newLogger(o.logLevel, o.logFormat, c.stderr)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitUsage
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush at exit

	sigs := c.signals
	if sigs == nil {
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1)
		defer signal.Stop(ch)
		sigs = ch
	}

	g, code := c.loadGate(ctx, o, log)
	if g == nil {
		return code
	}
	defer g.close()
	if o.auditLog != "" {
		// Before any listener serves: metrics.audit is never changed after.
		g.metrics.audit = openAudit(o.auditLog, log, g.metrics.session)
	}
	ls, err := g.listeners(o)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate serve: %v\n", err)
		return exitFail
	}
	if err := listen(ls); err != nil {
		log.Error("listen", zap.Error(err))
		stopUnserved(ls)
		return exitFail
	}
	failed := make(chan error, len(ls))
	served := serveAll(ls, failed)
	trigger, stopWatch := g.watchPolicy()

	c.announce(g, o, ls)
	code = g.waitForStop(ctx, sigs, failed, trigger)
	g.drain(ls, o, sigs)
	g.stopTracing() // after the drain: the last decisions' spans go too
	// Cancel first: a reload in progress may be waiting on a key fetch
	// that the context bounds.
	g.cancel()
	stopWatch()
	served.Wait()
	log.Info("stopped")
	return code
}

// announce logs the start line and tells whoever asked (the demo's
// newcomer, tests) where serve listens.
func (c *cli) announce(g *gate, o *serveConfig, ls []*listener) {
	fields := []zap.Field{zap.String("version", buildVersion()), zap.String("config", g.path)}
	addrs := map[string]string{}
	for _, l := range ls {
		addrs[l.name] = l.l.Addr().String()
		fields = append(fields, zap.String(l.name+"_addr", addrs[l.name]), zap.String(l.name+"_tls", tlsMode(l.tls)))
	}
	fields = append(fields, zap.Int("token_cache_size", o.tokenCache), zap.String("decision_log_level", o.decisionLevel),
		zap.Duration("drain_delay", o.drainDelay), zap.Duration("shutdown_timeout", o.shutdownTimeout))
	g.log.Info("accessgate started", fields...)
	if g.demo != nil {
		for _, l := range ls {
			if l.name == "http" {
				g.demo.printIntro(c.stdout, l.l.Addr())
			}
		}
	}
	if c.started != nil {
		c.started(addrs)
	}
}

// waitForStop answers SIGHUP with a reload (trigger) until a stop signal,
// the end of ctx or a failed listener, and returns the exit code.
func (g *gate) waitForStop(ctx context.Context, sigs <-chan os.Signal, failed <-chan error, trigger func()) int {
	for {
		select {
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				g.log.Info("SIGHUP: reloading config", zap.String("config", g.path))
				trigger()
				g.revocations.trigger()
				continue
			case syscall.SIGUSR1:
				g.log.Info("SIGUSR1: reopening the audit log")
				if g.metrics.audit != nil {
					g.metrics.audit.Reopen()
				}
				continue
			}
			g.log.Info("shutting down", zap.String("signal", s.String()))
			return exitOK
		case <-ctx.Done():
			g.log.Info("shutting down")
			return exitOK
		case err := <-failed:
			g.log.Error("server failed", zap.Error(err))
			return exitFail
		}
	}
}

// drain stops serving without losing a request (contract section 10,
// rolling restarts). Health checkers hear first: gRPC health says
// NOT_SERVING and /readyz 503, while every listener keeps answering for
// the drain delay, so that Envoy and load balancers take the instance out
// of rotation. Then the listeners stop accepting and finish what is in
// flight within the shutdown timeout, after which what remains is cut. A
// second stop signal ends the drain delay early (an impatient Ctrl-C).
func (g *gate) drain(ls []*listener, o *serveConfig, sigs <-chan os.Signal) {
	g.draining.Store(true)
	g.health.Shutdown()
	g.log.Info("draining: reporting not ready", zap.Duration("drain_delay", o.drainDelay))
	delay := time.NewTimer(o.drainDelay)
	defer delay.Stop()
wait:
	for {
		select {
		case <-delay.C:
			break wait
		case s := <-sigs:
			if s != syscall.SIGHUP && s != syscall.SIGUSR1 {
				g.log.Info("second stop signal: ending the drain delay", zap.String("signal", s.String()))
				break wait
			}
		}
	}
	g.log.Info("closing listeners", zap.Duration("shutdown_timeout", o.shutdownTimeout))
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.stop(ctx)
		}()
	}
	wg.Wait()
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

// errNoListener is listen's error for a listener without an address.
var errNoListener = errors.New("no address")

// listen opens every listener, or none: on an error the ones already open
// are closed.
func listen(ls []*listener) error {
	for i, l := range ls {
		var err error
		if l.addr == "" {
			err = errNoListener
		} else {
			l.l, err = net.Listen("tcp", l.addr)
		}
		if err != nil {
			for _, open := range ls[:i] {
				open.l.Close()
			}
			return fmt.Errorf("%s %s: %w", l.name, l.addr, err)
		}
	}
	return nil
}

// serveAll serves every listener on a goroutine of its own; a listener that
// fails reports on failed. The WaitGroup is done when all have returned.
func serveAll(ls []*listener, failed chan<- error) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.serve(l.l); err != nil {
				failed <- fmt.Errorf("%s: %w", l.name, err)
			}
		}()
	}
	return &wg
}
