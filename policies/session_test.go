package policies

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSelectorRules: each compiled selector names its place in its policy,
// by list and index in the file, the form the audit log prints.
func TestSelectorRules(t *testing.T) {
	src := issuerYAML + `service_tokens:
  - {name: bot, client_id: id.access, client_secret_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies:
      - name: svc
        action: service_auth
        include: [{any_service_token: true}, {service_token: [bot]}]
      - name: staff
        action: allow
        include: [{email: [a@example.com]}, {email_domain: [example.com]}]
        require: [{everyone: true}, {ip: [10.0.0.0/8]}]
        exclude: [{email: [m@example.com]}]
`
	set := mustParse(t, src)
	app := set.Applications[0]
	tests := []struct {
		give *Selector
		want string
	}{
		{app.PreAuth[0].Include[0], "include[0].any_service_token"},
		{app.PreAuth[0].Include[1], "include[1].service_token"},
		{app.PostAuth[0].Include[0], "include[0].email"},
		{app.PostAuth[0].Include[1], "include[1].email_domain"},
		{app.PostAuth[0].Require[0], "require[0].everyone"},
		{app.PostAuth[0].Require[1], "require[1].ip"},
		{app.PostAuth[0].Exclude[0], "exclude[0].email"},
	}
	for _, tt := range tests {
		if tt.give.Rule != tt.want {
			t.Errorf("Rule = %q, want %q", tt.give.Rule, tt.want)
		}
	}
}

func TestApplicationBindingLookups(t *testing.T) {
	src := "require_application_binding: true\n" + appsFile(
		[]string{"dashboard", "app.example.com", "*.app.example.com"},
		[]string{"api", "api.example.com/v1"},
	)
	set := mustParse(t, src)
	if !set.RequireApplicationBinding {
		t.Error("RequireApplicationBinding = false, want true")
	}
	if set.ApplicationNamed("api") == nil || set.ApplicationNamed("api").Name != "api" {
		t.Errorf("ApplicationNamed(api) = %v", set.ApplicationNamed("api"))
	}
	for _, name := range []string{"", "API", "missing"} {
		if a := set.ApplicationNamed(name); a != nil {
			t.Errorf("ApplicationNamed(%q) = %s, want nil", name, a.Name)
		}
	}
	tests := []struct {
		app, host string
		want      bool
	}{
		{"dashboard", "app.example.com", true},
		{"dashboard", "a.app.example.com", true},
		{"dashboard", "a.b.app.example.com", false}, // a wildcard covers one label
		{"dashboard", "api.example.com", false},
		{"dashboard", ".app.example.com", false},
		{"api", "api.example.com", true}, // path prefixes aside
		{"api", "app.example.com", false},
	}
	for _, tt := range tests {
		if got := set.ApplicationNamed(tt.app).CoversHost(tt.host); got != tt.want {
			t.Errorf("%s.CoversHost(%q) = %v, want %v", tt.app, tt.host, got, tt.want)
		}
	}
	if mustParse(t, appsFile([]string{"a", "a.example.com"})).RequireApplicationBinding {
		t.Error("RequireApplicationBinding defaults to true, want false")
	}
	if _, err := Parse("t.yaml", []byte("require_application_binding: yes\n")); err == nil || !strings.Contains(err.Error(), "require_application_binding must be true or false") {
		t.Errorf("require_application_binding: yes: error %v, want a type error", err)
	}
}

