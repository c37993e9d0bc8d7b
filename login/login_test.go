package login

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/accessgate/accessgate/login/mint"
	"github.com/accessgate/accessgate/policies"
	"github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/oauth2-proxy/mockoidc"
	"go.uber.org/zap"
)

const groupsScopes = "scopes: [openid, email, profile, groups]\n      groups_claim: groups"

// TestSignIn walks the whole flow against a real (in-process) OpenID
// Connect provider: login → provider → callback → transfer, then redeems
// the code as the application host will.
func TestSignIn(t *testing.T) {
	m := startMock(t, nil)
	m.QueueUser(&mockoidc.MockUser{Subject: "u1", Email: "Alice@Example.com", EmailVerified: true, Groups: []string{"admins"}})
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, groupsScopes)}})
	b := e.browser()

	resp := b.team(loginPath("app.example.com", "app-aud", "https://app.example.com/dash?tab=1", "http://app.example.com:8443"))
	checkHeaders(t, "login", resp)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: status %d, want 302", resp.StatusCode)
	}
	auth, _ := url.Parse(resp.Header.Get("Location"))
	q := auth.Query()
	if !strings.HasPrefix(auth.String(), m.AuthorizationEndpoint()) || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
		q.Get("redirect_uri") != "https://auth.example.com/cdn-cgi/access/callback" || q.Get("scope") != "openid email profile groups" {
		t.Errorf("authorization URL = %s: want PKCE S256, nonce, state, the callback and the scopes", auth)
	}
	st := b.cookies["__Host-CF_Session"]
	if st == nil || !st.Secure || !st.HttpOnly || st.SameSite != http.SameSiteLaxMode || st.Path != "/" || st.MaxAge != 600 || st.Domain != "" {
		t.Fatalf("state cookie = %+v; want __Host-CF_Session, Secure, HttpOnly, Lax, Path=/, 10 minutes, host-only", st)
	}

	resp = b.team(b.provider(auth.String()))
	checkHeaders(t, "callback", resp)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: status %d, want 302\n%s", resp.StatusCode, body(t, resp))
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	// The transfer goes over https whatever the origin's scheme, to its
	// host and port.
	if loc.Scheme != "https" || loc.Host != "app.example.com:8443" || loc.Path != "/cdn-cgi/access/authorized" {
		t.Errorf("transfer Location = %s, want https://app.example.com:8443/cdn-cgi/access/authorized?code=…", loc)
	}
	if _, ok := b.cookies["__Host-CF_Session"]; ok {
		t.Error("state cookie still set after the callback")
	}
	org := b.cookies["__Host-CF_Authorization"]
	if org == nil || !org.Secure || !org.HttpOnly || org.SameSite != http.SameSiteLaxMode || org.Path != "/" || org.Domain != "" || org.MaxAge != 86400 {
		t.Fatalf("org cookie = %+v; want __Host-CF_Authorization, Secure, HttpOnly, Lax, Path=/, host-only, 24h", org)
	}

	if n := e.count("corp/signed_in"); n != 1 {
		t.Errorf("OnSignIn(corp, signed_in) called %d times, want 1", n)
	}
	id, redirect, err := e.redeem(loc, "app.example.com", "app-aud", testNonce)
	if err != nil {
		t.Fatalf("Redeem(transfer code) = %v", err)
	}
	want := mint.Identity{Email: "Alice@Example.com", Groups: []string{"admins"}, IdP: "corp"}
	if !reflect.DeepEqual(id, want) || redirect != "https://app.example.com/dash?tab=1" {
		t.Errorf("Redeem = %+v, %q; want %+v and the login's redirect_url", id, redirect, want)
	}
	// The code is useless on another application (A's code on B) and
	// without the browser's nonce.
	if _, _, err := e.redeem(loc, "other.example.com", "other-aud", testNonce); !errors.Is(err, mint.ErrCodeBinding) {
		t.Errorf("Redeem on other.example.com = %v, want ErrCodeBinding", err)
	}
	if _, _, err := e.redeem(loc, "app.example.com", "app-aud", ""); !errors.Is(err, mint.ErrCodeNonce) {
		t.Errorf("Redeem without CF_AppSession = %v, want ErrCodeNonce", err)
	}

	// The org token is a valid login-issuer token with type org.
	v := authz.NewVerifier(fileKeys{}, time.Now)
	tok, reason := v.Verify(context.Background(), org.Value, &policies.Application{Issuer: e.set.Login.Issuer, Audience: "https://auth.example.com"})
	if reason != "" || tok.Claims["type"] != "org" || tok.Claims["idp"] != "corp" {
		t.Errorf("org cookie token: reason %q, claims %v; want a valid type org token from corp", reason, tok)
	}
}

