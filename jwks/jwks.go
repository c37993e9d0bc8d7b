// Package jwks fetches, refreshes and serves the signing keys of the
// issuers in a policy Set. Its Manager is the authz.KeySource of a running
// gate (it satisfies that interface structurally; it imports neither authz
// nor any transport).
//
// An issuer with a jwks_url gets a fetcher: one goroutine per distinct URL
// that fetches the key set at start, then every jwks_refresh, and again when
// a token names an unknown kid (at most once per issuer every 10 s, with
// concurrent askers waiting on the same fetch). A failed fetch, an
// unparsable document or one without usable keys never replaces a good key
// set; while an issuer has no keys at all, fetches are retried with
// exponential backoff. Failed fetches are logged at most once a minute per
// URL, each line counting the failures suppressed since the last. An
// issuer with a jwks_file is served from the keys the policies package
// read at load.
//
// The document may be a plain JWK set or Cloudflare Access's certs document
// (`keys`, `public_cert`, `public_certs`): `keys` is used; when it is absent,
// keys are built from the PEM certificates of `public_certs` with their kid.
// Only public signature keys are served: private keys are reduced to their
// public half, symmetric keys and keys whose `use` is not "sig" are dropped.
package jwks

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
)

// Defaults of a Manager.
const (
	// DefaultTimeout bounds one fetch (WithTimeout changes it).
	DefaultTimeout = 5 * time.Second
	// maxBodySize bounds a fetched document.
	maxBodySize = 1 << 20
	// DefaultMinRefreshGap is the least time between two refreshes of one
	// issuer triggered by unknown kids: the contract's limit.
	DefaultMinRefreshGap = 10 * time.Second
	// DefaultRefresh is the refresh interval of an issuer without
	// jwks_refresh.
	DefaultRefresh    = time.Hour
	defaultBackoffMin = time.Second
	defaultBackoffMax = time.Minute
	// failureLogInterval is the least time between two "jwks fetch
	// failed" lines of one JWKS URL: an outage retried with backoff (or a
	// stream of unknown kids) must not flood the log. The lines in between
	// are counted and the next line says how many were suppressed.
	failureLogInterval = time.Minute
)

var (
	errNoKeys    = errors.New("no usable signature keys")
	errTooLarge  = errors.New("document too large")
	errNotSynced = fmt.Errorf("issuer not synced: %w", ErrUnknownKey)
	errClosed    = errors.New("key manager closed")
)

// Manager serves the keys of every issuer of the live policy Set. It is safe
// for concurrent use; Key is the hot path and takes no exclusive lock.
type Manager struct {
	log        *zap.Logger
	client     *http.Client
	transport  *http.Transport // ours to close idle connections of; nil with withHTTPClient
	timeout    time.Duration
	refresh    time.Duration // overrides Issuer.JWKSRefresh when > 0
	backoffMin time.Duration
	backoffMax time.Duration
	now        func() time.Time
	fetchHook  func(issuer string, err error)
	changeHook func()

	gen atomic.Uint64

	base   context.Context // parent of every fetcher, cancelled by Close
	cancel context.CancelFunc

	mu       sync.RWMutex
	closed   bool
	fetchers map[string]*fetcher // by JWKS URL
	files    map[*policies.Issuer]*keySet
	fileSums map[string][32]byte // by issuer name, to notice changed key files
}

// Option configures a Manager.
type Option func(*Manager)

// withHTTPClient fetches with c instead of a client of the Manager's own
// (tests: an httptest TLS server's client).
func withHTTPClient(c *http.Client) Option { return func(m *Manager) { m.client = c } }

// WithTimeout bounds each fetch (default 5 s).
func WithTimeout(d time.Duration) Option { return func(m *Manager) { m.timeout = d } }

// WithRefreshInterval overrides every issuer's jwks_refresh (tests).
func WithRefreshInterval(d time.Duration) Option { return func(m *Manager) { m.refresh = d } }

// WithBackoff sets the first and the longest wait between retries of a
// failing fetch (default 1 s to 1 min, never longer than the refresh
// interval).
func WithBackoff(first, longest time.Duration) Option {
	return func(m *Manager) { m.backoffMin, m.backoffMax = first, longest }
}

