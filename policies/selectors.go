package policies

import (
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

var actions = map[string]Action{
	"bypass":       ActionBypass,
	"service_auth": ActionServiceAuth,
	"block":        ActionBlock,
	"allow":        ActionAllow,
}

// policies parses an application's `policies` into PreAuth (bypass,
// service_auth) and PostAuth (block, allow), each in file order.
func (p *parser) policies(v *yaml.Node, app *Application, tokens map[string]*ServiceToken) {
	items, ok := p.seq(v, "policies")
	if ok && len(items) == 0 {
		p.errorf(v, "application %q has no policies", app.Name)
	}
	for _, it := range items {
		pol := p.policy(it, tokens)
		if pol == nil {
			continue
		}
		switch pol.Action {
		case ActionBypass, ActionServiceAuth:
			app.PreAuth = append(app.PreAuth, pol)
		case ActionBlock, ActionAllow:
			app.PostAuth = append(app.PostAuth, pol)
		}
	}
}

func (p *parser) policy(n *yaml.Node, tokens map[string]*ServiceToken) *Policy {
	const what = "policy"
	f, ok := p.mapping(n, what, "name", "action", "paths", "include", "require", "exclude")
	if !ok {
		return nil
	}
	p.require(n, f, what, "name", "action", "include")
	pol := &Policy{}
	if v, ok := f["name"]; ok {
		pol.Name, _ = p.nonEmpty(v.val, "policy name")
	}
	if v, ok := f["action"]; ok {
		if s, ok := p.nonEmpty(v.val, "action"); ok {
			if a, ok := actions[s]; ok {
				pol.Action = a
			} else {
				p.errorf(v.val, "unknown action %q (want allow, block, bypass or service_auth)", s)
			}
		}
	}
	if v, ok := f["paths"]; ok {
		list, nodes, _ := p.strList(v.val, "paths")
		if len(list) == 0 && v.val.Kind == yaml.SequenceNode {
			// An empty list would silently mean "every path".
			p.errorf(v.val, "paths must not be empty (omit it to cover every path)")
		}
		for i, s := range list {
			np, err := normPathPrefix(s)
			if err != nil {
				p.errorf(nodes[i], "malformed path %q: %v", s, err)
				continue
			}
			if np == "" {
				np = "/"
			}
			pol.Paths = append(pol.Paths, np)
		}
	}
	if v, ok := f["include"]; ok {
		pol.Include = p.selectors(v.val, "include", tokens)
		if len(pol.Include) == 0 && v.val.Kind == yaml.SequenceNode && len(v.val.Content) == 0 {
			p.errorf(v.val, "include must not be empty: a policy with no include never matches")
		}
	}
	if v, ok := f["require"]; ok {
		pol.Require = p.selectors(v.val, "require", tokens)
	}
	if v, ok := f["exclude"]; ok {
		pol.Exclude = p.selectors(v.val, "exclude", tokens)
	}
	return pol
}

func (p *parser) selectors(v *yaml.Node, what string, tokens map[string]*ServiceToken) []*Selector {
	items, _ := p.seq(v, what)
	out := make([]*Selector, 0, len(items))
	for _, it := range items {
		if sel := p.selector(it, what, tokens); sel != nil {
			out = append(out, sel)
		}
	}
	return out
}

var selectorKinds = map[string]SelectorKind{
	"everyone":          SelEveryone,
	"email":             SelEmail,
	"email_domain":      SelEmailDomain,
	"group":             SelGroup,
	"claim":             SelClaim,
	"ip":                SelIP,
	"country":           SelCountry,
	"service_token":     SelServiceToken,
	"any_service_token": SelAnyServiceToken,
	"valid_certificate": SelValidCertificate,
}

// selector parses one {kind: value} rule.
func (p *parser) selector(n *yaml.Node, what string, tokens map[string]*ServiceToken) *Selector {
	if n.Kind != yaml.MappingNode {
		if !p.over {
			p.errorf(n, "%s entry must be a selector mapping such as {email: [...]}, not %s", what, kindName(n))
		}
		return nil
	}
	switch len(n.Content) {
	case 0:
		p.errorf(n, "empty selector in %s", what)
		return nil
	case 2:
	default:
		var keys []string
		for i := 0; i < len(n.Content); i += 2 {
			keys = append(keys, p.deref(n.Content[i]).Value)
		}
		// One key per selector keeps include (any) and require (all)
		// unambiguous: which would two keys in one entry mean?
		p.errorf(n, "selector has more than one key (%s); write one selector per list entry", strings.Join(keys, ", "))
		return nil
	}
	k, v := p.deref(n.Content[0]), p.deref(n.Content[1])
	kind, ok := selectorKinds[k.Value]
	if k.Kind != yaml.ScalarNode || !ok {
		p.errorf(k, "unknown selector %q (want one of %s)", k.Value, selectorNames())
		return nil
	}
	sel := &Selector{Kind: kind}
	switch kind {
	case SelEveryone, SelAnyServiceToken, SelValidCertificate:
		if b, ok := p.boolean(v, k.Value); ok && !b {
			p.errorf(v, "%s must be true (remove the selector instead)", k.Value)
			return nil
		}
	case SelEmail:
		sel.Set = p.valueSet(v, k.Value, true, func(s string) string {
			if i := strings.IndexByte(s, '@'); i <= 0 || i == len(s)-1 || strings.Count(s, "@") != 1 {
				return "want name@domain"
			}
			return ""
		})
	case SelEmailDomain:
		sel.Set = p.valueSet(v, k.Value, true, func(s string) string {
			if strings.HasPrefix(s, "@") {
				return "write the domain without @"
			}
			if checkHostname(s) != nil {
				return "want a domain such as example.com"
			}
			return ""
		})
	case SelGroup:
		sel.Set = p.valueSet(v, k.Value, false, nil)
	case SelCountry:
		sel.Set = p.valueSet(v, k.Value, true, func(s string) string {
			if len(s) != 2 || s[0] < 'a' || s[0] > 'z' || s[1] < 'a' || s[1] > 'z' {
				return "want a two-letter ISO 3166 code"
			}
			return ""
		})
	case SelServiceToken:
		sel.Set = p.valueSet(v, k.Value, false, nil)
		for _, it := range v.Content {
			it = p.deref(it)
			if _, ok := tokens[it.Value]; !ok && it.Kind == yaml.ScalarNode && it.Value != "" {
				p.errorf(it, "unknown service token %q (not in service_tokens)", it.Value)
			}
		}
	case SelIP:
		sel.CIDRs = p.cidrs(v, "ip")
		if len(sel.CIDRs) == 0 && v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			p.errorf(v, "ip must not be empty")
		}
	case SelClaim:
		p.claim(v, sel)
	}
	return sel
}

