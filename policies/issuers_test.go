package policies

import (
	"strings"
	"testing"
)

// TestJWKSURLOverHTTP: keys fetched in clear text let anyone on the path
// forge every token, so a jwks_url over http is an error unless it stays
// on this machine (127.0.0.0/8, ::1, localhost).
func TestJWKSURLOverHTTP(t *testing.T) {
	tests := []struct {
		give  string
		valid bool
	}{
		{"https://team.example.com/cdn-cgi/access/certs", true},
		{"HTTPS://team.example.com/certs", true},
		{"https://10.0.0.1/certs", true},
		{"http://127.0.0.1:8080/certs", true},
		{"http://127.9.8.7/certs", true},
		{"http://[::1]:9000/certs", true},
		{"http://[::ffff:127.0.0.1]/certs", true},
		{"http://localhost:8080/certs", true},
		{"http://LOCALHOST/certs", true},
		{"HTTP://127.0.0.1/certs", true},
		{"http://team.example.com/cdn-cgi/access/certs", false},
		{"http://idp.internal:8080/keys", false},
		{"http://10.0.0.1/certs", false},
		{"http://128.0.0.1/certs", false},
		{"http://[::2]/certs", false},
		{"http://[fe80::1%25lo]/certs", false},
		{"http://localhost.example.com/certs", false},
		{"http://localhost./certs", false},
		{"http://127.0.0.1.nip.io/certs", false},
		{"http://0x7f.1/certs", false},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			src := strings.Replace(issuerYAML, "https://team.example.com/cdn-cgi/access/certs", tt.give, 1)
			_, err := Parse("p.yaml", []byte(src))
			want := `p.yaml:4:15: jwks_url "` + tt.give + `" uses http: keys fetched in clear text let anyone on the path forge every token (use https; http only for a loopback address or localhost)`
			switch {
			case tt.valid && err != nil:
				t.Errorf("Parse: %v", err)
			case !tt.valid && (err == nil || err.Error() != want):
				t.Errorf("Parse error =\n%v\nwant\n%s", err, want)
			}
		})
	}
}
