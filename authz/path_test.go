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
		{"a/b", "", false},                     // not absolute
		{"", "", false},                        // empty
		{"?x=1", "", false},                    // query only
		{"*", "", false},                       // asterisk-form
		{"http://h/a", "", false},              // absolute-form
		{"/%2e%2e%2f", "", false},              // encoded ../
		{"/a%2F%2e%2e", "", false},             // encoded slash first
		{"/x//%2e%2e/", "", false},             // merge then dot
		{"/a/b/", "/a/b/", true},               // trailing slash kept
		{"/%41%42//c", "/AB/c", true},          // decode and merge
		{"/Admin/Users", "/Admin/Users", true}, // case kept: prefixes fold when compared

		// Raw backslash (revision 2).
		{`/a\b`, "", false},
		{`\a`, "", false},
		{`/admin\..\x`, "", false},
		{"/a?x=\\", "/a", true}, // the query is not the path

		// Path parameters: each segment cut at its first ';' for matching.
		{"/admin;x/users", "/admin/users", true},
		{"/admin;/settings", "/admin/settings", true},
		{"/admin;jsessionid=1", "/admin", true},
		{"/admin;a;b=c/x;y", "/admin/x", true},
		{"/a;b=%41", "/a", true},
		{"/;x/admin/users", "/admin/users", true}, // merged again after the cut (2.1)
		{"//;x//admin;y//users", "/admin/users", true},
		{"/;", "/", true},
		{"/x/;/y", "/x/y", true},
		{"/..;/admin", "", false},
		{"/a/..;jsessionid=1/admin", "", false},
		{"/a/.;x/b", "", false},
		{"/a/%2e%2e;x/b", "", false},
		{"/a/%2E;/b", "", false},
		{"/a/..;", "", false},
		{"/a/...;x", "/a/...", true},

		// Encoded ';' (revision 3).
		{"/admin%3Bx/users", "", false},
		{"/admin%3bx/users", "", false},
		{"/a;b%3Bc", "", false}, // refused inside a cut part too

		// The full decoding must be valid UTF-8 (2.1, 3).
		{"/%c0%ae%c0%ae/admin", "", false},     // 2-byte overlong "."
		{"/a%c0%af..", "", false},              // 2-byte overlong "/"
		{"/%e0%80%ae%e0%80%ae/", "", false},    // 3-byte overlong "."
		{"/%f0%80%80%ae", "", false},           // 4-byte overlong "."
		{"/%f8%80%80%80%ae", "", false},        // 5-byte form
		{"/%fc%80%80%80%80%ae", "", false},     // 6-byte form
		{"/caf%e9", "", false},                 // Latin-1 é: refused
		{"/caf%C3%A9", "/caf%C3%A9", true},     // UTF-8 é, kept encoded
		{"/caf\xc3\xa9", "/caf\xc3\xa9", true}, // raw UTF-8
		{"/caf\xe9", "", false},                // raw Latin-1
		{"/%ed%a0%80", "", false},              // UTF-16 surrogate
		{"/%f4%90%80%80", "", false},           // above U+10FFFF
		{"/%e2%82", "", false},                 // cut short at the end
		{"/%e2%82/", "", false},                // cut short by a byte
		{"/%e2\x82%ac", "/%e2\x82%ac", true},   // mixed raw and encoded
		{"/%80", "", false},                    // stray continuation byte
		{"/a;%c0%ae", "", false},               // in a cut part too
	}
	for _, tt := range tests {
		got, ok := normalizePath(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("normalizePath(%q) = %q, %v, want %q, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestNormalizePathCleanDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _, _ = normalizePath("/api/v1/users/42?x=1") })
	if allocs != 0 {
		t.Errorf("normalizePath on a clean path allocates %v times, want 0", allocs)
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
		{"app.example.com..", "", false},
		{"a..example.com", "", false},
		{".example.com", "", false},
		{"example.com.:443", "example.com", true},
		{"\u212Aate.example.com", "", false},
		{"\uff41pp.example.com", "", false},
		{"APP.\u212A.com", "", false},
		{"\xc3\x89ve.example.com", "", false},
		{"my_host.example.com", "my_host.example.com", true},
		{"192.0.2.1:80", "192.0.2.1", true},
		{"user:pw@host", "", false},
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
	for _, s := range []string{"/", "/a//b", "/%2e%2e/", "/a%2Fb", "/%7e?q", "//x/./y", "/a%", "/%00",
		"/admin;x/users", "/;x/a", "/..;/x", "/a%3bb", "/%c0%ae", "/%f8%80%80%80%ae", "/a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := normalizePath(raw)
		if !ok {
			return
		}
		if !strings.HasPrefix(got, "/") || strings.ContainsAny(got, "?;\\") || strings.Contains(got, "//") || hasDotSegment(got) {
			t.Fatalf("normalizePath(%q) = %q: not normalized", raw, got)
		}
		if !validEncoding(got) {
			t.Fatalf("normalizePath(%q) = %q: its decoding is refused", raw, got)
		}
		again, ok := normalizePath(got)
		if !ok || again != got {
			t.Fatalf("normalizePath(%q) = %q, but normalizePath(%q) = %q, %v", raw, got, got, again, ok)
		}
	})
}

// BenchmarkNormalizePath measures the path rules on every request: clean
// paths take the no-copy fast path, the others the rewriting one.
func BenchmarkNormalizePath(b *testing.B) {
	for _, p := range []struct{ name, path string }{
		{"clean", "/api/v1/users/42/orders?page=2&sort=desc"},
		{"parameter", "/admin;jsessionid=0123456789/users"},
		{"encoded", "/files/caf%C3%A9/%7Euser//x"},
	} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				normalizePath(p.path)
			}
		})
	}
}
