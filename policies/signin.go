package policies

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.yaml.in/yaml/v3"
)

// LoginIssuerName is the name of the issuer a `login` section defines
// (contract §8): applications sign in through accessgate with
// `issuer: login`.
const LoginIssuerName = "login"

// Defaults and limits of the `login` section.
const (
	defaultSessionDuration = 24 * time.Hour
	// minCookieSecret is the shortest cookie secret accepted: the AEAD
	// keys of the sign-in state and transfer codes are derived from it.
	minCookieSecret = 32
	// maxSecretFile bounds the key and secret files read at load.
	maxSecretFile = 64 << 10
	// LoginPathPrefix is where the team domain's endpoints live.
	loginPathPrefix = "/cdn-cgi/access/"
)

// defaultScopes are the OpenID Connect scopes asked for unless a provider
// lists its own.
var defaultScopes = []string{"openid", "email", "profile"}

// Login is the compiled `login` section: accessgate as its own Access team
// domain.
type Login struct {
	// TeamDomain is the public URL of the sign-in listener, without a
	// trailing slash; it is the minted tokens' `iss` and the org tokens'
	// `aud`.
	TeamDomain string
	// Secure is false only for an http team domain on loopback (a demo):
	// cookies then drop Secure and the __Host- prefix.
	Secure bool
	// SigningKeys in file order: the first signs, all are published.
	SigningKeys []*SigningKey
	// CookieSecret is the cookie_secret_file's bytes, one trailing newline
	// removed (at least 32 bytes).
	CookieSecret []byte
	// SessionDuration is the lifetime of org tokens and, unless the
	// application sets its own, of application tokens.
	SessionDuration time.Duration
	// Providers in file order (names unique).
	Providers []*Provider
	// Issuer is the implicit issuer named "login", also in Set.Issuers.
	Issuer *Issuer
}

