package login

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// maxQuery bounds a request's query string; longer ones are refused
// unparsed (400).
const maxQuery = 8192

// maxCookie bounds the value of a cookie this server reads: its own are
// far shorter, and a huge one is refused before any work.
const maxCookie = 4096

// ServeHTTP answers the team domain's endpoints. Every answer carries
// Cache-Control: no-store, Referrer-Policy: no-referrer and a
// Content-Security-Policy that allows nothing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writePage(w, http.StatusMethodNotAllowed, page{Title: "Method not allowed"})
		return
	}
	if len(r.URL.RawQuery) > maxQuery {
		s.refuse(w, http.StatusBadRequest, "bad_request", errBadQuery)
		return
	}
	switch p := r.URL.Path; {
	case p == pathCerts:
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", strconv.Itoa(len(s.certs)))
		w.Write(s.certs)
	case strings.HasPrefix(p, pathLogin):
		s.handleLogin(w, r, strings.TrimPrefix(p, pathLogin))
	case p == pathCallback && s.tracer != nil:
		s.tracedCallback(w, r)
	case p == pathCallback:
		s.handleCallback(w, r)
	case p == pathIdentity:
		s.handleIdentity(w, r)
	case p == pathLogout:
		s.handleLogout(w)
	default:
		writePage(w, http.StatusNotFound, page{Title: "Not found", Message: "This address is not part of the sign-in."})
	}
}

// query parses the query string, refusing a parameter given twice (which
// of two values a check reads is how parameter-pollution bugs start).
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errBadQuery
	}
	for _, v := range q {
		if len(v) > 1 {
			return nil, errBadQuery
		}
	}
	return q, nil
}

// signIn is the sign-in request being served, as checked from the login
// URL.
type signIn struct {
	Host     string `json:"h"`
	Audience string `json:"a"`
	Redirect string `json:"r"`
	Nonce    string `json:"n"` // the browser's CF_AppSession
	Origin   string `json:"o"` // normalized scheme://host[:port]
}

// state is the sealed CF_Session cookie: the sign-in in progress.
type state struct {
	State     string `json:"s"`
	OIDCNonce string `json:"on"`
	Verifier  string `json:"v"`
	Provider  string `json:"p"`
	SignIn    signIn `json:"in"`
}

// handleLogin serves /cdn-cgi/access/login/<host>.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request, rawHost string) {
	q, err := query(r)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	in, app, err := s.checkSignIn(rawHost, q)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	allowed := s.allowedProviders(app)

	// A valid org session from an allowed provider skips the provider.
	if id, ok := s.orgSession(r); ok && app.Login.ProviderAllowed(id.IdP) {
		s.transfer(w, r, in, id.Identity, "org_session")
		return
	}

	var chosen *provider
	if name, given := q["idp"]; given {
		chosen = s.provider(name[0])
		if chosen == nil || !app.Login.ProviderAllowed(chosen.cfg.Name) {
			s.refuse(w, http.StatusBadRequest, "bad_request", errBadProvider)
			return
		}
	} else if len(allowed) == 1 {
		chosen = allowed[0]
	} else {
		s.picker(w, r, allowed)
		return
	}
	rp := chosen.rp.Load()
	if rp == nil {
		s.count(chosen.cfg.Name, "not_discovered")
		s.providerDown(w, chosen.cfg.Name, "not_discovered")
		return
	}
	st := state{
		State:     randomString(32),
		OIDCNonce: randomString(32),
		Verifier:  oauth2.GenerateVerifier(),
		Provider:  chosen.cfg.Name,
		SignIn:    in,
	}
	sealed, err := s.state.Seal(st, s.now().Add(stateTTL))
	if err != nil {
		s.log.Error("seal sign-in state", zap.Error(err))
		writePage(w, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "An internal error stopped the sign-in. Try again."})
		return
	}
	http.SetCookie(w, s.cookie(s.names.State, sealed, stateTTL))
	s.log.Info("sign-in started", zap.String("provider", chosen.cfg.Name), zap.String("host", in.Host))
	target := rp.oauth.AuthCodeURL(st.State, oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.OIDCNonce))
	http.Redirect(w, r, target, http.StatusFound)
}

// checkSignIn validates a login request (contract §8): an application
// with issuer login covering host with audience kid, a nonce, an origin on
// that host and an allowed redirect URL.
func (s *Server) checkSignIn(rawHost string, q url.Values) (signIn, *policies.Application, error) {
	host, err := checkHost(rawHost)
	if err != nil {
		return signIn{}, nil, err
	}
	aud := q.Get("kid")
	app := s.set.LoginApplication(host, aud)
	if aud == "" || app == nil {
		return signIn{}, nil, errNoApp
	}
	nonce := q.Get("nonce")
	if !mint.ValidNonce(nonce) {
		return signIn{}, nil, errBadNonce
	}
	origin, err := checkOrigin(q.Get("origin"), host)
	if err != nil {
		return signIn{}, nil, err
	}
	redirect := q.Get("redirect_url")
	if err := checkRedirect(redirect, host, app); err != nil {
		return signIn{}, nil, err
	}
	return signIn{Host: host, Audience: aud, Redirect: redirect, Nonce: nonce, Origin: origin}, app, nil
}

