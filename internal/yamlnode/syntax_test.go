package yamlnode

import (
	"bytes"
	"fmt"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestSyntaxErrorWording pins the text of yaml.v3's syntax errors.
// yaml.v3 has no structured position for them (its errors are plain
// fmt.Errorf strings, and the parser's marks are unexported), so
// SyntaxError reads the line out of the message with yamlLine and
// yamlAnchor, and tells parser errors (0-based line of the enclosing
// collection) from scanner errors (1-based) by the texts in parserErrors.
// If an upgrade of yaml.v3 changes a wording or the "line N:" form, this
// test fails first: update the expressions, parserErrors and this table
// together, or positions silently fall back to 1:1.
func TestSyntaxErrorWording(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantRaw string // yaml.v3's own error text
		wantPos string // what SyntaxError gives: "LINE:COL: yaml syntax error: MSG"
	}{
		// Scanner errors: the line is already 1-based.
		{"scanner", "a: 1\n b: 2\n", "yaml: line 2: mapping values are not allowed in this context",
			"2:1: yaml syntax error: mapping values are not allowed in this context"},
		{"scanner simple key", "a:\n  - x\n  y\n", "yaml: line 3: could not find expected ':'",
			"3:1: yaml syntax error: could not find expected ':'"},
		{"scanner on line 1 has no line", "a: b: c\n", "yaml: mapping values are not allowed in this context",
			"1:1: yaml syntax error: mapping values are not allowed in this context"},
		// Parser errors, one per parserErrors entry: 0-based line.
		{"document start", "a: 1\n...\nb\n: c\n", "yaml: line 2: did not find expected <document start>",
			"3:1: yaml syntax error: did not find expected <document start>"},
		{"node content", "a: [\n", "yaml: line 1: did not find expected node content",
			"2:1: yaml syntax error: did not find expected node content"},
		{"key", "a:\n  b: 1\n c: 2\n", "yaml: line 2: did not find expected key",
			"3:1: yaml syntax error: did not find expected key"},
		{"dash indicator", "- a\nb: 1\n", "yaml: line 1: did not find expected '-' indicator",
			"2:1: yaml syntax error: did not find expected '-' indicator"},
		{"flow sequence", "a: [1, 2\nb: 3\n", "yaml: line 1: did not find expected ',' or ']'",
			"2:1: yaml syntax error: did not find expected ',' or ']'"},
		{"flow mapping", "a: {x: 1\nb: 2\n", "yaml: line 1: did not find expected ',' or '}'",
			"2:1: yaml syntax error: did not find expected ',' or '}'"},
		// No line at all: the alias is looked up in the text.
		{"unknown anchor", "a: &x 1\nb: *y\n", "yaml: unknown anchor 'y' referenced",
			"2:4: yaml syntax error: unknown anchor 'y' referenced"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two documents at most, as document reads them.
			var n yaml.Node
			dec := yaml.NewDecoder(bytes.NewReader([]byte(tt.give)))
			err := dec.Decode(&n)
			if err == nil {
				err = dec.Decode(&n)
			}
			if err == nil || err.Error() != tt.wantRaw {
				t.Fatalf("yaml.v3 error = %v, want %q: its wording changed, update SyntaxError", err, tt.wantRaw)
			}
			if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
				covered[m[2]] = true
			}
			line, col, msg := SyntaxError(err, []byte(tt.give))
			if got := fmt.Sprintf("%d:%d: yaml syntax error: %s", line, col, msg); got != tt.wantPos {
				t.Errorf("SyntaxError = %s, want %s", got, tt.wantPos)
			}
		})
	}
	for msg := range parserErrors {
		if !covered[msg] {
			t.Errorf("parserErrors entry %q has no case here", msg)
		}
	}
}