// Provider returns the provider named name, or nil.
func (l *Login) Provider(name string) *Provider {
	if l == nil {
		return nil
	}
	for _, p := range l.Providers {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// SigningKey is one key of signing_key_files.
type SigningKey struct {
	// File is the path as resolved against the policy file's folder.
	File string
	// Private signs; its Public() is the published half.
	Private crypto.Signer
	// Alg is "ES256" (EC P-256) or "RS256" (RSA ≥ 2048 bits).
	Alg string
	// KID is the lower-case hex SHA-256 of the public key's
	// SubjectPublicKeyInfo DER.
	KID string
	// JWK is the public half with kid, alg and use=sig set.
	JWK jwk.Key
}

// Provider is a compiled `login.providers` entry: an OpenID Connect
// provider.
type Provider struct {
	Name string
	Type string // "oidc"
	// Issuer is the issuer URL as written; discovery is at Issuer without
	// its trailing slashes plus /.well-known/openid-configuration.
	Issuer       string
	ClientID     string
	ClientSecret string // "" for a public client
	Scopes       []string
	GroupsClaim  string // "" when groups are not copied
	// RequireVerifiedEmail refuses a sign-in whose email_verified is not
	// true (absent counts as not true).
	RequireVerifiedEmail bool
}

// DiscoveryURL is where the provider's OpenID configuration is fetched.
func (p *Provider) DiscoveryURL() string {
	return strings.TrimRight(p.Issuer, "/") + "/.well-known/openid-configuration"
}

// AppLogin holds an application's §8 settings; the zero value of each
// field means "as the login section says".
type AppLogin struct {
	// SessionDuration overrides Login.SessionDuration for this
	// application's tokens when not zero.
	SessionDuration time.Duration
	// SameSiteNone is `cookie.same_site: none` (default lax).
	SameSiteNone bool
	// HTTPOnly is `cookie.http_only` (default true).
	HTTPOnly bool
	// AllowedProviders are provider names; nil allows every provider.
	AllowedProviders []string
}

// ProviderAllowed reports whether the application accepts sign-ins through
// the named provider.
func (a *AppLogin) ProviderAllowed(name string) bool {
	if a == nil || a.AllowedProviders == nil {
		return true
	}
	return slices.Contains(a.AllowedProviders, name)
}

// KeyID is the `kid` of a public key: the lower-case hex SHA-256 of its
// SubjectPublicKeyInfo DER.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// ParseSigningKey parses a PEM private key usable for signing Access
// tokens: EC P-256 (ES256) or RSA of at least 2048 bits (RS256), in PKCS #8,
// SEC 1 or PKCS #1 form.
func ParseSigningKey(data []byte) (crypto.Signer, string, error) {
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, "", errors.New("no PEM private key")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, "", fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, "", fmt.Errorf("unparsable private key: %v", err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("EC key on curve %s (want P-256)", k.Curve.Params().Name)
		}
		return k, "ES256", nil
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < 2048 {
			return nil, "", fmt.Errorf("RSA key of %d bits (want at least 2048)", bits)
		}
		return k, "RS256", nil
	default:
		return nil, "", fmt.Errorf("unsupported key type %T (want EC P-256 or RSA)", key)
	}
}

// loginSection parses the `login` section when the file has one, checks
// that no issuer in the `issuers` list is named "login", and registers the
// implicit issuer in byName and s.Issuers so that applications can use it.
func (p *parser) loginSection(f map[string]field, byName map[string]*Issuer, s *Set) {
	v, ok := f["login"]
	if !ok {
		return
	}
	l := p.parseLogin(v.val)
	if l == nil {
		return
	}
	if iss, ok := f["issuers"]; ok && iss.val.Kind == yaml.SequenceNode {
		for _, it := range iss.val.Content {
			it = p.deref(it)
			if it.Kind != yaml.MappingNode {
				continue
			}
			for i := 0; i+1 < len(it.Content); i += 2 {
				k, val := p.deref(it.Content[i]), p.deref(it.Content[i+1])
				if k.Value == "name" && val.Kind == yaml.ScalarNode && val.Value == LoginIssuerName {
					p.errorf(val, "issuer name %q is reserved: the login section (%s) defines it", LoginIssuerName, p.pos(v.key))
				}
			}
		}
	}
	p.login = l
	s.Login = l
	if l.Issuer != nil {
		byName[LoginIssuerName] = l.Issuer
		s.Issuers = append(s.Issuers, l.Issuer)
	}
}

// parseLogin parses the `login` mapping.
func (p *parser) parseLogin(n *yaml.Node) *Login {
	const what = "login"
	f, ok := p.mapping(n, what, "team_domain", "signing_key_files", "cookie_secret_file",
		"session_duration", "providers")
	if !ok {
		return nil
	}
	p.require(n, f, what, "team_domain", "signing_key_files", "cookie_secret_file", "providers")
	l := &Login{SessionDuration: defaultSessionDuration, Secure: true}
	if v, ok := f["team_domain"]; ok {
		if s, ok := p.nonEmpty(v.val, "team_domain"); ok {
			td, secure, err := parseTeamDomain(s)
			if err != nil {
				p.errorf(v.val, "malformed team_domain %q: %v", s, err)
			} else {
				l.TeamDomain, l.Secure = td, secure
			}
		}
	}
	if v, ok := f["signing_key_files"]; ok {
		l.SigningKeys = p.signingKeys(v.val)
	}
	if v, ok := f["cookie_secret_file"]; ok {
		if s, ok := p.nonEmpty(v.val, "cookie_secret_file"); ok {
			secret, err := p.readSecret(s)
			switch {
			case err != nil:
				p.errorf(v.val, "cannot read cookie_secret_file %q: %v", s, err)
			case len(secret) < minCookieSecret:
				p.errorf(v.val, "cookie_secret_file %q holds %d bytes (want at least %d)", s, len(secret), minCookieSecret)
			default:
				l.CookieSecret = secret
			}
		}
	}
	if v, ok := f["session_duration"]; ok {
		if d, ok := p.positiveDuration(v.val, "session_duration"); ok {
			l.SessionDuration = d
		}
	}
	if v, ok := f["providers"]; ok {
		l.Providers = p.providers(v.val)
	}
	if l.TeamDomain != "" && len(l.SigningKeys) > 0 {
		l.Issuer = p.loginIssuer(l)
	}
	return l
}

// loginIssuer builds the implicit issuer "login": tokens minted by this
// file's login section, verified with the public halves of its keys.
func (p *parser) loginIssuer(l *Login) *Issuer {
	set := jwk.NewSet()
	for _, k := range l.SigningKeys {
		_ = set.AddKey(k.JWK) // a fresh key: AddKey fails only on a duplicate
	}
	t, err := parseLoginTemplate(l.TeamDomain + loginPathPrefix + "login/{host}?kid={aud}&redirect_url={redirect}")
	if err != nil {
		// parseTeamDomain refuses braces; nothing else can fail here.
		return nil
	}
	return &Issuer{
		Name:        LoginIssuerName,
		Issuer:      l.TeamDomain,
		JWKSRefresh: defaultJWKSRefresh,
		Leeway:      defaultLeeway,
		LoginURL:    t,
		FileKeys:    set,
	}
}

// parseTeamDomain checks a team_domain: an absolute http(s) URL with no
// path (beyond trailing slashes, which are trimmed), query, fragment or user
// info; http only on loopback. It returns the trimmed URL and whether it is
// https.
func parseTeamDomain(s string) (string, bool, error) {
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	if err != nil {
		return "", false, errors.New("want an absolute https URL")
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.Opaque != "":
		return "", false, errors.New("want an absolute https URL")
	case u.User != nil:
		return "", false, errors.New("no user info allowed")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(s, "?#{}"):
		return "", false, errors.New("no path, query or fragment allowed (the endpoints live under /cdn-cgi/access/)")
	case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
		return "", false, errors.New("http is allowed only for localhost or a loopback address")
	}
	return s, u.Scheme == "https", nil
}

// IsLoopbackHost reports whether host (without port or brackets) is
// localhost, a name under .localhost, 127.0.0.0/8 or ::1.
func IsLoopbackHost(host string) bool {
	h := LowerASCII(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// signingKeys reads every signing_key_files entry.
func (p *parser) signingKeys(v *yaml.Node) []*SigningKey {
	list, nodes, _ := p.strList(v, "signing_key_files")
	if len(list) == 0 && v.Kind == yaml.SequenceNode {
		p.errorf(v, "signing_key_files must not be empty")
	}
	var out []*SigningKey
	first := map[string]*yaml.Node{}
	for i, given := range list {
		path := p.resolve(given)
		data, err := p.readFile(path, maxSecretFile)
		if err != nil {
			p.errorf(nodes[i], "cannot read signing key file %q: %v", given, unwrapPath(err))
			continue
		}
		priv, alg, err := ParseSigningKey(data)
		if err != nil {
			p.errorf(nodes[i], "malformed signing key file %q: %v", given, err)
			continue
		}
		kid, err := KeyID(priv.Public())
		if err != nil {
			p.errorf(nodes[i], "malformed signing key file %q: %v", given, err)
			continue
		}
		if prev, dup := first[kid]; dup {
			p.errorf(nodes[i], "signing key file %q holds the same key as %s", given, p.pos(prev))
			continue
		}
		first[kid] = nodes[i]
		pub, err := jwk.FromRaw(priv.Public())
		if err != nil {
			p.errorf(nodes[i], "malformed signing key file %q: %v", given, err)
			continue
		}
		_ = pub.Set(jwk.KeyIDKey, kid)
		_ = pub.Set(jwk.AlgorithmKey, jwa.SignatureAlgorithm(alg))
		_ = pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
		out = append(out, &SigningKey{File: path, Private: priv, Alg: alg, KID: kid, JWK: pub})
	}
	return out
}

// resolve makes a login file path relative to the policy file's folder.
func (p *parser) resolve(given string) string {
	if filepath.IsAbs(given) {
		return given
	}
	return filepath.Join(p.dir, given)
}

// readSecret reads a secret file: its bytes with one trailing newline
// (LF or CRLF) removed, as editors and `echo` add one.
func (p *parser) readSecret(given string) ([]byte, error) {
	data, err := p.readFile(p.resolve(given), maxSecretFile)
	if err != nil {
		return nil, unwrapPath(err)
	}
	if b, ok := bytes.CutSuffix(data, []byte("\r\n")); ok {
		return b, nil
	}
	data, _ = bytes.CutSuffix(data, []byte("\n"))
	return data, nil
}

// unwrapPath drops the *os.PathError wrapper: messages name the file as
// written in the policy file already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// positiveDuration is duration that also refuses zero and negative values.
func (p *parser) positiveDuration(v *yaml.Node, what string) (time.Duration, bool) {
	d, ok := p.duration(v, what)
	if ok && d <= 0 {
		p.errorf(v, "%s must be positive", what)
		return 0, false
	}
	return d, ok
}

// providers parses `login.providers`.
func (p *parser) providers(v *yaml.Node) []*Provider {
	items, ok := p.seq(v, "providers")
	if ok && len(items) == 0 {
		p.errorf(v, "providers must not be empty")
	}
	var out []*Provider
	first := map[string]*yaml.Node{}
	for _, it := range items {
		pr, nameNode := p.provider(it)
		if pr == nil {
			continue
		}
		if pr.Name != "" {
			if prev, dup := first[pr.Name]; dup {
				p.errorf(nameNode, "duplicate provider name %q (first at %s)", pr.Name, p.pos(prev))
				continue
			}
			first[pr.Name] = nameNode
		}
		out = append(out, pr)
	}
	return out
}

func (p *parser) provider(n *yaml.Node) (*Provider, *yaml.Node) {
	const what = "provider"
	f, ok := p.mapping(n, what, "name", "type", "issuer", "client_id", "client_secret_file",
		"scopes", "groups_claim", "require_verified_email")
	if !ok {
		return nil, nil
	}
	p.require(n, f, what, "name", "issuer", "client_id")
	pr := &Provider{Type: "oidc", Scopes: defaultScopes, RequireVerifiedEmail: true}
	var nameNode *yaml.Node
	if v, ok := f["name"]; ok {
		pr.Name, _ = p.nonEmpty(v.val, "provider name")
		nameNode = v.val
	}
	if v, ok := f["type"]; ok {
		if s, ok := p.nonEmpty(v.val, "provider type"); ok && s != "oidc" {
			p.errorf(v.val, "unknown provider type %q (want oidc)", s)
		}
	}
	if v, ok := f["issuer"]; ok {
		if s, ok := p.nonEmpty(v.val, "provider issuer"); ok {
			if err := checkProviderIssuer(s); err != nil {
				p.errorf(v.val, "malformed provider issuer %q: %v", s, err)
			} else {
				pr.Issuer = s
			}
		}
	}
	if v, ok := f["client_id"]; ok {
		pr.ClientID, _ = p.nonEmpty(v.val, "client_id")
	}
	if v, ok := f["client_secret_file"]; ok {
		if s, ok := p.nonEmpty(v.val, "client_secret_file"); ok {
			secret, err := p.readSecret(s)
			switch {
			case err != nil:
				p.errorf(v.val, "cannot read client_secret_file %q: %v", s, err)
			case len(secret) == 0:
				p.errorf(v.val, "client_secret_file %q is empty", s)
			default:
				pr.ClientSecret = string(secret)
			}
		}
	}
	if v, ok := f["scopes"]; ok {
		list, nodes, _ := p.strList(v.val, "scopes")
		for i, s := range list {
			if strings.ContainsAny(s, " \"\\") {
				p.errorf(nodes[i], "malformed scope %q", s)
			}
		}
		if !slices.Contains(list, "openid") {
			p.errorf(v.val, "scopes must include openid")
		}
		pr.Scopes = list
	}
	if v, ok := f["groups_claim"]; ok {
		pr.GroupsClaim, _ = p.nonEmpty(v.val, "groups_claim")
	}
	if v, ok := f["require_verified_email"]; ok {
		if b, ok := p.boolean(v.val, "require_verified_email"); ok {
			pr.RequireVerifiedEmail = b
		}
	}
	return pr, nameNode
}

// checkProviderIssuer refuses a provider issuer that is not an absolute
// https URL, or http on loopback: discovery and keys fetched in clear text
// would let anyone on the path sign users in as anyone.
func checkProviderIssuer(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http":
		return errors.New("want an absolute https URL")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return errors.New("no user info, query or fragment allowed")
	case u.Scheme == "http" && !IsLoopbackHost(u.Hostname()):
		return errors.New("http is allowed only for localhost or a loopback address")
	}
	return nil
}

// appLogin parses an application's §8 keys (session_duration, cookie,
// allowed_providers) and checks its audience against the team domain. The
// keys are accepted on any application and used by those with
// `issuer: login`.
func (p *parser) appLogin(f map[string]field, app *Application) {
	l := p.login
	if v, ok := f["audience"]; ok && l != nil && l.TeamDomain != "" &&
		strings.TrimRight(app.Audience, "/") == l.TeamDomain {
		// An org token (aud = team domain) must never pass as an
		// application token.
		p.errorf(v.val, "audience %q is the login team_domain: pick another string", app.Audience)
	}
	_, hasDur := f["session_duration"]
	_, hasCookie := f["cookie"]
	_, hasProv := f["allowed_providers"]
	if !hasDur && !hasCookie && !hasProv {
		return
	}
	a := &AppLogin{HTTPOnly: true}
	if v, ok := f["session_duration"]; ok {
		a.SessionDuration, _ = p.positiveDuration(v.val, "session_duration")
	}
	if v, ok := f["cookie"]; ok {
		if c, ok := p.mapping(v.val, "cookie", "same_site", "http_only"); ok {
			if v, ok := c["same_site"]; ok {
				if s, ok := p.nonEmpty(v.val, "same_site"); ok {
					switch s {
					case "lax":
					case "none":
						a.SameSiteNone = true
					case "strict":
						p.errorf(v.val, "same_site strict is not allowed: the cookie set during sign-in would not be sent on the redirect that follows, and the browser would loop (want lax or none)")
					default:
						p.errorf(v.val, "unknown same_site %q (want lax or none)", s)
					}
				}
			}
			if v, ok := c["http_only"]; ok {
				if b, ok := p.boolean(v.val, "http_only"); ok {
					a.HTTPOnly = b
				}
			}
		}
	}
	if v, ok := f["allowed_providers"]; ok {
		list, nodes, _ := p.strList(v.val, "allowed_providers")
		if len(list) == 0 && v.val.Kind == yaml.SequenceNode {
			p.errorf(v.val, "allowed_providers must not be empty (remove it to allow every provider)")
		}
		a.AllowedProviders = make([]string, 0, len(list))
		for i, name := range list {
			switch {
			case l == nil:
				p.errorf(nodes[i], "unknown provider %q in allowed_providers (the file has no login section)", name)
			case l.Provider(name) == nil:
				p.errorf(nodes[i], "unknown provider %q in allowed_providers (not in login.providers)", name)
			default:
				a.AllowedProviders = append(a.AllowedProviders, name)
			}
		}
	}
	app.Login = a
}

// undefinedIssuer reports an application issuer that names no issuer,
// with a hint when it is the login issuer of a file without `login`.
func (p *parser) undefinedIssuer(n *yaml.Node, name string) {
	if name == LoginIssuerName {
		if p.login == nil {
			p.errorf(n, "issuer %q needs a login section", name)
		}
		// Otherwise the login section has errors of its own, reported
		// there.
		return
	}
	p.errorf(n, "issuer %q is not defined in issuers", name)
}

// SessionDuration is the lifetime of the tokens minted for app: its own
// session_duration, else the login section's.
func (l *Login) SessionDurationFor(app *Application) time.Duration {
	if app != nil && app.Login != nil && app.Login.SessionDuration > 0 {
		return app.Login.SessionDuration
	}
	return l.SessionDuration
}

// LoginApplication returns the application with `issuer: login` whose
// domains cover host (any path) and whose audience is aud, or nil. host is
// lower-cased, without port or trailing dot. It walks every application:
// it serves sign-ins, not every request.
func (s *Set) LoginApplication(host, aud string) *Application {
	if s == nil || s.Login == nil || s.Login.Issuer == nil {
		return nil
	}
	for _, app := range s.Applications {
		if app.Issuer == s.Login.Issuer && app.Audience == aud && app.CoversHost(host) {
			return app
		}
	}
	return nil
}

// ExplicitOrigin reports whether origin (lower-cased scheme and host, no
// default port) is listed as such in allow_origins: a wildcard entry or
// allow_all_origins does not count. Sign-in redirects only to these.
func (c *CORS) ExplicitOrigin(origin string) bool {
	if c == nil || c.origins.exact == nil {
		return false
	}
	_, ok := c.origins.exact[origin]
	return ok
}