func selectorNames() string {
	names := make([]string, 0, len(selectorKinds))
	for n := range selectorKinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// valueSet parses a non-empty list of strings into a set, lower-cased when
// lower is set; check returns a problem with a value, or "".
func (p *parser) valueSet(v *yaml.Node, what string, lower bool, check func(string) string) map[string]struct{} {
	list, nodes, _ := p.strList(v, what)
	if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
		p.errorf(v, "%s must not be empty", what)
	}
	set := make(map[string]struct{}, len(list))
	for i, s := range list {
		if lower {
			s = LowerASCII(s)
		}
		if check != nil {
			if msg := check(s); msg != "" {
				p.errorf(nodes[i], "malformed %s %q: %s", what, list[i], msg)
				continue
			}
		}
		set[s] = struct{}{}
	}
	return set
}

// claim parses `claim: {name: value}`.
func (p *parser) claim(v *yaml.Node, sel *Selector) {
	if v.Kind != yaml.MappingNode {
		p.errorf(v, "claim must be a mapping {name: value}, not %s", kindName(v))
		return
	}
	if len(v.Content) != 2 {
		p.errorf(v, "claim must have exactly one name: value (use one claim selector per claim)")
		return
	}
	k, val := p.deref(v.Content[0]), p.deref(v.Content[1])
	name, ok := p.nonEmpty(k, "claim name")
	if !ok {
		return
	}
	path := strings.Split(name, ".")
	if slices.Contains(path, "") {
		p.errorf(k, "malformed claim name %q: empty segment", name)
		return
	}
	sel.ClaimPath = path
	if val.Kind != yaml.ScalarNode {
		p.errorf(val, "claim value must be a string, boolean or number, not %s", kindName(val))
		return
	}
	switch val.Tag {
	case "!!null":
		p.errorf(val, "claim value must be a string, boolean or number, not null")
	case "!!bool":
		b, _ := p.boolean(val, "claim value")
		sel.ClaimValue = b
	case "!!int", "!!float":
		// JSON numbers decode to float64, so compare as float64.
		var f float64
		if err := val.Decode(&f); err != nil {
			p.errorf(val, "malformed number %q", val.Value)
			return
		}
		sel.ClaimValue = f
	default:
		s, ok := p.str(val, "claim value")
		if ok {
			sel.ClaimValue = s
		}
	}
}
