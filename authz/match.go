package authz

import (
	"net/netip"
	"strings"

	"github.com/accessgate/accessgate/policies"
)

// maxForwardedFor caps the X-Forwarded-For entries read from the right, so a
// client cannot make the gate walk an arbitrarily long list.
const maxForwardedFor = 32

// subject is what policies are evaluated against for one request. Its
// client address is resolved on first use, since most policies never ask.
type subject struct {
	req      *Request
	trusted  []netip.Prefix
	svc      *policies.ServiceToken // a valid, unexpired service token
	id       *Identity              // a verified Access token
	ip       netip.Addr
	resolved bool
}

func (s *subject) clientIP() netip.Addr {
	if !s.resolved {
		s.ip = clientIP(s.req, s.trusted)
		s.resolved = true
	}
	return s.ip
}

// clientIP is the client address per contract section 2 (`ip` selector):
// Envoy's source address, unless it is a trusted proxy; then
// X-Forwarded-For is read from the right, skipping trusted proxies, and the
// first other address is the client (the leftmost if all are trusted). An
// unparsable entry ends the walk with no address, so no ip rule matches a
// forged list.
func clientIP(r *Request, trusted []netip.Prefix) netip.Addr {
	addr := r.SourceIP
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
		a, err := netip.ParseAddr(strings.TrimSpace(entry))
		if err != nil {
			return netip.Addr{}
		}
		addr = a.Unmap()
		if !inPrefixes(addr, trusted) {
			return addr
		}
	}
	return addr
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
// no exclude.
func (s *subject) matches(p *policies.Policy) bool {
	included := false
	for _, sel := range p.Include {
		if s.match(sel) {
			included = true
			break
		}
	}
	if !included {
		return false
	}
	for _, sel := range p.Require {
		if !s.match(sel) {
			return false
		}
	}
	for _, sel := range p.Exclude {
		if s.match(sel) {
			return false
		}
	}
	return true
}

// match evaluates one selector. Identity selectors never match without a
// verified token.
func (s *subject) match(sel *policies.Selector) bool {
	switch sel.Kind {
	case policies.SelEveryone:
		return true
	case policies.SelEmail:
		return s.id != nil && s.id.Email != "" && inSet(sel.Set, lower(s.id.Email))
	case policies.SelEmailDomain:
		if s.id == nil {
			return false
		}
		at := strings.LastIndexByte(s.id.Email, '@')
		return at >= 0 && inSet(sel.Set, lower(s.id.Email[at+1:]))
	case policies.SelGroup:
		if s.id == nil {
			return false
		}
		for _, g := range s.id.Groups {
			if inSet(sel.Set, g) {
				return true
			}
		}
		return false
	case policies.SelClaim:
		return s.id != nil && claimMatches(s.id.Claims, sel.ClaimPath, sel.ClaimValue)
	case policies.SelIP:
		ip := s.clientIP()
		return ip.IsValid() && inPrefixes(ip, sel.CIDRs)
	case policies.SelCountry:
		return s.id != nil && s.id.Country != "" && inSet(sel.Set, lower(s.id.Country))
	case policies.SelServiceToken:
		return s.svc != nil && inSet(sel.Set, s.svc.Name)
	case policies.SelAnyServiceToken:
		return s.svc != nil
	case policies.SelValidCertificate:
		return s.req.ClientCertVerified
	}
	return false
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
