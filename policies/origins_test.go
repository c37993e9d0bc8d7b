package policies

import (
	"strings"
	"testing"
)

// corsOf compiles an application with the given cors block (YAML flow
// mapping body) and returns its CORS.
func corsOf(tb testing.TB, cors string) *CORS {
	tb.Helper()
	src := issuerYAML + "applications:\n" + appYAML("app", "app.example.com") + "    cors: {" + cors + "}\n"
	return mustParse(tb, src).Applications[0].CORS
}

func TestOriginAllowed(t *testing.T) {
	list := corsOf(t, `allow_origins: [https://www.example.com, "https://*.example.com", "http://localhost:3000", "HTTPS://Upper.Example.NET", "https://*.wild.test:8443", "http://[::1]:8080"]`)
	withNull := corsOf(t, `allow_origins: ["null", https://a.example.org]`)
	all := corsOf(t, `allow_all_origins: true`)
	allNull := corsOf(t, `allow_all_origins: true, allow_origins: ["null"]`)
	tests := []struct {
		name string
		cors *CORS
		give string
		want bool
	}{
		{"exact", list, "https://www.example.com", true},
		{"exact upper-case scheme and host", list, "HTTPS://WWW.EXAMPLE.COM", true},
		{"configured upper-case", list, "https://upper.example.net", true},
		{"scheme differs", list, "http://www.example.com", false},
		{"port differs", list, "https://www.example.com:8443", false},
		{"exact with port", list, "http://localhost:3000", true},
		{"exact port missing", list, "http://localhost", false},
		{"wildcard one label", list, "https://a.example.com", true},
		{"wildcard many labels", list, "https://a.b.c.example.com", true},
		{"wildcard never the apex", list, "https://example.com", false},
		{"wildcard never a look-alike", list, "https://evil-example.com", false},
		{"wildcard never a look-alike subdomain", list, "https://a.evil-example.com", false},
		{"wildcard over https only", list, "http://a.example.com", false},
		{"wildcard with other port", list, "https://a.example.com:444", false},
		{"wildcard empty label", list, "https://.example.com", false},
		{"wildcard double dot", list, "https://a..example.com", false},
		{"wildcard port required", list, "https://a.wild.test", false},
		{"wildcard port matches", list, "https://a.wild.test:8443", true},
		{"suffix trick", list, "https://www.example.com.evil.org", false},
		{"path not allowed", list, "https://www.example.com/", false},
		{"userinfo not allowed", list, "https://x@www.example.com", false},
		{"ipv6 exact", list, "http://[::1]:8080", true},
		{"empty", list, "", false},
		{"null not listed", list, "null", false},
		{"null listed", withNull, "null", true},
		{"null listed, other", withNull, "https://a.example.org", true},
		{"allow all", all, "https://anything.example", true},
		{"allow all with port", all, "http://10.0.0.1:8080", true},
		{"allow all refuses null", all, "null", false},
		{"allow all refuses garbage", all, "not an origin", false},
		{"allow all refuses no host", all, "https://", false},
		{"allow all refuses bad port", all, "https://a.example:99999", false},
		{"allow all refuses path", all, "https://a.example/x", false},
		{"allow all with explicit null", allNull, "null", true},
		// Unicode case mapping would turn the Kelvin sign into "k": only
		// A-Z fold, so it stays an invalid host character.
		{"allow all refuses Kelvin sign", all, "https://\u212Aate.example.com", false},
		{"wildcard refuses Kelvin sign", list, "https://\u212A.example.com", false},
		{"nil cors", nil, "https://www.example.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cors.OriginAllowed(tt.give); got != tt.want {
				t.Errorf("OriginAllowed(%q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}

func TestOriginAllowedAllocs(t *testing.T) {
	c := corsOf(t, `allow_origins: [https://www.example.com, "https://*.example.com"]`)
	allocs := testing.AllocsPerRun(100, func() {
		c.OriginAllowed("https://www.example.com")
		c.OriginAllowed("https://a.b.example.com")
		c.OriginAllowed("https://evil.org")
	})
	if allocs != 0 {
		t.Errorf("OriginAllowed allocs = %v, want 0", allocs)
	}
}

func TestOriginPatternErrors(t *testing.T) {
	tests := []struct {
		give    string
		wantErr string // substring; "" for valid
	}{
		{"https://example.com", ""},
		{"https://*.example.com", ""},
		{"chrome-extension://abcdef", ""},
		{"null", ""},
		{"*", "allow_all_origins"},
		{"example.com", "scheme://host"},
		{"https://example.com/", "no path"},
		{"https://a.*.example.com", "wildcard"},
		{"https://*example.com", "wildcard"},
		{"https://*.example.com/x", "*.host"},
		{"https://example.com:0", "scheme://host"},
		{"https://exa mple.com", "scheme://host"},

		// A wildcard over a public suffix, ICANN section or private one.
		{"https://*.com", "public suffix com,"},
		{"https://*.co.uk", "public suffix co.uk,"},
		{"https://*.github.io", "public suffix github.io,"},
		{"https://*.vercel.app", "public suffix vercel.app,"},
		{"https://*.herokuapp.com", "public suffix herokuapp.com,"},
		{"https://*.s3.amazonaws.com", "public suffix s3.amazonaws.com,"},
		{"HTTPS://*.GITHUB.IO", "public suffix github.io,"},
		{"https://*.com:8443", "public suffix com,"},
		{"https://*.internal", "public suffix internal,"}, // the list's default rule
		{"https://*.example.com:8443", ""},
		{"https://*.example.co.uk", ""},
		{"https://*.alice.github.io", ""},
		{"https://*.wild.test", ""},
		{"https://github.io", ""}, // exact: one site, its owner's

		// The scheme's default port, which browsers never send.
		{"https://a.example.com:443", "443 is the default port of https"},
		{"http://a.example.com:80", "80 is the default port of http"},
		{"HTTPS://A.EXAMPLE.COM:443", "443 is the default port of https"},
		{"https://*.example.com:443", "443 is the default port of https"},
		{"http://[::1]:80", "80 is the default port of http"},
		{"https://a.example.com:80", ""},
		{"http://a.example.com:443", ""},
		{"http://localhost:8080", ""},
		{"ws://a.example.com:80", ""}, // only http and https origins have them
	}
	for _, tt := range tests {
		var m originMatcher
		err := m.addPattern(tt.give)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tt.wantErr == "") != (err == nil) || !strings.Contains(got, tt.wantErr) {
			t.Errorf("addPattern(%q) = %q, want error containing %q", tt.give, got, tt.wantErr)
		}
	}
}
