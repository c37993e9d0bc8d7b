package cfimport

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// selector is one accessgate selector being built: a flag (everyone,
// any_service_token, valid_certificate), a list of values, or a claim.
type selector struct {
	kind   string
	values []string
	claim  string
	value  any
}

// Selector kinds by what they read.
var (
	flagKinds = map[string]bool{"everyone": true, "any_service_token": true, "valid_certificate": true}
	// identityKinds read the Access token: contract §2 forbids them in
	// bypass and service_auth policies, which run before any token is read.
	identityKinds = map[string]bool{"email": true, "email_domain": true, "group": true, "claim": true, "country": true}
	serviceKinds  = map[string]bool{"service_token": true, "any_service_token": true}
)

// unmappable is a rule the import cannot carry over, and why.
type unmappable struct {
	rule string // the Cloudflare rule type, or a description
	why  string
}

func (u *unmappable) String() string {
	if u.why == "" {
		return u.rule + " cannot be mapped"
	}
	return u.rule + " cannot be mapped: " + u.why
}

// maxGroupDepth bounds Access groups that name other Access groups (and
// catches a cycle).
const maxGroupDepth = 8

// mapRule maps one Cloudflare rule to the selectors that mean the same in
// an include or an exclude (an Access group becomes one selector per rule
// of its include). For a require, see mapRequire.
func (im *importer) mapRule(r rule, depth int) ([]selector, *unmappable) {
	one := func(kind, v string) ([]selector, *unmappable) {
		if v == "" {
			return nil, &unmappable{rule: r.Type, why: "its value is empty"}
		}
		return []selector{{kind: kind, values: []string{v}}}, nil
	}
	switch r.Type {
	case "everyone":
		return []selector{{kind: "everyone"}}, nil
	case "email":
		e := r.field("email")
		if at := strings.IndexByte(e, '@'); at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 {
			return nil, &unmappable{rule: "email", why: fmt.Sprintf("%q is not an e-mail address", e)}
		}
		return one("email", e)
	case "email_domain":
		d := strings.TrimPrefix(r.field("domain"), "@")
		if !validDomainName(d) {
			return nil, &unmappable{rule: "email_domain", why: fmt.Sprintf("%q is not a domain", d)}
		}
		return one("email_domain", d)
	case "ip":
		ip := r.field("ip")
		if !validCIDR(ip) {
			return nil, &unmappable{rule: "ip", why: fmt.Sprintf("%q is not a CIDR or address", ip)}
		}
		return one("ip", ip)
	case "geo":
		cc := r.field("country_code")
		if len(cc) != 2 || !isASCIILetters(cc) {
			return nil, &unmappable{rule: "geo", why: fmt.Sprintf("%q is not a two-letter country code", cc)}
		}
		return one("country", cc)
	case "service_token":
		return im.serviceTokenRule(r.field("token_id"))
	case "any_valid_service_token":
		return []selector{{kind: "any_service_token"}}, nil
	case "certificate":
		if !im.clientCA {
			return nil, &unmappable{rule: "certificate", why: "needs --client-ca (the API does not export the client certificate authorities)"}
		}
		return []selector{{kind: "valid_certificate"}}, nil
	case "common_name":
		if !im.clientCA {
			return nil, &unmappable{rule: "common_name", why: "needs --client-ca (the API does not export the client certificate authorities)"}
		}
		return one("common_name", r.field("common_name"))
	case "saml":
		return claimRule("saml", r.field("attribute_name"), r.field("attribute_value"))
	case "oidc":
		return claimRule("oidc", r.field("claim_name"), r.field("claim_value"))
	case "okta":
		return one("group", r.field("name"))
	case "azureAD":
		return one("group", r.field("id"))
	case "gsuite":
		return one("group", r.field("email"))
	case "group":
		return im.groupRule(r.field("id"), depth)
	}
	return nil, &unmappable{rule: r.Type}
}

// claimRule maps a SAML attribute or OIDC claim rule: the groups attribute
// (any letter case) is what the token's groups claim carries; any other
// name is a claim selector.
func claimRule(typ, name, value string) ([]selector, *unmappable) {
	switch {
	case name == "" || value == "":
		return nil, &unmappable{rule: typ, why: "its name or value is empty"}
	case strings.EqualFold(name, "groups"):
		return []selector{{kind: "group", values: []string{value}}}, nil
	case strings.Contains(name, "."):
		// A claim selector reads a dotted name as a path into objects, so
		// "http://schemas.example.com/role" would never match: in an
		// exclude that would fail open.
		return nil, &unmappable{rule: typ, why: fmt.Sprintf("attribute name %q holds a dot, which a claim selector reads as a path", name)}
	}
	return []selector{{kind: "claim", claim: name, value: value}}, nil
}

