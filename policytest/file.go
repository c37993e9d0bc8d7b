package policytest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/accessgate/accessgate/internal/yamlnode"
	"github.com/accessgate/accessgate/policies"
)

// File is a parsed test file.
type File struct {
	Path  string
	Tests []*Test
}

// Test is one entry of a test file's `tests`.
type Test struct {
	Name string
	Line int // of the test's entry, for messages
	// Request is the request decided; SourceIP is already defaulted.
	Request Request
	// Identity, when set, is a token minted for the application's issuer.
	Identity *Identity
	// ServiceToken names a service token presented as valid ("" for none).
	ServiceToken string
	Expect       Expect
}

// Identity is a test's `identity`: the claims of the token to mint and
// the overrides that make it invalid on purpose.
type Identity struct {
	// Claims go into the token as given (email, groups, country, custom and
	// any other claim), over the defaults iss, aud, sub, iat, nbf, exp and
	// type.
	Claims map[string]any
	// Expired makes exp lie in the past, beyond any leeway.
	Expired bool
	// Audience replaces the application's audience as `aud` (a string or a
	// list of strings); nil keeps it.
	Audience any
	// Issuer replaces the application's issuer as `iss`; nil keeps it.
	Issuer *string
}

// Expect is the subset of the decision a test checks; nil or absent fields
// are not compared.
type Expect struct {
	Application, Policy, Reason *string
	// Rule is the selector that decided, by its place in its policy
	// (section 11), e.g. include[0].email_domain.
	Rule   *string
	Status *int
	// Headers and ResponseHeaders compare only the names given (lower-cased);
	// a nil value means the header must be absent.
	Headers         map[string]*string
	ResponseHeaders map[string]*string
	// HeadersToRemove compares as a set when HasHeadersToRemove.
	HeadersToRemove    []string
	HasHeadersToRemove bool
	// Body compares as a whole string; BodyJSON, when set instead, as a
	// subset of the JSON body (values as JSON decodes them).
	Body     *string
	BodyJSON map[string]any
}

// DefaultSourceIP is a test request's source_ip when it gives none (a
// documentation address, RFC 5737).
const DefaultSourceIP = "203.0.113.1"

// Parse reads a test file. Problems come back as a policies.ErrorList of
// FILE:LINE:COL: message, like `validate`'s. set, when not nil, is the
// policy file the tests run against: service_token names are checked
// against it.
func Parse(file string, data []byte, set *policies.Set) (*File, error) {
	w := &walker{file: file}
	root := w.document(data)
	f := &File{Path: file}
	if root != nil {
		f.Tests = w.tests(root, set)
	}
	if len(w.errs) > 0 {
		// A position past the last line (yaml.v3 puts a node that ends the
		// input on the line after it) is moved onto it, so that every
		// FILE:LINE:COL points into the file.
		last := yamlnode.Lines(data)
		for _, e := range w.errs {
			if e.Line > last {
				e.Line, e.Col = last, 1
			}
		}
		slices.SortStableFunc(w.errs, func(a, b *policies.Error) int {
			if c := cmp.Compare(a.Line, b.Line); c != 0 {
				return c
			}
			return cmp.Compare(a.Col, b.Col)
		})
		return nil, w.errs
	}
	return f, nil
}

// walker walks a test file's yaml.Node tree, collecting every problem.
type walker struct {
	file string
	errs policies.ErrorList
}

func (w *walker) errorf(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil && n.Line > 0 {
		line, col = n.Line, max(n.Column, 1)
	}
	w.errs = append(w.errs, &policies.Error{File: w.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// document parses data into its root node; one document only.
func (w *walker) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			w.errorf(nil, "empty test file")
			return nil
		}
		line, col, msg := yamlnode.SyntaxError(err, data)
		w.errs = append(w.errs, &policies.Error{File: w.file, Line: line, Col: col, Msg: "yaml syntax error: " + msg})
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		w.errorf(&extra, "only one YAML document is allowed")
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root
}

// deref follows aliases (bounded: a test file is small and written by hand).
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 16; i++ {
		n = n.Alias
	}
	return n
}

