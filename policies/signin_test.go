package policies

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLoginSection loads a file with a login section and checks every
// compiled field against what the files on disk hold.
func TestLoginSection(t *testing.T) {
	file := filepath.Join("testdata", "valid", "login.yaml")
	s := mustLoad(t, file)
	l := s.Login
	if l == nil {
		t.Fatal("Load(login.yaml): Set.Login = nil")
	}
	if l.TeamDomain != "https://auth.example.com" || !l.Secure {
		t.Errorf("TeamDomain, Secure = %q, %v; want the URL without its trailing /, true", l.TeamDomain, l.Secure)
	}
	if l.SessionDuration != 24*time.Hour {
		t.Errorf("SessionDuration = %v, want the 24h default", l.SessionDuration)
	}
	if string(l.CookieSecret) != "abcdefghijklmnopqrstuvwxyz0123456789" {
		t.Errorf("CookieSecret = %q, want the file without its trailing newline", l.CookieSecret)
	}

	// Keys: in file order, the kid recomputed independently here.
	if len(l.SigningKeys) != 2 {
		t.Fatalf("SigningKeys: %d, want 2", len(l.SigningKeys))
	}
	for i, want := range []struct {
		alg string
		typ string
	}{{"ES256", "ec"}, {"RS256", "rsa"}} {
		k := l.SigningKeys[i]
		if k.Alg != want.alg {
			t.Errorf("SigningKeys[%d].Alg = %q, want %q", i, k.Alg, want.alg)
		}
		switch k.Private.(type) {
		case *ecdsa.PrivateKey:
			if want.typ != "ec" {
				t.Errorf("SigningKeys[%d] is EC, want %s", i, want.typ)
			}
		case *rsa.PrivateKey:
			if want.typ != "rsa" {
				t.Errorf("SigningKeys[%d] is RSA, want %s", i, want.typ)
			}
		}
		der, err := x509.MarshalPKIXPublicKey(k.Private.Public())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(der)
		if k.KID != hex.EncodeToString(sum[:]) || len(k.KID) != 64 {
			t.Errorf("SigningKeys[%d].KID = %q, want hex SHA-256 of the SPKI DER", i, k.KID)
		}
		if kid, _ := k.JWK.Get("kid"); kid != k.KID {
			t.Errorf("SigningKeys[%d].JWK kid = %v, want %q", i, kid, k.KID)
		}
		if _, ok := k.JWK.Get("d"); ok {
			t.Errorf("SigningKeys[%d].JWK holds a private part", i)
		}
	}

	// The implicit issuer: in Issuers, with the public halves and the
	// team domain's login URL.
	iss := l.Issuer
	if iss == nil || iss.Name != LoginIssuerName || iss.Issuer != l.TeamDomain {
		t.Fatalf("Login.Issuer = %+v, want issuer %q named login", iss, l.TeamDomain)
	}
	if !slices.Contains(s.Issuers, iss) {
		t.Error("the login issuer is not in Set.Issuers")
	}
	if iss.FileKeys == nil || iss.FileKeys.Len() != 2 {
		t.Errorf("login issuer FileKeys = %v, want the 2 public keys", iss.FileKeys)
	}
	got := iss.LoginURL.Render("app.example.com", "dashboard-aud", "https://app.example.com/x?y=1")
	want := "https://auth.example.com/cdn-cgi/access/login/app.example.com?kid=dashboard-aud&redirect_url=https%3A%2F%2Fapp.example.com%2Fx%3Fy%3D1"
	if got != want {
		t.Errorf("login issuer LoginURL = %q, want %q", got, want)
	}

	// Providers and their defaults.
	corp, dev := l.Provider("corp"), l.Provider("dev")
	if corp == nil || dev == nil || l.Provider("nope") != nil {
		t.Fatalf("Provider(corp, dev, nope) = %v, %v, %v", corp, dev, l.Provider("nope"))
	}
	if corp.ClientSecret != "corp-secret" || !slices.Equal(corp.Scopes, []string{"openid", "email", "profile"}) ||
		!corp.RequireVerifiedEmail || corp.GroupsClaim != "groups" || corp.Type != "oidc" {
		t.Errorf("corp = %+v, want secret without newline, default scopes, verified email required", corp)
	}
	if corp.DiscoveryURL() != "https://idp.example.com/.well-known/openid-configuration" {
		t.Errorf("corp.DiscoveryURL() = %q", corp.DiscoveryURL())
	}
	if dev.ClientSecret != "" || dev.Type != "oidc" || dev.RequireVerifiedEmail || !slices.Equal(dev.Scopes, []string{"openid", "email", "groups"}) {
		t.Errorf("dev = %+v, want a public client with its own scopes", dev)
	}

	// Per-application settings.
	dash, api := s.Applications[0], s.Applications[1]
	if dash.Issuer != iss || api.Issuer != iss {
		t.Error("applications with issuer: login do not point at the login issuer")
	}
	if a := dash.Login; a == nil || a.SessionDuration != 8*time.Hour || !a.SameSiteNone || a.HTTPOnly ||
		!a.ProviderAllowed("corp") || a.ProviderAllowed("dev") {
		t.Errorf("dashboard.Login = %+v, want 8h, none, not http_only, corp only", a)
	}
	if api.Login != nil || !api.Login.ProviderAllowed("dev") {
		t.Errorf("api.Login = %+v, want nil (defaults: every provider)", api.Login)
	}
	if d := l.SessionDurationFor(dash); d != 8*time.Hour {
		t.Errorf("SessionDurationFor(dashboard) = %v, want its own 8h", d)
	}
	if d := l.SessionDurationFor(api); d != 24*time.Hour {
		t.Errorf("SessionDurationFor(api) = %v, want the login section's 24h", d)
	}
	if !dash.CORS.ExplicitOrigin("https://www.example.com") || dash.CORS.ExplicitOrigin("https://a.example.org") {
		t.Error("ExplicitOrigin: want only the listed origin, never one a wildcard covers")
	}
}

