package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"sync/atomic"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// maxHeaderBytes is the contract's limit on a request's headers: the sum of
// every name and value length.
const maxHeaderBytes = 64 << 10

// Engine decides requests against the live policy Set. The Set is swapped
// whole on reload (atomic pointer, no read lock), so a Decide in flight
// always sees one complete Set.
type Engine struct {
	set       atomic.Pointer[policies.Set]
	verifier  *Verifier
	now       func() time.Time
	tokenOpts []VerifierOption
	certs     *certCache // verified client certificates
	// revoked is the live revocations file (nil: none), swapped with the
	// set and, between policy reloads, by SwapRevocations.
	revoked atomic.Pointer[policies.Revocations]
	signin  atomic.Pointer[signinState] // the Minter of the live Set (signin.go)
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the clock used for token and service-token expiry (tests).
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithTokenCache bounds the verified-token cache to n entries; n <= 0 turns
// it off.
func WithTokenCache(n int) Option {
	return func(e *Engine) { e.tokenOpts = append(e.tokenOpts, WithVerifierCache(n)) }
}

// New returns an Engine that verifies tokens with keys from ks. Call Swap
// before Decide.
func New(ks KeySource, opts ...Option) *Engine {
	e := &Engine{now: time.Now}
	for _, o := range opts {
		o(e)
	}
	e.verifier = NewVerifier(ks, e.now, e.tokenOpts...)
	e.certs = newCertCache(certCacheSize)
	return e
}

// Swap makes set the live policy Set. Cached token verifications are
// dropped with the old set, so a reload never serves a verdict reached under
// the previous issuers.
func (e *Engine) Swap(set *policies.Set) {
	if set != nil && set.RevocationsFile == "" {
		e.revoked.Store(nil)
	} else if set != nil {
		e.SwapRevocations(set.Revocations)
	}
	if old := e.set.Swap(set); old != nil && old != set {
		e.verifier.Purge()
		e.certs.purge()
	}
}

// Set returns the live policy Set (nil before the first Swap).
func (e *Engine) Set() *policies.Set { return e.set.Load() }

// KeysChanged drops every cached token verification. Wire it to the key
// manager's change hook, so memory held for rotated keys is freed at once
// (a cached entry is also re-checked against the live key on every hit).
func (e *Engine) KeysChanged() { e.verifier.Purge() }

// Decide answers one request, following contract section 3 step by step. A
// bad request or token is a Decision, never an error; Decide does not panic
// on any input. A policy that cannot be evaluated (a selector kind with no
// case in match) refuses the request with 403 no_policy_match: it fails
// closed, whatever the policy's action.
func (e *Engine) Decide(ctx context.Context, r *Request) Decision {
	set := e.set.Load()
	if set == nil || r == nil || headersTooLarge(r) {
		return BadRequest()
	}
	host, ok := normalizeHost(r.Host)
	if !ok {
		return BadRequest()
	}
	path, ok := NormalizePath(r.Path)
	if !ok {
		return BadRequest()
	}
	// §8: the sign-in endpoints of an application host, before any policy.
	if set.Login != nil {
		if d, ok := e.signinEndpoint(ctx, set, r, host, path); ok {
			return d
		}
	}

	// The gateway's binding, else the lookup; 1. no application:
	// default_action.
	app, early, done := chooseApplication(set, r, host, path)
	if done {
		return early
	}

	// 2. A CORS preflight on an application with cors.
	if app.CORS != nil && isPreflight(r) {
		return answerPreflight(r, app)
	}

	// A WebSocket upgrade from a foreign page (section 11): browsers apply
	// no CORS to sockets, so this runs before bypass.
	if crossSiteWebSocket(r, app) {
		return forbidden(r, app, ReasonWebsocketOrigin, "")
	}

	s := subject{req: r, trusted: set.TrustedProxies, certs: e.certs, cas: set.ClientCAs, now: e.now}
	svcPresented, svcReason := e.serviceToken(set, r, &s)

	// 3. bypass and service_auth policies, in file order.
	if d, decided := s.firstMatch(app, app.PreAuth, path); decided {
		return d
	}

	// 4. The Access token.
	token := tokenFrom(r.Headers)
	if token == "" {
		reason := ReasonTokenMissing
		if svcReason != "" {
			reason = svcReason
		}
		return unauthenticated(r, app, host, reason, svcPresented)
	}
	id, reason := e.verifier.Verify(ctx, token, app)
	if reason != "" {
		return unauthenticated(r, app, host, reason, svcPresented)
	}
	if rv := e.revoked.Load(); rv != nil && rv.Revoked(id.emailFold, id.Sub, id.IssuedAt) {
		d := unauthenticated(r, app, host, ReasonTokenRevoked, svcPresented)
		d.Rule, d.Identity = ruleRevoked, id
		return d
	}
	s.id = id

	// 5. block and allow policies, in file order: the first match decides.
	if d, decided := s.firstMatch(app, app.PostAuth, path); decided {
		return d
	}
	return s.decided(forbidden(r, app, ReasonNoPolicyMatch, s.downPolicy), s.downRule)
}

// answerPreflight answers a CORS preflight of an application with cors
// (section 3, step 2): forwarded unchecked with bypass_options_to_origin,
// else 204 with the CORS answer or 403 without any CORS header.
func answerPreflight(r *Request, app *policies.Application) Decision {
	if app.CORS.BypassOptionsToOrigin {
		return forward(r, app, ReasonPreflight, "", nil, nil)
	}
	reason, headers := preflight(r, app.CORS)
	if reason != ReasonPreflight {
		// No app: a refusal carries no CORS headers at all.
		d := forbidden(r, nil, reason, "")
		d.Application, d.Rule = app.Name, preflightRule(reason)
		return d
	}
	return Decision{Verdict: Deny, Status: 204, Reason: ReasonPreflight, Application: app.Name, ResponseHeaders: headers}
}

// firstMatch checks the policies of one step, in file order, for s: those
// whose paths cover path (compared as the application says). The first that
// matches decides: bypass and allow forward, a service_auth forwards when a
// valid service token was presented, block answers 403. decided is false
// when none did. A checked policy with an ip selector and no determinable
// client address is 400; one that cannot be evaluated is 403.
func (s *subject) firstMatch(app *policies.Application, ps []*policies.Policy, path string) (d Decision, decided bool) {
	r := s.req
	for _, p := range ps {
		if !p.CoversPath(path, app.CaseSensitivePaths) {
			continue
		}
		if s.addressUnknownFor(p) {
			return BadRequest(), true
		}
		matched, rule, ok := s.matches(p)
		if !ok {
			return forbidden(r, app, ReasonNoPolicyMatch, p.Name), true
		}
		if !matched {
			if rule != "" && s.downRule == "" {
				// The first policy whose include matched but whose
				// require or exclude turned the request down: the
				// answer to "why was I refused?" (section 11).
				s.downPolicy, s.downRule = p.Name, rule
			}
			continue
		}
		switch p.Action {
		case policies.ActionBypass:
			return s.decided(forward(r, app, ReasonBypass, p.Name, nil, nil), rule), true
		case policies.ActionServiceAuth:
			if s.svc != nil {
				return s.decided(forward(r, app, ReasonServiceToken, p.Name, nil, s.svc), rule), true
			}
		case policies.ActionBlock:
			return s.decided(forbidden(r, app, ReasonBlocked, p.Name), rule), true
		case policies.ActionAllow:
			return s.decided(forward(r, app, ReasonAllowed, p.Name, s.id, nil), rule), true
		}
	}
	return Decision{}, false
}

// decided completes a decision reached by a policy with the rule that
// decided and who the request was from. It only copies pointers and
// precomputed strings: a cached allow stays free of allocations.
func (s *subject) decided(d Decision, rule string) Decision {
	d.Rule, d.Identity = rule, s.id
	if s.svc != nil {
		d.ServiceToken = s.svc.Name
	}
	return d
}

// serviceToken checks the Cf-Access-Client-Id/-Secret pair. It reports
// whether one was presented and, when it was but is not valid, why. A valid,
// unexpired token is stored in s.svc. The secret is compared in constant
// time on its SHA-256, so neither its length nor its content leaks.
func (e *Engine) serviceToken(set *policies.Set, r *Request, s *subject) (presented bool, reason Reason) {
	id, secret := r.Headers[hdrClientID], r.Headers[hdrClientSecret]
	if id == "" && secret == "" {
		return false, ""
	}
	tok := set.ServiceTokens[id]
	sum := sha256.Sum256([]byte(secret))
	if tok == nil || secret == "" {
		return true, ReasonServiceTokenInvalid
	}
	if subtle.ConstantTimeCompare(sum[:], tok.SecretSHA256[:]) != 1 {
		return true, ReasonServiceTokenInvalid
	}
	if !tok.Expires.IsZero() && !e.now().Before(tok.Expires) {
		return true, ReasonServiceTokenExpired
	}
	s.svc = tok
	return true, ""
}

// headersTooLarge reports whether r's headers exceed the 64 KiB limit,
// trusting the adapter's HeaderBytes when it is within the limit (an exact
// sum or an upper bound: either way the headers are within it).
func headersTooLarge(r *Request) bool {
	if n := r.HeaderBytes; n > 0 && n <= maxHeaderBytes {
		return false
	}
	return headerBytes(r.Headers) > maxHeaderBytes
}

func headerBytes(h map[string]string) int {
	n := 0
	for k, v := range h {
		n += len(k) + len(v)
	}
	return n
}
