// Package logintest writes real sign-in configurations for tests: keys
// generated in the test, a cookie secret and a policy file in a temporary
// folder, loaded through policies.Load as serve would.
package logintest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

// Provider is one login.providers entry.
type Provider struct {
	Name, Issuer, ClientID, ClientSecret string
	Extra                                string // more YAML keys, e.g. "require_verified_email: false"
}

// Config describes the file to write. Zero fields take the defaults noted.
type Config struct {
	TeamDomain string   // default https://auth.example.com
	Algs       []string // signing keys, default [ES256]
	Providers  []Provider
	// Applications is the YAML of the `applications` list items; default
	// one application "app" on app.example.com with audience "app-aud".
	Applications string
	// Session is login.session_duration ("" for the default).
	Session string
}

// DefaultApps are two applications with issuer: login: "app"
// (app.example.com, audience app-aud, a CORS origin) and "other"
// (other.example.com, audience other-aud).
const DefaultApps = `  - name: app
    domains: [app.example.com]
    issuer: login
    audience: app-aud
    cors:
      allow_origins: [https://web.example.com, "https://*.example.org"]
    policies:
      - {name: all, action: allow, include: [{everyone: true}]}
  - name: other
    domains: [other.example.com]
    issuer: login
    audience: other-aud
    session_duration: 1h
    policies:
      - {name: all, action: allow, include: [{everyone: true}]}
`

// Load writes the configuration into a temporary folder and loads it.
func Load(t testing.TB, c Config) *policies.Set {
	t.Helper()
	dir := t.TempDir()
	if c.TeamDomain == "" {
		c.TeamDomain = "https://auth.example.com"
	}
	if len(c.Algs) == 0 {
		c.Algs = []string{"ES256"}
	}
	if len(c.Providers) == 0 {
		c.Providers = []Provider{{Name: "corp", Issuer: "https://idp.example.com", ClientID: "accessgate"}}
	}
	if c.Applications == "" {
		c.Applications = DefaultApps
	}
	var b strings.Builder
	fmt.Fprintf(&b, "login:\n  team_domain: %q\n  signing_key_files:\n", c.TeamDomain)
	for i, alg := range c.Algs {
		name := fmt.Sprintf("key%d.pem", i)
		WriteKey(t, filepath.Join(dir, name), alg)
		fmt.Fprintf(&b, "    - %s\n", name)
	}
	write(t, filepath.Join(dir, "cookie.key"), "0123456789abcdef0123456789abcdef-test\n")
	b.WriteString("  cookie_secret_file: cookie.key\n")
	if c.Session != "" {
		fmt.Fprintf(&b, "  session_duration: %s\n", c.Session)
	}
	b.WriteString("  providers:\n")
	for i, p := range c.Providers {
		fmt.Fprintf(&b, "    - name: %q\n      type: oidc\n      issuer: %q\n      client_id: %q\n", p.Name, p.Issuer, p.ClientID)
		if p.ClientSecret != "" {
			f := fmt.Sprintf("provider%d.secret", i)
			write(t, filepath.Join(dir, f), p.ClientSecret+"\n")
			fmt.Fprintf(&b, "      client_secret_file: %q\n", f)
		}
		if p.Extra != "" {
			fmt.Fprintf(&b, "      %s\n", p.Extra)
		}
	}
	b.WriteString("applications:\n" + c.Applications)
	file := filepath.Join(dir, "policy.yaml")
	write(t, file, b.String())
	s, err := policies.Load(file)
	if err != nil {
		t.Fatalf("load generated policy file: %v\n%s", err, b.String())
	}
	return s
}

// WriteKey writes a new PKCS #8 PEM key for alg (ES256 or RS256).
func WriteKey(t testing.TB, path, alg string) crypto.Signer {
	t.Helper()
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("unknown alg %q", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	return key
}

func write(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
