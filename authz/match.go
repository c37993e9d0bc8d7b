package authz

import (
	"crypto/x509"
	"net/netip"
	"strings"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// maxForwardedFor caps the X-Forwarded-For entries read from the right, so a
// client cannot make the gate walk an arbitrarily long list.
const maxForwardedFor = 32

// subject is what policies are evaluated against for one request. Its
// client address and client certificate are resolved on first use, since
// most policies never ask.
type subject struct {
	req     *Request
	trusted []netip.Prefix
	svc     *policies.ServiceToken // a valid, unexpired service token
	id      *Identity              // a verified Access token

	ip       netip.Addr
	resolved bool

	certs    *certCache
	cas      *x509.CertPool
	now      func() time.Time
	cert     *clientCert // nil unless the client certificate verified
	certDone bool

	// downPolicy and downRule name the first checked policy whose include
	// matched but whose require or exclude turned the request down, and
	// the entry that did (section 11's rule of a no_policy_match).
	downPolicy, downRule string
}

func (s *subject) clientIP() netip.Addr {
	if !s.resolved {
		s.ip = clientIP(s.req, s.trusted)
		s.resolved = true
	}
	return s.ip
}

// clientCert returns the request's client certificate when it verifies
// against the client_certificate_authorities, else nil.
func (s *subject) clientCert() *clientCert {
	if !s.certDone {
		s.certDone = true
		if s.req.ClientCert != "" && s.cas != nil {
			s.cert = s.certs.verify(s.req.ClientCert, s.cas, s.now())
		}
	}
	return s.cert
}

// addressUnknownFor reports whether p, a policy about to be checked for the
// request, holds an `ip` selector while the client address cannot be
// determined. Section 2 answers that with 400: an unknown address must never
// slip past an exclude or a block, nor be taken as "not in the list".
func (s *subject) addressUnknownFor(p *policies.Policy) bool {
	if !hasIPSelector(p.Include) && !hasIPSelector(p.Require) && !hasIPSelector(p.Exclude) {
		return false
	}
	return !s.clientIP().IsValid()
}

func hasIPSelector(sels []*policies.Selector) bool {
	for _, sel := range sels {
		if sel.Kind == policies.SelIP {
			return true
		}
	}
	return false
}

// clientIP is the client address per contract section 2 (`ip` selector):
// Envoy's source address, unless it is a trusted proxy; then
// X-Forwarded-For is read from the right, skipping trusted proxies, and the
// first other address is the client (the leftmost if all are trusted). An
// entry that is not an address (see forwardedAddr) ends the walk with no
// address: the caller answers 400 when a checked policy asks for it.
func clientIP(r *Request, trusted []netip.Prefix) netip.Addr {
	addr := r.SourceIP.Unmap()
	if !addr.IsValid() || !inPrefixes(addr, trusted) {
		return addr
	}
	xff := r.Headers["x-forwarded-for"]
	for n := 0; xff != "" && n < maxForwardedFor; n++ {
		var entry string
		if i := strings.LastIndexByte(xff, ','); i >= 0 {
			entry, xff = xff[i+1:], xff[:i]
		} else {
			entry, xff = xff, ""
		}
		a, ok := ForwardedAddr(entry)
		if !ok {
			return netip.Addr{}
		}
		addr = a
		if !inPrefixes(addr, trusted) {
			return addr
		}
	}
	return addr
}

// ForwardedAddr parses one X-Forwarded-For entry, spaces and tabs around it
// ignored; both adapters use it. Only four forms are an
// address (contract section 2, revision 3): IP, IPv4:PORT, [IPv6] and
// [IPv6]:PORT, with a decimal port 0-65535, which is ignored. Anything else
// is not: a named port (192.0.2.7:http), "unknown", obfuscated IPv4
// (0x7f.1, 0177.0.0.1: netip refuses both), an IPv6 address with a zone
// (%eth0), a bracketed IPv4. An IPv4-mapped IPv6 address counts as IPv4.
func ForwardedAddr(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	var host string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		host = s[1:end]
		if rest := s[end+1:]; rest != "" && (rest[0] != ':' || !validPortNumber(rest[1:])) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	case strings.Count(s, ":") == 1: // IPv4:PORT
		var port string
		host, port, _ = strings.Cut(s, ":")
		if !validPortNumber(port) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	default: // a bare IPv4 or IPv6 address
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Addr{}, false
		}
		return a.Unmap(), true
	}
}