// allowedProviders lists the providers app accepts, in file order.
func (s *Server) allowedProviders(app *policies.Application) []*provider {
	var out []*provider
	for _, p := range s.providers {
		if app.Login.ProviderAllowed(p.cfg.Name) {
			out = append(out, p)
		}
	}
	return out
}

// picker answers the provider choice page: links back to this login URL
// with idp set.
func (s *Server) picker(w http.ResponseWriter, r *http.Request, allowed []*provider) {
	q := r.URL.Query()
	choices := make([]choice, 0, len(allowed))
	for _, p := range allowed {
		q.Set("idp", p.cfg.Name)
		choices = append(choices, choice{Name: p.cfg.Name, URL: r.URL.EscapedPath() + "?" + q.Encode()})
	}
	writePage(w, http.StatusOK, page{Title: "Sign in", Message: "Choose how to sign in.", Choices: choices})
}

// handleCallback serves /cdn-cgi/access/callback, where the provider sends
// the browser back.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	q, err := query(r)
	if err != nil {
		s.refuse(w, http.StatusBadRequest, "bad_request", err)
		return
	}
	// A provider's error comes first, before the state check: the user
	// should learn that the provider said no.
	if e, ok := q["error"]; ok {
		detail := "The identity provider answered: " + e[0]
		if d := q.Get("error_description"); d != "" {
			detail += " (" + d + ")"
		}
		s.clearState(w)
		s.log.Info("sign-in refused by the provider", zap.String("outcome", "provider_error"))
		s.count("", "provider_error")
		writePage(w, http.StatusForbidden, page{Title: "Sign-in refused", Message: "The identity provider did not sign you in.", Detail: detail})
		return
	}
	st, err := s.readState(r)
	if err != nil {
		s.log.Info("sign-in refused", zap.String("outcome", "state_missing"), zap.String("why", err.Error()))
		s.count("", "state_missing")
		writePage(w, http.StatusBadRequest, page{
			Title:   "Sign-in took too long",
			Message: "The sign-in took too long or was started in another browser. Go back to the application and sign in again.",
		})
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		s.log.Info("sign-in refused", zap.String("outcome", "state_mismatch"), zap.String("provider", st.Provider))
		s.count(st.Provider, "state_mismatch")
		writePage(w, http.StatusBadRequest, page{
			Title:   "Sign-in could not be verified",
			Message: "The answer from the identity provider does not belong to this sign-in. Go back to the application and sign in again.",
		})
		return
	}
	p := s.provider(st.Provider)
	if p == nil {
		// The configuration changed under the sign-in.
		writePage(w, http.StatusBadRequest, page{Title: "Sign-in took too long", Message: "Go back to the application and sign in again."})
		return
	}
	rp := p.rp.Load()
	if rp == nil {
		s.count(p.cfg.Name, "not_discovered")
		s.providerDown(w, p.cfg.Name, "not_discovered")
		return
	}
	id, status, outcome := s.identify(r.Context(), p, rp, q.Get("code"), st)
	if status != 0 {
		s.log.Info("sign-in refused", zap.String("provider", p.cfg.Name), zap.String("outcome", outcome))
		s.count(p.cfg.Name, outcome)
		switch status {
		case http.StatusBadGateway:
			s.providerDown(w, p.cfg.Name, outcome)
		default:
			writePage(w, status, page{Title: "Sign-in refused", Message: "Your account cannot sign in here.", Detail: refusalText[outcome]})
		}
		return
	}
	org, life, err := s.minter.OrgToken(id)
	if err != nil {
		s.log.Error("mint org token", zap.Error(err))
		writePage(w, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "An internal error stopped the sign-in. Try again."})
		return
	}
	s.clearState(w)
	http.SetCookie(w, s.cookie(s.names.Org, org, life))
	s.transfer(w, r, st.SignIn, id, "signed_in")
}

// refusalText explains a refused identity (403) on the page.
var refusalText = map[string]string{
	"no_email":         "The identity provider did not give an email address.",
	"email_unverified": "The identity provider did not confirm that your email address is verified.",
	"bad_email":        "The identity provider gave an email address that cannot be used.",
}

