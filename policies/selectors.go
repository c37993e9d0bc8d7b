package policies

import (
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"

	"github.com/accessgate/accessgate/internal/yamlnode"
)

// actionNames are the YAML names of the actions, for messages.
var actionNames = func() map[Action]string {
	m := make(map[Action]string, len(actions))
	for name, a := range actions {
		m[a] = name
	}
	return m
}()

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
	in := selectorContext{action: pol.Action, tokens: tokens}
	if v, ok := f["include"]; ok {
		pol.Include = p.selectors(v.val, in.within("include"))
		if len(pol.Include) == 0 && v.val.Kind == yaml.SequenceNode && len(v.val.Content) == 0 {
			p.errorf(v.val, "include must not be empty: a policy with no include never matches")
		}
	}
	if v, ok := f["require"]; ok {
		pol.Require = p.selectors(v.val, in.within("require"))
	}
	if v, ok := f["exclude"]; ok {
		pol.Exclude = p.selectors(v.val, in.within("exclude"))
	}
	return pol
}

// selectorContext is where a selector list sits: the policy's action (0
// when it is missing or unknown), which list, and the service tokens.
type selectorContext struct {
	action Action
	what   string // include, require or exclude
	tokens map[string]*ServiceToken
}

func (c selectorContext) within(what string) selectorContext {
	c.what = what
	return c
}

func (p *parser) selectors(v *yaml.Node, in selectorContext) []*Selector {
	items, _ := p.seq(v, in.what)
	out := make([]*Selector, 0, len(items))
	for i, it := range items {
		if sel := p.selector(it, in); sel != nil {
			// Built once here, so that naming the deciding rule costs
			// the decision nothing.
			sel.Rule = in.what + "[" + strconv.Itoa(i) + "]." + sel.Kind.String()
			out = append(out, sel)
		}
	}
	return out
}

// kindNames are the YAML names of the selector kinds: the one table that
// the parser, SelectorKinds and String read, so that a kind cannot be
// parsed without being listed.
var kindNames = [numSelectorKinds]string{
	SelEveryone:         "everyone",
	SelEmail:            "email",
	SelEmailDomain:      "email_domain",
	SelGroup:            "group",
	SelClaim:            "claim",
	SelIP:               "ip",
	SelCountry:          "country",
	SelServiceToken:     "service_token",
	SelAnyServiceToken:  "any_service_token",
	SelValidCertificate: "valid_certificate",
	SelCommonName:       "common_name",
}

// SelectorKinds lists every selector kind the parser knows, in the order of
// their constants. The decision core's tests walk it so that a kind without
// a case there fails a test instead of silently never matching (which, in
// an exclude, would let everyone in). Read it; do not modify it.
var SelectorKinds = func() []SelectorKind {
	kinds := make([]SelectorKind, 0, numSelectorKinds-1)
	for k := SelEveryone; k < numSelectorKinds; k++ {
		kinds = append(kinds, k)
	}
	return kinds
}()

// selectorKinds maps a YAML name to its kind.
var selectorKinds = func() map[string]SelectorKind {
	m := make(map[string]SelectorKind, len(SelectorKinds))
	for _, k := range SelectorKinds {
		m[kindNames[k]] = k
	}
	return m
}()

// String returns the kind's YAML name ("email_domain"), or
// "SelectorKind(N)" for a value that is no kind.
func (k SelectorKind) String() string {
	if k >= SelEveryone && k < numSelectorKinds {
		return kindNames[k]
	}
	return "SelectorKind(" + strconv.Itoa(int(k)) + ")"
}

