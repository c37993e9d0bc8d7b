package policies

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/accessgate/accessgate/internal/yamlnode"
)

// maxWork bounds the nodes (and scalar bytes, in 16-byte units) the walker
// visits. Aliases let a small file describe an exponentially large tree
// ("billion laughs"); yaml.v3 only guards against that when decoding into Go
// values, not for a yaml.Node we walk ourselves.
const maxWork = 1 << 21

// parser walks the yaml.Node tree of one policy file, collecting every
// problem instead of stopping at the first.
type parser struct {
	// files are the referenced files read so far (see readFile).
	files []string

	file string // as given, for error positions
	dir  string // jwks_file paths are relative to it
	errs ErrorList
	seen map[Error]bool // an aliased node is walked once per alias
	work int
	over bool // maxWork or maxErrors exceeded: stop descending and reporting
	// hasClientCAs is set when client_certificate_authorities lists at
	// least one file: certificate selectors need it.
	hasClientCAs bool

	// login is the login section (§8), for the applications that follow.
	login *Login

	// otherErrs are problems of other files the policy file names (the
	// revocations file), already positioned and sorted.
	otherErrs ErrorList
}

// maxErrors keeps a generated or corrupt file from producing an error list
// larger than anyone reads.
const maxErrors = 1000

// errorf records a problem at n's position (1:1 when n carries none).
func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	if p.over {
		return
	}
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	e := Error{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
	if p.seen[e] {
		return
	}
	if p.seen == nil {
		p.seen = map[Error]bool{}
	}
	p.seen[e] = true
	if len(p.errs) == maxErrors {
		e.Msg = fmt.Sprintf("more than %d problems; fix these first", maxErrors)
		p.over = true
	}
	p.errs = append(p.errs, &e)
}

// pos formats n's position for messages that point at a second place.
func (p *parser) pos(n *yaml.Node) string {
	return fmt.Sprintf("%s:%d:%d", p.file, n.Line, n.Column)
}

// deref follows aliases and charges the node to the work budget. Past the
// budget it returns an empty node so that callers stop descending.
func (p *parser) deref(n *yaml.Node) *yaml.Node {
	if p.over {
		return &yaml.Node{}
	}
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 64; i++ {
		n = n.Alias
	}
	p.work += 1 + len(n.Value)/16
	if p.work > maxWork {
		p.errorf(n, "document too large once aliases are expanded")
		p.over = true
		return &yaml.Node{}
	}
	return n
}

// field is one key of a mapping with its value (aliases resolved).
type field struct {
	key, val *yaml.Node
}

// mapping checks that n is a mapping whose keys are all known, reporting
// unknown and repeated keys, and returns the fields by key. what names the
// mapping in messages ("issuer", "cors").
func (p *parser) mapping(n *yaml.Node, what string, known ...string) (map[string]field, bool) {
	n = p.deref(n)
	if n.Kind != yaml.MappingNode {
		if !p.over {
			p.errorf(n, "%s must be a mapping, not %s", what, yamlnode.KindName(n))
		}
		return nil, false
	}
	fields := make(map[string]field, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := p.deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s keys must be strings, not %s", what, yamlnode.KindName(k))
			continue
		}
		if !slices.Contains(known, k.Value) {
			p.errorf(k, "unknown key %q in %s", k.Value, what)
			continue
		}
		if prev, ok := fields[k.Value]; ok {
			p.errorf(k, "duplicate key %q (first at %s)", k.Value, p.pos(prev.key))
			continue
		}
		fields[k.Value] = field{key: k, val: p.deref(v)}
	}
	return fields, true
}

// require reports every key in keys that fields lacks, at the mapping m.
func (p *parser) require(m *yaml.Node, fields map[string]field, what string, keys ...string) {
	for _, k := range keys {
		if _, ok := fields[k]; !ok {
			p.errorf(p.deref(m), "missing required key %q in %s", k, what)
		}
	}
}

// str returns a scalar's text. Numbers, booleans and timestamps are taken
// as written, because an audience or client_id may look like a number;
// only null, lists and mappings are refused.
func (p *parser) str(v *yaml.Node, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.errorf(v, "%s must be a string, not %s", what, yamlnode.KindName(v))
		return "", false
	}
	// Values end up in headers, logs and messages: a control character
	// there is at best a mistake and at worst header injection.
	if strings.ContainsFunc(v.Value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		p.errorf(v, "%s contains a control character", what)
		return "", false
	}
	return v.Value, true
}

// nonEmpty is str that also refuses "".
func (p *parser) nonEmpty(v *yaml.Node, what string) (string, bool) {
	s, ok := p.str(v, what)
	if ok && strings.TrimSpace(s) == "" {
		p.errorf(v, "%s must not be empty", what)
		return "", false
	}
	return s, ok
}

// boolean returns a YAML boolean; "yes"/"on" are strings in YAML 1.2 and
// refused rather than guessed.
func (p *parser) boolean(v *yaml.Node, what string) (bool, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		p.errorf(v, "%s must be true or false, not %s", what, yamlnode.KindName(v))
		return false, false
	}
	b, err := strconv.ParseBool(LowerASCII(v.Value))
	if err != nil {
		p.errorf(v, "%s must be true or false", what)
		return false, false
	}
	return b, true
}

// integer returns a YAML integer.
func (p *parser) integer(v *yaml.Node, what string) (int64, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" {
		p.errorf(v, "%s must be an integer, not %s", what, yamlnode.KindName(v))
		return 0, false
	}
	var i int64
	if err := v.Decode(&i); err != nil {
		p.errorf(v, "%s must be an integer", what)
		return 0, false
	}
	return i, true
}

// seq returns the items of a list, aliases resolved.
func (p *parser) seq(v *yaml.Node, what string) ([]*yaml.Node, bool) {
	if v.Kind != yaml.SequenceNode {
		if !p.over {
			p.errorf(v, "%s must be a list, not %s", what, yamlnode.KindName(v))
		}
		return nil, false
	}
	items := make([]*yaml.Node, 0, len(v.Content))
	for _, it := range v.Content {
		items = append(items, p.deref(it))
	}
	return items, true
}

// strList returns a list of non-empty strings with their nodes.
func (p *parser) strList(v *yaml.Node, what string) ([]string, []*yaml.Node, bool) {
	items, ok := p.seq(v, what)
	if !ok {
		return nil, nil, false
	}
	out := make([]string, 0, len(items))
	nodes := make([]*yaml.Node, 0, len(items))
	all := true
	for _, it := range items {
		s, ok := p.nonEmpty(it, what+" entry")
		if !ok {
			all = false
			continue
		}
		out = append(out, s)
		nodes = append(nodes, it)
	}
	return out, nodes, all
}