// WithClock sets the clock of the unknown-kid rate limit and of the
// failure log's rate limit (tests).
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// WithFetchHook calls fn after every fetch, with the name of each issuer
// using the URL and the fetch's error (nil on success), e.g. for metrics.
// fn runs on the fetcher's goroutine and must not block.
func WithFetchHook(fn func(issuer string, err error)) Option {
	return func(m *Manager) { m.fetchHook = fn }
}

// WithChangeHook calls fn whenever the keys served change (a fetch brought
// a different document, a key file changed, an issuer came or went). fn
// must not block.
func WithChangeHook(fn func()) Option { return func(m *Manager) { m.changeHook = fn } }

// New returns a Manager serving no issuer until Sync.
func New(log *zap.Logger, opts ...Option) *Manager {
	if log == nil {
		log = zap.NewNop()
	}
	m := &Manager{
		log:        log,
		timeout:    DefaultTimeout,
		backoffMin: defaultBackoffMin,
		backoffMax: defaultBackoffMax,
		now:        time.Now,
		fetchers:   map[string]*fetcher{},
		files:      map[*policies.Issuer]*keySet{},
		fileSums:   map[string][32]byte{},
	}
	for _, o := range opts {
		o(m)
	}
	if m.client == nil {
		m.transport = http.DefaultTransport.(*http.Transport).Clone()
		m.client = &http.Client{Transport: m.transport}
	}
	// A copy, so that the rule also holds for a client passed in without
	// changing the caller's.
	c := *m.client
	c.CheckRedirect = httpsRedirectsOnly
	m.client = &c
	m.base, m.cancel = context.WithCancel(context.Background())
	return m
}

// maxRedirects is net/http's own limit, kept when CheckRedirect is set.
const maxRedirects = 10

// errInsecureRedirect refuses a key-set redirect to anything but https.
var errInsecureRedirect = errors.New("redirect to a non-https URL refused")

// httpsRedirectsOnly follows a redirect only to an https URL: keys fetched
// in clear text let anyone on the path forge every token, and a jwks_url
// over https that redirects to http would be exactly that. It holds for an
// http jwks_url on loopback too, whose redirect may leave the machine.
func httpsRedirectsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("%w: %s", errInsecureRedirect, req.URL.Redacted())
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

// generation counts changes of the keys served; it moves on whenever they
// change, before the change hook runs (tests read it).
func (m *Manager) generation() uint64 { return m.gen.Load() }

func (m *Manager) changed() {
	m.gen.Add(1)
	if m.changeHook != nil {
		m.changeHook()
	}
}

// Sync makes the Manager serve the issuers of set: a fetcher starts for
// every jwks_url not served yet and stops for every one no longer in set;
// a fetcher whose URL is unchanged keeps running with its keys, so a reload
// costs no fetch. Sync returns once every new fetcher has finished its
// first fetch (successful or not) or ctx is done; readiness is Ready's to
// say.
func (m *Manager) Sync(ctx context.Context, set *policies.Set) {
	type want struct {
		names   []string
		refresh time.Duration
	}
	wants := map[string]*want{}
	files := map[*policies.Issuer]*keySet{}
	sums := map[string][32]byte{}
	filesChanged := false
	if set != nil {
		for _, iss := range set.Issuers {
			if iss.JWKSURL == "" {
				ks := setOf(iss.FileKeys)
				files[iss] = ks
				sums[iss.Name] = ks.sum
				if old, ok := m.fileSumOf(iss.Name); !ok || old != ks.sum {
					filesChanged = true
				}
				continue
			}
			w := wants[iss.JWKSURL]
			if w == nil {
				w = &want{}
				wants[iss.JWKSURL] = w
			}
			w.names = append(w.names, iss.Name)
			r := iss.JWKSRefresh
			if m.refresh > 0 {
				r = m.refresh
			}
			if r <= 0 {
				r = DefaultRefresh
			}
			if w.refresh == 0 || r < w.refresh {
				w.refresh = r
			}
		}
	}

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	var started, stopped []*fetcher
	for url, w := range wants {
		f := m.fetchers[url]
		if f == nil {
			f = m.newFetcher(url)
			m.fetchers[url] = f
			started = append(started, f)
		}
		f.names.Store(&w.names)
		f.refresh.Store(int64(w.refresh))
	}
	for url, f := range m.fetchers {
		if _, ok := wants[url]; !ok {
			delete(m.fetchers, url)
			stopped = append(stopped, f)
		}
	}
	if len(sums) != len(m.fileSums) {
		filesChanged = true
	}
	m.files, m.fileSums = files, sums
	m.mu.Unlock()

	for _, f := range started {
		go f.run()
	}
	for _, f := range stopped {
		f.cancel()
		<-f.done
		m.log.Info("jwks fetcher stopped", zap.String("url", f.url))
	}
	if len(stopped) > 0 || filesChanged {
		m.changed()
	}
	for _, f := range started {
		select {
		case <-f.first:
		case <-ctx.Done():
			return
		}
	}
}

