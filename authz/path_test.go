package authz

import (
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	tests := []struct {
		give   string
		want   string
		wantOK bool
	}{
		{"/", "/", true},
		{"/a/b", "/a/b", true},
		{"/a/b?x=1", "/a/b", true},
		{"/a//b///c", "/a/b/c", true},
		{"//", "/", true},
		{"/%7Euser/%41", "/~user/A", true},
		{"/a%20b", "/a%20b", true}, // reserved stays encoded
		{"/a%2fb", "", false},      // encoded slash
		{"/a%5Cb", "", false},      // encoded backslash
		{"/a%00", "", false},       // encoded NUL
		{"/a%", "", false},         // truncated escape
		{"/a%g1", "", false},       // not hex
		{"/.", "", false},          // dot segment
		{"/a/..", "", false},       // dot-dot
		{"/a/%2e/b", "", false},    // encoded dot
		{"/a/.%2E/b", "", false},   // half encoded
		{"/a/..b", "/a/..b", true}, // not a dot segment
		{"/.well-known/x", "/.well-known/x", true},
		{"a/b", "", false},            // not absolute
		{"", "", false},               // empty
		{"?x=1", "", false},           // query only
		{"*", "", false},              // asterisk-form
		{"http://h/a", "", false},     // absolute-form
		{"/%2e%2e%2f", "", false},     // encoded ../
		{"/a%2F%2e%2e", "", false},    // encoded slash first
		{"/x//%2e%2e/", "", false},    // merge then dot
		{"/a/b/", "/a/b/", true},      // trailing slash kept
		{"/%41%42//c", "/AB/c", true}, // decode and merge
	}
	for _, tt := range tests {
		got, ok := NormalizePath(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("NormalizePath(%q) = %q, %v, want %q, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNormalizePathCleanDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _, _ = NormalizePath("/api/v1/users/42?x=1") })
	if allocs != 0 {
		t.Errorf("NormalizePath on a clean path allocates %v times, want 0", allocs)
	}
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct {
		give   string
		want   string
		wantOK bool
	}{
		{"app.example.com", "app.example.com", true},
		{"APP.Example.COM", "app.example.com", true},
		{"app.example.com:8443", "app.example.com", true},
		{"app.example.com.", "app.example.com", true},
		{"app.example.com.:80", "app.example.com", true},
		{"[::1]:8080", "[::1]", true},
		{"[2001:DB8::1]", "[2001:db8::1]", true},
		{"", "", false},
		{":80", "", false},
		{"user@host", "", false},
		{"host:port", "", false},
		{"host:", "", false},
		{"a b", "", false},
		{"host\r\nx", "", false},
		{"[::1", "", false},
		{"[::1]x", "", false},
		{"[zz]", "", false},
	}
	for _, tt := range tests {
		got, ok := normalizeHost(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("normalizeHost(%q) = %q, %v, want %q, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

// FuzzNormalizePath checks the normalizer never panics and that what it
// accepts is a fixed point with none of the refused forms left in it.
func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "/a//b", "/%2e%2e/", "/a%2Fb", "/%7e?q", "//x/./y", "/a%", "/%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := NormalizePath(raw)
		if !ok {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, "//") || strings.Contains(got, "?") || hasDotSegment(got) {
			t.Fatalf("NormalizePath(%q) = %q: not normalized", raw, got)
		}
		again, ok := NormalizePath(got)
		if !ok || again != got {
			t.Fatalf("NormalizePath(%q) = %q, but NormalizePath(%q) = %q, %v", raw, got, got, again, ok)
		}
	})
}
