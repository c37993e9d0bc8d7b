package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/accessgate/accessgate/httpauth"
)

// authListener is --auth-addr: the HTTP authorization endpoints of
// contract section 7 (Envoy http_service, nginx, Traefik, Caddy), with the
// gRPC listener's TLS files. It is off (nil) when the address is empty.
func (g *gate) authListener(o *serveConfig) (*listener, error) {
	if o.authAddr == "" {
		return nil, nil
	}
	level, _ := parseDecisionLevel(o.decisionLevel) // checked by serveFlags
	serve, stop, err := authServer(o.grpcTLS, g.engine, g.log, httpObserver(g.metrics, g.tracer), level)
	if err != nil {
		return nil, err
	}
	return &listener{name: "auth", addr: o.authAddr, tls: o.grpcTLS, serve: serve, stop: stop}, nil
}

// authServer builds the HTTP authorization endpoints' server, deciding
// with d, telling obs of every decision and logging decision lines at lvl. When files name
// a certificate (--tls-cert, --tls-key, and --client-ca for mutual TLS) it
// serves TLS with them, as the gRPC listener does. serve serves a listener
// until stop and then returns nil; stop stops accepting, lets requests in
// flight finish and, when ctx ends first, closes what remains.
func authServer(files tlsFiles, d httpauth.Decider, log *zap.Logger, obs httpauth.Observer, lvl zapcore.Level) (serve func(net.Listener) error, stop func(ctx context.Context), err error) {
	var cfg *tls.Config
	if files.enabled() {
		if cfg, err = serverTLS("auth", files, log.Named("tls")); err != nil {
			return nil, nil, err
		}
		withALPN(cfg)
	}
	srv := httpauth.NewServer(d, log, httpauth.WithObserver(obs), httpauth.WithDecisionLevel(lvl))
	hs := srv.HTTPServer(cfg, log.Named("auth-http"))
	serve = func(l net.Listener) error {
		var err error
		if cfg != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			err = hs.ServeTLS(l, "", "")
		} else {
			err = hs.Serve(l)
		}
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
	stop = func(ctx context.Context) {
		if err := srv.Shutdown(ctx, hs); err != nil {
			log.Warn("shutdown deadline passed, closing remaining auth requests")
		}
	}
	return serve, stop, nil
}

// withALPN offers HTTP/2 and HTTP/1.1 in every handshake, also in the
// per-client configurations that mutual TLS hands out (they are built by
// serverTLS without ALPN, which would leave clients on HTTP/1.1 only).
func withALPN(cfg *tls.Config) {
	protos := []string{"h2", "http/1.1"}
	cfg.NextProtos = protos
	if get := cfg.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hi)
			if err != nil || c == nil {
				return c, err
			}
			c = c.Clone()
			c.NextProtos = protos
			return c, nil
		}
	}
}