// selector parses one {kind: value} rule.
func (p *parser) selector(n *yaml.Node, in selectorContext) *Selector {
	what := in.what
	if n.Kind != yaml.MappingNode {
		if !p.over {
			p.errorf(n, "%s entry must be a selector mapping such as {email: [...]}, not %s", what, yamlnode.KindName(n))
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
		p.errorf(k, "unknown selector %q (want one of %s)", k.Value, selectorNameList())
		return nil
	}
	sel := &Selector{Kind: kind}
	if !p.selectorValue(sel, v, in.tokens) {
		return nil
	}
	p.checkPlacement(sel, k, v, in)
	return sel
}

// selectorValue parses the value of a selector of sel.Kind into sel; false
// drops the selector (a `false` flag).
func (p *parser) selectorValue(sel *Selector, v *yaml.Node, tokens map[string]*ServiceToken) bool {
	name := sel.Kind.String()
	switch sel.Kind {
	case SelEveryone, SelAnyServiceToken, SelValidCertificate:
		if b, ok := p.boolean(v, name); ok && !b {
			p.errorf(v, "%s must be true (remove the selector instead)", name)
			return false
		}
	case SelEmail:
		sel.Set = p.valueSet(v, name, true, func(s string) string {
			if i := strings.IndexByte(s, '@'); i <= 0 || i == len(s)-1 || strings.Count(s, "@") != 1 {
				return "want name@domain"
			}
			return ""
		})
	case SelEmailDomain:
		sel.Set = p.valueSet(v, name, true, func(s string) string {
			if strings.HasPrefix(s, "@") {
				return "write the domain without @"
			}
			if checkHostname(asciiProbe(s)) != nil {
				return "want a domain such as example.com"
			}
			return ""
		})
	case SelGroup, SelCommonName:
		sel.Set = p.valueSet(v, name, false, nil)
	case SelCountry:
		sel.Set = p.valueSet(v, name, true, func(s string) string {
			if len(s) != 2 || s[0] < 'a' || s[0] > 'z' || s[1] < 'a' || s[1] > 'z' {
				return "want a two-letter ISO 3166 code"
			}
			return ""
		})
	case SelServiceToken:
		sel.Set = p.valueSet(v, name, false, nil)
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
	return true
}

// asciiProbe stands an ASCII letter in for each non-ASCII letter, mark or
// digit of an email_domain, so that checkHostname judges its shape: a
// token's address may hold an unencoded internationalized domain, and an
// allow policy may name it (it can only fail closed).
func asciiProbe(s string) string {
	if _, ok := firstNonASCII(s); !ok {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r >= 0x80 && (unicode.IsLetter(r) || unicode.IsMark(r) || unicode.IsDigit(r)) {
			return 'x'
		}
		return r
	}, s)
}

// identityKinds are the selectors read from the Access token.
var identityKinds = map[SelectorKind]bool{
	SelEmail: true, SelEmailDomain: true, SelGroup: true, SelClaim: true, SelCountry: true,
}

// checkPlacement refuses a selector where it would silently fail open: an
// identity selector before the token is read, a certificate selector with
// no CA to verify against, a non-ASCII address where a miss lets the user
// in.
func (p *parser) checkPlacement(sel *Selector, k, v *yaml.Node, in selectorContext) {
	name := sel.Kind.String()
	if identityKinds[sel.Kind] && (in.action == ActionBypass || in.action == ActionServiceAuth) {
		p.errorf(k, "identity selector %s in the %s of a %s policy: bypass and service_auth policies run before any token is read, so it can never match",
			name, in.what, actionNames[in.action])
	}
	if (sel.Kind == SelValidCertificate || sel.Kind == SelCommonName) && !p.hasClientCAs {
		p.errorf(k, "%s needs client_certificate_authorities: without them no client certificate can be verified", name)
	}
	if (sel.Kind == SelEmail || sel.Kind == SelEmailDomain) && (in.action == ActionBlock || in.what == "exclude") {
		where := "an exclude"
		if in.action == ActionBlock {
			where = "a block policy"
		}
		for _, it := range v.Content {
			it = p.deref(it)
			if r, ok := firstNonASCII(it.Value); ok && it.Kind == yaml.ScalarNode {
				p.errorf(it, "%s %+q has a non-ASCII character (%U): only A-Z fold, so in %s it could silently miss the token's spelling and let the user in",
					name, it.Value, r, where)
			}
		}
	}
}

func selectorNameList() string {
	names := make([]string, 0, len(SelectorKinds))
	for _, k := range SelectorKinds {
		names = append(names, k.String())
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
		p.errorf(v, "claim must be a mapping {name: value}, not %s", yamlnode.KindName(v))
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
		p.errorf(val, "claim value must be a string, boolean or number, not %s", yamlnode.KindName(val))
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
