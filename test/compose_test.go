package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"sigs.k8s.io/yaml"
)

var regenDemo = flag.Bool("regen-demo", false, "write a new demo key set and demo tokens into envoy/compose (the private key is discarded)")

const (
	composeFile   = "../envoy/docker-compose.yaml"
	composeDir    = "../envoy/compose"
	composePolicy = composeDir + "/accessgate/policy.yaml"
	composeJWKS   = composeDir + "/issuer/jwks.json"
)

// demoUsers are the demo tokens: one the policy allows, one it blocks.
var demoUsers = []struct{ file, email string }{
	{"alice.jwt", "alice@example.com"},
	{"bob-contractor.jwt", "bob@contractor.example.com"},
}

type compose struct {
	Services map[string]struct {
		Image string `json:"image"`
		Build struct {
			Context    string `json:"context"`
			Dockerfile string `json:"dockerfile"`
		} `json:"build"`
		Environment map[string]string `json:"environment"`
		Volumes     []string          `json:"volumes"`
		Ports       []string          `json:"ports"`
	} `json:"services"`
}

// policyFile is the subset of the policy file the deployment files must agree with.
type policyFile struct {
	Issuers []struct {
		Name     string `json:"name"`
		Issuer   string `json:"issuer"`
		JWKSURL  string `json:"jwks_url"`
		JWKSFile string `json:"jwks_file"`
		LoginURL string `json:"login_url"`
	} `json:"issuers"`
	Applications []struct {
		Name     string   `json:"name"`
		Domains  []string `json:"domains"`
		Issuer   string   `json:"issuer"`
		Audience string   `json:"audience"`
	} `json:"applications"`
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// TestCompose checks that docker-compose.yaml wires the services the way
// envoy/envoy.yaml and the compose policy expect.
func TestCompose(t *testing.T) {
	var c compose
	readYAML(t, composeFile, &c)
	b, _ := loadBootstrap(t)

	envoy, ok := c.Services["envoy"]
	if !ok {
		t.Fatal("no envoy service")
	}
	if envoy.Image != "envoyproxy/envoy:v1.40.0" {
		t.Errorf("envoy image = %q, want the official envoyproxy/envoy:v1.40.0", envoy.Image)
	}
	if !contains(envoy.Volumes, "./envoy.yaml:/etc/envoy/envoy.yaml:ro") {
		t.Errorf("envoy must mount the tested ./envoy.yaml at /etc/envoy/envoy.yaml, volumes = %v", envoy.Volumes)
	}
	lp := b.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress()
	if lp.GetAddress() != "0.0.0.0" || !hasPublished(envoy.Ports, int(lp.GetPortValue())) {
		t.Errorf("envoy must publish the listener %s:%d, ports = %v", lp.GetAddress(), lp.GetPortValue(), envoy.Ports)
	}

	// envoy.yaml dials accessgate:9001 and origin:8000 by service name.
	ag := endpoint(t, b, "accessgate")
	agSvc, ok := c.Services[ag.GetAddress()]
	if !ok {
		t.Fatalf("envoy.yaml dials %s, which is no compose service", ag.GetAddress())
	}
	if agSvc.Build.Context != ".." || agSvc.Build.Dockerfile != "Dockerfile" {
		t.Errorf("accessgate must be built from the repository Dockerfile, build = %+v", agSvc.Build)
	}
	if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Error(err)
	}
	if got, want := agSvc.Environment["ACCESSGATE_GRPC_ADDR"], "0.0.0.0:"+strconv.Itoa(int(ag.GetPortValue())); got != want {
		t.Errorf("ACCESSGATE_GRPC_ADDR = %q, want %q", got, want)
	}
	cfg := agSvc.Environment["ACCESSGATE_CONFIG"]
	var mounted bool
	for _, v := range agSvc.Volumes {
		src, dst, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":")
		if filepath.Dir(cfg) == dst {
			mounted = true
			if _, err := os.Stat(filepath.Join("../envoy", src, filepath.Base(cfg))); err != nil {
				t.Errorf("ACCESSGATE_CONFIG %s: %v", cfg, err)
			}
		}
	}
	if !mounted {
		t.Errorf("ACCESSGATE_CONFIG %q is not in a mounted folder (a folder, so edits reload), volumes = %v", cfg, agSvc.Volumes)
	}

	og := endpoint(t, b, "origin")
	ogSvc, ok := c.Services[og.GetAddress()]
	if !ok {
		t.Fatalf("envoy.yaml dials %s, which is no compose service", og.GetAddress())
	}
	if got := ogSvc.Environment["HTTP_PORT"]; got != strconv.Itoa(int(og.GetPortValue())) {
		t.Errorf("origin HTTP_PORT = %q, want %d", got, og.GetPortValue())
	}

	// The policy fetches its keys from the issuer service, and sends the
	// browser to the issuer's published port.
	var p policyFile
	readYAML(t, composePolicy, &p)
	if len(p.Issuers) != 1 {
		t.Fatalf("compose policy: want one issuer, got %d", len(p.Issuers))
	}
	u, err := url.Parse(p.Issuers[0].JWKSURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("jwks_url %q: %v", p.Issuers[0].JWKSURL, err)
	}
	is, ok := c.Services[u.Hostname()]
	if !ok {
		t.Fatalf("jwks_url host %q is no compose service", u.Hostname())
	}
	lu, err := url.Parse(strings.NewReplacer("{host}", "h", "{aud}", "a", "{redirect}", "r").Replace(p.Issuers[0].LoginURL))
	if err != nil {
		t.Fatal(err)
	}
	if !hasPublished(is.Ports, portOf(lu)) {
		t.Errorf("login_url %s is not published by the %s service (ports %v)", p.Issuers[0].LoginURL, u.Hostname(), is.Ports)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// hasPublished reports whether a compose "ip:host:container" entry publishes
// port on the host.
func hasPublished(ports []string, port int) bool {
	for _, p := range ports {
		parts := strings.Split(p, ":")
		if len(parts) >= 2 && parts[len(parts)-2] == strconv.Itoa(port) {
			return true
		}
	}
	return false
}

func portOf(u *url.URL) int {
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return n
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

// TestComposeDemoTokens checks that the committed demo tokens verify against
// the committed demo key set with the compose policy's issuer and audience,
// so the README's curl lines work. With -regen-demo it first writes new ones.
func TestComposeDemoTokens(t *testing.T) {
	var p policyFile
	readYAML(t, composePolicy, &p)
	if len(p.Issuers) != 1 || len(p.Applications) != 1 {
		t.Fatal("compose policy: want one issuer and one application")
	}
	iss, aud := p.Issuers[0].Issuer, p.Applications[0].Audience
	if *regenDemo {
		regenerateDemo(t, iss, aud)
	}
	data, err := os.ReadFile(composeJWKS)
	if err != nil {
		t.Fatal(err)
	}
	set, err := jwk.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", composeJWKS, err)
	}
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		if private, err := jwk.IsPrivateKey(k); err != nil || private {
			t.Fatalf("%s must hold only public keys (private: %v, %v)", composeJWKS, private, err)
		}
	}
	for _, u := range demoUsers {
		file := filepath.Join(composeDir, "tokens", u.file)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.Parse([]byte(strings.TrimSpace(string(raw))), jwt.WithKeySet(set),
			jwt.WithIssuer(iss), jwt.WithAudience(aud), jwt.WithValidate(true))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if email, _ := tok.Get("email"); email != u.email {
			t.Errorf("%s: email = %v, want %s", file, email, u.email)
		}
		if tok.Expiration().Before(time.Now().AddDate(10, 0, 0)) {
			t.Errorf("%s expires %v: demo tokens should outlive the demo by years", file, tok.Expiration())
		}
	}
}

func regenerateDemo(t *testing.T, iss, aud string) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.FromRaw(priv)
	if err != nil {
		t.Fatal(err)
	}
	kid := "accessgate-demo-" + time.Now().UTC().Format("20060102")
	_ = key.Set(jwk.KeyIDKey, kid)
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256)
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	_ = pub.Set(jwk.KeyUsageKey, "sig")
	set := jwk.NewSet()
	_ = set.AddKey(pub)
	js, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(composeJWKS, append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, u := range demoUsers {
		tok, err := jwt.NewBuilder().Issuer(iss).Audience([]string{aud}).
			Subject(strings.SplitN(u.email, "@", 2)[0]).
			IssuedAt(now).NotBefore(now).
			Expiration(time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC)).
			Claim("email", u.email).Claim("type", "app").Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, key))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(composeDir, "tokens", u.file), append(signed, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %s and %d tokens (kid %s); the private key is discarded", composeJWKS, len(demoUsers), kid)
}
