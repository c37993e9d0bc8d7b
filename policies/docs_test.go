package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocsQuoteMessages: docs/policy-file.md quotes the validation
// messages of the revision-2 rules verbatim. Each case produces one
// message from a real file, and the page must hold it exactly, so that
// wording changes in the code cannot leave the page behind.
func TestDocsQuoteMessages(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "policy-file.md"))
	if err != nil {
		t.Fatal(err)
	}
	// full has a certs/ca.pem without a certificate; empty has none.
	full, empty := t.TempDir(), t.TempDir()
	writeTestFile(t, filepath.Join(full, "certs", "ca.pem"), []byte("no certificate here\n"))
	app := func(cors, pol string) string {
		return issuerYAML + "applications:\n  - name: app\n    domains: [app.example.com]\n    issuer: team\n    audience: aud\n" +
			cors + "    policies:\n      - " + pol + "\n"
	}
	allow := "{name: p, action: allow, include: [{everyone: true}]}"
	tests := []struct {
		name string
		give string
		dir  string // the policy file's folder; full when ""
	}{
		{"jwks_url over http", strings.Replace(issuerYAML, "https://team.example.com/cdn-cgi/access/certs", "http://idp.example.com/certs", 1), ""},
		{"public suffix", app("    cors: {allow_origins: [\"https://*.github.io\"]}\n", allow), ""},
		{"default port", app("    cors: {allow_origins: [\"https://a.example.com:443\"]}\n", allow), ""},
		{"identity in bypass", app("", "{name: p, action: bypass, include: [{everyone: true}], exclude: [{email: [m@example.com]}]}"), ""},
		{"non-ASCII in exclude", app("", "{name: p, action: allow, include: [{everyone: true}], exclude: [{email: [ÉVE@example.com]}]}"), ""},
		{"certificate without CAs", app("", "{name: p, action: allow, include: [{valid_certificate: true}]}"), ""},
		{"non-ASCII domain", strings.Replace(app("", allow), "[app.example.com]", "[\"\\u212Aate.example.com\"]", 1), ""},
		{"empty CA list", "client_certificate_authorities: []\n", ""},
		{"CA file without certificate", "client_certificate_authorities: [certs/ca.pem]\n", ""},
		{"CA file missing", "client_certificate_authorities: [certs/ca.pem]\n", empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = full
			}
			_, err := Parse(filepath.Join(dir, "p.yaml"), []byte(tt.give))
			list, ok := err.(ErrorList)
			if !ok || len(list) != 1 {
				t.Fatalf("Parse error = %v, want exactly one problem", err)
			}
			msg := strings.ReplaceAll(list[0].Msg, dir+string(filepath.Separator), "dir/")
			if !strings.Contains(string(doc), "`"+msg+"`") {
				t.Errorf("docs/policy-file.md does not quote %q", msg)
			}
		})
	}
}
