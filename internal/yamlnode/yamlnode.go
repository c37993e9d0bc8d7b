// Package yamlnode holds what the policy file's parser and the policy test
// file's parser both need from yaml.v3, so that the two report types and
// positions, syntax errors included, alike.
package yamlnode

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

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

// yamlLine extracts the line yaml.v3 puts in the text of a syntax error: it
// has no structured position (its errors are plain strings and its parser
// marks unexported). TestSyntaxErrorWording pins the wording this and
// parserErrors rely on, so that a library upgrade that changes it fails a
// test instead of moving every position to 1:1.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlAnchor is an unknown alias, the one syntax error without a line.
var yamlAnchor = regexp.MustCompile(`^unknown anchor '([^']*)' referenced$`)

// parserErrors are the yaml.v3 parser (not scanner) problems: their line
// is the 0-based line where the enclosing collection starts.
var parserErrors = map[string]bool{
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected key":              true,
	"did not find expected '-' indicator":    true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
}

// SyntaxError positions a yaml.v3 decoding error of data: the line its
// message names (scanner errors are 1-based, parser errors 0-based), or
// for an unknown alias the first use of it in the text; column 1 when
// yaml.v3 does not say. The position is clamped into the file so that it
// never points past its end; msg is the message without "yaml: line N: ".
func SyntaxError(err error, data []byte) (line, col int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	line, col = 1, 1
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		if parserErrors[msg] {
			line++
		}
	} else if m := yamlAnchor.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
			col = i - bytes.LastIndexByte(data[:i], '\n')
		}
	}
	return min(max(line, 1), Lines(data)), col, msg
}
