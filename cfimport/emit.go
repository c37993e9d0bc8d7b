package cfimport

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileOut is the policy file the import writes. Keys come in a fixed
// order and lists in input (or precedence) order, so that importing the
// same configuration twice gives the same file, and a re-import diffs well.
type fileOut struct {
	issuer     issuerOut
	clientCA   string
	tokens     []*serviceToken
	tokenNames map[string]string
	apps       []*appOut
}

// zeroDigest is the client_secret_sha256 of an imported service token: the
// digest of no known secret, so that the token never succeeds until the
// operator writes the real one.
const zeroDigest = "0000000000000000000000000000000000000000000000000000000000000000"

func (f *fileOut) encode() ([]byte, error) {
	root := mapping(false)
	root.HeadComment = "Imported from Cloudflare Access by `accessgate import cloudflare`.\n" +
		"Read the report it printed: every setting it names was not carried over."
	add(root, "default_action", str("deny"), "")
	if f.clientCA != "" {
		add(root, "client_certificate_authorities", seq(true, str(f.clientCA)), "Client certificate authorities (not exported by the Cloudflare API).")
	}
	iss := mapping(false)
	add(iss, "name", str(f.issuer.name), "")
	add(iss, "issuer", str(f.issuer.url), "")
	add(iss, "jwks_url", str(f.issuer.url+"/cdn-cgi/access/certs"), "")
	add(iss, "login_url", str(f.issuer.url+"/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}"), "")
	add(root, "issuers", seq(false, iss), "The Cloudflare Access team domain.")

	if len(f.tokens) > 0 {
		var items []*yaml.Node
		for _, t := range f.tokens {
			m := mapping(false)
			m.HeadComment = fmt.Sprintf("Cloudflare service token %s. Replace the zeros with the SHA-256 of its secret.", t.ID)
			add(m, "name", str(f.tokenNames[t.ID]), "")
			add(m, "client_id", str(t.ClientID), "")
			add(m, "client_secret_sha256", str(zeroDigest), "")
			if t.ExpiresAt != "" {
				add(m, "expires", str(t.ExpiresAt), "")
			}
			items = append(items, m)
		}
		add(root, "service_tokens", seq(false, items...), "")
	}

	var apps []*yaml.Node
	for _, a := range f.apps {
		apps = append(apps, a.node(f.issuer.name))
	}
	add(root, "applications", seq(false, apps...), "")

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode policy file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (a *appOut) node(issuer string) *yaml.Node {
	m := mapping(false)
	m.HeadComment = a.comment
	add(m, "name", str(a.name), "")
	var ds []*yaml.Node
	for _, d := range a.domains {
		ds = append(ds, str(d))
	}
	add(m, "domains", seq(false, ds...), "")
	add(m, "issuer", str(issuer), "")
	add(m, "audience", str(a.audience), "")
	if a.unauthDeny {
		add(m, "unauthenticated", str("deny"), "only bypass and non_identity policies: Cloudflare never redirects to log in")
	}
	if c := a.cors; c != nil {
		add(m, "cors", c.node(), "")
	}
	var ps []*yaml.Node
	for _, p := range a.policies {
		ps = append(ps, p.node())
	}
	add(m, "policies", seq(false, ps...), "")
	return m
}

func (c *corsOut) node() *yaml.Node {
	m := mapping(false)
	if c.bypass {
		add(m, "bypass_options_to_origin", boolean(true), "")
		return m
	}
	list := func(key string, vs []string) {
		if len(vs) == 0 {
			return
		}
		var items []*yaml.Node
		for _, v := range vs {
			items = append(items, str(v))
		}
		add(m, key, seq(true, items...), "")
	}
	flag := func(key string, on bool) {
		if on {
			add(m, key, boolean(true), "")
		}
	}
	list("allow_origins", c.origins)
	flag("allow_all_origins", c.allOrigins)
	list("allow_methods", c.methods)
	flag("allow_all_methods", c.allMethods)
	list("allow_headers", c.headers)
	flag("allow_all_headers", c.allHeaders)
	flag("allow_credentials", c.credentials)
	if c.maxAge != nil {
		add(m, "max_age", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(*c.maxAge)}, "")
	}
	return m
}

func (p *policyOut) node() *yaml.Node {
	m := mapping(false)
	m.HeadComment = p.comment
	add(m, "name", str(p.name), "")
	add(m, "action", str(p.action), "")
	for _, part := range []struct {
		key  string
		sels []selector
	}{{"include", p.include}, {"require", p.require}, {"exclude", p.exclude}} {
		if len(part.sels) == 0 {
			continue
		}
		var items []*yaml.Node
		for _, s := range part.sels {
			items = append(items, s.node())
		}
		add(m, part.key, seq(false, items...), "")
	}
	return m
}

func (s selector) node() *yaml.Node {
	m := mapping(true)
	switch {
	case flagKinds[s.kind]:
		add(m, s.kind, boolean(true), "")
	case s.kind == "claim":
		c := mapping(true)
		add(c, s.claim, str(fmt.Sprint(s.value)), "")
		add(m, "claim", c, "")
	default:
		var items []*yaml.Node
		for _, v := range s.values {
			items = append(items, str(v))
		}
		add(m, s.kind, seq(true, items...), "")
	}
	return m
}

func mapping(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func seq(flow bool, items ...*yaml.Node) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: items}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

// str is a string scalar; the encoder quotes it when YAML would read it as
// another type.
func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func boolean(b bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(b)}
}

// add appends key: val to a mapping, with a line comment when given.
func add(m *yaml.Node, key string, val *yaml.Node, comment string) {
	k := str(key)
	if comment != "" {
		if strings.Contains(comment, "\n") || val.Kind != yaml.ScalarNode {
			k.HeadComment = comment
		} else {
			val.LineComment = comment
		}
	}
	m.Content = append(m.Content, k, val)
}
