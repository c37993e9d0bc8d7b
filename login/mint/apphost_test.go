package mint

import (
	"net/http"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// parseSetCookie reads a Set-Cookie value the way a browser-facing
// client does, so the test does not compare our own formatting with
// itself.
func parseSetCookie(t *testing.T, v string) *http.Cookie {
	t.Helper()
	c, err := http.ParseSetCookie(v)
	if err != nil {
		t.Fatalf("ParseSetCookie(%q): %v", v, err)
	}
	return c
}

func TestAppHostCookies(t *testing.T) {
	none := &policies.AppLogin{SameSiteNone: true, HTTPOnly: false}
	tests := []struct {
		name         string
		give         string
		wantName     string
		wantMaxAge   int
		wantSecure   bool
		wantHTTPOnly bool
		wantSameSite http.SameSite
	}{
		{"nonce https", AppSessionSetCookie("n", false, false), "__Host-CF_AppSession", 600, true, true, http.SameSiteLaxMode},
		{"nonce https 401", AppSessionSetCookie("n", false, true), "__Host-CF_AppSession", 600, true, true, http.SameSiteNoneMode},
		{"nonce http 401", AppSessionSetCookie("n", true, true), "CF_AppSession", 600, false, true, http.SameSiteLaxMode},
		{"nonce expired", ExpireAppSession(false), "__Host-CF_AppSession", -1, true, true, http.SameSiteLaxMode},
		{"token default", AuthorizationSetCookie("t", 8*time.Hour, nil, false), "CF_Authorization", 28800, true, true, http.SameSiteLaxMode},
		{"token none", AuthorizationSetCookie("t", time.Hour, none, false), "CF_Authorization", 3600, true, false, http.SameSiteNoneMode},
		{"token none over http", AuthorizationSetCookie("t", time.Hour, none, true), "CF_Authorization", 3600, false, false, http.SameSiteLaxMode},
		{"token expired", ExpireAuthorization(true), "CF_Authorization", -1, false, true, http.SameSiteLaxMode},
	}
	for _, tt := range tests {
		c := parseSetCookie(t, tt.give)
		if c.Name != tt.wantName || c.MaxAge != tt.wantMaxAge || c.Secure != tt.wantSecure || c.HttpOnly != tt.wantHTTPOnly ||
			c.SameSite != tt.wantSameSite || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: %q = %+v; want %s, Max-Age %d, Secure %v, HttpOnly %v, SameSite %v, Path=/, host-only",
				tt.name, tt.give, c, tt.wantName, tt.wantMaxAge, tt.wantSecure, tt.wantHTTPOnly, tt.wantSameSite)
		}
	}
}

func TestLoginURL(t *testing.T) {
	got := LoginURL("https://auth.example.com/cdn-cgi/access/login/app.example.com?kid=a&redirect_url=%2F", "n0n&ce", "https://app.example.com:8443")
	want := "https://auth.example.com/cdn-cgi/access/login/app.example.com?kid=a&redirect_url=%2F&nonce=n0n%26ce&origin=https%3A%2F%2Fapp.example.com%3A8443"
	if got != want {
		t.Errorf("LoginURL = %q, want %q", got, want)
	}
}
