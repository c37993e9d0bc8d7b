package authz

import (
	"strings"
	"testing"
)

func TestTokenFrom(t *testing.T) {
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"none", map[string]string{}, ""},
		{"nil map", nil, ""},
		{"cookie", map[string]string{"cookie": "CF_Authorization=c1"}, "c1"},
		{"cookie among others", map[string]string{"cookie": "a=1; CF_Authorization=c1; b=2"}, "c1"},
		{"cookie no spaces", map[string]string{"cookie": "a=1;CF_Authorization=c1;b=2"}, "c1"},
		{"cookie extra spaces", map[string]string{"cookie": "a=1;   CF_Authorization = c1 ;b=2"}, "c1"},
		{"cookie quoted", map[string]string{"cookie": `CF_Authorization="c1"`}, "c1"},
		{"cookie first of two", map[string]string{"cookie": "CF_Authorization=c1; CF_Authorization=c2"}, "c1"},
		{"cookie empty then set", map[string]string{"cookie": "CF_Authorization=; CF_Authorization=c2"}, "c2"},
		{"cookie name case-sensitive", map[string]string{"cookie": "cf_authorization=c1"}, ""},
		{"cookie name is a suffix", map[string]string{"cookie": "XCF_Authorization=c1"}, ""},
		{"cookie value with =", map[string]string{"cookie": "CF_Authorization=a=b"}, "a=b"},
		{"cookie without =", map[string]string{"cookie": "CF_Authorization"}, ""},
		{"cookie after 64 others", map[string]string{"cookie": strings.Repeat("a=1; ", 64) + "CF_Authorization=c1"}, "c1"},
		{"cookie after 1,000 others", map[string]string{"cookie": strings.Repeat("a=1; ", 1000) + "CF_Authorization=c1"}, "c1"},
		// Envoy joins several Cookie headers with ",".
		{"cookie in the second Cookie header", map[string]string{"cookie": "a=1; b=2,CF_Authorization=c2"}, "c2"},
		{"cookie in the second header, spaced", map[string]string{"cookie": "a=1, CF_Authorization=c2; d=4"}, "c2"},
		{"forged cookie in the second header beats the assertion", map[string]string{"cookie": "a=1,CF_Authorization=forged", "cf-access-jwt-assertion": "good"}, "forged"},
		{"first of two headers wins", map[string]string{"cookie": "CF_Authorization=one,CF_Authorization=two"}, "one"},
		{"value ends at a comma", map[string]string{"cookie": "CF_Authorization=abc,def"}, "abc"},
		{"empty in first header, set in second", map[string]string{"cookie": "CF_Authorization=,CF_Authorization=c2"}, "c2"},
		{"cookie as 64th", map[string]string{"cookie": strings.Repeat("a=1; ", 63) + "CF_Authorization=c1"}, "c1"},

		{"assertion", map[string]string{"cf-access-jwt-assertion": "h1"}, "h1"},
		{"assertion trimmed", map[string]string{"cf-access-jwt-assertion": "  h1 "}, "h1"},
		{"cf-access-token", map[string]string{"cf-access-token": "t1"}, "t1"},
		{"bearer", map[string]string{"authorization": "Bearer b1"}, "b1"},
		{"bearer lower-case", map[string]string{"authorization": "bearer b1"}, "b1"},
		{"bearer upper-case", map[string]string{"authorization": "BEARER b1"}, "b1"},
		{"bearer extra spaces", map[string]string{"authorization": "Bearer   b1 "}, "b1"},
		{"basic", map[string]string{"authorization": "Basic dXNlcjpwYXNz"}, ""},
		{"bearer no token", map[string]string{"authorization": "Bearer"}, ""},
		{"bearerish scheme", map[string]string{"authorization": "Bearerx b1"}, ""},

		// The first source present wins, even over a better later one.
		{"cookie over header", map[string]string{"cookie": "CF_Authorization=c1", "cf-access-jwt-assertion": "h1"}, "c1"},
		{"assertion over cf-access-token", map[string]string{"cf-access-jwt-assertion": "h1", "cf-access-token": "t1"}, "h1"},
		{"cf-access-token over bearer", map[string]string{"cf-access-token": "t1", "authorization": "Bearer b1"}, "t1"},
		{"assertion over bearer", map[string]string{"cf-access-jwt-assertion": "h1", "authorization": "Bearer b1"}, "h1"},

		// An empty value is not present: the next source is judged.
		{"empty cookie falls through", map[string]string{"cookie": "CF_Authorization=", "cf-access-jwt-assertion": "h1"}, "h1"},
		{"quoted empty cookie falls through", map[string]string{"cookie": `CF_Authorization=""`, "cf-access-token": "t1"}, "t1"},
		{"other cookies fall through", map[string]string{"cookie": "a=1", "authorization": "Bearer b1"}, "b1"},
		{"empty assertion falls through", map[string]string{"cf-access-jwt-assertion": " ", "cf-access-token": "t1"}, "t1"},
		{"empty cf-access-token falls through", map[string]string{"cf-access-token": "", "authorization": "Bearer b1"}, "b1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tokenFrom(tt.give); got != tt.want {
				t.Errorf("tokenFrom(%q) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

func TestTokenFromAllocs(t *testing.T) {
	h := map[string]string{"cookie": "a=1; b=2; CF_Authorization=tok", "authorization": "Bearer x"}
	if n := testing.AllocsPerRun(100, func() { tokenFrom(h) }); n != 0 {
		t.Errorf("tokenFrom allocs = %v, want 0", n)
	}
}

func FuzzTokenFromHeaders(f *testing.F) {
	// cookie, cf-access-jwt-assertion, cf-access-token, authorization
	f.Add("CF_Authorization=abc", "", "", "")
	f.Add("a=1; CF_Authorization=\"q\"; b", "h", "t", "Bearer b")
	f.Add("CF_Authorization=", " ", "", "bearer   x ")
	f.Add(";;;=;CF_Authorization= ;", "", "\t", "Bearer")
	f.Add("", "", "", "Basic Zm9v")
	f.Fuzz(func(t *testing.T, cookie, assertion, token, authorization string) {
		h := map[string]string{
			"cookie":                  cookie,
			"cf-access-jwt-assertion": assertion,
			"cf-access-token":         token,
			"authorization":           authorization,
		}
		got := tokenFrom(h)
		if got == "" {
			return
		}
		if got != strings.TrimSpace(got) {
			t.Errorf("tokenFrom = %q: not trimmed", got)
		}
		for _, v := range h {
			if strings.Contains(v, got) {
				return
			}
		}
		t.Errorf("tokenFrom(%q) = %q: not a substring of any header", h, got)
	})
}

func BenchmarkTokenFrom(b *testing.B) {
	h := map[string]string{
		"cookie":     "_ga=GA1.2.3; theme=dark; CF_Authorization=eyJhbGciOiJSUzI1NiJ9.e30.c2ln; other=x",
		"user-agent": "Mozilla/5.0",
		"accept":     "text/html",
	}
	b.ReportAllocs()
	for b.Loop() {
		tokenFrom(h)
	}
}
