package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/cmd/accessgate/internal/watch"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/tracing"
)

// gate is a running server's state, shared by its listeners: the engine and
// key manager, how to reload them, and what health checkers are told.
type gate struct {
	// watcher watches the policy file and the files it references (nil
	// when the file cannot be watched: SIGHUP still reloads).
	watcher *watch.Watcher
	// reloading serializes reloads, whoever asks for one, so that each
	// parse, watch list and load stay together.
	reloading sync.Mutex

	log     *zap.Logger
	path    string // the policy file
	data    []byte // its content at start, the watcher's baseline
	demo    *demoFiles
	engine  *authz.Engine
	keys    *jwks.Manager
	metrics *metrics
	// health is the gRPC health service; drain turns it NOT_SERVING.
	health *health.Server
	// ctx bounds key syncs; cancel ends it at shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	// draining is set at shutdown: /readyz fails from then on, so that a
	// load balancer stops sending while in-flight checks finish.
	draining atomic.Bool
	// revocations follows the set's revocations_file (revocations.go).
	revocations revocationWatch
	// signin runs the team domain of a login section (login.go).
	signin *signin
	// tracer exports decision spans; nil when tracing is off (tracing.go).
	tracer *tracing.Tracer
}

// loadGate reads the policy file (or writes the demo's) and builds the gate
// on it, with its keys loaded. On failure it has said why and returns nil
// and the exit code.
func (c *cli) loadGate(ctx context.Context, o *serveConfig, log *zap.Logger) (*gate, int) {
	g := &gate{log: log, path: o.config, metrics: newMetrics(), health: health.NewServer()}
	if g.path == "" {
		demo, err := writeDemo(time.Now())
		if err != nil {
			log.Error("demo mode", zap.Error(err))
			return nil, exitFail
		}
		g.demo, g.path = demo, demo.policy
		log.Warn("demo mode, not for production", zap.String("config", g.path))
	}
	set, err := g.read()
	if err != nil {
		g.close()
		c.printLoadError(err)
		return nil, exitFail
	}
	g.watch(set)
	g.ctx, g.cancel = context.WithCancel(ctx)
	if err := g.startTracing(); err != nil {
		log.Error("tracing", zap.Error(err))
		g.close()
		return nil, exitFail
	}
	// The manager starts fetching only in Sync (in g.load), after the
	// engine exists: its change hook never finds g.engine nil.
	g.keys = jwks.New(log.Named("keys"), jwks.WithFetchHook(g.metrics.jwksFetched),
		jwks.WithChangeHook(func() { g.engine.KeysChanged() }))
	g.engine = authz.New(g.keys, authz.WithTokenCache(o.tokenCache))
	g.signin = newSignin(g.ctx, log.Named("login"), g.metrics.reg, g.engine)
	g.signin.traces = g.tracerProvider()
	g.load(set)
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g.health.SetServingStatus(envoy.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return g, exitOK
}

// read reads and parses the policy file, keeping its content as the
// watcher's baseline.
func (g *gate) read() (*policies.Set, error) {
	data, err := os.ReadFile(g.path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	g.data = data
	return policies.Parse(g.path, data)
}

// close releases what loadGate made: key fetchers, the file watch (when
// serve stops before running it) and the demo files.
func (g *gate) close() {
	if g.cancel != nil {
		g.cancel()
	}
	if g.watcher != nil {
		g.watcher.Close()
	}
	if g.keys != nil {
		g.keys.Close()
	}
	g.revocations.stop()
	g.signin.close()
	g.stopTracing()
	if g.metrics.audit != nil {
		g.metrics.audit.Close()
	}
	if g.demo != nil {
		os.RemoveAll(g.demo.dir)
	}
}

// keySyncTimeout bounds the first fetch of every issuer's keys, by check and
// by serve at start and on reload.
const keySyncTimeout = 10 * time.Second

// syncKeys makes km serve the keys of set's issuers, waiting at most
// keySyncTimeout for first fetches, and returns the issuers still without
// usable keys.
func syncKeys(ctx context.Context, km *jwks.Manager, set *policies.Set) (missing []string) {
	ctx, cancel := context.WithTimeout(ctx, keySyncTimeout)
	defer cancel()
	km.Sync(ctx, set)
	return km.Ready(set)
}

// load makes set live: keys first (so that tokens of a new issuer verify as
// soon as its policies apply), then the set, atomically.
func (g *gate) load(set *policies.Set) {
	g.metrics.issuers(set) // before the fetches it counts
	missing := syncKeys(g.ctx, g.keys, set)
	g.engine.Swap(set) // also drops the verified-token cache
	g.revocationsLoaded(set)
	g.signin.load(set)
	g.metrics.applications(set)
	g.metrics.reloaded(true, time.Now())
	if len(missing) > 0 {
		g.log.Warn("issuers without usable keys, not ready", zap.Strings("issuers", missing))
	}
}

// watch starts watching the policy file, whose content read at start is
// g.data, and the files set read besides it (key files, CA bundles, login
// secrets: set.Files). Called right after the parse, so that what the
// watcher takes as the referenced files' starting content is what the
// parse read. Serving without hot reload beats not serving: when the file
// cannot be watched, SIGHUP still reloads.
func (g *gate) watch(set *policies.Set) {
	w, err := watch.New(g.path, g.data, watch.DefaultDebounce, g.log.Named("watch"))
	if err != nil {
		g.log.Error("config file watch unavailable; reload with SIGHUP", zap.Error(err))
		return
	}
	w.Also(set.Files())
	g.watcher = w
}

// reload parses data as the policy file and makes it live; on failure it
// logs every problem and keeps the previous set. It runs on the watcher's
// goroutine (a change of the policy file or of a file it references, or
// SIGHUP), or on serve's when the file cannot be watched.
func (g *gate) reload(data []byte) {
	g.reloading.Lock()
	defer g.reloading.Unlock()
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
	if g.watcher != nil {
		// The files this version references, from the content just read.
		g.watcher.Also(set.Files())
	}
	g.load(set)
	g.log.Info("config reloaded", zap.String("config", g.path), zap.Int("applications", len(set.Applications)))
}

// watchPolicy reloads the policy file whenever it or a file it references
// changes, until stop (which waits for a reload in progress). trigger
// reloads at once, for SIGHUP. When the file cannot be watched, serving
// goes on and trigger reads the file itself.
func (g *gate) watchPolicy() (trigger, stop func()) {
	w := g.watcher
	if w == nil {
		trigger = func() {
			if data, err := os.ReadFile(g.path); err != nil {
				g.log.Error("policy file unreadable, keeping previous config", zap.Error(err))
			} else {
				g.reload(data)
			}
		}
		return trigger, func() {}
	}
	ctx, cancel := context.WithCancel(g.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, g.reload)
	}()
	return w.Trigger, func() { cancel(); <-done }
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