// TestOrgSession: a second application signs in through the org session
// without the provider; an application token in the org cookie, or an org
// session from a provider the application does not allow, is no session.
// TestOrgSessionRevoked: a revoked user's org session is no session
// (contract section 11): the login goes to the provider again instead of
// transferring at once.
func TestOrgSessionRevoked(t *testing.T) {
	m := startMock(t, nil)
	m.QueueUser(&mockoidc.MockUser{Subject: "u9", Email: "Rita@Example.com", EmailVerified: true})
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	b := e.browser()
	resp := b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: status %d, want 302 to the provider", resp.StatusCode)
	}
	if resp = b.team(b.provider(resp.Header.Get("Location"))); resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d", resp.StatusCode)
	}
	transfers := func() bool {
		resp := b.team(loginPath("app.example.com", "app-aud", "/x", "https://app.example.com"))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		return resp.StatusCode == http.StatusFound && loc.Path == pathAuthorized
	}
	if !transfers() {
		t.Fatal("a fresh org session did not transfer")
	}
	e.mu.Lock()
	e.revoked = "rita@example.com"
	e.mu.Unlock()
	if transfers() {
		t.Error("a revoked org session still transferred without the provider")
	}
}

func TestOrgSession(t *testing.T) {
	m := startMock(t, nil)
	m2 := startMock(t, nil)
	apps := strings.Replace(logintest.DefaultApps, "    session_duration: 1h\n", "    session_duration: 1h\n    allowed_providers: [second]\n", 1) +
		`  - name: third
    domains: [third.example.com]
    issuer: login
    audience: third-aud
    policies:
      - {name: all, action: allow, include: [{everyone: true}]}
`
	e := newEnv(t, logintest.Config{
		Providers:    []logintest.Provider{mockProvider("corp", m, ""), mockProvider("second", m2, "")},
		Applications: apps,
	})
	b := e.browser()
	// app allows both providers: the picker, then corp.
	resp := b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body(t, resp), "Sign in with second") {
		t.Fatalf("login with two providers: status %d, want the picker", resp.StatusCode)
	}
	resp = b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com") + "&idp=corp")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login with idp=corp: status %d, want 302", resp.StatusCode)
	}
	resp = b.team(b.provider(resp.Header.Get("Location")))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("callback: %d", resp.StatusCode)
	}

	// third: the org session transfers at once.
	resp = b.team(loginPath("third.example.com", "third-aud", "/x", "https://third.example.com"))
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Host != "third.example.com" || loc.Path != pathAuthorized {
		t.Fatalf("login with an org session: status %d, Location %s; want the transfer", resp.StatusCode, loc)
	}
	if id, _, err := e.redeem(loc, "third.example.com", "third-aud", testNonce); err != nil || id.IdP != "corp" {
		t.Errorf("Redeem(org-session transfer) = %+v, %v", id, err)
	}

	// other allows only "second": the corp session is ignored.
	resp = b.team(loginPath("other.example.com", "other-aud", "/", "https://other.example.com"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), m2.AuthorizationEndpoint()) {
		t.Errorf("login on an app not allowing the session's provider: status %d, Location %s; want second's authorization endpoint",
			resp.StatusCode, resp.Header.Get("Location"))
	}

	// An application token in the team domain's cookie is no session.
	appTok, _, err := e.srv.Minter().AppToken(mint.Identity{Email: "mallory@example.com", IdP: "corp"}, e.set.Applications[0])
	if err != nil {
		t.Fatal(err)
	}
	evil := e.browser()
	evil.cookies["__Host-CF_Authorization"] = &http.Cookie{Name: "__Host-CF_Authorization", Value: appTok}
	resp = evil.team(loginPath("third.example.com", "third-aud", "/", "https://third.example.com"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body(t, resp), "Choose how to sign in") {
		t.Errorf("login with an app token as org cookie: status %d, Location %s; want the provider picker, no transfer",
			resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = evil.team(pathIdentity)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("get-identity with an app token: status %d, want 401", resp.StatusCode)
	}
	// The plain name is never read on an https team domain.
	plain := e.browser()
	plain.cookies["CF_Authorization"] = &http.Cookie{Name: "CF_Authorization", Value: b.cookies["__Host-CF_Authorization"].Value}
	if resp := plain.team(pathIdentity); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("get-identity with the org token under the plain name: status %d, want 401", resp.StatusCode)
	}
}

