package policies

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.yaml.in/yaml/v3"
)

// Defaults of an issuer entry (contract §2).
const (
	defaultJWKSRefresh = time.Hour
	defaultLeeway      = 30 * time.Second
	// minJWKSRefresh matches the unknown-kid refresh limit (one per issuer
	// every 10 s): polling more often would hammer the identity provider.
	minJWKSRefresh = 10 * time.Second
	// maxLeeway keeps a typo ("30m" for "30s") from accepting tokens long
	// expired.
	maxLeeway = 5 * time.Minute
)

// issuers parses the `issuers` list; byName receives every named issuer,
// even one with errors, so that applications referring to it do not get a
// second, misleading "not defined" error.
func (p *parser) issuers(v *yaml.Node, byName map[string]*Issuer) []*Issuer {
	items, _ := p.seq(v, "issuers")
	out := make([]*Issuer, 0, len(items))
	first := map[string]*yaml.Node{}
	for _, it := range items {
		iss, nameNode := p.issuer(it)
		if iss == nil {
			continue
		}
		if iss.Name != "" {
			if prev, dup := first[iss.Name]; dup {
				p.errorf(nameNode, "duplicate issuer name %q (first at %s)", iss.Name, p.pos(prev))
				continue
			}
			first[iss.Name] = nameNode
			byName[iss.Name] = iss
		}
		out = append(out, iss)
	}
	return out
}

func (p *parser) issuer(n *yaml.Node) (iss *Issuer, nameNode *yaml.Node) {
	const what = "issuer"
	f, ok := p.mapping(n, what, "name", "issuer", "jwks_url", "jwks_file", "jwks_refresh", "login_url", "leeway")
	if !ok {
		return nil, nil
	}
	p.require(n, f, what, "name", "issuer", "login_url")
	iss = &Issuer{JWKSRefresh: defaultJWKSRefresh, Leeway: defaultLeeway}
	if v, ok := f["name"]; ok {
		iss.Name, _ = p.nonEmpty(v.val, "issuer name")
		nameNode = v.val
	}
	if v, ok := f["issuer"]; ok {
		iss.Issuer, _ = p.nonEmpty(v.val, "issuer")
	}
	u, hasURL := f["jwks_url"]
	file, hasFile := f["jwks_file"]
	switch {
	case hasURL && hasFile:
		p.errorf(file.key, "set only one of jwks_url and jwks_file (jwks_url at %s)", p.pos(u.key))
	case !hasURL && !hasFile:
		p.errorf(p.deref(n), "missing jwks_url or jwks_file in issuer")
	case hasURL:
		if s, ok := p.nonEmpty(u.val, "jwks_url"); ok {
			switch {
			case !isHTTPURL(s):
				p.errorf(u.val, "malformed jwks_url %q (want an absolute http or https URL)", s)
			case !secureJWKSURL(s):
				p.errorf(u.val, "jwks_url %q uses http: keys fetched in clear text let anyone on the path forge every token (use https; http only for a loopback address or localhost)", s)
			default:
				iss.JWKSURL = s
			}
		}
	case hasFile:
		if s, ok := p.nonEmpty(file.val, "jwks_file"); ok {
			iss.JWKSFile = s
			if !filepath.IsAbs(s) {
				iss.JWKSFile = filepath.Join(p.dir, s)
			}
			iss.FileKeys = p.readJWKS(file.val, s, iss.JWKSFile)
		}
	}
	if v, ok := f["jwks_refresh"]; ok {
		if d, ok := p.duration(v.val, "jwks_refresh"); ok {
			if d < minJWKSRefresh {
				p.errorf(v.val, "jwks_refresh %s is below the minimum of %s", d, minJWKSRefresh)
			} else {
				iss.JWKSRefresh = d
			}
		}
	}
	if v, ok := f["leeway"]; ok {
		if d, ok := p.duration(v.val, "leeway"); ok {
			if d < 0 || d > maxLeeway {
				p.errorf(v.val, "leeway %s out of range 0s..%s", d, maxLeeway)
			} else {
				iss.Leeway = d
			}
		}
	}
	if v, ok := f["login_url"]; ok {
		if s, ok := p.nonEmpty(v.val, "login_url"); ok {
			t, err := parseLoginTemplate(s)
			if err != nil {
				p.errorf(v.val, "malformed login_url: %v", err)
			} else {
				iss.LoginURL = t
			}
		}
	}
	return iss, nameNode
}

// readJWKS reads and parses a jwks_file at load, so that a missing or broken
// key file stops the load instead of failing every request later.
func (p *parser) readJWKS(n *yaml.Node, given, path string) jwk.Set {
	data, err := p.readFile(path, maxJWKSFile)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		p.errorf(n, "cannot read jwks_file %q (%s): %v", given, path, err)
		return nil
	}
	set, err := parseJWKS(data)
	if err != nil {
		p.errorf(n, "malformed jwks_file %q: %v", given, err)
		return nil
	}
	return set
}

