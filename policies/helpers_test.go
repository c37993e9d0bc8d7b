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

// dump renders policies or selectors readably for failure messages.
func dump(v any) string {
	switch v := v.(type) {
	case []*Policy:
		var parts []string
		for _, p := range v {
			parts = append(parts, fmt.Sprintf("{%s %d paths=%q inc=%s req=%s exc=%s}", p.Name, p.Action, p.Paths,
				dump(p.Include), dump(p.Require), dump(p.Exclude)))
		}
		return "[" + strings.Join(parts, " ") + "]"
	case []*Selector:
		var parts []string
		for _, s := range v {
			parts = append(parts, fmt.Sprintf("%+v", *s))
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	return fmt.Sprint(v)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
