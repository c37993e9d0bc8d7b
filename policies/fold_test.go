package policies

import (
	"strings"
	"testing"
	"unsafe"
)

func TestLowerASCII(t *testing.T) {
	tests := []struct {
		name, give, want string
	}{
		{"empty", "", ""},
		{"already lower", "alice@example.com", "alice@example.com"},
		{"upper ASCII", "Alice@Example.COM", "alice@example.com"},
		{"all of A-Z", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"},
		{"bytes next to A-Z stay", "@[`{", "@[`{"},
		// The Kelvin sign is not an ASCII K: strings.ToLower would make it
		// "k" and let "\u212Aate@x" match "kate@x".
		{"Kelvin sign stays", "\u212AATE@EXAMPLE.com", "\u212Aate@example.com"},
		{"É stays", "ÉVE@X.ORG", "Éve@x.org"},
		{"é stays", "éve@x.org", "éve@x.org"},
		{"combining mark stays", "E\u0301VE@X", "e\u0301ve@x"},
		{"fullwidth stays", "\uFF21dmin", "\uFF21dmin"},
		{"dotted I stays", "\u0130", "\u0130"},
		{"invalid UTF-8 stays", "A\xffB", "a\xffb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LowerASCII(tt.give); got != tt.want {
				t.Errorf("LowerASCII(%+q) = %+q, want %+q", tt.give, got, tt.want)
			}
		})
	}
}

// TestLowerASCIINoCopy: a string without A–Z is returned as is, the same
// bytes, so that the request side pays nothing for lower-case input.
func TestLowerASCIINoCopy(t *testing.T) {
	s := strings.Repeat("kate@example.com", 4)
	if got := LowerASCII(s); unsafe.StringData(got) != unsafe.StringData(s) {
		t.Error("LowerASCII copied a string without A-Z")
	}
	allocs := testing.AllocsPerRun(100, func() { _ = LowerASCII(s) })
	if allocs != 0 {
		t.Errorf("LowerASCII(lower-case) allocs = %v, want 0", allocs)
	}
}

// FuzzLowerASCII checks the fold against its definition: every byte
// outside A–Z is unchanged, A–Z become a–z, and folding twice changes
// nothing.
func FuzzLowerASCII(f *testing.F) {
	f.Add("Kate@Example.com")
	f.Add("\u212Aate")
	f.Add("ÉVE")
	f.Fuzz(func(t *testing.T, s string) {
		got := LowerASCII(s)
		if len(got) != len(s) {
			t.Fatalf("LowerASCII(%+q) = %+q: length changed", s, got)
		}
		for i := 0; i < len(s); i++ {
			want := s[i]
			if 'A' <= want && want <= 'Z' {
				want += 'a' - 'A'
			}
			if got[i] != want {
				t.Fatalf("LowerASCII(%+q)[%d] = %q, want %q", s, i, got[i], want)
			}
		}
		if again := LowerASCII(got); again != got {
			t.Errorf("LowerASCII not idempotent on %+q", s)
		}
	})
}