// identify exchanges the code, verifies the ID token and returns the
// identity, or the status (403 refused identity, 502 provider failure) and
// an outcome code for logs. Errors from the provider are never logged as
// text: they may echo the code.
func (s *Server) identify(ctx context.Context, p *provider, rp *relyingParty, code string, st state) (mint.Identity, int, string) {
	if code == "" {
		return mint.Identity{}, http.StatusBadGateway, "no_code"
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.client)
	tok, err := rp.oauth.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return mint.Identity{}, http.StatusBadGateway, "exchange_" + safeCode(re.ErrorCode)
		}
		return mint.Identity{}, http.StatusBadGateway, "exchange_failed"
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return mint.Identity{}, http.StatusBadGateway, "no_id_token"
	}
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		return mint.Identity{}, http.StatusBadGateway, "id_token_invalid"
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.OIDCNonce)) != 1 {
		return mint.Identity{}, http.StatusBadGateway, "nonce_mismatch"
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return mint.Identity{}, http.StatusBadGateway, "id_token_invalid"
	}
	email, verified, groups := claimsOf(claims, p.cfg.GroupsClaim)
	// The ID token may leave the email, its verification or the groups
	// to the userinfo endpoint.
	if email == "" || verified == nil && p.cfg.RequireVerifiedEmail || groups == nil && p.cfg.GroupsClaim != "" {
		if rp.provider.UserInfoEndpoint() != "" {
			ui, err := rp.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				return mint.Identity{}, http.StatusBadGateway, "userinfo_failed"
			}
			if ui.Subject != idt.Subject {
				// OpenID Connect Core §5.3.2: a userinfo answer for
				// another subject must not be used.
				return mint.Identity{}, http.StatusBadGateway, "userinfo_subject"
			}
			var more map[string]any
			if err := ui.Claims(&more); err != nil {
				return mint.Identity{}, http.StatusBadGateway, "userinfo_failed"
			}
			e2, v2, g2 := claimsOf(more, p.cfg.GroupsClaim)
			if email == "" {
				email, verified = e2, v2
			} else if verified == nil && email == e2 {
				verified = v2
			}
			if groups == nil {
				groups = g2
			}
		}
	}
	switch {
	case email == "":
		return mint.Identity{}, http.StatusForbidden, "no_email"
	case !validEmail(email):
		return mint.Identity{}, http.StatusForbidden, "bad_email"
	case p.cfg.RequireVerifiedEmail && (verified == nil || !*verified):
		return mint.Identity{}, http.StatusForbidden, "email_unverified"
	}
	return mint.Identity{Email: email, Groups: groups, IdP: p.cfg.Name}, 0, ""
}

// claimsOf reads email, email_verified (a boolean, or the string "true"
// or "false" some providers send) and the groups claim (a list of strings
// or one string; nil when absent).
func claimsOf(c map[string]any, groupsClaim string) (email string, verified *bool, groups []string) {
	email, _ = c["email"].(string)
	switch v := c["email_verified"].(type) {
	case bool:
		verified = &v
	case string:
		if b, err := strconv.ParseBool(v); err == nil {
			verified = &b
		}
	}
	if groupsClaim == "" {
		return email, verified, nil
	}
	switch g := c[groupsClaim].(type) {
	case []any:
		groups = make([]string, 0, len(g))
		for _, x := range g {
			if s, ok := x.(string); ok {
				groups = append(groups, s)
			}
		}
	case string:
		groups = []string{g}
	}
	return email, verified, groups
}

// validEmail refuses an address that could not be a mailbox or would
// break a header: no control characters, an @ with text on both sides, at
// most 320 bytes.
func validEmail(e string) bool {
	if len(e) > 320 || strings.ContainsFunc(e, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	at := strings.LastIndexByte(e, '@')
	return at > 0 && at < len(e)-1
}

// tokenErrors are the token endpoint's error codes (RFC 6749 §5.2).
var tokenErrors = map[string]bool{
	"invalid_request": true, "invalid_client": true, "invalid_grant": true,
	"unauthorized_client": true, "unsupported_grant_type": true, "invalid_scope": true,
}

// safeCode keeps an OAuth error code fit for a log field and metric label:
// one of RFC 6749's, else "other", so that a provider cannot grow the
// label set.
func safeCode(c string) string {
	if tokenErrors[c] {
		return c
	}
	return "other"
}

// transfer sends the browser to the application host with a code for id
// (contract §8 "transfer"): https on the origin's host and port, http only
// when the team domain itself is http on loopback.
func (s *Server) transfer(w http.ResponseWriter, r *http.Request, in signIn, id mint.Identity, outcome string) {
	code, err := s.minter.Code(mint.Transfer{
		Host: in.Host, Audience: in.Audience, Nonce: in.Nonce, Redirect: in.Redirect, Identity: id,
	})
	if err != nil {
		s.log.Error("seal transfer code", zap.Error(err))
		writePage(w, http.StatusInternalServerError, page{Title: "Sign-in failed", Message: "An internal error stopped the sign-in. Try again."})
		return
	}
	s.log.Info("sign-in transferred", zap.String("provider", id.IdP), zap.String("host", in.Host), zap.String("outcome", outcome))
	s.count(id.IdP, outcome)
	http.Redirect(w, r, transferTarget(in.Origin, s.login.Secure)+pathAuthorized+"?code="+code, http.StatusFound)
}

// transferTarget is the scheme and authority the code goes to.
func transferTarget(origin string, teamSecure bool) string {
	if !teamSecure {
		return origin
	}
	_, hostport, _ := strings.Cut(origin, "://")
	return "https://" + hostport
}

// handleIdentity answers /cdn-cgi/access/get-identity from the org
// session.
func (s *Server) handleIdentity(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	id, ok := s.orgSession(r)
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthenticated"}` + "\n"))
		return
	}
	body, _ := json.Marshal(mint.NewIdentityDocument(id.Identity, id.iat, s.minter.Subject(id.Email)))
	w.Write(append(body, '\n'))
}

