package policytest

import (
	"errors"
	"os"
	"testing"

	"github.com/accessgate/accessgate/internal/yamlnode"
	"github.com/accessgate/accessgate/policies"
)

// FuzzParse: a test file never panics the parser, and every problem points
// inside the input.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../cmd/accessgate/demo/policy_test.yaml", "../envoy/compose/accessgate/policy_test.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("tests:\n  - name: a\n    request: {host: a}\n    identity: {custom: {x: [1, {y: z}]}, aud: &a [b], iss: *a}\n    expect: {body: {a: null}}\n"))
	f.Add([]byte("tests: [{name: x, request: {}, service_token: ci-bot, expect: {status: 200}}]"))
	f.Add([]byte("tests:\n- {name: x, request: {headers: {? [a] : b}}, expect: {headers: {a: ~}}}\n"))
	set, err := policies.Load("testdata/policy.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("f.yaml", data, set)
		if err == nil {
			if file == nil {
				t.Fatal("no file and no error")
			}
			return
		}
		var list policies.ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %v is not a non-empty ErrorList", err)
		}
		lines := yamlnode.Lines(data)
		for _, e := range list {
			if e.Line < 1 || e.Col < 1 || e.Line > lines {
				t.Errorf("position %d:%d outside the input (%d lines): %s", e.Line, e.Col, lines, e.Msg)
			}
		}
	})
}
