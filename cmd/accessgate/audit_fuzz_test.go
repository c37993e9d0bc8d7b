package main

import (
	"encoding/json"
	"testing"
)

// FuzzAppendJSONString: every string becomes one valid JSON string that
// decodes to what encoding/json makes of it (invalid UTF-8 replaced byte by
// byte with U+FFFD), so no request value can break an audit line.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x1f\x7f", "é\u2028", "\xff\xfe bad", "\xc0\xae"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("appendJSONString(%q) = %s: not JSON: %v", s, out, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Errorf("appendJSONString(%q) decodes to %q, want %q", s, got, want)
		}
	})
}
