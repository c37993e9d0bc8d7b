package policies

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// claim remembers which application claimed a domain first, for the
// message about the second.
type claim struct {
	app  string
	node *yaml.Node
}

// applications parses the `applications` list and fills the host index.
func (p *parser) applications(v *yaml.Node, issuers map[string]*Issuer, tokens map[string]*ServiceToken, idx *hostIndex) []*Application {
	items, _ := p.seq(v, "applications")
	out := make([]*Application, 0, len(items))
	names := map[string]*yaml.Node{}
	claims := map[domain]claim{}
	for _, it := range items {
		app, nameNode, domains := p.application(it, issuers, tokens)
		if app == nil {
			continue
		}
		if app.Name != "" {
			if prev, dup := names[app.Name]; dup {
				p.errorf(nameNode, "duplicate application name %q (first at %s)", app.Name, p.pos(prev))
			} else {
				names[app.Name] = nameNode
			}
		}
		for _, d := range domains {
			if prev, dup := claims[d.domain]; dup {
				p.errorf(d.node, "domain %s already claimed by %q (%s)", d.domain, prev.app, p.pos(prev.node))
				continue
			}
			claims[d.domain] = claim{app: app.Name, node: d.node}
			idx.add(d.domain, app)
			app.Domains = append(app.Domains, d.domain.String())
			app.hostDomains = append(app.hostDomains, d.domain)
		}
		out = append(out, app)
	}
	return out
}

type domainAt struct {
	domain domain
	node   *yaml.Node
}

func (p *parser) application(n *yaml.Node, issuers map[string]*Issuer, tokens map[string]*ServiceToken) (*Application, *yaml.Node, []domainAt) {
	const what = "application"
	f, ok := p.mapping(n, what, "name", "domains", "issuer", "audience", "unauthenticated",
		"cors", "identity_headers", "policies", "case_sensitive_paths", "session_duration", "cookie", "allowed_providers")
	if !ok {
		return nil, nil, nil
	}
	p.require(n, f, what, "name", "domains", "issuer", "audience", "policies")
	app := &Application{Unauthenticated: UnauthRedirect, IdentityHeaders: true}
	var nameNode *yaml.Node
	if v, ok := f["name"]; ok {
		app.Name, _ = p.nonEmpty(v.val, "application name")
		nameNode = v.val
	}
	app.WWWAuthenticate = `Bearer realm="` + quoteEscape(app.Name) + `"`
	var domains []domainAt
	if v, ok := f["domains"]; ok {
		list, nodes, _ := p.strList(v.val, "domains")
		if len(list) == 0 && v.val.Kind == yaml.SequenceNode {
			p.errorf(v.val, "domains must not be empty")
		}
		for i, s := range list {
			host, _, _ := strings.Cut(s, "/")
			if r, ok := firstNonASCII(host); ok {
				// Refused before any case folding: Unicode lower-casing
				// would turn a Kelvin sign into an ASCII k and cover a
				// host the file does not name.
				p.errorf(nodes[i], "malformed domain %+q: non-ASCII character %U in host (write an internationalized name in its xn-- form)", s, r)
				continue
			}
			d, err := parseDomain(s)
			if err != nil {
				p.errorf(nodes[i], "malformed domain %q: %v", s, err)
				continue
			}
			domains = append(domains, domainAt{domain: d, node: nodes[i]})
		}
	}
	if v, ok := f["issuer"]; ok {
		if s, ok := p.nonEmpty(v.val, "issuer"); ok {
			if iss := issuers[s]; iss != nil {
				app.Issuer = iss
			} else {
				p.undefinedIssuer(v.val, s)
			}
		}
	}
	if v, ok := f["audience"]; ok {
		app.Audience, _ = p.nonEmpty(v.val, "audience")
	}
	if v, ok := f["unauthenticated"]; ok {
		if s, ok := p.nonEmpty(v.val, "unauthenticated"); ok {
			switch s {
			case "redirect":
			case "deny":
				app.Unauthenticated = UnauthDeny
			default:
				p.errorf(v.val, "unknown unauthenticated %q (want redirect or deny)", s)
			}
		}
	}
	if v, ok := f["identity_headers"]; ok {
		if b, ok := p.boolean(v.val, "identity_headers"); ok {
			app.IdentityHeaders = b
		}
	}
	if v, ok := f["case_sensitive_paths"]; ok {
		app.CaseSensitivePaths, _ = p.boolean(v.val, "case_sensitive_paths")
	}
	if v, ok := f["cors"]; ok {
		app.CORS = p.cors(v.val)
	}
	if v, ok := f["policies"]; ok {
		p.policies(v.val, app, tokens)
	}
	p.appLogin(f, app) // §8 keys, in signin.go
	return app, nameNode, domains
}

// quoteEscape escapes `"` and `\` for a quoted-string header parameter
// (RFC 9110 §5.6.4), so that an application name cannot break out of
// realm="...".
func quoteEscape(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
