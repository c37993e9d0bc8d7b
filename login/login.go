// Package login is accessgate's built-in sign-in (contract §8): the team
// domain's HTTP endpoints, served on their own listener (--login-addr). It
// signs users in through OpenID Connect providers (authorization code flow
// with PKCE, state and nonce), keeps a `type: org` session on the team
// domain, and hands the identity to application hosts as a short-lived
// transfer code that the decision core redeems (package login/mint).
//
// It is stateless: the sign-in state travels in an encrypted cookie and
// every credential is signed or sealed with keys from the policy file, so
// any number of replicas serve it with no shared store.
package login

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// Paths of the team domain.
const (
	pathPrefix   = "/cdn-cgi/access/"
	pathLogin    = pathPrefix + "login/"
	pathCallback = pathPrefix + "callback"
	pathCerts    = pathPrefix + "certs"
	pathIdentity = pathPrefix + "get-identity"
	pathLogout   = pathPrefix + "logout"
	// pathAuthorized is answered on application hosts, by the decision.
	pathAuthorized = pathPrefix + "authorized"
)

// stateTTL is the lifetime of the CF_Session sign-in state.
const stateTTL = 10 * time.Minute

// Options configure a Server; zero fields take defaults.
type Options struct {
	// Log receives start, discovery and sign-in lines (zap.NewNop when
	// nil). No line ever holds a token, code, state or cookie value.
	Log *zap.Logger
	// Now is the clock (time.Now).
	Now func() time.Time
	// HTTPClient talks to the providers (a client with Timeout).
	HTTPClient *http.Client
	// Timeout bounds each provider call (10s).
	Timeout time.Duration
	// BackoffMin and BackoffMax bound the wait between discovery
	// attempts (1s and 30s).
	BackoffMin, BackoffMax time.Duration
	// OnChange, when set, is called after a provider was discovered (for
	// readiness probes and tests).
	OnChange func()
	// OnSignIn, when set, is called once per sign-in that ends here, with
	// the provider name ("" before one is known) and a fixed outcome code
	// ("signed_in", "org_session", "state_missing", "email_unverified",
	// "exchange_invalid_grant", …): the labels of a sign-in counter.
	OnSignIn func(provider, outcome string)
	// Revoked, when set, reports whether a verified org session has been
	// revoked (contract section 11): such a session is ignored, so the
	// user signs in at the provider again. serve passes the engine's.
	Revoked func(*authz.Identity) bool
	// TracerProvider, when set, traces the callback and the provider
	// calls (tracing.go); nil traces nothing.
	TracerProvider trace.TracerProvider
	// Previous is the Server of the Set this one replaces (on a reload):
	// providers configured exactly as before keep their discovery, so a
	// reload neither refetches nor turns readiness off.
	Previous *Server
}