// serviceTokenRule maps a service_token rule through --service-tokens.
func (im *importer) serviceTokenRule(id string) ([]selector, *unmappable) {
	if im.tokens == nil {
		return nil, &unmappable{rule: "service_token", why: fmt.Sprintf("token %s: needs --service-tokens (the rule names a token id)", id)}
	}
	t := im.tokens[id]
	if t == nil {
		return nil, &unmappable{rule: "service_token", why: fmt.Sprintf("token %s is not in the --service-tokens file", id)}
	}
	if t.ClientID == "" {
		return nil, &unmappable{rule: "service_token", why: fmt.Sprintf("token %s has no client_id", id)}
	}
	if t.ExpiresAt != "" {
		if _, err := time.Parse(time.RFC3339, t.ExpiresAt); err != nil {
			// Dropping the expiry would make the token last for ever.
			return nil, &unmappable{rule: "service_token", why: fmt.Sprintf("token %s has an unreadable expires_at %q", id, t.ExpiresAt)}
		}
	}
	return []selector{{kind: "service_token", values: []string{im.tokenName(t)}}}, nil
}

// groupRule inlines an Access group: its include rules, each a selector.
// A group with require or exclude rules of its own has no such
// flattening: its meaning is (any include) and (all require) and not (any
// exclude), which one selector list cannot say.
func (im *importer) groupRule(id string, depth int) ([]selector, *unmappable) {
	g := im.groups[id]
	switch {
	case im.groups == nil:
		return nil, &unmappable{rule: "group", why: fmt.Sprintf("Access group %s: needs --groups", id)}
	case g == nil:
		return nil, &unmappable{rule: "group", why: fmt.Sprintf("Access group %s is not in the --groups file", id)}
	case len(g.Require) > 0 || len(g.Exclude) > 0:
		return nil, &unmappable{rule: "group", why: fmt.Sprintf("Access group %q (id %s) has require or exclude rules of its own", g.Name, g.ID)}
	case depth >= maxGroupDepth:
		return nil, &unmappable{rule: "group", why: fmt.Sprintf("Access group %q (id %s) nests more than %d groups deep", g.Name, g.ID, maxGroupDepth)}
	}
	var out []selector
	for _, r := range g.Include {
		sels, u := im.mapRule(r, depth+1)
		if u != nil {
			return nil, &unmappable{rule: "group", why: fmt.Sprintf("Access group %q (id %s): %s", g.Name, g.ID, u)}
		}
		out = append(out, sels...)
	}
	return out, nil
}

// mapRequire maps one require rule to one require entry: Cloudflare ANDs
// every require rule, and accessgate ORs the values of one selector, so an
// Access group can only become one entry when its rules are all of one
// selector type.
func (im *importer) mapRequire(r rule) (selector, *unmappable) {
	sels, u := im.mapRule(r, 0)
	if u != nil {
		return selector{}, u
	}
	if len(sels) == 0 {
		return selector{}, &unmappable{rule: r.Type, why: "the Access group has no include rules, so the policy could never match"}
	}
	merged, ok := mergeOne(sels)
	if !ok {
		var kinds []string
		for _, s := range sels {
			if !slices.Contains(kinds, s.kind) {
				kinds = append(kinds, s.kind)
			}
		}
		return selector{}, &unmappable{rule: "group", why: fmt.Sprintf("in a require, the Access group's rules (%s) must all be of one type to stay one entry", strings.Join(kinds, ", "))}
	}
	return merged, nil
}

// mergeOne merges selectors of one kind into one selector (their values
// ORed), or reports that it cannot.
func mergeOne(sels []selector) (selector, bool) {
	out := sels[0]
	out.values = slices.Clone(out.values)
	for _, s := range sels[1:] {
		switch {
		case s.kind != out.kind:
			return selector{}, false
		case s.kind == "claim":
			if s.claim != out.claim || s.value != out.value {
				return selector{}, false
			}
		case flagKinds[s.kind]:
		default:
			out.values = appendNew(out.values, s.values...)
		}
	}
	return out, true
}

// mergeList merges the selectors of an include or exclude list by kind,
// keeping first-seen order: entries there are ORed anyway, and one
// `{email: [a, b]}` reads better than two entries. Claims stay apart.
func mergeList(sels []selector) []selector {
	var out []selector
	at := map[string]int{}
	for _, s := range sels {
		if s.kind == "claim" {
			out = append(out, s)
			continue
		}
		if i, ok := at[s.kind]; ok {
			out[i].values = appendNew(out[i].values, s.values...)
			continue
		}
		at[s.kind] = len(out)
		s.values = slices.Clone(s.values)
		out = append(out, s)
	}
	return out
}

func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

func validDomainName(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(strings.ToLower(d), ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func validCIDR(s string) bool {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return err == nil && p.Addr().Zone() == ""
	}
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}

func isASCIILetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