// handleLogout ends the org session.
func (s *Server) handleLogout(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(s.names.Org, "", -1))
	s.log.Info("signed out")
	writePage(w, http.StatusOK, page{Title: "Signed out", Message: "You are signed out of this team domain. Applications you used keep their own session until it expires."})
}

// orgIdentity is an org session's identity and issue time.
type orgIdentity struct {
	mint.Identity
	iat int64
}

// orgSession reads the team domain's session cookie. Only a token minted
// here with type org and aud [team_domain] counts: an application token
// (which every origin sees in Cf-Access-Jwt-Assertion) is no session.
func (s *Server) orgSession(r *http.Request) (orgIdentity, bool) {
	c, err := r.Cookie(s.names.Org)
	if err != nil || c.Value == "" || len(c.Value) > 16<<10 {
		return orgIdentity{}, false
	}
	id, reason := s.orgVerifier.Verify(r.Context(), c.Value, s.orgApp)
	if reason != "" || id.Claims["type"] != mint.TypeOrg {
		return orgIdentity{}, false
	}
	if s.revoked != nil && s.revoked(id) {
		return orgIdentity{}, false
	}
	aud, _ := id.Claims["aud"].([]string)
	if len(aud) != 1 || aud[0] != s.login.TeamDomain {
		return orgIdentity{}, false
	}
	idp, _ := id.Claims["idp"].(string)
	if s.provider(idp) == nil {
		return orgIdentity{}, false
	}
	var iat int64
	if f, ok := id.Claims["iat"].(float64); ok {
		iat = int64(f)
	}
	return orgIdentity{Identity: mint.Identity{Email: id.Email, Groups: id.Groups, IdP: idp}, iat: iat}, true
}

// readState opens the CF_Session cookie.
func (s *Server) readState(r *http.Request) (state, error) {
	c, err := r.Cookie(s.names.State)
	if err != nil {
		return state{}, errors.New("no state cookie")
	}
	if len(c.Value) > maxCookie {
		return state{}, errors.New("state cookie too long")
	}
	var st state
	if err := s.state.Open(c.Value, &st, s.now()); err != nil {
		return state{}, err
	}
	return st, nil
}

func (s *Server) clearState(w http.ResponseWriter) {
	http.SetCookie(w, s.cookie(s.names.State, "", -1))
}

// cookie builds a team-domain cookie: host-only, Path=/, HttpOnly,
// SameSite=Lax, Secure unless the team domain is http on loopback. A
// negative life expires it.
func (s *Server) cookie(name, value string, life time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   s.names.Secure,
		SameSite: http.SameSiteLaxMode,
		MaxAge:   int(life / time.Second),
	}
	if life < 0 {
		c.MaxAge = -1
	}
	return c
}

// refuse answers a malformed request with a page naming what is wrong.
func (s *Server) refuse(w http.ResponseWriter, status int, outcome string, why error) {
	s.log.Info("sign-in request refused", zap.String("outcome", outcome), zap.String("why", why.Error()))
	writePage(w, status, page{Title: "This sign-in link is not valid", Message: "Go back to the application and sign in again.", Detail: why.Error()})
}

// providerDown answers 502: the provider failed or cannot be reached.
func (s *Server) providerDown(w http.ResponseWriter, name, outcome string) {
	s.log.Warn("identity provider failed", zap.String("provider", name), zap.String("outcome", outcome))
	writePage(w, http.StatusBadGateway, page{
		Title:   "The identity provider is not available",
		Message: "Signing in through " + name + " failed. Try again in a moment; sessions you already have keep working.",
		Detail:  "Reason: " + outcome,
	})
}

// randomString returns n random bytes as unpadded base64url.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