// TestCallbackRefusals: every way the callback refuses, with its status.
func TestCallbackRefusals(t *testing.T) {
	type step struct {
		status int
		text   string
		count  string // the OnSignIn provider/outcome
	}
	tests := []struct {
		name string
		// mw tampers with the provider; user is queued; before runs
		// between the provider and the callback and may rewrite the
		// callback URI.
		mw     func(http.Handler) http.Handler
		user   mockoidc.User
		before func(e *env, b *browser, m *mockoidc.MockOIDC, cb string) string
		want   step
	}{
		{
			name: "provider error",
			before: func(_ *env, _ *browser, _ *mockoidc.MockOIDC, cb string) string {
				return pathCallback + "?error=access_denied&error_description=" + url.QueryEscape("<script>alert(1)</script> denied")
			},
			want: step{403, "access_denied (&lt;script&gt;alert(1)&lt;/script&gt; denied)", "/provider_error"},
		},
		{
			name: "provider error before a missing state cookie",
			before: func(_ *env, b *browser, _ *mockoidc.MockOIDC, _ string) string {
				clear(b.cookies)
				return pathCallback + "?error=login_required"
			},
			want: step{403, "login_required", "/provider_error"},
		},
		{
			name: "missing state cookie",
			before: func(_ *env, b *browser, _ *mockoidc.MockOIDC, cb string) string {
				delete(b.cookies, "__Host-CF_Session")
				return cb
			},
			want: step{400, "took too long", "/state_missing"},
		},
		{
			name: "tampered state cookie",
			before: func(_ *env, b *browser, _ *mockoidc.MockOIDC, cb string) string {
				c := b.cookies["__Host-CF_Session"]
				v := []byte(c.Value)
				v[len(v)/2] ^= 1
				c.Value = string(v)
				return cb
			},
			want: step{400, "took too long", "/state_missing"},
		},
		{
			name: "expired state cookie",
			before: func(e *env, _ *browser, _ *mockoidc.MockOIDC, cb string) string {
				e.clock.add(stateTTL + time.Second)
				return cb
			},
			want: step{400, "took too long", "/state_missing"},
		},
		{
			name: "oversized state cookie",
			before: func(_ *env, b *browser, _ *mockoidc.MockOIDC, cb string) string {
				b.cookies["__Host-CF_Session"].Value = strings.Repeat("A", 64<<10)
				return cb
			},
			want: step{400, "took too long", "/state_missing"},
		},
		{
			name: "bad state",
			before: func(_ *env, _ *browser, _ *mockoidc.MockOIDC, cb string) string {
				u, _ := url.Parse(cb)
				q := u.Query()
				q.Set("state", "forged")
				return u.Path + "?" + q.Encode()
			},
			want: step{400, "does not belong to this sign-in", "corp/state_mismatch"},
		},
		{
			name: "missing state",
			before: func(_ *env, _ *browser, _ *mockoidc.MockOIDC, cb string) string {
				u, _ := url.Parse(cb)
				return u.Path + "?code=" + url.QueryEscape(u.Query().Get("code"))
			},
			want: step{400, "does not belong to this sign-in", "corp/state_mismatch"},
		},
		{
			name: "nonce mismatch",
			mw: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == mockoidc.AuthorizationEndpoint {
						q := r.URL.Query()
						q.Set("nonce", "replayed-nonce")
						r.URL.RawQuery = q.Encode()
					}
					next.ServeHTTP(w, r)
				})
			},
			want: step{502, "nonce_mismatch", "corp/nonce_mismatch"},
		},
		{
			name: "unverified email",
			user: &mockoidc.MockUser{Subject: "u2", Email: "eve@example.com", EmailVerified: false},
			want: step{403, "did not confirm that your email address is verified", "corp/email_unverified"},
		},
		{
			name: "no email",
			user: &mockoidc.MockUser{Subject: "u3"},
			want: step{403, "did not give an email address", "corp/no_email"},
		},
		{
			name: "code exchange refused",
			before: func(_ *env, _ *browser, m *mockoidc.MockOIDC, cb string) string {
				// Twice: oauth2 retries with the other client
				// authentication style once.
				m.QueueError(&mockoidc.ServerError{Code: 400, Error: "invalid_grant", Description: "bad code"})
				m.QueueError(&mockoidc.ServerError{Code: 400, Error: "invalid_grant", Description: "bad code"})
				return cb
			},
			want: step{502, "exchange_invalid_grant", "corp/exchange_invalid_grant"},
		},
		{
			name: "code replayed",
			before: func(e *env, b *browser, _ *mockoidc.MockOIDC, cb string) string {
				// Redeem the provider code once with a second browser
				// holding the same state: the provider grants it once.
				b2 := e.browser()
				b2.cookies["__Host-CF_Session"] = b.cookies["__Host-CF_Session"]
				if resp := b2.team(cb); resp.StatusCode != http.StatusFound {
					t.Fatalf("first use of the code: status %d", resp.StatusCode)
				}
				return cb
			},
			want: step{502, "exchange_invalid_grant", "corp/exchange_invalid_grant"},
		},
		{
			name: "provider unreachable",
			before: func(_ *env, _ *browser, m *mockoidc.MockOIDC, cb string) string {
				m.Shutdown()
				return cb
			},
			want: step{502, "exchange_failed", "corp/exchange_failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startMock(t, tt.mw)
			if tt.user != nil {
				m.QueueUser(tt.user)
			}
			e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
			b := e.browser()
			resp := b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("login: status %d", resp.StatusCode)
			}
			cb := b.provider(resp.Header.Get("Location"))
			if tt.before != nil {
				cb = tt.before(e, b, m, cb)
			}
			resp = b.team(cb)
			checkHeaders(t, "callback", resp)
			text := body(t, resp)
			if resp.StatusCode != tt.want.status || !strings.Contains(text, tt.want.text) {
				t.Errorf("callback: status %d, want %d with %q in:\n%s", resp.StatusCode, tt.want.status, tt.want.text, text)
			}
			if strings.Contains(text, "<script>") {
				t.Errorf("page holds unescaped markup:\n%s", text)
			}
			if _, ok := b.cookies["__Host-CF_Authorization"]; ok {
				t.Error("a refused sign-in set the org cookie")
			}
			if n := e.count(tt.want.count); n != 1 {
				t.Errorf("OnSignIn(%s) called %d times, want 1", tt.want.count, n)
			}
		})
	}
}