type field struct{ key, val *yaml.Node }

// pairs returns a mapping's key/value pairs with string keys, reporting
// other keys and repeats; known, when not nil, lists the allowed keys.
func (w *walker) pairs(n *yaml.Node, what string, known []string) ([]field, bool) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		w.errorf(n, "%s must be a mapping, not %s", what, yamlnode.KindName(n))
		return nil, false
	}
	var out []field
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.errorf(k, "%s keys must be strings, not %s", what, yamlnode.KindName(k))
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			w.errorf(k, "unknown key %q in %s (want one of %s)", k.Value, what, strings.Join(known, ", "))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			w.errorf(k, "duplicate key %q (first at %s:%d:%d)", k.Value, w.file, prev.Line, prev.Column)
			continue
		}
		seen[k.Value] = k
		out = append(out, field{k, v})
	}
	return out, true
}

func (w *walker) mapping(n *yaml.Node, what string, known ...string) (map[string]field, bool) {
	list, ok := w.pairs(n, what, known)
	m := make(map[string]field, len(list))
	for _, f := range list {
		m[f.key.Value] = f
	}
	return m, ok
}

// str returns a scalar as written (a header value or host may look like a
// number); null, lists and mappings are type errors.
func (w *walker) str(v *yaml.Node, what string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		w.errorf(v, "%s must be a string, not %s", what, yamlnode.KindName(v))
		return "", false
	}
	return v.Value, true
}

func (w *walker) boolean(v *yaml.Node, what string) (bool, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
		w.errorf(v, "%s must be true or false, not %s", what, yamlnode.KindName(v))
		return false, false
	}
	b, err := strconv.ParseBool(strings.ToLower(v.Value))
	return b, err == nil
}

