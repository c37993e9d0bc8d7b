package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/login"
	"github.com/accessgate/accessgate/policies"
)

// defaultLoginAddr is --login-addr's default: the team domain's listener
// (contract §1, §8).
const defaultLoginAddr = "127.0.0.1:9003"

// signin runs the team domain of the live policy Set: one login.Server
// per Set, replaced on every reload (keeping provider discovery through
// login.Options.Previous), served on --login-addr when the file has a
// `login` section. The section's key and secret files are among the files
// the policy watcher follows (policies.Set.Files), so a rotated key or
// secret reloads the policy and, with it, the team domain.
//
// Requests for another host than the team domain's are the sign-in
// endpoints of application hosts, which proxies without ext_authz gRPC
// route here (their HTTP authorization endpoints refuse them): the
// decision answers them, as it does over gRPC.
type signin struct {
	log     *zap.Logger
	ctx     context.Context
	signIns *prometheus.CounterVec
	engine  *authz.Engine

	cur atomic.Pointer[teamDomain]
	mu  sync.Mutex // serializes load
	// traces, when set, traces the sign-in (set before the first load).
	traces trace.TracerProvider
}

// teamDomain is the live team domain: its server and its host name.
type teamDomain struct {
	srv  *login.Server
	host string // lower-case, no port
}

// newSignin registers the sign-in metrics on reg.
func newSignin(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, engine *authz.Engine) *signin {
	s := &signin{
		log:    log,
		ctx:    ctx,
		engine: engine,
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessgate_signins_total",
			Help: "Sign-ins that ended on the team domain, by provider (\"\" before one was chosen) and outcome (signed_in, org_session, state_missing, email_unverified, exchange_invalid_grant, not_discovered, …).",
		}, []string{"provider", "outcome"}),
	}
	reg.MustRegister(s.signIns)
	return s
}

// load makes set's team domain live. A Set without a login section leaves
// none (the listener, if any, answers 404).
func (s *signin) load(set *policies.Set) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var old *login.Server
	if td := s.cur.Load(); td != nil {
		old = td.srv
	}
	if set == nil || set.Login == nil {
		s.cur.Store(nil)
		if old != nil {
			old.Close()
		}
		return
	}
	u, err := url.Parse(set.Login.TeamDomain)
	if err != nil {
		s.log.Error("team domain not rebuilt, keeping the previous one", zap.Error(err))
		return
	}
	srv, err := login.New(set, login.Options{
		Log:            s.log,
		Previous:       old,
		TracerProvider: s.traces,
		OnSignIn:       func(provider, outcome string) { s.signIns.WithLabelValues(provider, outcome).Inc() },
		Revoked:        s.engine.Revoked,
	})
	if err != nil {
		// Parse checked what New needs; keep serving the previous one.
		s.log.Error("team domain not rebuilt, keeping the previous one", zap.Error(err))
		return
	}
	srv.Start(s.ctx)
	s.cur.Store(&teamDomain{srv: srv, host: strings.ToLower(u.Hostname())})
	if old != nil {
		old.Close() // stops its discovery; requests in flight finish
	}
}

// ready is nil once every provider of the live team domain answered
// discovery (for /readyz).
func (s *signin) ready() error {
	if s == nil {
		return nil
	}
	if td := s.cur.Load(); td != nil {
		return td.srv.Ready()
	}
	return nil
}

// ServeHTTP hands the request to the live team domain, or, for the
// authorized, get-identity and logout paths of an application's host, to
// the decision's application-host sign-in endpoints.
func (s *signin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	td := s.cur.Load()
	if td == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no login section in the policy file", http.StatusNotFound)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(strings.TrimSuffix(host, "."), td.host) || !appHostPath(r.URL.Path) {
		td.srv.ServeHTTP(w, r)
		return
	}
	d, ok := s.engine.SignIn(r.Context(), appHostRequest(r))
	if !ok {
		// No issuer: login application covers the host (an address of
		// the listener itself, say): the team domain answers.
		td.srv.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	for _, hd := range d.ResponseHeaders {
		k := http.CanonicalHeaderKey(hd.Key)
		if hd.Append {
			h.Add(k, hd.Value)
		} else {
			h.Set(k, hd.Value)
		}
	}
	w.WriteHeader(d.Status)
	io.WriteString(w, d.Body)
}

// appHostPath reports whether path is one of the sign-in endpoints of
// application hosts.
func appHostPath(path string) bool {
	switch path {
	case "/cdn-cgi/access/authorized", "/cdn-cgi/access/get-identity", "/cdn-cgi/access/logout":
		return true
	}
	return false
}

// appHostRequest is the decision's view of a request a proxy routed to
// the team domain's listener for an application host: the scheme from
// X-Forwarded-Proto (the proxy's), else the connection's.
func appHostRequest(r *http.Request) *authz.Request {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(r.Header.Get("X-Forwarded-Proto")); p == "http" || p == "https" {
		scheme = p
	}
	h := make(map[string]string, len(r.Header))
	for k, vs := range r.Header {
		sep := ","
		if k == "Cookie" {
			sep = "; "
		}
		h[strings.ToLower(k)] = strings.Join(vs, sep)
	}
	return &authz.Request{Method: r.Method, Scheme: scheme, Host: r.Host, Path: r.RequestURI, Headers: h}
}

// loginListener is --login-addr: the team domain, opened only when the
// policy file has a login section at start (a section added by a later
// reload needs a restart to be served).
func (g *gate) loginListener(o *serveConfig) (*listener, error) {
	if set := g.engine.Set(); set == nil || set.Login == nil {
		return nil, nil
	}
	srv := g.signin.server()
	serve := func(l net.Listener) error {
		if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	stop := func(ctx context.Context) {
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	}
	return &listener{name: "login", addr: o.loginAddr, serve: serve, stop: stop}, nil
}

// server is the team domain's HTTP server (Serve it on the --login-addr
// listener; Shutdown stops it).
func (s *signin) server() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
}

// close stops discovery.
func (s *signin) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if td := s.cur.Load(); td != nil {
		td.srv.Close()
	}
}