// userinfoOnly is a provider user whose ID token carries only the
// subject: email, email_verified and groups come from userinfo, which
// answers for sub.
type userinfoOnly struct {
	verified bool
	sub      string
}

func (u userinfoOnly) ID() string { return "ui-user" }
func (u userinfoOnly) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": u.sub, "email": "ui@example.com", "email_verified": u.verified, "groups": []string{"from-userinfo"}})
}
func (u userinfoOnly) Claims(_ []string, c *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return c, nil
}

// TestUserinfoCompletion: what the ID token lacks is read from userinfo,
// and only from an answer about the same subject.
func TestUserinfoCompletion(t *testing.T) {
	tests := []struct {
		name       string
		user       userinfoOnly
		wantStatus int
	}{
		{"verified", userinfoOnly{verified: true, sub: "ui-user"}, http.StatusFound},
		{"not verified", userinfoOnly{verified: false, sub: "ui-user"}, http.StatusForbidden},
		{"another subject", userinfoOnly{verified: true, sub: "someone-else"}, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := startMock(t, nil)
			m.QueueUser(tt.user)
			e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, groupsScopes)}})
			b := e.browser()
			resp := b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
			resp = b.team(b.provider(resp.Header.Get("Location")))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("callback: status %d, want %d\n%s", resp.StatusCode, tt.wantStatus, body(t, resp))
			}
			if tt.wantStatus != http.StatusFound {
				return
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			id, _, err := e.redeem(loc, "app.example.com", "app-aud", testNonce)
			if err != nil || id.Email != "ui@example.com" || !slices.Equal(id.Groups, []string{"from-userinfo"}) {
				t.Errorf("identity from userinfo = %+v, %v", id, err)
			}
		})
	}
}

