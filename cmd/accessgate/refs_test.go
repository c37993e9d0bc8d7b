package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"

	"github.com/accessgate/accessgate/test/testkit"
)

// keyFile is one file the policy file references, on disk in one of the
// ways such files are replaced.
type keyFile interface {
	path() string
	write(t *testing.T, content []byte)
}

// layouts are the ways a referenced file changes on disk.
var layouts = []struct {
	name string
	make func(t *testing.T, name string, content []byte) keyFile
}{
	{"in place", func(t *testing.T, name string, content []byte) keyFile {
		f := inPlace(filepath.Join(t.TempDir(), name))
		f.write(t, content)
		return f
	}},
	{"rename over", func(t *testing.T, name string, content []byte) keyFile {
		f := renameOver(filepath.Join(t.TempDir(), name))
		f.write(t, content)
		return f
	}},
	{"kubelet secret volume", func(t *testing.T, name string, content []byte) keyFile {
		return newSecretVolume(t, name, content)
	}},
}

// inPlace is a file rewritten in place (truncate, then write), as `cp` and
// `echo >` do.
type inPlace string

func (f inPlace) path() string { return string(f) }
func (f inPlace) write(t *testing.T, content []byte) {
	t.Helper()
	if err := os.WriteFile(string(f), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// renameOver is a file replaced by renaming a new one over it, as editors
// and atomic writers do.
type renameOver string

func (f renameOver) path() string { return string(f) }
func (f renameOver) write(t *testing.T, content []byte) {
	t.Helper()
	tmp := string(f) + ".tmp"
	if err := os.WriteFile(tmp, content, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, string(f)); err != nil {
		t.Fatal(err)
	}
}

// secretVolume is one key of a Kubernetes Secret volume, updated as the
// kubelet's AtomicWriter does: the new revision in a new timestamped
// folder, a ..data_tmp symlink to it renamed over ..data, the old revision
// deleted. The key itself is a symlink through ..data, made once.
type secretVolume struct {
	dir, key string
}

func newSecretVolume(t *testing.T, key string, content []byte) *secretVolume {
	v := &secretVolume{dir: t.TempDir(), key: key}
	v.write(t, content)
	if err := os.Symlink(filepath.Join("..data", key), v.path()); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *secretVolume) path() string { return filepath.Join(v.dir, v.key) }
func (v *secretVolume) write(t *testing.T, content []byte) {
	t.Helper()
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	rev, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rev, v.key), content, 0o440); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(rev), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestServeReloadsJWKSFile: serve reloads when the policy file's jwks_file
// changes, however it changes on disk, the policy file untouched. After a
// key rotation tokens of the new key verify and those of the old kid are
// refused; a broken key file is logged at the policy file's position,
// counted, and the last good keys stay in force; fixing it reloads again.
func TestServeReloadsJWKSFile(t *testing.T) {
	const iss, aud = "https://team.example.com", "app-aud"
	for _, layout := range layouts {
		t.Run(layout.name, func(t *testing.T) {
			k1, k2, k3 := newSigner(t, "k1"), newSigner(t, "k2"), newSigner(t, "k3")
			jwks := layout.make(t, "jwks.json", jwksDoc(t, k1))
			policy := writeFile(t, t.TempDir(), "policy.yaml", `issuers:
  - name: team
    issuer: `+iss+`
    jwks_file: `+jwks.path()+`
    login_url: https://team.example.com/login?r={redirect}
applications:
  - name: app
    domains: [app.example.com]
    issuer: team
    audience: `+aud+`
    policies:
      - {name: staff, action: allow, include: [{email_domain: [example.com]}]}
`)
			s := startServe(t, loopbackEnv(nil), "--config", policy)
			client := authv3.NewAuthorizationClient(s.dial())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// check returns the HTTP status Envoy would answer with.
			check := func(k signer) int {
				t.Helper()
				resp, err := client.Check(ctx, envoyRequest(k.token(t, iss, aud, "alice@example.com")))
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
					return 200
				}
				return int(resp.GetDeniedResponse().GetStatus().GetCode())
			}
			want := func(when string, k signer, status int) {
				t.Helper()
				if got := check(k); got != status {
					t.Errorf("%s: token of %s answered %d, want %d", when, k.priv.KeyID(), got, status)
				}
			}
			want("at start", k1, 200)
			want("at start", k2, 401)

			// Rotation: k2 replaces k1.
			jwks.write(t, jwksDoc(t, k2))
			eventually(t, "the rotation loaded", func() bool { return s.metric(reloadsOK) == 2 })
			want("after the rotation", k2, 200)
			want("after the rotation", k1, 401)

			// Broken: refused with the policy file's position, k2 kept.
			jwks.write(t, []byte(`{"keys": [`))
			eventually(t, "the broken key file refused", func() bool { return s.metric(reloadsFailed) >= 1 })
			if logs := s.stderr.String(); !strings.Contains(logs, policy+":4:16: malformed jwks_file") ||
				!strings.Contains(logs, "keeping previous config") {
				t.Errorf("logs lack %q and keeping previous config:\n%s", policy+":4:16: malformed jwks_file", logs)
			}
			want("with a broken key file", k2, 200)
			if code, body := s.get("/readyz"); code != 200 {
				t.Errorf("/readyz = %d %q with a broken key file, want 200 (last good keys in force)", code, body)
			}

			// Fixed: reloads, k3 in force.
			jwks.write(t, jwksDoc(t, k3))
			eventually(t, "the fixed key file loaded", func() bool { return s.metric(reloadsOK) == 3 })
			want("after the fix", k3, 200)
			want("after the fix", k2, 401)
		})
	}
}

