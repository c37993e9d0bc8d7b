package login

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// maxDiscovery bounds a discovery document (real ones are a few KiB).
const maxDiscovery = 1 << 20

// idTokenAlgs are the ID-token algorithms accepted, whatever discovery
// advertises: never none or HMAC (a client secret is no signing key).
var idTokenAlgs = map[string]bool{
	oidc.RS256: true, oidc.RS384: true, oidc.RS512: true,
	oidc.ES256: true, oidc.ES384: true, oidc.ES512: true,
	oidc.PS256: true, oidc.PS384: true, oidc.PS512: true, oidc.EdDSA: true,
}

// relyingParty is a discovered provider, ready for the code flow.
type relyingParty struct {
	oauth    oauth2.Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// provider is one configured provider and, once discovery succeeded, its
// relying party.
type provider struct {
	cfg *policies.Provider
	rp  atomic.Pointer[relyingParty]
}

// discover fetches the provider's discovery document and builds its
// relying party. The issuer discovery reports must equal the configured
// one up to trailing slashes; ID tokens must then carry exactly the
// reported one.
func (p *provider) discover(ctx context.Context, client *http.Client, redirectURL string, now func() time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.DiscoveryURL(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch discovery: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDiscovery+1))
	if err != nil {
		return fmt.Errorf("read discovery: %w", err)
	}
	if len(body) > maxDiscovery {
		return errors.New("discovery document too large")
	}
	var doc oidc.ProviderConfig
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("parse discovery: %w", err)
	}
	if strings.TrimRight(doc.IssuerURL, "/") != strings.TrimRight(p.cfg.Issuer, "/") {
		return fmt.Errorf("discovery reports issuer %q, configured %q", doc.IssuerURL, p.cfg.Issuer)
	}
	if doc.AuthURL == "" || doc.TokenURL == "" || doc.JWKSURL == "" {
		return errors.New("discovery lacks authorization_endpoint, token_endpoint or jwks_uri")
	}
	var algs []string
	for _, a := range doc.Algorithms {
		if idTokenAlgs[a] {
			algs = append(algs, a)
		}
	}
	doc.Algorithms = algs
	op := doc.NewProvider(oidc.ClientContext(context.Background(), client))
	rp := &relyingParty{
		oauth: oauth2.Config{
			ClientID:     p.cfg.ClientID,
			ClientSecret: p.cfg.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  redirectURL,
			Scopes:       p.cfg.Scopes,
		},
		provider: op,
		verifier: op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: now}),
	}
	p.rp.Store(rp)
	return nil
}

// discoverLoop retries discovery with exponential backoff until it
// succeeds or ctx ends. Failures are logged without the response body.
func (p *provider) discoverLoop(ctx context.Context, s *Server) {
	wait := s.backoffMin
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		err := p.discover(actx, s.client, s.redirectURL, s.now)
		cancel()
		if err == nil {
			s.log.Info("identity provider discovered", zap.String("provider", p.cfg.Name), zap.Int("attempt", attempt))
			s.changed()
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("identity provider discovery failed; retrying",
			zap.String("provider", p.cfg.Name), zap.String("discovery_url", p.cfg.DiscoveryURL()),
			zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, s.backoffMax)
	}
}
