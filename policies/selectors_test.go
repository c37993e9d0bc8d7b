package policies

import (
	"reflect"
	"testing"
)

// policyFile wraps one application's policies (YAML list items, indented
// by six spaces) into a complete policy file.
func policyFile(policies string) string {
	return issuerYAML + `applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: aud
    policies:
` + policies
}

// TestSelectorValuesFoldASCIIOnly: email, email_domain and country values
// are folded with LowerASCII, so that a Kelvin sign or an É keeps its
// bytes instead of becoming another user's address.
func TestSelectorValuesFoldASCIIOnly(t *testing.T) {
	tests := []struct {
		name string
		give string // one selector, flow style
		want map[string]struct{}
	}{
		{"email upper ASCII", `{email: [Alice@Example.COM]}`, set("alice@example.com")},
		{"email Kelvin sign stays", "{email: [\"\\u212AATE@EXAMPLE.com\"]}", set("\u212Aate@example.com")},
		{"email É stays", `{email: [ÉVE@X.org]}`, set("Éve@x.org")},
		{"email_domain upper", `{email_domain: [Example.COM]}`, set("example.com")},
		{"country upper", `{country: [DE, us]}`, set("de", "us")},
		{"group exact", `{group: [Admins]}`, set("Admins")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, policyFile("      - {name: p, action: allow, include: ["+tt.give+"]}\n"))
			got := s.Applications[0].PostAuth[0].Include[0].Set
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Set = %+q, want %+q", keys(got), keys(tt.want))
			}
		})
	}
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
