package yamlnode

import (
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestKindName(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"{a: 1}", "a mapping"},
		{"[1]", "a list"},
		{"null", "null"},
		{"true", "a boolean"},
		{"3", "a number"},
		{"1.5", "a number"},
		{"text", "a string"},
		{`"true"`, "a string"},
	}
	for _, tt := range tests {
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(tt.give), &doc); err != nil {
			t.Fatal(err)
		}
		if got := KindName(doc.Content[0]); got != tt.want {
			t.Errorf("KindName(%s) = %q, want %q", tt.give, got, tt.want)
		}
	}
	if got := KindName(&yaml.Node{}); got != "nothing" {
		t.Errorf("KindName(zero node) = %q, want nothing", got)
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		give string
		want int
	}{
		{"", 1},
		{"a", 1},
		{"a\n", 2},
		{"a\r\nb", 2},
		{"a\rb", 2},
		{"a\u0085b\u2028c\u2029d", 4},
		{"a\n\nb\r\n", 4},
	}
	for _, tt := range tests {
		if got := Lines([]byte(tt.give)); got != tt.want {
			t.Errorf("Lines(%q) = %d, want %d", tt.give, got, tt.want)
		}
	}
}
