package policies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/accessgate/accessgate/internal/yamlnode"
)

// Load reads, validates and compiles the policy file at path. Validation
// problems come back as an ErrorList (every problem, in file order).
func Load(path string) (*Set, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *PathError already names the file.
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	return Parse(path, data)
}

// Parse validates and compiles data as if read from file; jwks_file paths are
// resolved against filepath.Dir(file).
func Parse(file string, data []byte) (*Set, error) {
	p := &parser{file: file, dir: filepath.Dir(file)}
	doc, ok := p.document(data)
	if !ok {
		return nil, p.errs.within(yamlnode.Lines(data))
	}
	set := p.set(doc)
	if len(p.errs) > 0 || len(p.otherErrs) > 0 {
		// The revocations file's problems come after the policy file's:
		// they are positions in another file.
		return nil, append(p.errs.sorted().within(yamlnode.Lines(data)), p.otherErrs...)
	}
	set.File = file
	set.files = p.files
	return set, nil
}

// document parses data into the root mapping node, turning a YAML syntax
// error into a positioned Error. Only one document is allowed: a second one
// would otherwise be silently ignored.
func (p *parser) document(data []byte) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errs = append(p.errs, &Error{File: p.file, Line: 1, Col: 1, Msg: "empty policy file"})
			return nil, false
		}
		p.syntaxError(err, data)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "only one YAML document is allowed")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		p.syntaxError(err, data)
		return nil, false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	return root, true
}

// syntaxError records a yaml.v3 error where yamlnode.SyntaxError places it.
func (p *parser) syntaxError(err error, data []byte) {
	line, col, msg := yamlnode.SyntaxError(err, data)
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: "yaml syntax error: " + msg})
}

// set walks the top-level mapping. Issuers and service tokens are read
// first, wherever they appear, so that applications can refer to them.
func (p *parser) set(root *yaml.Node) *Set {
	s := &Set{ServiceTokens: map[string]*ServiceToken{}}
	f, ok := p.mapping(root, "policy file",
		"default_action", "trusted_proxies", "issuers", "service_tokens", "applications",
		"client_certificate_authorities", "login", "require_application_binding", "revocations_file")
	if !ok {
		return s
	}
	if v, ok := f["require_application_binding"]; ok {
		s.RequireApplicationBinding, _ = p.boolean(v.val, "require_application_binding")
	}
	if v, ok := f["revocations_file"]; ok {
		p.revocationsFile(v.val, s)
	}
	// Before applications: their certificate selectors need to know.
	if v, ok := f["client_certificate_authorities"]; ok {
		s.ClientCAs = p.clientCAs(v.val)
	}
	if v, ok := f["default_action"]; ok {
		if a, ok := p.nonEmpty(v.val, "default_action"); ok {
			switch a {
			case "deny":
			case "allow":
				s.DefaultAllow = true
			default:
				p.errorf(v.val, "unknown default_action %q (want allow or deny)", a)
			}
		}
	}
	if v, ok := f["trusted_proxies"]; ok {
		s.TrustedProxies = p.cidrs(v.val, "trusted_proxies")
	}
	issuers := map[string]*Issuer{}
	if v, ok := f["issuers"]; ok {
		s.Issuers = p.issuers(v.val, issuers)
	}
	p.loginSection(f, issuers, s) // §8: before applications, which may use issuer "login"
	tokens := map[string]*ServiceToken{}
	if v, ok := f["service_tokens"]; ok {
		s.ServiceTokens = p.serviceTokens(v.val, tokens)
	}
	if v, ok := f["applications"]; ok {
		s.Applications = p.applications(v.val, issuers, tokens, &s.hosts)
	}
	s.byName = make(map[string]*Application, len(s.Applications))
	for _, app := range s.Applications {
		s.byName[app.Name] = app
	}
	return s
}

// cidrs parses a list of CIDRs or bare addresses (a single host).
func (p *parser) cidrs(v *yaml.Node, what string) []netip.Prefix {
	list, nodes, _ := p.strList(v, what)
	out := make([]netip.Prefix, 0, len(list))
	for i, s := range list {
		pfx, err := parsePrefix(s)
		if err != nil {
			p.errorf(nodes[i], "malformed CIDR %q in %s", s, what)
			continue
		}
		out = append(out, pfx)
	}
	return out
}

// parsePrefix accepts "10.0.0.0/8" or a bare "10.1.2.3" (a /32, or /128
// for IPv6). Host bits are cleared, as Cloudflare does: "10.1.2.3/8" means
// 10.0.0.0/8. An IPv4-mapped IPv6 address is unmapped so that it compares
// equal to the IPv4 form.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if pfx.Addr().Zone() != "" {
			return netip.Prefix{}, errors.New("zone not allowed")
		}
		if a := pfx.Addr(); a.Is4In6() && pfx.Bits() >= 96 {
			pfx = netip.PrefixFrom(a.Unmap(), pfx.Bits()-96)
		}
		return pfx.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zone not allowed")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