func TestOriginListed(t *testing.T) {
	src := issuerYAML + `applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    cors: {allow_origins: ["https://www.example.com", "https://*.example.com", "null"]}
    policies: [{name: p, action: allow, include: [{everyone: true}]}]
  - name: all
    domains: [all.example.com]
    issuer: team
    audience: aud
    cors: {allow_all_origins: true}
    policies: [{name: p, action: allow, include: [{everyone: true}]}]
`
	set := mustParse(t, src)
	c, all := set.Applications[0].CORS, set.Applications[1].CORS
	tests := []struct {
		c    *CORS
		give string
		want bool
	}{
		{c, "https://www.example.com", true},
		{c, "HTTPS://WWW.EXAMPLE.COM", true},
		{c, "https://other.example.com", false}, // only a wildcard covers it
		{c, "null", false},                      // listed, but never for a socket
		{c, "https://www.example.com/", false},
		{all, "https://www.example.com", false},
		{nil, "https://www.example.com", false},
	}
	for _, tt := range tests {
		if got := tt.c.OriginListed(tt.give); got != tt.want {
			t.Errorf("OriginListed(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if !c.OriginAllowed("https://other.example.com") {
		t.Error("the wildcard no longer allows other.example.com for CORS")
	}
}

func TestRevocations(t *testing.T) {
	dir := t.TempDir()
	rev := filepath.Join(dir, "revoked.yaml")
	writeTestFile(t, rev, []byte(`revoked:
  - {email: Alice@Example.com, before: 2026-12-08T10:00:00Z}
  - {email: alice@example.com, before: 2026-12-01T10:00:00Z}
  - {sub: "7335d417", before: "2026-12-08T10:00:00+01:00"}
`))
	set, err := Parse(filepath.Join(dir, "policy.yaml"), []byte("revocations_file: revoked.yaml\n"+appsFile([]string{"a", "a.example.com"})))
	if err != nil {
		t.Fatal(err)
	}
	if set.RevocationsFile != rev {
		t.Errorf("RevocationsFile = %q, want %q", set.RevocationsFile, rev)
	}
	r := set.Revocations
	if r.Len() != 3 {
		t.Fatalf("Len = %d, want 3", r.Len())
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name       string
		email, sub string
		iat        time.Time
		want       bool
	}{
		{"before the latest entry", "alice@example.com", "", at("2026-12-08T09:00:00Z"), true},
		{"at before", "alice@example.com", "", at("2026-12-08T10:00:00Z"), true},
		{"a second after", "alice@example.com", "", at("2026-12-08T10:00:01Z"), false},
		{"no iat", "alice@example.com", "", time.Time{}, true},
		{"other email", "bob@example.com", "", time.Time{}, false},
		{"sub, offset time", "", "7335d417", at("2026-12-08T09:00:00Z"), true},
		{"sub, after", "", "7335d417", at("2026-12-08T09:00:01Z"), false},
		{"sub compares exactly", "", "7335D417", time.Time{}, false},
		{"email in sub", "", "alice@example.com", time.Time{}, false},
	}
	for _, tt := range tests {
		if got := r.Revoked(tt.email, tt.sub, tt.iat); got != tt.want {
			t.Errorf("%s: Revoked(%q, %q, %v) = %v, want %v", tt.name, tt.email, tt.sub, tt.iat, got, tt.want)
		}
	}
	var none *Revocations
	if none.Revoked("alice@example.com", "x", time.Time{}) || none.Len() != 0 {
		t.Error("a nil Revocations revokes something")
	}

	// Round trip through FormatRevocations.
	out, err := FormatRevocations(r.Entries)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseRevocations("again.yaml", out)
	if err != nil {
		t.Fatalf("ParseRevocations(FormatRevocations): %v\n%s", err, out)
	}
	if len(back.Entries) != len(r.Entries) {
		t.Fatalf("round trip: %d entries, want %d\n%s", len(back.Entries), len(r.Entries), out)
	}
	for i := range r.Entries {
		a, b := r.Entries[i], back.Entries[i]
		if a.Email != b.Email || a.Sub != b.Sub || !a.Before.Equal(b.Before) {
			t.Errorf("round trip entry %d = %+v, want %+v", i, b, a)
		}
	}
	if !back.Newer(r) || r.Newer(back) {
		t.Error("Newer does not order two reads")
	}
}

func TestRevocationsBadFiles(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"empty", "", "r.yaml:1:1: empty revocations file (write `revoked: []` for none)"},
		{"no list", "other: 1\n", `r.yaml:1:1: unknown key "other" in revocations file`},
		{"not a list", "revoked: {}\n", "r.yaml:1:10: revoked must be a list, not a mapping"},
		{"syntax", "revoked: [\n", "r.yaml:2:1: yaml syntax error"},
	}
	for _, tt := range tests {
		_, err := ParseRevocations("r.yaml", []byte(tt.give))
		var list ErrorList
		if !errors.As(err, &list) || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%s: error = %v, want %s", tt.name, err, tt.want)
		}
	}
	if r, err := ParseRevocations("r.yaml", []byte("revoked: []\n")); err != nil || r.Len() != 0 {
		t.Errorf("revoked: []: %v, %v; want no entries", r, err)
	}
	// A missing file at load: FILE: message, no position.
	_, err := LoadRevocations(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || strings.Count(err.Error(), ":") != 2 || !strings.HasSuffix(err.Error(), "no such file or directory") {
		t.Errorf("LoadRevocations(missing) = %v, want FILE: message", err)
	}
	if _, err := os.Stat("testdata/invalid/revocations/absent.yaml"); err == nil {
		t.Error("testdata/invalid/revocations/absent.yaml must not exist")
	}
}

// withoutRules copies policies with every selector's Rule cleared, for
// tests written before rules existed (TestSelectorRules checks them).
func withoutRules(pols []*Policy) []*Policy {
	strip := func(sels []*Selector) []*Selector {
		if sels == nil {
			return nil
		}
		out := make([]*Selector, len(sels))
		for i, s := range sels {
			c := *s
			c.Rule = ""
			out[i] = &c
		}
		return out
	}
	out := make([]*Policy, len(pols))
	for i, p := range pols {
		c := *p
		c.Include, c.Require, c.Exclude = strip(p.Include), strip(p.Require), strip(p.Exclude)
		out[i] = &c
	}
	return out
}
