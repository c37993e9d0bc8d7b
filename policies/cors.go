package policies

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxMaxAge is the contract's upper bound for max_age (a day), also
// Cloudflare's.
const maxMaxAge = 86400

var corsKeys = []string{
	"allow_origins", "allow_all_origins", "allow_methods", "allow_all_methods",
	"allow_headers", "allow_all_headers", "expose_headers", "allow_credentials",
	"max_age", "allow_private_network", "bypass_options_to_origin",
}

// cors parses an application's `cors` and precomputes its answer headers.
func (p *parser) cors(n *yaml.Node) *CORS {
	f, ok := p.mapping(n, "cors", corsKeys...)
	if !ok {
		return nil
	}
	c := &CORS{}
	if v, ok := f["bypass_options_to_origin"]; ok {
		if b, ok := p.boolean(v.val, "bypass_options_to_origin"); ok && b {
			// Cloudflare drops every other CORS setting when bypass is on;
			// silently ignoring them here would hide a misunderstanding.
			for _, k := range corsKeys {
				if other, ok := f[k]; ok && k != "bypass_options_to_origin" {
					p.errorf(other.key, "%s cannot be combined with bypass_options_to_origin: true (%s)", k, p.pos(v.key))
				}
			}
			return &CORS{BypassOptionsToOrigin: true}
		}
	}
	flag := func(key string, dst *bool) {
		if v, ok := f[key]; ok {
			if b, ok := p.boolean(v.val, key); ok {
				*dst = b
			}
		}
	}
	flag("allow_all_origins", &c.AllowAllOrigins)
	flag("allow_all_methods", &c.AllowAllMethods)
	flag("allow_all_headers", &c.AllowAllHeaders)
	flag("allow_credentials", &c.AllowCredentials)
	flag("allow_private_network", &c.AllowPrivateNetwork)
	c.origins.allowAll = c.AllowAllOrigins

	if v, ok := f["allow_origins"]; ok {
		list, nodes, _ := p.strList(v.val, "allow_origins")
		for i, s := range list {
			if c.AllowAllOrigins && s != "null" {
				// "null" is the one entry that means something next to
				// allow_all_origins: it never matches otherwise.
				p.errorf(nodes[i], "allow_origins entry %q together with allow_all_origins: true (%s)", s, p.pos(f["allow_all_origins"].key))
				continue
			}
			if err := c.origins.addPattern(s); err != nil {
				p.errorf(nodes[i], "malformed origin pattern %q: %v", s, err)
			}
		}
	}
	if v, ok := f["allow_methods"]; ok {
		list, _ := p.tokens(v.val, "allow_methods", "method")
		c.Methods = make(map[string]struct{}, len(list))
		for _, m := range list {
			c.Methods[m] = struct{}{}
		}
		c.AllowMethodsValue = strings.Join(list, ", ")
	}
	if v, ok := f["allow_headers"]; ok {
		list, _ := p.tokens(v.val, "allow_headers", "header name")
		c.Headers = make(map[string]struct{}, len(list))
		for _, h := range list {
			c.Headers[LowerASCII(h)] = struct{}{}
		}
		c.AllowHeadersValue = strings.Join(list, ", ")
	}
	if v, ok := f["expose_headers"]; ok {
		list, _ := p.tokens(v.val, "expose_headers", "header name")
		c.ExposeHeadersValue = strings.Join(list, ", ")
	}
	if v, ok := f["max_age"]; ok {
		if n, ok := p.integer(v.val, "max_age"); ok {
			if n < 0 || n > maxMaxAge {
				p.errorf(v.val, "max_age %d out of range 0..%d", n, maxMaxAge)
			} else {
				c.MaxAgeValue = strconv.FormatInt(n, 10)
			}
		}
	}
	return c
}

// tokens parses a list of HTTP tokens (RFC 9110 §5.6.2): methods and
// header names.
func (p *parser) tokens(v *yaml.Node, what, kind string) ([]string, []*yaml.Node) {
	list, nodes, _ := p.strList(v, what)
	out := list[:0:0]
	outNodes := nodes[:0:0]
	for i, s := range list {
		if !IsToken(s) {
			p.errorf(nodes[i], "malformed %s %q in %s", kind, s, what)
			continue
		}
		out = append(out, s)
		outNodes = append(outNodes, nodes[i])
	}
	return out, outNodes
}
