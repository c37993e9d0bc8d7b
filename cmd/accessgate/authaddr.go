package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/accessgate/accessgate/httpauth"
)

// envAuthAddr supplies --auth-addr.
const envAuthAddr = "ACCESSGATE_AUTH_ADDR"

// authListener is the --auth-addr listener: the HTTP authorization
// endpoints of contract section 7 (Envoy http_service, nginx, Traefik,
// Caddy). A nil *authListener is the listener turned off; its methods do
// nothing.
type authListener struct {
	l    net.Listener
	stop func(ctx context.Context)
	done chan struct{} // closed when serve has returned
}

// authServer builds the HTTP authorization endpoints' server, deciding
// with d, counting in m and logging decision lines at lvl. When files name
// a certificate (--tls-cert, --tls-key, and --client-ca for mutual TLS) it
// serves TLS with them, as the gRPC listener does. serve serves a listener
// until stop and then returns nil; stop stops accepting, lets requests in
// flight finish and, when ctx ends first, closes what remains.
func authServer(files tlsFiles, d httpauth.Decider, log *zap.Logger, m *metrics, lvl zapcore.Level) (serve func(net.Listener) error, stop func(ctx context.Context), err error) {
	var cfg *tls.Config
	if files.enabled() {
		if cfg, err = serverTLS("auth", files, log.Named("tls")); err != nil {
			return nil, nil, err
		}
		withALPN(cfg)
	}
	srv := httpauth.NewServer(d, log, httpauth.WithObserver(m.observeHTTP), httpauth.WithDecisionLevel(lvl))
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

// startAuth listens on addr and serves authServer on it. An empty addr
// turns the listener off (nil, nil). A failure to serve later is sent on
// errs without blocking.
func startAuth(addr string, files tlsFiles, d httpauth.Decider, log *zap.Logger, m *metrics, lvl zapcore.Level, errs chan<- error) (*authListener, error) {
	if addr == "" {
		return nil, nil
	}
	serve, stop, err := authServer(files, d, log, m, lvl)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen auth: %w", err)
	}
	a := &authListener{l: l, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		if err := serve(l); err != nil {
			select {
			case errs <- fmt.Errorf("auth: %w", err):
			default:
			}
		}
	}()
	log.Info("auth endpoints listening", zap.String("auth_addr", l.Addr().String()), zap.String("auth_tls", tlsMode(files)))
	return a, nil
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

// addr is the listening address ("" when off).
func (a *authListener) addr() string {
	if a == nil {
		return ""
	}
	return a.l.Addr().String()
}

// drain stops the listener gracefully, as gRPC's GracefulStop does: no new
// connections, requests in flight finish within timeout, then every
// connection closes. The returned channel is closed when it is done.
func (a *authListener) drain(timeout time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if a == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		a.stop(ctx)
		<-a.done
	}()
	return done
}