func (w *walker) strList(v *yaml.Node, what string) ([]string, bool) {
	if v.Kind != yaml.SequenceNode {
		w.errorf(v, "%s must be a list, not %s", what, yamlnode.KindName(v))
		return nil, false
	}
	out := make([]string, 0, len(v.Content))
	ok := true
	for _, it := range v.Content {
		s, good := w.str(deref(it), what+" entry")
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

// headerMap reads {name: value}; names are lower-cased. With nullable, a
// null value is kept as nil ("must be absent").
func (w *walker) headerMap(v *yaml.Node, what string, nullable bool) map[string]*string {
	list, ok := w.pairs(v, what, nil)
	if !ok {
		return nil
	}
	m := make(map[string]*string, len(list))
	for _, f := range list {
		name := strings.ToLower(f.key.Value)
		if _, dup := m[name]; dup {
			w.errorf(f.key, "header %q given twice in %s (names are case-insensitive)", f.key.Value, what)
			continue
		}
		if nullable && f.val.Kind == yaml.ScalarNode && f.val.Tag == "!!null" {
			m[name] = nil
			continue
		}
		if s, ok := w.str(f.val, what+"."+name); ok {
			m[name] = &s
		}
	}
	return m
}

var (
	testKeys    = []string{"name", "request", "identity", "service_token", "expect"}
	requestKeys = []string{"method", "scheme", "host", "path", "headers", "source_ip", "client_cert", "application"}
	expectKeys  = []string{"application", "policy", "rule", "reason", "status", "headers", "headers_to_remove", "response_headers", "body"}
)

func (w *walker) tests(root *yaml.Node, set *policies.Set) []*Test {
	top, ok := w.mapping(root, "test file", "tests")
	if !ok {
		return nil
	}
	tf, ok := top["tests"]
	if !ok {
		w.errorf(root, "missing required key %q in test file", "tests")
		return nil
	}
	if tf.val.Kind != yaml.SequenceNode {
		w.errorf(tf.val, "tests must be a list, not %s", yamlnode.KindName(tf.val))
		return nil
	}
	if len(tf.val.Content) == 0 {
		w.errorf(tf.val, "tests must not be empty")
	}
	var out []*Test
	names := map[string]*yaml.Node{}
	for _, it := range tf.val.Content {
		t := w.test(deref(it), set)
		if t == nil {
			continue
		}
		if prev, dup := names[t.Name]; dup {
			w.errorf(prev, "duplicate test name %q (again at line %d)", t.Name, t.Line)
		} else {
			names[t.Name] = deref(it)
		}
		out = append(out, t)
	}
	return out
}

func (w *walker) test(n *yaml.Node, set *policies.Set) *Test {
	f, ok := w.mapping(n, "test", testKeys...)
	if !ok {
		return nil
	}
	t := &Test{Line: n.Line}
	for _, k := range []string{"name", "request", "expect"} {
		if _, ok := f[k]; !ok {
			w.errorf(n, "missing required key %q in test", k)
		}
	}
	if v, ok := f["name"]; ok {
		if s, ok := w.str(v.val, "name"); ok {
			if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\r") {
				w.errorf(v.val, "name must be one non-empty line")
			}
			t.Name = s
		}
	}
	if v, ok := f["request"]; ok {
		w.request(v.val, &t.Request)
	}
	if t.Request.SourceIP == "" {
		t.Request.SourceIP = DefaultSourceIP
	}
	id, hasID := f["identity"]
	st, hasST := f["service_token"]
	if hasID && hasST {
		// A request carries an Access token or a service token in these
		// tests, never both: which one decided would be unclear.
		w.errorf(st.key, "a test has identity or service_token, not both (identity at %s:%d:%d)", w.file, id.key.Line, id.key.Column)
	}
	if hasID {
		t.Identity = w.identity(id.val)
	}
	if hasST {
		if s, ok := w.str(st.val, "service_token"); ok {
			t.ServiceToken = s
			if set != nil && tokenByName(set, s) == nil {
				w.errorf(st.val, "unknown service token %q (not in the policy file's service_tokens)", s)
			}
		}
	}
	if v, ok := f["expect"]; ok {
		w.expect(v.val, &t.Expect)
	}
	return t
}

func (w *walker) request(v *yaml.Node, r *Request) {
	f, ok := w.mapping(v, "request", requestKeys...)
	if !ok {
		return
	}
	for _, k := range []string{"method", "scheme", "host", "path", "source_ip", "client_cert", "application"} {
		fv, ok := f[k]
		if !ok {
			continue
		}
		s, ok := w.str(fv.val, k)
		if !ok {
			continue
		}
		switch k {
		case "method":
			r.Method = s
		case "scheme":
			r.Scheme = s
		case "host":
			r.Host = s
		case "path":
			r.Path = s
		case "client_cert":
			r.ClientCert = s
		case "application":
			r.Application = &s
		case "source_ip":
			r.SourceIP = s
			if _, err := (&Request{SourceIP: s}).Authz(); err != nil {
				w.errorf(fv.val, "malformed source_ip %q", s)
			}
		}
	}
	if fv, ok := f["headers"]; ok {
		h := w.headerMap(fv.val, "headers", false)
		r.Headers = make(map[string]string, len(h))
		for k, v := range h {
			r.Headers[k] = *v
		}
	}
}

// identity reads the claims to mint. email, country and issuer are
// strings, groups a list of strings, custom a mapping, expired a boolean,
// audience a string or a list; any other claim is taken as YAML decodes it.
func (w *walker) identity(v *yaml.Node) *Identity {
	list, ok := w.pairs(v, "identity", nil)
	if !ok {
		return nil
	}
	id := &Identity{Claims: map[string]any{}}
	for _, f := range list {
		k := f.key.Value
		switch k {
		case "expired":
			id.Expired, _ = w.boolean(f.val, "identity.expired")
			continue
		case "issuer":
			if s, ok := w.str(f.val, "identity.issuer"); ok {
				id.Issuer = &s
			}
			continue
		case "audience":
			if f.val.Kind == yaml.SequenceNode {
				l, _ := w.strList(f.val, "identity.audience")
				id.Audience = l
			} else if s, ok := w.str(f.val, "identity.audience (a string or a list)"); ok {
				id.Audience = s
			}
			continue
		case "email", "country":
			if s, ok := w.str(f.val, "identity."+k); ok {
				id.Claims[k] = s
			}
			continue
		case "groups":
			if l, ok := w.strList(f.val, "identity.groups"); ok {
				id.Claims[k] = l
			}
			continue
		case "custom":
			if f.val.Kind != yaml.MappingNode {
				w.errorf(f.val, "identity.custom must be a mapping, not %s", yamlnode.KindName(f.val))
				continue
			}
		}
		val, err := jsonValue(f.val)
		if err != nil {
			w.errorf(f.val, "identity.%s: %v", k, err)
			continue
		}
		id.Claims[k] = val
	}
	if _, ok := id.Claims["exp"]; ok && id.Expired {
		w.errorf(v, "identity has both expired and an exp claim; keep one")
	}
	return id
}

func (w *walker) expect(v *yaml.Node, e *Expect) {
	f, ok := w.mapping(v, "expect", expectKeys...)
	if !ok {
		return
	}
	if len(f) == 0 {
		// A test that compares nothing can never fail.
		w.errorf(v, "expect must name at least one field")
	}
	strField := func(k string, dst **string) {
		if fv, ok := f[k]; ok {
			if s, ok := w.str(fv.val, "expect."+k); ok {
				*dst = &s
			}
		}
	}
	strField("application", &e.Application)
	strField("policy", &e.Policy)
	strField("reason", &e.Reason)
	strField("rule", &e.Rule)
	if fv, ok := f["status"]; ok {
		if fv.val.Kind != yaml.ScalarNode || fv.val.Tag != "!!int" {
			w.errorf(fv.val, "expect.status must be an integer, not %s", yamlnode.KindName(fv.val))
		} else if n, err := strconv.Atoi(fv.val.Value); err != nil || n < 100 || n > 599 {
			w.errorf(fv.val, "expect.status %s is not an HTTP status (100..599)", fv.val.Value)
		} else {
			e.Status = &n
		}
	}
	if fv, ok := f["headers"]; ok {
		e.Headers = w.headerMap(fv.val, "expect.headers", true)
	}
	if fv, ok := f["response_headers"]; ok {
		e.ResponseHeaders = w.headerMap(fv.val, "expect.response_headers", true)
	}
	if fv, ok := f["headers_to_remove"]; ok {
		if l, ok := w.strList(fv.val, "expect.headers_to_remove"); ok {
			for i := range l {
				l[i] = strings.ToLower(l[i])
			}
			e.HeadersToRemove, e.HasHeadersToRemove = l, true
		}
	}
	if fv, ok := f["body"]; ok {
		if fv.val.Kind == yaml.MappingNode {
			if val, err := jsonValue(fv.val); err != nil {
				w.errorf(fv.val, "expect.body: %v", err)
			} else {
				e.BodyJSON, _ = val.(map[string]any)
			}
		} else if s, ok := w.str(fv.val, "expect.body (a string or a mapping)"); ok {
			e.Body = &s
		}
	}
}

// jsonValue decodes a YAML value into what encoding/json would decode its
// JSON form into (numbers as float64, timestamps as strings), so that
// claims and expected bodies compare like the JSON they stand for.
func jsonValue(n *yaml.Node) (any, error) {
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, errors.New("mapping keys must be strings")
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// tokenByName finds a service token of set by its name.
func tokenByName(set *policies.Set, name string) *policies.ServiceToken {
	for _, t := range set.ServiceTokens {
		if t.Name == name {
			return t
		}
	}
	return nil
}
