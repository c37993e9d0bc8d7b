package login

import (
	"net/url"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/login/internal/logintest"
)

// FuzzCheckRedirect: whatever checkRedirect accepts lands, once resolved
// against the application's page as a browser does (after the browser's
// own clean-ups: tabs and newlines dropped, `\` read as `/`), on the
// application's host or on its one explicitly listed origin, never
// elsewhere.
func FuzzCheckRedirect(f *testing.F) {
	for _, seed := range []string{
		"/", "/dash?x=1", "https://app.example.com/x", "http://app.example.com:8080/",
		"https://web.example.com/app", "//evil.com", "/\\evil.com", "https://evil.com",
		"https://app.example.com@evil.com", "/%2F/evil.com", "/%5Cevil.com", "/\t/evil.com",
		"/x%0d%0aSet-Cookie:a=b", "https:evil.com", "https://a.example.org/", "javascript:alert(1)",
	} {
		f.Add(seed)
	}
	set := logintest.Load(f, logintest.Config{})
	app := set.LoginApplication("app.example.com", "app-aud")
	base, _ := url.Parse("https://app.example.com/page")
	f.Fuzz(func(t *testing.T, raw string) {
		if checkRedirect(raw, "app.example.com", app) != nil {
			return
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(raw)
		u, err := url.Parse(browser)
		if err != nil {
			t.Fatalf("checkRedirect accepted %q, which does not parse: %v", raw, err)
		}
		target := base.ResolveReference(u)
		switch h := strings.ToLower(target.Hostname()); h {
		case "app.example.com":
		case "web.example.com":
			if target.Scheme != "https" || target.Port() != "" && target.Port() != "443" {
				t.Fatalf("checkRedirect accepted %q, leading to %s, not the listed origin", raw, target)
			}
		default:
			t.Fatalf("checkRedirect accepted %q, leading to host %q", raw, h)
		}
		if target.User != nil {
			t.Fatalf("checkRedirect accepted %q, carrying user info", raw)
		}
	})
}