func (m *Manager) fileSumOf(name string) ([32]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, ok := m.fileSums[name]
	return s, ok
}

// Key returns iss's key with the given kid; an empty kid matches only when
// the set holds exactly one key. For a jwks_url issuer, an unknown kid
// triggers a refresh unless one was triggered less than the minimum gap
// ago, and Key waits for it (or ctx). The error wraps ErrUnknownKey when the
// key is still missing.
func (m *Manager) Key(ctx context.Context, iss *policies.Issuer, kid string) (jwk.Key, error) {
	if iss == nil {
		return nil, errNotSynced
	}
	if iss.JWKSURL == "" {
		m.mu.RLock()
		ks, ok := m.files[iss]
		m.mu.RUnlock()
		if !ok {
			// Not synced yet (or a Set other than the live one): serve the
			// file's keys all the same.
			ks = setOf(iss.FileKeys)
		}
		if k, ok := ks.get(kid); ok {
			return k, nil
		}
		return nil, ErrUnknownKey
	}
	m.mu.RLock()
	f := m.fetchers[iss.JWKSURL]
	m.mu.RUnlock()
	if f == nil {
		return nil, errNotSynced
	}
	if k, ok := f.keys.Load().get(kid); ok {
		return k, nil
	}
	wait := f.requestRefresh()
	if wait == nil {
		return nil, ErrUnknownKey
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for jwks refresh: %w", ctx.Err())
	case <-f.ctx.Done():
		return nil, errClosed
	}
	if k, ok := f.keys.Load().get(kid); ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

// Ready returns the names of set's issuers that have no usable keys (never
// fetched successfully, or not synced), in file order; nil when all have.
func (m *Manager) Ready(set *policies.Set) (missing []string) {
	if set == nil {
		return nil
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, iss := range set.Issuers {
		if iss.JWKSURL == "" {
			ks, ok := m.files[iss]
			if !ok {
				ks = setOf(iss.FileKeys)
			}
			if ks.len() == 0 {
				missing = append(missing, iss.Name)
			}
			continue
		}
		if f := m.fetchers[iss.JWKSURL]; f == nil || f.keys.Load().len() == 0 {
			missing = append(missing, iss.Name)
		}
	}
	return missing
}

// Close stops every fetcher and waits for them; Key fails afterwards for
// jwks_url issuers.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	fs := m.fetchers
	m.fetchers = map[string]*fetcher{}
	m.mu.Unlock()
	m.cancel()
	for _, f := range fs {
		<-f.done
	}
	if m.transport != nil {
		m.transport.CloseIdleConnections()
	}
}

// fetcher keeps the key set of one JWKS URL fresh.
type fetcher struct {
	m       *Manager
	url     string
	names   atomic.Pointer[[]string] // issuers using the URL, for hooks
	refresh atomic.Int64             // time.Duration
	keys    atomic.Pointer[keySet]   // nil until the first good fetch

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns
	first  chan struct{} // closed after the first fetch attempt
	kick   chan struct{} // buffered: fetch now

	// Failure log state, touched only by run's goroutine.
	failures   int       // consecutive failed fetches
	suppressed int       // failures not logged since the last line
	failLogged time.Time // when the last failure line was written

	mu         sync.Mutex
	lastForced time.Time     // last unknown-kid refresh
	pending    chan struct{} // closed when the awaited fetch ends
}

func (m *Manager) newFetcher(url string) *fetcher {
	f := &fetcher{
		m:     m,
		url:   url,
		done:  make(chan struct{}),
		first: make(chan struct{}),
		kick:  make(chan struct{}, 1),
		// Whoever asks for a key during the first fetch waits for it.
		pending: make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(m.base)
	return f
}

// requestRefresh returns a channel closed when a refresh that started after
// this call ends, or nil when the rate limit forbids one. Concurrent callers
// share one refresh.
func (f *fetcher) requestRefresh() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending != nil {
		return f.pending
	}
	now := f.m.now()
	if !f.lastForced.IsZero() && now.Sub(f.lastForced) < DefaultMinRefreshGap {
		return nil
	}
	f.lastForced = now
	f.pending = make(chan struct{})
	select {
	case f.kick <- struct{}{}:
	default:
	}
	return f.pending
}

func (f *fetcher) run() {
	defer close(f.done)
	m := f.m
	backoff := m.backoffMin
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for first := true; ; first = false {
		err := f.fetchOnce()
		if first {
			close(f.first)
		}
		wait := time.Duration(f.refresh.Load())
		if err != nil {
			// Retry sooner than the refresh interval, backing off, so an
			// outage at start does not leave the issuer keyless for an hour.
			wait = min(wait, backoff)
			backoff = min(2*backoff, m.backoffMax)
		} else {
			backoff = m.backoffMin
		}
		timer.Reset(wait)
		select {
		case <-f.ctx.Done():
			f.mu.Lock()
			if f.pending != nil {
				close(f.pending)
				f.pending = nil
			}
			f.mu.Unlock()
			return
		case <-timer.C:
		case <-f.kick:
			// Since Go 1.23 a stopped timer's channel never yields a stale
			// value, so Reset above needs no drain.
			timer.Stop()
		}
	}
}

// fetchOnce fetches the document once and installs its keys if they are
// usable and different; it then releases whoever waited for this fetch.
func (f *fetcher) fetchOnce() error {
	m := f.m
	f.mu.Lock()
	p := f.pending // waiters that asked before this fetch began
	f.mu.Unlock()

	ctx, cancel := context.WithTimeout(f.ctx, m.timeout)
	ks, err := m.fetch(ctx, f.url)
	cancel()
	old := f.keys.Load()
	switch {
	case err != nil:
		f.logFailure(err, old != nil)
	case old == nil || old.sum != ks.sum:
		f.keys.Store(ks)
		m.log.Info("jwks updated", zap.String("url", f.url), zap.Int("keys", ks.len()))
		m.changed()
	}
	if err == nil && f.failures > 0 {
		m.log.Info("jwks fetch recovered", zap.String("url", f.url), zap.Strings("issuers", f.issuerNames()),
			zap.Int("failures", f.failures))
		f.failures, f.suppressed, f.failLogged = 0, 0, time.Time{}
	}
	if m.fetchHook != nil {
		if names := f.names.Load(); names != nil {
			for _, n := range *names {
				m.fetchHook(n, err)
			}
		}
	}

	f.mu.Lock()
	if p != nil && f.pending == p {
		close(p)
		f.pending = nil
	}
	f.mu.Unlock()
	return err
}

// logFailure logs a failed fetch, at most once per failure log interval:
// the first failure of an outage is logged at once, later ones are counted
// and the next line carries the count. kept says whether the previous keys
// are still served.
func (f *fetcher) logFailure(err error, kept bool) {
	f.failures++
	now := f.m.now()
	if !f.failLogged.IsZero() && now.Sub(f.failLogged) < failureLogInterval {
		f.suppressed++
		return
	}
	f.m.log.Warn("jwks fetch failed",
		zap.String("url", f.url),
		zap.Strings("issuers", f.issuerNames()),
		zap.Bool("keeping_previous_keys", kept),
		zap.Int("consecutive_failures", f.failures),
		zap.Int("suppressed", f.suppressed),
		zap.Error(err))
	f.failLogged, f.suppressed = now, 0
}

func (f *fetcher) issuerNames() []string {
	if n := f.names.Load(); n != nil {
		return *n
	}
	return nil
}

// fetch GETs url and parses it.
func (m *Manager) fetch(ctx context.Context, url string) (*keySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "accessgate")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err) // err names the URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	if int64(len(body)) > maxBodySize {
		return nil, fmt.Errorf("fetch jwks %s: over %d bytes: %w", url, maxBodySize, errTooLarge)
	}
	ks, err := parse(body)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks %s: %w", url, err)
	}
	return ks, nil
}