// TestLoginApplication finds the login application for a host and
// audience, paths aside, and nothing else.
func TestLoginApplication(t *testing.T) {
	s := mustLoad(t, filepath.Join("testdata", "valid", "login.yaml"))
	tests := []struct {
		host, aud string
		want      string
	}{
		{"app.example.com", "dashboard-aud", "dashboard"},
		{"x.apps.example.com", "dashboard-aud", "dashboard"}, // domain has a path: still covered
		{"a.b.apps.example.com", "dashboard-aud", ""},        // a wildcard covers one label
		{"apps.example.com", "dashboard-aud", ""},
		{"app.example.com", "api-aud", ""}, // audience of another application
		{"api.example.com", "api-aud", "api"},
		{"api.example.com", "", ""},
		{"evil.com", "dashboard-aud", ""},
	}
	for _, tt := range tests {
		got := ""
		if a := s.LoginApplication(tt.host, tt.aud); a != nil {
			got = a.Name
		}
		if got != tt.want {
			t.Errorf("LoginApplication(%q, %q) = %q, want %q", tt.host, tt.aud, got, tt.want)
		}
	}
	if mustParse(t, appsFile([]string{"a", "app.example.com"})).LoginApplication("app.example.com", "aud-a") != nil {
		t.Error("LoginApplication without a login section: want nil")
	}
}

func TestParseTeamDomain(t *testing.T) {
	tests := []struct {
		give       string
		want       string
		wantSecure bool
		wantErr    string
	}{
		{"https://auth.example.com", "https://auth.example.com", true, ""},
		{"https://auth.example.com///", "https://auth.example.com", true, ""},
		{"https://auth.example.com:8443/", "https://auth.example.com:8443", true, ""},
		{"http://localhost:9003", "http://localhost:9003", false, ""},
		{"http://auth.localhost:9003", "http://auth.localhost:9003", false, ""},
		{"http://127.0.0.1:9003", "http://127.0.0.1:9003", false, ""},
		{"http://[::1]:9003", "http://[::1]:9003", false, ""},
		{"http://auth.example.com", "", false, "http is allowed only"},
		{"http://10.0.0.1", "", false, "http is allowed only"},
		{"http://localhost.evil.com", "", false, "http is allowed only"},
		{"https://auth.example.com/sso", "", false, "no path"},
		{"https://auth.example.com?x=1", "", false, "no path"},
		{"https://user@auth.example.com", "", false, "no user info"},
		{"auth.example.com", "", false, "want an absolute https URL"},
		{"ftp://auth.example.com", "", false, "want an absolute https URL"},
		{"https:auth.example.com", "", false, "want an absolute https URL"},
	}
	for _, tt := range tests {
		got, secure, err := parseTeamDomain(tt.give)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseTeamDomain(%q) error = %v, want %q", tt.give, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want || secure != tt.wantSecure {
			t.Errorf("parseTeamDomain(%q) = %q, %v, %v; want %q, %v", tt.give, got, secure, err, tt.want, tt.wantSecure)
		}
	}
}

func TestCheckProviderIssuer(t *testing.T) {
	tests := []struct {
		give   string
		wantOK bool
	}{
		{"https://idp.example.com", true},
		{"https://idp.example.com/realms/x/", true},
		{"http://localhost:5556/dex", true},
		{"http://127.0.0.2:5556", true},
		{"http://[::1]:5556", true},
		{"http://idp.example.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"https://idp.example.com?x", false},
		{"https://u:p@idp.example.com", false},
		{"idp.example.com", false},
	}
	for _, tt := range tests {
		if err := checkProviderIssuer(tt.give); (err == nil) != tt.wantOK {
			t.Errorf("checkProviderIssuer(%q) = %v, want ok %v", tt.give, err, tt.wantOK)
		}
	}
}

// TestLoginSecretNewline: exactly one trailing newline (LF or CRLF) is
// removed from a secret file, nothing else.
func TestLoginSecretNewline(t *testing.T) {
	dir := t.TempDir()
	p := &parser{dir: dir}
	tests := []struct{ give, want string }{
		{"secret\n", "secret"},
		{"secret\r\n", "secret"},
		{"secret\n\n", "secret\n"},
		{"secret", "secret"},
		{" secret ", " secret "},
	}
	for _, tt := range tests {
		if err := os.WriteFile(filepath.Join(dir, "s"), []byte(tt.give), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := p.readSecret("s")
		if err != nil || string(got) != tt.want {
			t.Errorf("readSecret(%q) = %q, %v; want %q", tt.give, got, err, tt.want)
		}
	}
}

// TestLoginHTTPTeamDomain: an http team domain on loopback is valid and
// marks the section as not Secure (plain cookie names, the demo).
func TestLoginHTTPTeamDomain(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "valid", "login.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("testdata", "valid", "login-http.yaml") // only for relative paths
	s, err := Parse(file, []byte(strings.Replace(string(src), "https://auth.example.com/", "http://auth.localhost:9003", 1)))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Login.Secure || s.Login.TeamDomain != "http://auth.localhost:9003" {
		t.Errorf("Login = %q secure %v; want http://auth.localhost:9003, not secure", s.Login.TeamDomain, s.Login.Secure)
	}
}
