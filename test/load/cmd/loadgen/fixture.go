package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

const (
	issuerID = "https://team.bench.example.com"
	audience = "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"
	// A Cloudflare kid is the hex SHA-256 of the key.
	keyID   = "c2a93f1d5b7e4a6c8d0f2e4b6a8c0d2f4e6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c"
	appHost = "app.example.com"
	appPath = "/api/v1/items?page=2"
)

// fixture is the generated test world: a signing key with its JWKS, the
// small and the big policy files, and a token minter.
type fixture struct {
	dir   string
	priv  jwk.Key
	small string // policy file paths
	big   string
}

const issuerYAML = `issuers:
  - name: team
    issuer: ` + issuerID + `
    jwks_file: jwks.json
    login_url: https://team.bench.example.com/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
`

// smallApps is a realistic small policy: the application under load, with
// CORS and the contract's example policies, and two neighbours.
const smallApps = `  - name: dashboard
    domains: [` + appHost + `, "*.app.example.com", api.example.com/v1]
    issuer: team
    audience: ` + audience + `
    cors:
      allow_origins: [https://www.example.com, "https://*.example.com"]
      allow_methods: [GET, POST, PUT]
      allow_headers: [content-type, x-requested-with]
      expose_headers: [x-request-id]
      allow_credentials: true
      max_age: 600
    policies:
      - name: health
        action: bypass
        paths: [/healthz]
        include: [{everyone: true}]
      - name: block-contractors
        action: block
        include: [{email_domain: [contractor.example.com]}]
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}, {email: [alice@partner.org]}]
        exclude: [{email: [mallory@example.com]}]
  - name: wiki
    domains: [wiki.example.com]
    issuer: team
    audience: ` + audience + `
    policies:
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
  - name: grafana
    domains: [grafana.example.com]
    issuer: team
    audience: ` + audience + `
    unauthenticated: deny
    policies:
      - name: ops
        action: allow
        include: [{group: [ops]}]
`

func newFixture(dir string, bigApps int) (*fixture, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	priv, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	_ = priv.Set(jwk.KeyIDKey, keyID)
	_ = priv.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, err := priv.PublicKey()
	if err != nil {
		return nil, err
	}
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	js, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	f := &fixture{dir: dir, priv: priv, small: filepath.Join(dir, "small.yaml"), big: filepath.Join(dir, "big.yaml")}
	if err := os.WriteFile(filepath.Join(dir, "jwks.json"), js, 0o600); err != nil {
		return nil, err
	}
	small := "default_action: deny\n" + issuerYAML + "applications:\n" + smallApps
	if err := os.WriteFile(f.small, []byte(small), 0o600); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("default_action: deny\n" + issuerYAML + "applications:\n" + smallApps)
	for i := range bigApps {
		fmt.Fprintf(&b, "  - name: app%05d\n    domains: [app%05d.bench.example.com, api.bench.example.com/svc%05d]\n    issuer: team\n    audience: %s\n", i, i, i, audience)
		if i%3 == 0 {
			fmt.Fprintf(&b, "    cors:\n      allow_origins: [https://www%05d.example.com, \"https://*.tenant%05d.example.org\"]\n      allow_methods: [GET, POST]\n      allow_credentials: true\n", i, i)
		}
		fmt.Fprintf(&b, "    policies:\n      - name: staff\n        action: allow\n        include: [{email_domain: [example.com]}, {group: [team%05d]}]\n", i)
	}
	if err := os.WriteFile(f.big, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

// token mints a Cloudflare-shaped Access token (about 700 bytes) for user
// n, valid for a day.
func (f *fixture) token(n int) (string, error) { return mint(f.priv, n) }

// mint is token with the signing key priv (whose kid goes in the header).
func mint(priv jwk.Key, n int) (string, error) {
	now := time.Now()
	tok, err := jwt.NewBuilder().
		Issuer(issuerID).
		Audience([]string{audience}).
		Subject(fmt.Sprintf("7335d417-61da-459d-899c-%012d", n)).
		IssuedAt(now.Add(-time.Minute)).
		NotBefore(now.Add(-time.Minute)).
		Expiration(now.Add(24*time.Hour)).
		Claim("email", fmt.Sprintf("user%06d@example.com", n)).
		Claim("type", "app").
		Claim("identity_nonce", "6ei69kawdKzMIAPF").
		Claim("country", "NL").
		Claim("custom", map[string]any{"groups": []string{"eng", "ops"}, "department": "engineering"}).
		Build()
	if err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv))
	return string(signed), err
}

// browserHeaders are the headers Envoy reports for a browser's API call
// (a dozen, plus pseudo headers), with token in the Access cookie.
func browserHeaders(host, path, token string) map[string]string {
	return map[string]string{
		":authority":        host,
		":method":           "GET",
		":path":             path,
		":scheme":           "https",
		"accept":            "application/json, text/plain, */*",
		"accept-encoding":   "gzip, deflate, br, zstd",
		"accept-language":   "en-US,en;q=0.9,nl;q=0.8",
		"cookie":            "_ga=GA1.2.1234567890.1700000000; theme=dark; CF_Authorization=" + token + "; _gid=GA1.2.987654321.1700000000",
		"origin":            "https://www.example.com",
		"referer":           "https://www.example.com/reports",
		"sec-fetch-mode":    "cors",
		"sec-fetch-site":    "same-site",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"x-forwarded-for":   "203.0.113.9",
		"x-forwarded-proto": "https",
		"x-request-id":      "5b0f6c1c-4b7a-4f0e-9d3b-3f5b8f0c2a11",
	}
}

// checkRequest is the CheckRequest Envoy sends for that browser request.
func checkRequest(host, path, token string) *authv3.CheckRequest {
	sock := func(addr string, port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      &authv3.AttributeContext_Peer{Address: sock("203.0.113.9", 52814)},
		Destination: &authv3.AttributeContext_Peer{Address: sock("10.0.0.2", 8080)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id:       "12480911716829395341",
			Method:   "GET",
			Headers:  browserHeaders(host, path, token),
			Path:     path,
			Host:     host,
			Scheme:   "https",
			Protocol: "HTTP/1.1",
		}},
	}}
}
