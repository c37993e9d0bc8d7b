package e2e

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/internal/envoyconf"
	"github.com/accessgate/accessgate/test/testkit"
)

const mtlsBootstrap = "../../envoy/envoy-mtls.yaml"

// ca issues this file's certificates from a testkit CA.
type ca struct{ *testkit.CA }

func newCA(t *testing.T, name string) *ca { return &ca{testkit.NewCA(t, name)} }

func (c *ca) pem() []byte { return c.PEM }

// issue writes a certificate signed by c and its key to dir/name.crt and
// dir/name.key. A server certificate names DNS:accessgate (what
// envoy-mtls.yaml requires) and 127.0.0.1; a client one is for client auth.
func (c *ca) issue(t *testing.T, dir, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	l := testkit.Leaf{CommonName: name, Server: server}
	if server {
		l.DNSNames = []string{envoyconf.DefaultAccessgate.Host}
		l.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	certPEM, keyPEM := c.Issue(t, l)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, certPEM)
	write(t, keyFile, keyPEM)
	return certFile, keyFile
}

// mtlsSetup returns an env setup running accessgate with --tls-cert,
// --tls-key and --client-ca (a CA of its own), and Envoy with
// envoy/envoy-mtls.yaml whose TLS folder holds accessgate's CA and a
// client certificate signed by clientSigner (accessgate's CA when nil).
func mtlsSetup(t *testing.T, clientSigner *ca) func(*env) {
	t.Helper()
	serverCA := newCA(t, "accessgate e2e CA")
	if clientSigner == nil {
		clientSigner = serverCA
	}
	agDir, envoyDir := t.TempDir(), t.TempDir()
	caFile := filepath.Join(agDir, "ca.crt")
	write(t, caFile, serverCA.pem())
	cert, key := serverCA.issue(t, agDir, "server", true)
	// What Envoy reads: the CA that signed accessgate's certificate, and
	// its own client certificate as client.crt / client.key.
	write(t, filepath.Join(envoyDir, "ca.crt"), serverCA.pem())
	clientSigner.issue(t, envoyDir, "client", false)
	return func(e *env) {
		e.agArgs = []string{"--tls-cert", cert, "--tls-key", key, "--client-ca", caFile}
		e.bootstrapFile = mtlsBootstrap
		e.rewrite = func(t *testing.T, cfg []byte) []byte {
			out, err := envoyconf.SubstituteTLSDir(cfg, envoyDir)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
}

// TestEnvoyValidateMTLS runs `envoy --mode validate` on the shipped mTLS
// bootstrap with its TLS folder substituted (validation reads the files).
func TestEnvoyValidateMTLS(t *testing.T) {
	bin := envoyPath(t)
	data, err := os.ReadFile(mtlsBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := newCA(t, "validate CA")
	write(t, filepath.Join(dir, "ca.crt"), c.pem())
	c.issue(t, dir, "client", false)
	sub, err := envoyconf.SubstituteTLSDir(data, dir)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "envoy.yaml")
	write(t, f, sub)
	out, err := exec.Command(bin, "--mode", "validate", "-c", f, "--log-level", "warn").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Errorf("envoy --mode validate -c %s: %v\n%s", f, err, out)
	}
}

// TestThroughEnvoyMTLS: real Envoy runs envoy/envoy-mtls.yaml against
// accessgate serving mutual TLS, and decisions come through.
func TestThroughEnvoyMTLS(t *testing.T) {
	e := newEnvWith(t, mtlsSetup(t, nil))
	alice := e.keys.token(t, "alice@example.com", time.Hour)

	r := e.send(t, http.MethodGet, "/api/me", map[string]string{"Cookie": "CF_Authorization=" + alice})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("with a token: status = %d, want 200; body %q", r.StatusCode, r.body)
	}
	if v, _ := r.echo(t).header("cf-access-authenticated-user-email"); v != "alice@example.com" {
		t.Errorf("origin got user email %q, want alice@example.com", v)
	}

	before := e.origin.hits.Load()
	r = e.send(t, http.MethodGet, "/dashboard", map[string]string{
		"Accept":         "text/html",
		"Sec-Fetch-Mode": "navigate",
	})
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), e.loginPrefix()) {
		t.Errorf("navigation without a token: %d Location %q, want 302 to %s", r.StatusCode, r.Header.Get("Location"), e.loginPrefix())
	}
	r = e.send(t, http.MethodGet, "/api/items", nil)
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API call without a token: status = %d, want 401", r.StatusCode)
	}
	if n := e.origin.hits.Load() - before; n != 0 {
		t.Errorf("the origin was reached %d times without a token, want 0", n)
	}

	if logs := e.accessgate.Out.String(); !strings.Contains(logs, `"grpc_tls":"mtls"`) {
		t.Errorf("accessgate did not start with mTLS:\n%s", logs)
	}
}

// TestEnvoyMTLSWrongClientCA: Envoy presents a client certificate that
// accessgate's --client-ca did not sign. The handshake fails, so every
// check fails and Envoy fails closed: 503, and the origin never sees a
// request, not even with a valid token.
func TestEnvoyMTLSWrongClientCA(t *testing.T) {
	e := newEnvWith(t, mtlsSetup(t, newCA(t, "some other CA")))
	alice := e.keys.token(t, "alice@example.com", time.Hour)

	before := e.origin.hits.Load()
	for _, hdr := range []map[string]string{
		{"Cookie": "CF_Authorization=" + alice},
		{"Accept": "text/html"},
		nil,
	} {
		if r := e.send(t, http.MethodGet, "/api/me", hdr); r.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("GET /api/me %v: status = %d, want 503 (fail closed); body %q", hdr, r.StatusCode, r.body)
		}
	}
	if n := e.origin.hits.Load() - before; n != 0 {
		t.Errorf("the origin was reached %d times, want 0", n)
	}
	// Envoy itself is fine: its own health route does not ask accessgate.
	if r := e.send(t, http.MethodGet, "/envoy-health", nil); r.StatusCode != http.StatusOK {
		t.Errorf("/envoy-health = %d, want 200", r.StatusCode)
	}
}