// maxJWKSFile is far above any real key set (Cloudflare's is about 3 KiB).
const maxJWKSFile = 1 << 20

// readSmallFile reads a regular file of at most limit bytes. A device or
// FIFO (/dev/zero, /dev/stdin) would otherwise hang or exhaust the load.
func readSmallFile(path string, limit int64) ([]byte, error) {
	// Stat before opening: opening a FIFO for reading blocks until a
	// writer comes, which would hang the load.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// parseJWKS parses a JWK set. Cloudflare's certs endpoint adds top-level
// `public_cert` and `public_certs` next to `keys`; jwx keeps unknown
// top-level members as private parameters, so such a document parses as is.
func parseJWKS(data []byte) (jwk.Set, error) {
	set, err := jwk.Parse(data)
	if err != nil {
		return nil, err
	}
	if set.Len() == 0 {
		return nil, errors.New("no keys")
	}
	return set, nil
}

// duration parses a Go duration ("30s", "12h").
func (p *parser) duration(v *yaml.Node, what string) (time.Duration, bool) {
	s, ok := p.nonEmpty(v, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		p.errorf(v, "malformed duration %q in %s (want e.g. 30s, 12h)", s, what)
		return 0, false
	}
	return d, true
}

// isHTTPURL reports whether s is an absolute http(s) URL with a host.
func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	return u.Scheme == "https" || u.Scheme == "http"
}

// secureJWKSURL reports whether an http(s) URL may carry keys: https, or
// http to this machine (127.0.0.0/8, ::1, localhost), where no one else is
// on the path. An IPv4-mapped ::ffff:127.0.0.1 counts, as it connects to
// the same loopback address.
func secureJWKSURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	switch LowerASCII(u.Scheme) {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		if LowerASCII(host) == "localhost" {
			return true
		}
		a, err := netip.ParseAddr(host)
		return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
	}
	return false
}

// serviceTokens parses the `service_tokens` list; byName receives every
// named token for service_token selectors. The result is keyed by client_id,
// what the request carries.
func (p *parser) serviceTokens(v *yaml.Node, byName map[string]*ServiceToken) map[string]*ServiceToken {
	items, _ := p.seq(v, "service_tokens")
	byID := make(map[string]*ServiceToken, len(items))
	firstName := map[string]*yaml.Node{}
	firstID := map[string]*yaml.Node{}
	for _, it := range items {
		t, nameNode, idNode := p.serviceToken(it)
		if t == nil {
			continue
		}
		if t.Name != "" {
			if prev, dup := firstName[t.Name]; dup {
				p.errorf(nameNode, "duplicate service token name %q (first at %s)", t.Name, p.pos(prev))
			} else {
				firstName[t.Name] = nameNode
				byName[t.Name] = t
			}
		}
		if t.ClientID != "" {
			if prev, dup := firstID[t.ClientID]; dup {
				p.errorf(idNode, "duplicate client_id %q (first at %s)", t.ClientID, p.pos(prev))
			} else {
				firstID[t.ClientID] = idNode
				byID[t.ClientID] = t
			}
		}
	}
	return byID
}

func (p *parser) serviceToken(n *yaml.Node) (t *ServiceToken, nameNode, idNode *yaml.Node) {
	const what = "service token"
	f, ok := p.mapping(n, what, "name", "client_id", "client_secret_sha256", "expires")
	if !ok {
		return nil, nil, nil
	}
	p.require(n, f, what, "name", "client_id", "client_secret_sha256")
	t = &ServiceToken{}
	if v, ok := f["name"]; ok {
		t.Name, _ = p.nonEmpty(v.val, "service token name")
		nameNode = v.val
	}
	if v, ok := f["client_id"]; ok {
		t.ClientID, _ = p.nonEmpty(v.val, "client_id")
		idNode = v.val
	}
	if v, ok := f["client_secret_sha256"]; ok {
		if s, ok := p.nonEmpty(v.val, "client_secret_sha256"); ok {
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != len(t.SecretSHA256) {
				p.errorf(v.val, "malformed client_secret_sha256 (want 64 hex digits, the SHA-256 of the secret)")
			} else {
				copy(t.SecretSHA256[:], b)
			}
		}
	}
	if v, ok := f["expires"]; ok {
		if s, ok := p.nonEmpty(v.val, "expires"); ok {
			e, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
			if err != nil {
				p.errorf(v.val, "malformed expires %q (want an RFC 3339 time, e.g. 2027-06-30T00:00:00Z)", s)
			} else {
				t.Expires = e
			}
		}
	}
	return t, nameNode, idNode
}
