package policies

import (
	"fmt"
	"strings"
	"testing"
)

// issuerYAML is a minimal valid issuers section for generated files.
const issuerYAML = `issuers:
  - name: team
    issuer: https://team.example.com
    jwks_url: https://team.example.com/cdn-cgi/access/certs
    login_url: https://team.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
`

// appYAML returns one application entry named name covering domains.
func appYAML(name string, domains ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %q\n    issuer: team\n    audience: aud-%s\n    domains:\n", name, name)
	for _, d := range domains {
		fmt.Fprintf(&b, "      - %q\n", d)
	}
	b.WriteString("    policies:\n      - name: all\n        action: allow\n        include: [{everyone: true}]\n")
	return b.String()
}

// mustParse parses a generated policy file or fails the test.
func mustParse(tb testing.TB, src string) *Set {
	tb.Helper()
	s, err := Parse("test.yaml", []byte(src))
	if err != nil {
		tb.Fatalf("Parse: %v\n%s", err, src)
	}
	return s
}

// appsFile builds a policy file whose applications are given as name →
// domains pairs, in order.
func appsFile(apps ...[]string) string {
	var b strings.Builder
	b.WriteString(issuerYAML)
	b.WriteString("applications:\n")
	for _, a := range apps {
		b.WriteString(appYAML(a[0], a[1:]...))
	}
	return b.String()
}