// keySet is an immutable set of public signature keys.
type keySet struct {
	byKid map[string]jwk.Key
	only  jwk.Key  // the key when the set holds exactly one, for an empty kid
	sum   [32]byte // of the source, to tell a changed set from a refetch
}

func (s *keySet) get(kid string) (jwk.Key, bool) {
	if s == nil {
		return nil, false
	}
	if kid == "" {
		return s.only, s.only != nil
	}
	k, ok := s.byKid[kid]
	return k, ok
}

func (s *keySet) len() int {
	if s == nil {
		return 0
	}
	if len(s.byKid) == 0 && s.only != nil {
		return 1
	}
	return len(s.byKid)
}

// parse parses a JWK set or a Cloudflare certs document into the public
// signature keys it holds. Keys jwx cannot parse are skipped, so one odd key
// does not cost the others; a document without a usable key is an error.
func parse(data []byte) (*keySet, error) {
	var doc struct {
		Keys        []json.RawMessage `json:"keys"`
		PublicCerts []struct {
			Kid  string `json:"kid"`
			Cert string `json:"cert"`
		} `json:"public_certs"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse jwks: %w", err)
	}
	var keys []jwk.Key
	if len(doc.Keys) > 0 {
		for _, raw := range doc.Keys {
			if k, err := jwk.ParseKey(raw); err == nil {
				keys = append(keys, k)
			}
		}
	} else {
		for _, c := range doc.PublicCerts {
			if k := certKey(c.Kid, c.Cert); k != nil {
				keys = append(keys, k)
			}
		}
	}
	ks := build(keys, sha256.Sum256(data))
	if ks.len() == 0 {
		return nil, fmt.Errorf("parse jwks: %w", errNoKeys)
	}
	return ks, nil
}

// certKey returns the public key of a PEM certificate as a JWK with kid, or
// nil.
func certKey(kid, certPEM string) jwk.Key {
	b, _ := pem.Decode([]byte(certPEM))
	if b == nil || b.Type != "CERTIFICATE" || kid == "" {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	k, err := jwk.FromRaw(c.PublicKey)
	if err != nil || k.Set(jwk.KeyIDKey, kid) != nil {
		return nil
	}
	return k
}

// setOf builds the keySet of a jwk.Set read from a file.
func setOf(s jwk.Set) *keySet {
	if s == nil {
		return nil
	}
	keys := make([]jwk.Key, 0, s.Len())
	for i := range s.Len() {
		if k, ok := s.Key(i); ok {
			keys = append(keys, k)
		}
	}
	data, _ := json.Marshal(s)
	return build(keys, sha256.Sum256(data))
}

// build keeps the public signature keys: private keys are reduced to their
// public half; symmetric keys, keys for encryption, and a second key with a
// kid already seen are dropped.
func build(keys []jwk.Key, sum [32]byte) *keySet {
	ks := &keySet{byKid: map[string]jwk.Key{}, sum: sum}
	var usable []jwk.Key
	for _, k := range keys {
		if k.KeyType() == jwa.OctetSeq {
			continue
		}
		if u, ok := k.Get(jwk.KeyUsageKey); ok {
			if s, _ := u.(string); s != "" && s != string(jwk.ForSignature) {
				continue
			}
		}
		pub, err := k.PublicKey()
		if err != nil {
			continue
		}
		usable = append(usable, pub)
		if kid := pub.KeyID(); kid != "" {
			if _, dup := ks.byKid[kid]; !dup {
				ks.byKid[kid] = pub
			}
		}
	}
	if len(usable) == 1 {
		ks.only = usable[0]
	}
	return ks
}
