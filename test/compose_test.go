package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
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
	composeJWKS   = composeDir + "/accessgate/jwks.json"
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
		NetworkMode string            `json:"network_mode"`
		ExtraHosts  []string          `json:"extra_hosts"`
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

var composeVar = regexp.MustCompile(`\$\{([A-Z_]+):-([^}]*)\}`)

// interpolate replaces compose's ${NAME:-default} with the default: what
// the shipped file means when no variable is set.
func interpolate(t *testing.T, s string) string {
	t.Helper()
	out := composeVar.ReplaceAllString(s, "$2")
	if strings.Contains(out, "$") {
		t.Errorf("%q: only ${NAME:-default} variables are allowed, so the file works with none set", s)
	}
	return out
}

// TestCompose checks that docker-compose.yaml wires the services the way
// envoy/envoy.yaml and the compose policy expect, with every variable at
// its default.
func TestCompose(t *testing.T) {
	var c compose
	readYAML(t, composeFile, &c)
	b, _ := loadBootstrap(t)

	for name, svc := range c.Services {
		if svc.NetworkMode != "host" {
			t.Errorf("service %s: network_mode %q, want host (no container network, no published ports)", name, svc.NetworkMode)
		}
		if len(svc.Ports) != 0 {
			t.Errorf("service %s publishes ports %v: with host networking it listens on the host itself", name, svc.Ports)
		}
	}
	envoy, ok := c.Services["envoy"]
	if !ok {
		t.Fatal("no envoy service")
	}
	if got := interpolate(t, envoy.Image); got != "envoyproxy/envoy:v1.40.0" {
		t.Errorf("envoy image = %q, want the official envoyproxy/envoy:v1.40.0", got)
	}
	var vols []string
	for _, v := range envoy.Volumes {
		vols = append(vols, interpolate(t, v))
	}
	if !contains(vols, "./envoy.yaml:/etc/envoy/envoy.yaml:ro") {
		t.Errorf("envoy must mount the tested ./envoy.yaml at /etc/envoy/envoy.yaml, volumes = %v", envoy.Volumes)
	}

	// envoy.yaml dials accessgate:9001 and origin:8000 by name: on the
	// host's network those names must mean this host, and the services
	// must listen on those ports.
	ag := endpoint(t, b, "accessgate")
	og := endpoint(t, b, "origin")
	for _, a := range []string{ag.GetAddress(), og.GetAddress()} {
		if _, ok := c.Services[a]; !ok {
			t.Errorf("envoy.yaml dials %s, which is no compose service", a)
		}
		if !contains(envoy.ExtraHosts, a+":127.0.0.1") {
			t.Errorf("envoy extra_hosts %v must map %s to 127.0.0.1", envoy.ExtraHosts, a)
		}
	}
	agSvc := c.Services[ag.GetAddress()]
	if agSvc.Build.Context != ".." || agSvc.Build.Dockerfile != "Dockerfile" {
		t.Errorf("accessgate must be buildable from the repository Dockerfile, build = %+v", agSvc.Build)
	}
	if _, err := os.Stat("../Dockerfile"); err != nil {
		t.Error(err)
	}
	if got, want := interpolate(t, agSvc.Image), "ghcr.io/accessgate/accessgate:latest"; got != want {
		t.Errorf("accessgate image = %q, want the official %q", got, want)
	}
	if got, want := interpolate(t, agSvc.Environment["ACCESSGATE_GRPC_ADDR"]), "127.0.0.1:"+strconv.Itoa(int(ag.GetPortValue())); got != want {
		t.Errorf("ACCESSGATE_GRPC_ADDR = %q, want %q (loopback: only Envoy on this host may ask)", got, want)
	}
	if got := interpolate(t, agSvc.Environment["ACCESSGATE_HTTP_ADDR"]); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("ACCESSGATE_HTTP_ADDR = %q, want a loopback address", got)
	}
	cfg := agSvc.Environment["ACCESSGATE_CONFIG"]
	var mounted bool
	for _, v := range agSvc.Volumes {
		src, dst, _ := strings.Cut(strings.TrimSuffix(interpolate(t, v), ":ro"), ":")
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
	ogSvc := c.Services[og.GetAddress()]
	if got := interpolate(t, ogSvc.Environment["HTTP_PORT"]); got != strconv.Itoa(int(og.GetPortValue())) {
		t.Errorf("origin HTTP_PORT = %q, want %d", got, og.GetPortValue())
	}
	if got := interpolate(t, ogSvc.Image); got != "mendhak/http-https-echo:35" {
		t.Errorf("origin image = %q, want the official mendhak/http-https-echo:35", got)
	}

	// The policy reads its keys from the mounted folder.
	var p policyFile
	readYAML(t, composePolicy, &p)
	if len(p.Issuers) != 1 {
		t.Fatalf("compose policy: want one issuer, got %d", len(p.Issuers))
	}
	if f := p.Issuers[0].JWKSFile; f == "" || filepath.IsAbs(f) || filepath.Join(composeDir, "accessgate", f) != filepath.Clean(composeJWKS) {
		t.Errorf("compose policy jwks_file = %q, want the key set next to it (%s)", f, composeJWKS)
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
