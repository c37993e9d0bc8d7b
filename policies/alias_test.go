package policies

import (
	"errors"
	"strings"
	"testing"
)

// TestParseAliasBomb: a small file whose aliases expand to a huge tree
// ("billion laughs") must be refused quickly, not walked.
func TestParseAliasBomb(t *testing.T) {
	const n = 200 // n³ = 8,000,000 selectors once expanded
	var b strings.Builder
	b.WriteString(issuerYAML)
	b.WriteString("applications:\n  - &app\n    name: a\n    domains: [a.example.com]\n    issuer: team\n    audience: x\n    policies:\n")
	b.WriteString("      - &pol\n        name: p\n        action: allow\n        include:\n          - &sel {everyone: true}\n")
	for range n {
		b.WriteString("          - *sel\n")
	}
	for range n {
		b.WriteString("      - *pol\n")
	}
	for range n {
		b.WriteString("  - *app\n")
	}
	_, err := Parse("bomb.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "too large once aliases are expanded") {
		t.Fatalf("Parse(alias bomb) error = %v, want too large", err)
	}
}

// TestParseErrorCap: a file with thousands of problems reports the first
// maxErrors and says there are more.
func TestParseErrorCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("trusted_proxies:\n")
	for range maxErrors + 100 {
		b.WriteString("  - not-a-cidr\n")
	}
	_, err := Parse("many.yaml", []byte(b.String()))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error = %v, want an ErrorList", err)
	}
	if len(list) != maxErrors+1 {
		t.Errorf("len(errors) = %d, want %d", len(list), maxErrors+1)
	}
	if last := list[len(list)-1].Msg; !strings.Contains(last, "more than") {
		t.Errorf("last error = %q, want the too-many note", last)
	}
}