// TestLoginRequest: the login endpoint's 400s, among them the open
// redirect attack table, and what it accepts.
func TestLoginRequest(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	valid := url.Values{"kid": {"app-aud"}, "redirect_url": {"https://app.example.com/x"}, "nonce": {testNonce}, "origin": {"https://app.example.com"}}
	with := func(k, v string) string {
		q := url.Values{}
		for kk, vv := range valid {
			q[kk] = vv
		}
		if v == "\x00delete" {
			delete(q, k)
		} else {
			q.Set(k, v)
		}
		return pathLogin + "app.example.com?" + q.Encode()
	}
	tests := []struct {
		name string
		path string
		want int
	}{
		{"valid", with("kid", "app-aud"), 302},
		{"redirect path", with("redirect_url", "/dash?x=1"), 302},
		{"redirect other port and scheme", with("redirect_url", "http://app.example.com:8080/"), 302},
		{"redirect explicit CORS origin", with("redirect_url", "https://web.example.com/app"), 302},
		{"origin with port", with("origin", "https://APP.example.com:8443"), 302},
		{"unknown host", pathLogin + "evil.example.com?" + valid.Encode(), 400},
		{"host with port", pathLogin + "app.example.com:443?" + valid.Encode(), 400},
		{"wrong kid", with("kid", "other-aud"), 400},
		{"no kid", with("kid", "\x00delete"), 400},
		{"no nonce", with("nonce", "\x00delete"), 400},
		{"short nonce", with("nonce", "n"), 302},
		{"empty nonce", with("nonce", ""), 400},
		{"nonce with space", with("nonce", "a b"), 400},
		{"nonce with ;", with("nonce", testNonce+";x"), 400},
		{"origin other host", with("origin", "https://evil.example.com"), 400},
		{"origin with path", with("origin", "https://app.example.com/"), 400},
		{"origin userinfo", with("origin", "https://x@app.example.com"), 400},
		{"origin ftp", with("origin", "ftp://app.example.com"), 400},
		{"origin port 0", with("origin", "https://app.example.com:0"), 400},
		{"no origin", with("origin", "\x00delete"), 400},
		{"redirect //evil", with("redirect_url", "//evil.com/"), 400},
		{"redirect /\\evil", with("redirect_url", "/\\evil.com/"), 400},
		{"redirect https://evil", with("redirect_url", "https://evil.com/"), 400},
		{"redirect userinfo", with("redirect_url", "https://app.example.com@evil.com/"), 400},
		{"redirect encoded //", with("redirect_url", "/%2F/evil.com"), 400},
		{"redirect encoded backslash", with("redirect_url", "/%5Cevil.com"), 400},
		{"redirect CRLF", with("redirect_url", "/x\r\nSet-Cookie: a=b"), 400},
		{"redirect encoded CRLF", with("redirect_url", "/x%0d%0aSet-Cookie:%20a=b"), 400},
		{"redirect tab", with("redirect_url", "/\t/evil.com"), 400},
		{"redirect javascript", with("redirect_url", "javascript:alert(1)"), 400},
		{"redirect wildcard CORS origin", with("redirect_url", "https://a.example.org/"), 400},
		{"redirect lookalike host", with("redirect_url", "https://app.example.com.evil.com/"), 400},
		{"redirect empty", with("redirect_url", ""), 400},
		{"redirect oversized", with("redirect_url", "/"+strings.Repeat("a", maxRedirect)), 400},
		{"query oversized", with("kid", strings.Repeat("a", maxQuery)), 400},
		{"parameter twice", with("kid", "app-aud") + "&kid=other-aud", 400},
		{"unknown idp", with("idp", "nope"), 400},
	}
	for _, tt := range tests {
		b := e.browser()
		resp := b.team(tt.path)
		checkHeaders(t, tt.name, resp)
		if resp.StatusCode != tt.want {
			t.Errorf("%s: GET %.200s: status %d, want %d", tt.name, tt.path, resp.StatusCode, tt.want)
		}
		if tt.want == 400 {
			if _, ok := b.cookies["__Host-CF_Session"]; ok {
				t.Errorf("%s: a refused login set the state cookie", tt.name)
			}
		}
	}
}

