// Package yamlnode holds what the policy file's parser and the policy test
// file's parser both need from a yaml.v3 node tree, so that the two report
// types and positions alike.
package yamlnode

import (
	"bytes"

	"go.yaml.in/yaml/v3"
)

// KindName describes a node's type for "must be X, not Y" messages.
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	}
	return "nothing"
}

// Lines counts the lines of data as the YAML scanner does: LF, a lone CR
// (old Mac files), NEL, LS and PS (YAML 1.1, which yaml.v3 follows) each
// end a line; CRLF is one break. Error positions are kept within it.
func Lines(data []byte) int {
	n := 1 + bytes.Count(data, []byte("\n")) - bytes.Count(data, []byte("\r\n")) + bytes.Count(data, []byte("\r"))
	for _, br := range []string{"\u0085", "\u2028", "\u2029"} {
		n += bytes.Count(data, []byte(br))
	}
	return n
}