// validPortNumber reports whether s is a decimal port 0..65535.
func validPortNumber(s string) bool {
	if !isPort(s) {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// matches reports whether p matches s: at least one include, every require,
// no exclude. ok is false when evaluating p reached a selector kind this
// package has no case for: then no answer about p is safe (an unknown kind
// read as "no match" would let everyone past an exclude, and read as "match"
// would let everyone past a block's exclude), so the caller refuses the
// request.
//
// rule names the deciding selector (its precomputed Rule): when p matched,
// the first include entry that matched; when an include matched but p was
// turned down, the require entry that failed or the exclude entry that
// matched; "" when no include matched.
func (s *subject) matches(p *policies.Policy) (matched bool, rule string, ok bool) {
	var included *policies.Selector
	for _, sel := range p.Include {
		m, known := s.match(sel)
		if !known {
			return false, "", false
		}
		if m {
			included = sel
			break
		}
	}
	if included == nil {
		return false, "", true
	}
	for _, sel := range p.Require {
		m, known := s.match(sel)
		if !known {
			return false, "", false
		}
		if !m {
			return false, sel.Rule, true
		}
	}
	for _, sel := range p.Exclude {
		m, known := s.match(sel)
		if !known {
			return false, "", false
		}
		if m {
			return false, sel.Rule, true
		}
	}
	return true, included.Rule, true
}

// match evaluates one selector; known is false for a kind it has no case
// for (see matches; TestSelectorKindsAllHandled walks the parser's kinds). Identity selectors never match without a verified
// token. Email, email_domain and country compare ASCII case-insensitively:
// only A-Z fold, so a Kelvin sign never matches "k" and "É" only "É".
func (s *subject) match(sel *policies.Selector) (matched, known bool) {
	switch sel.Kind {
	case policies.SelEveryone:
		return true, true
	case policies.SelEmail:
		return s.id != nil && s.id.Email != "" && inSet(sel.Set, policies.LowerASCII(s.id.Email)), true
	case policies.SelEmailDomain:
		if s.id == nil {
			return false, true
		}
		at := strings.LastIndexByte(s.id.Email, '@')
		return at >= 0 && inSet(sel.Set, policies.LowerASCII(s.id.Email[at+1:])), true
	case policies.SelGroup:
		if s.id == nil {
			return false, true
		}
		for _, g := range s.id.Groups {
			if inSet(sel.Set, g) {
				return true, true
			}
		}
		return false, true
	case policies.SelClaim:
		return s.id != nil && claimMatches(s.id.Claims, sel.ClaimPath, sel.ClaimValue), true
	case policies.SelIP:
		ip := s.clientIP()
		return ip.IsValid() && inPrefixes(ip, sel.CIDRs), true
	case policies.SelCountry:
		return s.id != nil && s.id.Country != "" && inSet(sel.Set, policies.LowerASCII(s.id.Country)), true
	case policies.SelServiceToken:
		return s.svc != nil && inSet(sel.Set, s.svc.Name), true
	case policies.SelAnyServiceToken:
		return s.svc != nil, true
	case policies.SelValidCertificate:
		return s.clientCert() != nil, true
	case policies.SelCommonName:
		c := s.clientCert()
		return c != nil && inSet(sel.Set, c.commonName), true
	}
	return false, false
}

func inSet(set map[string]struct{}, v string) bool {
	_, ok := set[v]
	return ok
}

// claimMatches walks a dotted claim path and compares the value found: it
// equals want, or, when it is an array, contains it.
func claimMatches(claims map[string]any, path []string, want any) bool {
	var v any = claims
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = m[name]; !ok {
			return false
		}
	}
	switch got := v.(type) {
	case []any:
		for _, e := range got {
			if scalarEqual(e, want) {
				return true
			}
		}
		return false
	case []string:
		for _, e := range got {
			if scalarEqual(e, want) {
				return true
			}
		}
		return false
	default:
		return scalarEqual(got, want)
	}
}

func scalarEqual(got, want any) bool {
	switch w := want.(type) {
	case string:
		g, ok := got.(string)
		return ok && g == w
	case bool:
		g, ok := got.(bool)
		return ok && g == w
	case float64:
		switch g := got.(type) {
		case float64:
			return g == w
		case int64:
			return float64(g) == w
		case int:
			return float64(g) == w
		}
	}
	return false
}