// TestCheckRedirect covers checkRedirect directly, including what the
// query string cannot carry.
func TestCheckRedirect(t *testing.T) {
	set := logintest.Load(t, logintest.Config{})
	app := set.LoginApplication("app.example.com", "app-aud")
	tests := []struct {
		give string
		ok   bool
	}{
		{"/", true},
		{"/a/b?c=d#e", true},
		{"/%2e%2e/x", true}, // a path: the application host judges it
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM/x", true},
		{"http://app.example.com:8080/x", true},
		{"https://web.example.com/x", true},
		{"https://web.example.com:443/x", true},
		{"http://web.example.com/x", false}, // another origin than the listed https one
		{"https://web.example.com:8443/x", false},
		{"https://x.example.org/", false},
		{"//evil.com", false},
		{"///evil.com", false},
		{"/\\evil.com", false},
		{"\\\\evil.com", false},
		{"/%2f/evil.com", false},
		{"/%5c/evil.com", false},
		{"/%09/evil.com", false},
		{"https://evil.com", false},
		{"https://app.example.com@evil.com", false},
		{"https://app.example.com%40evil.com", false},
		{"https://evil.com#@app.example.com", false},
		{"https://evil.com\\@app.example.com", false},
		{"https:app.example.com", false},
		{"https:/app.example.com", false},
		{"app.example.com/x", false},
		{"data:text/html,x", false},
		{" https://app.example.com", false},
		{"/x\x00", false},
		{"/x%00", false},
		{"/x%7f", false},
		{"/x%zz", false},
		{"/x%", false},
		{"/x\u2028", true}, // not a control character; sent on percent-encoded by browsers
	}
	for _, tt := range tests {
		if err := checkRedirect(tt.give, "app.example.com", app); (err == nil) != tt.ok {
			t.Errorf("checkRedirect(%q) = %v, want ok %v", tt.give, err, tt.ok)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	tests := []struct {
		give, want string
	}{
		{"https://app.example.com", "https://app.example.com"},
		{"HTTPS://App.Example.com", "https://app.example.com"},
		{"https://app.example.com:443", "https://app.example.com"},
		{"http://app.example.com:80", "http://app.example.com"},
		{"http://app.example.com:443", "http://app.example.com:443"},
		{"https://app.example.com:08443", "https://app.example.com:8443"},
		{"https://app.example.com:", ""},
		{"https://app.example.com:65536", ""},
		{"https://app.example.com:+1", ""},
		{"https://app.example.com/", ""},
		{"https://app.example.com?x", ""},
		{"https://a@app.example.com", ""},
		{"https://evil.com", ""},
		{"https://app.example.com.", ""},
		{"ws://app.example.com", ""},
		{"app.example.com", ""},
	}
	for _, tt := range tests {
		got, err := checkOrigin(tt.give, "app.example.com")
		if tt.want == "" && err == nil || tt.want != "" && got != tt.want {
			t.Errorf("checkOrigin(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
}

// TestPickerEscapesNames: provider names reach the page only escaped, and
// each link leads to that provider.
func TestPickerEscapesNames(t *testing.T) {
	m1, m2 := startMock(t, nil), startMock(t, nil)
	evilName := `"><script>alert(1)</script>`
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m1, ""), mockProvider(evilName, m2, "")}})
	resp := e.browser().team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	text := body(t, resp)
	if resp.StatusCode != 200 || strings.Contains(text, "<script>") || !strings.Contains(text, "&lt;script&gt;") {
		t.Fatalf("picker: status %d; want 200 with the name escaped:\n%s", resp.StatusCode, text)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("picker Content-Type = %q", ct)
	}
	// Follow the second link: it must lead to the second provider.
	i := strings.LastIndex(text, `href="`)
	href := text[i+len(`href="`):]
	href = strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&")
	resp = e.browser().team(href)
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), m2.AuthorizationEndpoint()) {
		t.Errorf("picker link %s: status %d, Location %s; want the second provider", href, resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestCerts: the certs document has Cloudflare's shape, its certificates
// hold the signing keys, and a token minted here verifies with the keys
// it publishes through the existing authz.Verifier.
func TestCerts(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Algs: []string{"RS256", "ES256"}, Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	resp := e.browser().team(pathCerts)
	checkHeaders(t, "certs", resp)
	raw := body(t, resp)
	var doc struct {
		Keys        []map[string]any `json:"keys"`
		PublicCert  publicCert       `json:"public_cert"`
		PublicCerts []publicCert     `json:"public_certs"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("certs: %v, Content-Type %q", err, resp.Header.Get("Content-Type"))
	}
	keys := e.set.Login.SigningKeys
	if len(doc.Keys) != 2 || len(doc.PublicCerts) != 2 || doc.PublicCert != doc.PublicCerts[0] || doc.PublicCert.KID != keys[0].KID {
		t.Fatalf("certs document = %s", raw)
	}
	for i, k := range keys {
		if doc.Keys[i]["kid"] != k.KID || doc.Keys[i]["alg"] != k.Alg || doc.Keys[i]["use"] != "sig" || doc.Keys[i]["d"] != nil {
			t.Errorf("keys[%d] = %v, want kid %s, alg %s, use sig, no private part", i, doc.Keys[i], k.KID, k.Alg)
		}
		block, _ := pem.Decode([]byte(doc.PublicCerts[i].Cert))
		if block == nil {
			t.Fatalf("public_certs[%d] is not PEM", i)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
			t.Errorf("public_certs[%d] is not self-signed: %v", i, err)
		}
		if kid, _ := policies.KeyID(cert.PublicKey); kid != k.KID || doc.PublicCerts[i].KID != k.KID {
			t.Errorf("public_certs[%d] holds kid %s, want %s", i, kid, k.KID)
		}
	}
	set, err := jwk.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.srv.Minter().AppToken(mint.Identity{Email: "a@example.com", IdP: "corp"}, e.set.Applications[0])
	if err != nil {
		t.Fatal(err)
	}
	iss := &policies.Issuer{Name: "published", Issuer: "https://auth.example.com", FileKeys: set, Leeway: time.Second}
	if _, reason := authz.NewVerifier(fileKeys{}, time.Now).Verify(context.Background(), tok,
		&policies.Application{Issuer: iss, Audience: "app-aud"}); reason != "" {
		t.Errorf("Verify(minted token, published keys) = %q, want valid", reason)
	}
}

// TestIdentityAndLogout: get-identity answers from the org session; logout
// ends it.
func TestIdentityAndLogout(t *testing.T) {
	m := startMock(t, nil)
	m.QueueUser(&mockoidc.MockUser{Subject: "u", Email: "bob@example.com", EmailVerified: true})
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	b := e.browser()
	if resp := b.team(pathIdentity); resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" ||
		strings.TrimSpace(body(t, resp)) != `{"error":"unauthenticated"}` {
		t.Errorf("get-identity without a session: status %d, want 401 JSON", resp.StatusCode)
	}
	b.signIn()
	resp := b.team(pathIdentity)
	checkHeaders(t, "get-identity", resp)
	var got map[string]any
	if err := json.Unmarshal([]byte(body(t, resp)), &got); err != nil || resp.StatusCode != 200 {
		t.Fatalf("get-identity: status %d, %v", resp.StatusCode, err)
	}
	want := map[string]any{
		"email": "bob@example.com", "groups": []any{}, "idp": map[string]any{"id": "corp", "type": "oidc"},
		"user_uuid": e.srv.Minter().Subject("bob@example.com"),
	}
	iat, _ := got["iat"].(float64)
	delete(got, "iat")
	if !reflect.DeepEqual(got, want) || time.Since(time.Unix(int64(iat), 0)) > time.Minute {
		t.Errorf("get-identity = %v (iat %v), want %v", got, iat, want)
	}

	resp = b.team(pathLogout)
	checkHeaders(t, "logout", resp)
	if resp.StatusCode != 200 || !strings.Contains(body(t, resp), "signed out") {
		t.Errorf("logout: status %d", resp.StatusCode)
	}
	if _, ok := b.cookies["__Host-CF_Authorization"]; ok {
		t.Error("logout left the org cookie")
	}
	if resp := b.team(pathIdentity); resp.StatusCode != 401 {
		t.Errorf("get-identity after logout: status %d, want 401", resp.StatusCode)
	}
}

// TestHTTPLoopbackTeamDomain: the demo's http team domain uses the plain
// cookie names without Secure, and the transfer keeps the origin's scheme.
func TestHTTPLoopbackTeamDomain(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{TeamDomain: "http://auth.localhost:9003", Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	b := e.browser()
	resp := b.team(loginPath("app.example.com", "app-aud", "/", "http://app.example.com:8080"))
	st := b.cookies["CF_Session"]
	if resp.StatusCode != 302 || st == nil || st.Secure || st.Path != "/" || b.cookies["__Host-CF_Session"] != nil {
		t.Fatalf("login over http: status %d, cookie %+v; want CF_Session, Path=/, not Secure", resp.StatusCode, st)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	if got := u.Query().Get("redirect_uri"); got != "http://auth.localhost:9003/cdn-cgi/access/callback" {
		t.Errorf("redirect_uri = %q", got)
	}
	// The provider sends the browser to the registered (http) callback.
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	presp := b.do(req)
	cb, _ := url.Parse(presp.Header.Get("Location"))
	resp = b.team(cb.RequestURI())
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasPrefix(loc, "http://app.example.com:8080/cdn-cgi/access/authorized?code=") {
		t.Errorf("transfer over http: status %d, Location %s; want http://app.example.com:8080/…", resp.StatusCode, loc)
	}
	if org := b.cookies["CF_Authorization"]; org == nil || org.Secure {
		t.Errorf("org cookie over http = %+v, want CF_Authorization without Secure", org)
	}
}

// TestReady: /readyz waits for discovery, which is retried until the
// provider answers; meanwhile a sign-in through it is a 502 page.
func TestReady(t *testing.T) {
	attempts := make(chan struct{}, 64)
	release := make(chan struct{})
	var issuer string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts <- struct{}{}
		select {
		case <-release:
		default:
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token",
			"jwks_uri": issuer + "/keys", "id_token_signing_alg_values_supported": []string{"RS256", "HS256", "none"},
		})
	}))
	t.Cleanup(front.Close)
	issuer = front.URL
	set := logintest.Load(t, logintest.Config{Providers: []logintest.Provider{{Name: "corp", Issuer: front.URL + "/", ClientID: "c"}}})
	changed := make(chan struct{}, 16)
	srv, err := New(set, Options{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond, OnChange: func() { changed <- struct{}{} }})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start(context.Background())
	t.Cleanup(srv.Close)
	for range 2 {
		select {
		case <-attempts:
		case <-time.After(10 * time.Second):
			t.Fatal("no discovery attempt")
		}
	}
	if err := srv.Ready(); err == nil || !strings.Contains(err.Error(), "corp") {
		t.Errorf("Ready() before discovery = %v, want an error naming corp", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	resp, err := http.Get(hs.URL + loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	text := body(t, resp)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(text, "not available") {
		t.Errorf("login before discovery: status %d, want the 502 page", resp.StatusCode)
	}
	close(release)
	waitReady(t, srv, changed)
	// Only asymmetric ID-token algorithms are kept from discovery.
	if rp := srv.providers[0].rp.Load(); rp == nil {
		t.Fatal("no relying party after discovery")
	}
	resp = getNoFollow(t, hs.URL+loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, front.URL+"/auth?") {
		t.Errorf("login after discovery: status %d, Location %s; want 302 to the authorization endpoint", resp.StatusCode, loc)
	}
}

// TestDiscoveryIssuer: the issuer discovery reports must be the configured
// one up to trailing slashes.
func TestDiscoveryIssuer(t *testing.T) {
	var reported string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realm/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"issuer": reported, "authorization_endpoint": "x", "token_endpoint": "y", "jwks_uri": "z"})
	}))
	t.Cleanup(hs.Close)
	tests := []struct {
		configured, reported string
		ok                   bool
	}{
		{hs.URL + "/realm", hs.URL + "/realm", true},
		{hs.URL + "/realm/", hs.URL + "/realm", true},
		{hs.URL + "/realm", hs.URL + "/realm/", true},
		{hs.URL + "/realm", "https://evil.example.com/realm", false},
		{hs.URL + "/realm", hs.URL + "/other", false},
	}
	for _, tt := range tests {
		reported = tt.reported
		p := &provider{cfg: &policies.Provider{Name: "p", Issuer: tt.configured, ClientID: "c"}}
		err := p.discover(context.Background(), hs.Client(), "https://auth.example.com/cdn-cgi/access/callback", time.Now)
		if (err == nil) != tt.ok {
			t.Errorf("discover(configured %s, reported %s) = %v, want ok %v", tt.configured, tt.reported, err, tt.ok)
		}
	}
}

// getNoFollow GETs url without following redirects.
func getNoFollow(t *testing.T, url string) *http.Response {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// TestOversizedOrgCookie: a huge session cookie is no session (and costs
// no verification): the login goes to the provider.
func TestOversizedOrgCookie(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	b := e.browser()
	b.cookies["__Host-CF_Authorization"] = &http.Cookie{Name: "__Host-CF_Authorization", Value: strings.Repeat("e", 32<<10)}
	resp := b.team(loginPath("app.example.com", "app-aud", "/", "https://app.example.com"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), m.AuthorizationEndpoint()) {
		t.Errorf("login with a 32 KiB org cookie: status %d, want 302 to the provider", resp.StatusCode)
	}
	if resp := b.team(pathIdentity); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("get-identity with a 32 KiB org cookie: status %d, want 401", resp.StatusCode)
	}
}

// TestMethodNotAllowed: only GET and HEAD; unknown paths are 404; both
// with the security headers.
func TestMethodNotAllowed(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	resp, err := http.Post(e.http.URL+pathCallback, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checkHeaders(t, "POST", resp)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST callback: status %d, Allow %q; want 405, GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp = e.browser().team("/cdn-cgi/access/nope")
	checkHeaders(t, "404", resp)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", resp.StatusCode)
	}
}

// TestCertsAsJWKSURL: another gate (or Cloudflare-style verifier) that
// points an issuer's jwks_url at this team domain's certs endpoint fetches
// the keys with the existing jwks.Manager and accepts the tokens minted
// here.
func TestCertsAsJWKSURL(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Algs: []string{"ES256", "RS256"}, Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	src := `issuers:
  - name: remote
    issuer: https://auth.example.com
    jwks_url: ` + e.http.URL + pathCerts + `
    login_url: https://auth.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [app.example.com]
    issuer: remote
    audience: app-aud
    policies:
      - {name: all, action: allow, include: [{everyone: true}]}
`
	remote, err := policies.Parse("remote.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	km := jwks.New(zap.NewNop())
	t.Cleanup(km.Close)
	km.Sync(context.Background(), remote)
	if missing := km.Ready(remote); missing != nil {
		t.Fatalf("jwks.Manager could not use the certs endpoint: %v", missing)
	}
	tok, _, err := e.srv.Minter().AppToken(mint.Identity{Email: "a@example.com", IdP: "corp"}, e.set.Applications[0])
	if err != nil {
		t.Fatal(err)
	}
	id, reason := authz.NewVerifier(km, time.Now).Verify(context.Background(), tok, remote.Applications[0])
	if reason != "" || id.Email != "a@example.com" {
		t.Errorf("Verify(minted token, keys fetched from certs) = %q, want valid", reason)
	}
}

// TestReloadKeepsDiscovery: a Server built for a reloaded Set keeps the
// discovery of providers configured as before, and discovers a changed
// one afresh.
func TestReloadKeepsDiscovery(t *testing.T) {
	m := startMock(t, nil)
	e := newEnv(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	same := logintest.Load(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	next, err := New(same, Options{Previous: e.srv})
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Ready(); err != nil {
		t.Errorf("Ready() of a reloaded, unchanged provider = %v, want nil without a fetch", err)
	}
	changed := logintest.Load(t, logintest.Config{Providers: []logintest.Provider{mockProvider("corp", m, "scopes: [openid, email]")}})
	next, err = New(changed, Options{Previous: e.srv})
	if err != nil {
		t.Fatal(err)
	}
	if next.Ready() == nil {
		t.Error("Ready() after the provider's scopes changed = nil, want a new discovery first")
	}
	other := logintest.Load(t, logintest.Config{TeamDomain: "https://sso.example.com", Providers: []logintest.Provider{mockProvider("corp", m, "")}})
	if next, err = New(other, Options{Previous: e.srv}); err != nil || next.Ready() == nil {
		t.Errorf("Ready() after the team domain (redirect URI) changed = nil, %v; want a new discovery first", err)
	}
}
