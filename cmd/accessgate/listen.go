package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/accessgate/accessgate/envoy"
)

// listener is one of serve's network listeners: its address, how it
// serves and how it stops. serve opens, serves, drains and stops every
// listener of gate.listeners alike, so another listener is one more entry
// there.
type listener struct {
	name string   // "grpc", "http": names its start-line fields (grpc_addr)
	addr string   // from its flag
	tls  tlsFiles // for the start line
	// serve serves l until stop; it returns nil once stopped.
	serve func(l net.Listener) error
	// stop stops accepting, lets in-flight requests finish and returns;
	// when ctx ends first, it cuts what remains.
	stop func(ctx context.Context)

	l net.Listener // set by listen
}

// listeners builds serve's listeners, in start-line order. A listener is
// a constructor in this list; one that is off (an optional listener whose
// address flag is empty) returns nil.
func (g *gate) listeners(o *serveConfig) ([]*listener, error) {
	var ls []*listener
	for _, build := range []func(*serveConfig) (*listener, error){
		g.grpcListener,
		g.httpListener,
		g.authListener,
		g.loginListener,
	} {
		l, err := build(o)
		if err != nil {
			stopUnserved(ls)
			return nil, err
		}
		if l != nil {
			ls = append(ls, l)
		}
	}
	return ls, nil
}

// stopUnserved releases listeners that were built but will never serve
// (another failed to build or to listen): the gRPC server's stream
// workers run from its construction until it is stopped.
func stopUnserved(ls []*listener) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, l := range ls {
		l.stop(ctx)
	}
}

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
	// grpcStreamWorkers is how many long-lived goroutines run checks.
	// Without them grpc-go starts a goroutine per check, whose stack then
	// grows (and is copied) to the depth of a check on every request:
	// 6 % of the server's CPU under load in its profile (docs/benchmarks.md).
	// A check arriving while every worker is busy still gets a goroutine
	// of its own, so this bounds nothing; 64 covers the checks in flight
	// from an Envoy at the usual concurrency at a few MiB of stacks.
	grpcStreamWorkers = 64
)

// grpcListener is --grpc-addr: the ext_authz service and gRPC health.
func (g *gate) grpcListener(o *serveConfig) (*listener, error) {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(grpcMaxRecvMsgSize),
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
		grpc.NumStreamWorkers(grpcStreamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: grpcMinPingInterval, PermitWithoutStream: true}),
	}
	// The CheckRequest's size, so the 64 KiB header check skips a pass.
	opts = append(opts, envoy.ServerOptions()...)
	if o.grpcTLS.enabled() {
		cfg, err := serverTLS("grpc", o.grpcTLS, g.log.Named("tls"))
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	level, _ := parseDecisionLevel(o.decisionLevel) // checked by serveFlags
	gs := grpc.NewServer(opts...)
	envoy.NewServer(g.engine, g.log, envoy.WithObserver(g.metrics.observe), g.traced(), envoy.WithDecisionLevel(level)).Register(gs)
	healthpb.RegisterHealthServer(gs, g.health)
	stop := func(ctx context.Context) {
		stopped := make(chan struct{})
		go func() {
			gs.GracefulStop()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-ctx.Done():
			g.log.Warn("shutdown timeout passed, closing remaining checks")
			gs.Stop()
			<-stopped
		}
	}
	return &listener{name: "grpc", addr: o.grpcAddr, tls: o.grpcTLS, serve: gs.Serve, stop: stop}, nil
}

// httpReadHeaderTimeout bounds reading a request's headers on the HTTP
// listener, so that idle half-open connections cannot pile up.
const httpReadHeaderTimeout = 5 * time.Second

// httpListener is --http-addr: /healthz, /readyz, /metrics (and the demo's
// pages in demo mode).
func (g *gate) httpListener(o *serveConfig) (*listener, error) {
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
	mux.Handle("GET /metrics", g.metrics.handler())
	if g.demo != nil {
		g.demo.register(mux, g.engine)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: httpReadHeaderTimeout, ErrorLog: zap.NewStdLog(g.log.Named("http"))}
	serve := srv.Serve
	if o.httpTLS.enabled() {
		cfg, err := serverTLS("http", o.httpTLS, g.log.Named("tls"))
		if err != nil {
			return nil, err
		}
		srv.TLSConfig = cfg
		// The certificate comes from TLSConfig.GetCertificate.
		serve = func(l net.Listener) error { return srv.ServeTLS(l, "", "") }
	}
	return &listener{
		name: "http", addr: o.httpAddr, tls: o.httpTLS,
		serve: func(l net.Listener) error {
			if err := serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
		stop: func(ctx context.Context) {
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		},
	}, nil
}
