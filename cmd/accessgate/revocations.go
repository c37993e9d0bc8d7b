package main

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/accessgate/accessgate/cmd/accessgate/internal/watch"
	"github.com/accessgate/accessgate/policies"
)

// revocationWatch keeps the engine's revocations in step with the
// revocations file (contract §11): watched and reloaded like the policy
// file, on change and on SIGHUP; an invalid or deleted file is logged and
// counted, and the last good one stays in force. The policy file names the
// file, so a policy reload may move the watch to another file.
type revocationWatch struct {
	mu     sync.Mutex
	path   string // the file watched ("" when none)
	w      *watch.Watcher
	cancel context.CancelFunc
	done   chan struct{}
}

// revocationsLoaded is called after each policy set is made live: the set
// carries the revocations file as read with it. It records that load and
// starts, moves or stops the watch to follow the set's revocations_file.
func (g *gate) revocationsLoaded(set *policies.Set) {
	if set.RevocationsFile != "" {
		g.metrics.session.revocationsLoaded(true, set.Revocations.Len(), time.Now())
	}
	rw := &g.revocations
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.path == set.RevocationsFile {
		return
	}
	rw.stopLocked()
	rw.path = set.RevocationsFile
	if rw.path == "" {
		return
	}
	data, err := os.ReadFile(rw.path)
	if err != nil {
		// Read at load a moment ago; gone since. The watch starts
		// anyway with no content, so the next good version loads.
		data = nil
	}
	w, err := watch.New(rw.path, data, watch.DefaultDebounce, g.log.Named("watch"))
	if err != nil {
		g.log.Error("revocations file watch unavailable; reload with SIGHUP", zap.String("revocations_file", rw.path), zap.Error(err))
		return
	}
	w.Describe("revocations file")
	path := rw.path
	w.OnUnreadable(func(err error) {
		g.metrics.session.revocationsLoaded(false, 0, time.Now())
		g.log.Warn("keeping previous revocations", zap.String("revocations_file", path))
	})
	ctx, cancel := context.WithCancel(g.ctx)
	rw.w, rw.cancel, rw.done = w, cancel, make(chan struct{})
	done := rw.done
	go func() {
		defer close(done)
		w.Run(ctx, func(data []byte) { g.reloadRevocations(path, data) })
	}()
}

// reloadRevocations makes a new version of the revocations file live, or
// logs every problem and keeps the last good one.
func (g *gate) reloadRevocations(path string, data []byte) {
	r, err := policies.ParseRevocations(path, data)
	if err != nil {
		g.metrics.session.revocationsLoaded(false, 0, time.Now())
		var list policies.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				g.log.Error("invalid revocations file", zap.String("problem", e.Error()))
			}
		} else {
			g.log.Error("invalid revocations file", zap.Error(err))
		}
		g.log.Warn("keeping previous revocations", zap.String("revocations_file", path))
		return
	}
	if set := g.engine.Set(); set == nil || set.RevocationsFile != path {
		return // the policy file moved on to another file meanwhile
	}
	if g.engine.SwapRevocations(r) {
		g.metrics.session.revocationsLoaded(true, r.Len(), time.Now())
		g.log.Info("revocations reloaded", zap.String("revocations_file", path), zap.Int("entries", r.Len()))
	}
}

// trigger re-reads the revocations file (SIGHUP).
func (rw *revocationWatch) trigger() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if rw.w != nil {
		rw.w.Trigger()
	}
}

// stop ends the watch and waits for it.
func (rw *revocationWatch) stop() {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.stopLocked()
	rw.path = ""
}

func (rw *revocationWatch) stopLocked() {
	if rw.cancel != nil {
		rw.cancel()
		<-rw.done
	}
	rw.w, rw.cancel, rw.done = nil, nil, nil
}