// Server serves the team domain of one policy Set. Build a new one when
// the Set changes. It is safe for concurrent use.
type Server struct {
	set    *policies.Set
	login  *policies.Login
	minter *mint.Minter
	state  *mint.Box
	names  mint.Names
	certs  []byte

	// org verifies the team domain's session cookie: the login issuer,
	// audience = team domain.
	orgVerifier *authz.Verifier
	orgApp      *policies.Application

	providers   []*provider // in file order
	redirectURL string      // <team_domain>/cdn-cgi/access/callback

	log        *zap.Logger
	now        func() time.Time
	client     *http.Client
	timeout    time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	onChange   func()
	onSignIn   func(provider, outcome string)
	revoked    func(*authz.Identity) bool
	tracer     trace.Tracer // nil: no spans

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds the team-domain server of set, which must have a login
// section. It starts nothing: Start runs provider discovery.
func New(set *policies.Set, o Options) (*Server, error) {
	if set == nil || set.Login == nil || set.Login.Issuer == nil {
		return nil, errors.New("policy set without a login section")
	}
	l := set.Login
	s := &Server{
		set:         set,
		login:       l,
		names:       mint.CookieNames(l.Secure),
		redirectURL: l.TeamDomain + pathCallback,
		log:         o.Log,
		now:         o.Now,
		client:      o.HTTPClient,
		timeout:     o.Timeout,
		backoffMin:  o.BackoffMin,
		backoffMax:  o.BackoffMax,
		onChange:    o.OnChange,
		onSignIn:    o.OnSignIn,
		revoked:     o.Revoked,
		orgApp: &policies.Application{
			Name:     "team domain",
			Issuer:   l.Issuer,
			Audience: l.TeamDomain,
		},
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: s.timeout}
	}
	if o.TracerProvider != nil {
		s.client = tracedClient(s.client, o.TracerProvider)
		s.tracer = o.TracerProvider.Tracer("github.com/accessgate/accessgate/login")
	}
	if s.backoffMin <= 0 {
		s.backoffMin = time.Second
	}
	if s.backoffMax < s.backoffMin {
		s.backoffMax = max(30*time.Second, s.backoffMin)
	}
	var err error
	if s.minter, err = mint.New(l, s.now); err != nil {
		return nil, err
	}
	if s.state, err = mint.NewBox(l.CookieSecret, "sign-in state v1"); err != nil {
		return nil, err
	}
	if s.certs, err = certsBody(l, s.now()); err != nil {
		return nil, err
	}
	s.orgVerifier = authz.NewVerifier(fileKeys{}, s.now, authz.WithVerifierCache(1000))
	for _, p := range l.Providers {
		np := &provider{cfg: p}
		if prev := o.Previous; prev != nil && prev.redirectURL == s.redirectURL {
			if old := prev.provider(p.Name); old != nil && sameProvider(old.cfg, p) {
				np.rp.Store(old.rp.Load())
			}
		}
		s.providers = append(s.providers, np)
	}
	return s, nil
}

// Start discovers every provider in the background, retrying until it
// succeeds or Close is called. Sign-ins through a provider not yet
// discovered get a 502 page.
func (s *Server) Start(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, s.cancel = context.WithCancel(ctx)
	for _, p := range s.providers {
		if p.rp.Load() != nil {
			continue // carried over from the previous Server
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.discoverLoop(ctx, s)
		}()
	}
}

// Close stops discovery and waits for it.
func (s *Server) Close() {
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// Ready returns nil once every provider has been discovered, else an error
// naming those that have not (for /readyz).
func (s *Server) Ready() error {
	var missing []string
	for _, p := range s.providers {
		if p.rp.Load() == nil {
			missing = append(missing, p.cfg.Name)
		}
	}
	if missing != nil {
		return fmt.Errorf("identity providers not discovered yet: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Minter returns the Minter of this Server's login section (the decision
// core redeems codes and mints application tokens with an equal one).
func (s *Server) Minter() *mint.Minter { return s.minter }

func (s *Server) changed() {
	if s.onChange != nil {
		s.onChange()
	}
}

// sameProvider reports whether two provider entries configure the same
// relying party.
func sameProvider(a, b *policies.Provider) bool {
	return a.Name == b.Name && a.Type == b.Type && a.Issuer == b.Issuer && a.ClientID == b.ClientID &&
		a.ClientSecret == b.ClientSecret && slices.Equal(a.Scopes, b.Scopes)
}

// count reports a finished sign-in to OnSignIn.
func (s *Server) count(provider, outcome string) {
	if s.onSignIn != nil {
		s.onSignIn(provider, outcome)
	}
}

func (s *Server) provider(name string) *provider {
	for _, p := range s.providers {
		if p.cfg.Name == name {
			return p
		}
	}
	return nil
}

// fileKeys serves the login issuer's own public keys to the org-session
// verifier: no fetch, the keys come with the policy file.
type fileKeys struct{}

var errNoKey = errors.New("no such key")

func (fileKeys) Key(_ context.Context, iss *policies.Issuer, kid string) (jwk.Key, error) {
	if iss == nil || iss.FileKeys == nil {
		return nil, errNoKey
	}
	if k, ok := iss.FileKeys.LookupKeyID(kid); ok {
		return k, nil
	}
	return nil, errNoKey
}