// TestGateReloadsReferencedFiles: the other referenced files, a CA bundle
// and the login section's key and secrets, each in a Kubernetes Secret
// volume, reload the policy when they change: the live set holds the new
// CA, the new signing key, the new cookie secret. A broken one keeps the
// last good set.
func TestGateReloadsReferencedFiles(t *testing.T) {
	ca1, ca2 := testkit.NewCA(t, "ca one"), testkit.NewCA(t, "ca two")
	key1, key2 := signingKeyPEM(t), signingKeyPEM(t)
	files := map[string]keyFile{
		"ca.pem":        newSecretVolume(t, "ca.pem", ca1.PEM),
		"signing.pem":   newSecretVolume(t, "signing.pem", key1),
		"cookie.secret": newSecretVolume(t, "cookie.secret", []byte(strings.Repeat("a", 32))),
		"client.secret": newSecretVolume(t, "client.secret", []byte("client secret one")),
	}
	policy := writeFile(t, t.TempDir(), "policy.yaml", `client_certificate_authorities: [`+files["ca.pem"].path()+`]
login:
  team_domain: https://auth.example.com/
  signing_key_files: [`+files["signing.pem"].path()+`]
  cookie_secret_file: `+files["cookie.secret"].path()+`
  providers:
    - name: corp
      issuer: https://idp.example.com/
      client_id: accessgate
      client_secret_file: `+files["client.secret"].path()+`
applications:
  - name: app
    domains: [app.example.com]
    issuer: login
    audience: app-aud
    policies:
      - {name: certs, action: allow, include: [{valid_certificate: true}]}
`)
	c := newCLI(&syncBuffer{}, &syncBuffer{}, func(string) string { return "" })
	g, code := c.loadGate(context.Background(), &serveConfig{config: policy}, zaptest.NewLogger(t))
	if g == nil {
		t.Fatalf("loadGate: exit %d", code)
	}
	defer g.close()
	_, stop := g.watchPolicy()
	defer stop()

	client1, _ := ca1.Issue(t, testkit.Leaf{CommonName: "one"})
	client2, _ := ca2.Issue(t, testkit.Leaf{CommonName: "two"})
	verifies := func(certPEM []byte) bool {
		block, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		_, err = cert.Verify(x509.VerifyOptions{Roots: g.engine.Set().ClientCAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		return err == nil
	}
	kid := func() string { return g.engine.Set().Login.SigningKeys[0].KID }
	reloads := func() float64 { return testutil.ToFloat64(g.metrics.reloads.WithLabelValues(resultSuccess)) }
	if !verifies(client1) || verifies(client2) {
		t.Fatal("at start: want ca one's client verified, ca two's not")
	}
	kid1 := kid()

	steps := []struct {
		file    string
		content []byte
		applied func() bool
	}{
		{"ca.pem", ca2.PEM, func() bool { return verifies(client2) && !verifies(client1) }},
		{"signing.pem", key2, func() bool { return kid() != kid1 }},
		{"cookie.secret", []byte(strings.Repeat("b", 40) + "\n"), func() bool {
			return string(g.engine.Set().Login.CookieSecret) == strings.Repeat("b", 40)
		}},
		{"client.secret", []byte("client secret two"), func() bool {
			return g.engine.Set().Login.Providers[0].ClientSecret == "client secret two"
		}},
	}
	for _, step := range steps {
		before := reloads()
		files[step.file].write(t, step.content)
		eventually(t, step.file+" applied", step.applied)
		// The counter follows the swap.
		eventually(t, step.file+" counted", func() bool { return reloads() > before })
	}

	// A broken bundle is refused; the last good set (ca two) stays.
	files["ca.pem"].write(t, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	eventually(t, "the broken bundle refused", func() bool { return testutil.ToFloat64(g.metrics.reloads.WithLabelValues(resultFailure)) >= 1 })
	if !verifies(client2) {
		t.Error("after a broken bundle: ca two's client no longer verifies; want the last good set kept")
	}
	// Fixed: reloads again.
	files["ca.pem"].write(t, ca1.PEM)
	eventually(t, "the fixed bundle applied", func() bool { return verifies(client1) })
}

// signingKeyPEM is a new ES256 signing key for the login section, PEM.
func signingKeyPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
