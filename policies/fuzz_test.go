package policies

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/accessgate/accessgate/internal/yamlnode"
)

// FuzzParse feeds arbitrary bytes to the loader: it must never panic, and
// every problem it reports must point inside the input.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("\x00\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse("fuzz.yaml", data)
		if err == nil {
			if set == nil {
				t.Fatal("Parse returned neither a Set nor an error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("Parse error %v (%T), want a non-empty ErrorList", err, err)
		}
		lines := yamlnode.Lines(data)
		for _, e := range list {
			if e.File != "fuzz.yaml" {
				continue // a file the input names (revocations_file)
			}
			if e.Line < 1 || e.Line > lines || e.Col < 1 {
				t.Errorf("error %q outside the input's %d lines", e.Error(), lines)
			}
		}
	})
}

// asciiUpper upper-cases ASCII letters only: scheme and host compare
// case-insensitively, and Unicode case mapping could turn an invalid
// origin into a valid one.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// FuzzOriginMatch checks the origin matcher's properties on arbitrary
// patterns and origins: no panic, an exact-listed origin is always
// allowed, and upper and lower case of scheme and host agree.
func FuzzOriginMatch(f *testing.F) {
	f.Add("https://www.example.com", "https://www.example.com")
	f.Add("https://*.example.com", "https://a.b.example.com")
	f.Add("https://*.example.com", "https://evil-example.com")
	f.Add("null", "null")
	f.Add("http://[::1]:8080", "HTTP://[::1]:8080")
	f.Add("https://example.com:443", "https://example.com:443")
	f.Fuzz(func(t *testing.T, pattern, origin string) {
		list := &CORS{}
		listed := list.origins.addPattern(pattern) == nil
		all := &CORS{AllowAllOrigins: true}
		all.origins.allowAll = true
		if listed && !bytes.ContainsAny([]byte(pattern), "*") && !list.OriginAllowed(pattern) {
			t.Errorf("pattern %q accepted but OriginAllowed(%q) = false", pattern, pattern)
		}
		for _, c := range []*CORS{list, all} {
			lower := c.OriginAllowed(origin)
			if upper := c.OriginAllowed(asciiUpper(origin)); upper != lower && origin != "null" {
				t.Errorf("OriginAllowed(%q) = %v but OriginAllowed(%q) = %v", origin, lower, asciiUpper(origin), upper)
			}
		}
		if origin == "null" && all.OriginAllowed(origin) {
			t.Error("allow_all_origins allowed null without an explicit entry")
		}
	})
}

// FuzzParseRevocations: a revocations file never panics the parser, and
// every problem points inside it.
func FuzzParseRevocations(f *testing.F) {
	f.Add([]byte("revoked:\n  - {email: a@example.com, before: 2026-12-08T10:00:00Z}\n"))
	f.Add([]byte("revoked: [{sub: x, before: \"2026-12-08T10:00:00+01:00\"}, {email: b, sub: c}]"))
	f.Add([]byte("revoked: &a [*a]"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRevocations("rev.yaml", data)
		if err == nil {
			if r == nil {
				t.Fatal("neither Revocations nor an error")
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %v (%T), want a non-empty ErrorList", err, err)
		}
		lines := yamlnode.Lines(data)
		for _, e := range list {
			if e.Line < 1 || e.Line > lines || e.Col < 1 {
				t.Errorf("error %q outside the input's %d lines", e.Error(), lines)
			}
		}
	})
}
