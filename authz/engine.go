package authz

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// Engine decides requests against the live policy Set. The Set is swapped
// whole on reload (atomic pointer, no read lock), so a Decide in flight
// always sees one complete Set.
type Engine struct {
	set      atomic.Pointer[policies.Set]
	verifier *Verifier
	now      func() time.Time
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock used for token and service-token expiry (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// New returns an Engine that verifies tokens with keys from ks. Call Swap
// before Decide.
func New(ks KeySource, opts ...Option) *Engine {
	e := &Engine{now: time.Now}
	for _, o := range opts {
		o(e)
	}
	e.verifier = NewVerifier(ks, e.now)
	return e
}

// Swap makes set the live policy Set.
func (e *Engine) Swap(set *policies.Set) { e.set.Store(set) }

// Set returns the live policy Set (nil before the first Swap).
func (e *Engine) Set() *policies.Set { return e.set.Load() }

// Decide answers one request. A bad request or token is a Decision, never
// an error; Decide does not panic on any input.
func (e *Engine) Decide(ctx context.Context, r *Request) Decision {
	panic("TODO")
}
