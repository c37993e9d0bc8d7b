package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/testkit"
)

// hardeningPolicy protects /admin with a block policy under
// default_action: allow, so that any request the gate judged as another
// path or another host would reach the origin.
const hardeningPolicy = `# accessgate end-to-end policy for the revision 2/3 request rules
default_action: allow
issuers:
  - name: team
    issuer: {{ISSUER}}
    jwks_file: jwks.json
    login_url: http://{{LOGIN}}/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [{{APP}}]
    issuer: team
    audience: {{AUD}}
    cors:
      allow_origins: [{{PAGE}}]
      allow_methods: [GET]
    policies:
      - name: block-admin
        action: block
        paths: [/admin]
        include: [{everyone: true}]
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`

// rawExchange sends one raw HTTP/1.1 request to Envoy and reads the
// answer: the only way to send a non-ASCII Host or two Cookie lines
// exactly as written.
func (e *env) rawExchange(t *testing.T, request string) *response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.envoyPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read answer to %q: %v", request, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &response{Response: resp, body: body}
}

// TestEnvoyHardenedPaths: Envoy passes ';' and letter case through
// unchanged, so only accessgate stands between these requests and the
// origin, which serves /admin;x/users as /admin/users (Tomcat, Jetty,
// Spring) and /ADMIN as /admin (Express, ASP.NET Core, IIS).
func TestEnvoyHardenedPaths(t *testing.T) {
	e := newEnvWith(t, func(e *env) { e.policy = hardeningPolicy })
	cookie := map[string]string{"Cookie": "CF_Authorization=" + e.keys.token(t, "alice@example.com", time.Hour)}

	for _, target := range []string{"/admin;x/users", "/admin;/settings", "/admin;jsessionid=1", "/;x/admin/users", "/ADMIN/users", "/Admin;x/users"} {
		t.Run("blocked "+target, func(t *testing.T) {
			before := e.origin.hits.Load()
			r := e.send(t, http.MethodGet, target, cookie)
			if r.StatusCode != http.StatusForbidden || !strings.Contains(string(r.body), `"blocked"`) {
				t.Errorf("GET %s: %d %q, want 403 blocked", target, r.StatusCode, r.body)
			}
			if n := e.origin.hits.Load() - before; n != 0 {
				t.Errorf("GET %s reached the origin %d times", target, n)
			}
		})
	}
	// "/x/..;/admin" is resolved to /admin by Envoy's normalize_path
	// already (403 blocked); accessgate refuses it (400) where no proxy
	// does. Either way it never reaches the origin.
	for _, target := range []string{"/x/..;/admin", "/admin%3Bx/users", "/%c0%ae%c0%ae/admin", "/%f8%80%80%80%ae/admin"} {
		t.Run("refused "+target, func(t *testing.T) {
			before := e.origin.hits.Load()
			r := e.send(t, http.MethodGet, target, cookie)
			if r.StatusCode != http.StatusBadRequest && !(target == "/x/..;/admin" && r.StatusCode == http.StatusForbidden) {
				t.Errorf("GET %s: %d %q, want 400", target, r.StatusCode, r.body)
			}
			if n := e.origin.hits.Load() - before; n != 0 {
				t.Errorf("GET %s reached the origin %d times", target, n)
			}
		})
	}
	t.Run("forwarded unchanged", func(t *testing.T) {
		r := e.send(t, http.MethodGet, "/users;jsessionid=1/List", cookie)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("status = %d %q, want 200", r.StatusCode, r.body)
		}
		if got := r.echo(t).URI; got != "/users;jsessionid=1/List" {
			t.Errorf("the origin got %q, want the request target unchanged", got)
		}
		if !hasValue(r.Header, "Vary", "Origin") {
			t.Errorf("Vary = %q, want it to hold Origin", r.Header.Values("Vary"))
		}
	})
}

// TestEnvoyHardenedHosts: under default_action: allow, a host spelled so
// that it matches no application must be refused, not forwarded. Envoy
// 1.40 itself refuses a non-ASCII authority over HTTP/1.1
// (http.invalid_authority); accessgate refuses the empty labels, and the
// non-ASCII hosts any other way they may arrive (authz table tests).
func TestEnvoyHardenedHosts(t *testing.T) {
	e := newEnvWith(t, func(e *env) { e.policy = hardeningPolicy })
	for _, host := range []string{
		appHost + "..",
		"\u212Aate." + appHost, // Kelvin sign
		"\uff41pp.demo.localtest",
		"app..demo.localtest",
	} {
		t.Run(host, func(t *testing.T) {
			before := e.origin.hits.Load()
			r := e.rawExchange(t, fmt.Sprintf("GET /users HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", host, e.envoyPort))
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("Host %q: %d %q, want 400", host, r.StatusCode, r.body)
			}
			if n := e.origin.hits.Load() - before; n != 0 {
				t.Errorf("Host %q reached the origin %d times", host, n)
			}
		})
	}
	t.Run("control: an unknown host is forwarded", func(t *testing.T) {
		r := e.rawExchange(t, fmt.Sprintf("GET /users HTTP/1.1\r\nHost: other.demo.localtest:%d\r\nConnection: close\r\n\r\n", e.envoyPort))
		if r.StatusCode != http.StatusOK {
			t.Errorf("unknown host: %d %q, want 200 under default_action: allow", r.StatusCode, r.body)
		}
	})
}

// TestEnvoyTwoCookieHeaders: Envoy joins two Cookie lines with "," in the
// CheckRequest; the CF_Authorization of the second line is found, and a
// forged one there is the token judged.
func TestEnvoyTwoCookieHeaders(t *testing.T) {
	e := newEnvWith(t, func(e *env) { e.policy = hardeningPolicy })
	alice := e.keys.token(t, "alice@example.com", time.Hour)
	req := func(extra string) string {
		return fmt.Sprintf("GET /users HTTP/1.1\r\nHost: %s:%d\r\nAccept: application/json\r\n%sConnection: close\r\n\r\n", appHost, e.envoyPort, extra)
	}
	r := e.rawExchange(t, req("Cookie: theme=dark; lang=en\r\nCookie: CF_Authorization="+alice+"\r\n"))
	if r.StatusCode != http.StatusOK {
		t.Errorf("token in the second Cookie line: %d %q, want 200", r.StatusCode, r.body)
	} else if v, _ := r.echo(t).header("cf-access-authenticated-user-email"); v != "alice@example.com" {
		t.Errorf("origin got user email %q, want alice@example.com", v)
	}

	before := e.origin.hits.Load()
	r = e.rawExchange(t, req("Cookie: theme=dark\r\nCookie: CF_Authorization=forged.token.value\r\nCf-Access-Jwt-Assertion: "+alice+"\r\n"))
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(r.body), "token_malformed") {
		t.Errorf("forged cookie in the second line with a valid assertion: %d %q, want 401 token_malformed", r.StatusCode, r.body)
	}
	if n := e.origin.hits.Load() - before; n != 0 {
		t.Errorf("the forged cookie reached the origin %d times", n)
	}
}

// clientCertPolicy lets a client certificate in: any valid one on
// /machine, the common name ops-laptop on /ops.
const clientCertPolicy = `# accessgate end-to-end policy for client certificates
default_action: deny
client_certificate_authorities: [clients-ca.pem]
issuers:
  - name: team
    issuer: {{ISSUER}}
    jwks_file: jwks.json
    login_url: http://{{LOGIN}}/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}
applications:
  - name: app
    domains: [{{APP}}]
    issuer: team
    audience: {{AUD}}
    policies:
      - name: machines
        action: bypass
        paths: [/machine]
        include: [{valid_certificate: true}]
      - name: ops
        action: bypass
        paths: [/ops]
        include: [{common_name: [ops-laptop]}]
      - name: staff
        action: allow
        include: [{email_domain: [example.com]}]
`

// downstreamTLS makes the shipped bootstrap's listener terminate TLS and
// ask for a client certificate, which it passes on whatever signed it
// (ACCEPT_UNTRUSTED): accessgate alone decides whether it counts. The rest
// of the shipped file, include_peer_certificate: true included, is used as
// is.
func downstreamTLS(t *testing.T, cfg []byte, certFile, keyFile, caFile string) []byte {
	t.Helper()
	const chain = "    filter_chains:\n    - filters:\n"
	if strings.Count(string(cfg), chain) != 1 {
		t.Fatalf("the bootstrap no longer has one %q", chain)
	}
	tlsChain := fmt.Sprintf(`    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: false
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: %q }
              private_key: { filename: %q }
            validation_context:
              trusted_ca: { filename: %q }
              trust_chain_verification: ACCEPT_UNTRUSTED
      filters:
`, certFile, keyFile, caFile)
	return []byte(strings.Replace(string(cfg), chain, tlsChain, 1))
}

// TestEnvoyClientCertificates: a real Envoy terminates mutual TLS from a Go
// client and passes the certificate (source.certificate, with the shipped
// include_peer_certificate: true); accessgate verifies it against
// client_certificate_authorities.
func TestEnvoyClientCertificates(t *testing.T) {
	clientsCA := testkit.NewCA(t, "e2e clients CA")
	otherCA := testkit.NewCA(t, "e2e other CA")
	serverCA := testkit.NewCA(t, "e2e edge CA")
	dir := t.TempDir()
	srvCert, srvKey := serverCA.Issue(t, testkit.Leaf{CommonName: appHost, Server: true, DNSNames: []string{appHost}})
	write(t, filepath.Join(dir, "edge.crt"), srvCert)
	write(t, filepath.Join(dir, "edge.key"), srvKey)
	write(t, filepath.Join(dir, "clients-ca.pem"), clientsCA.PEM)

	// Until the policy parser knows client_certificate_authorities (built
	// beside this), the test cannot start accessgate: it says so, and
	// fails under CI.
	probe := filepath.Join(t.TempDir(), "probe.yaml")
	write(t, probe, []byte("client_certificate_authorities: [clients-ca.pem]\n"))
	if out, _ := exec.Command(accessgatePath(t), "validate", "--config", probe).CombinedOutput(); strings.Contains(string(out), `unknown key "client_certificate_authorities"`) {
		need(t, func() (string, error) { return "", fmt.Errorf("%s", strings.TrimSpace(string(out))) },
			"a policy parser that knows client_certificate_authorities", "merge the policies work")
	}

	e := newEnvWith(t, func(e *env) {
		e.policy = clientCertPolicy
		e.files = map[string][]byte{"clients-ca.pem": clientsCA.PEM}
		e.rewrite = func(t *testing.T, cfg []byte) []byte {
			return downstreamTLS(t, cfg, filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key"), filepath.Join(dir, "clients-ca.pem"))
		}
	})
	roots := x509.NewCertPool()
	roots.AddCert(serverCA.Cert)
	send := func(t *testing.T, path string, leaf *testkit.Leaf, signer *testkit.CA) *response {
		t.Helper()
		cfg := &tls.Config{RootCAs: roots, ServerName: appHost, MinVersion: tls.VersionTLS12}
		if leaf != nil {
			certPEM, keyPEM := signer.Issue(t, *leaf)
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{pair}
		}
		client := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d%s", e.envoyPort, path), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = fmt.Sprintf("%s:%d", appHost, e.envoyPort)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s over TLS: %v", path, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return &response{Response: resp, body: body}
	}
	tests := []struct {
		name   string
		path   string
		leaf   *testkit.Leaf
		signer *testkit.CA
		want   int
	}{
		{"valid certificate", "/machine/status", &testkit.Leaf{CommonName: "svc"}, clientsCA, http.StatusOK},
		{"no certificate", "/machine/status", nil, nil, http.StatusUnauthorized},
		{"without clientAuth usage", "/machine/status", &testkit.Leaf{CommonName: "svc", NoExtKeyUsage: true}, clientsCA, http.StatusUnauthorized},
		{"serverAuth usage only", "/machine/status", &testkit.Leaf{CommonName: "svc", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, clientsCA, http.StatusUnauthorized},
		{"another CA", "/machine/status", &testkit.Leaf{CommonName: "svc"}, otherCA, http.StatusUnauthorized},
		{"expired", "/machine/status", &testkit.Leaf{CommonName: "svc", NotAfter: time.Now().Add(-time.Minute)}, clientsCA, http.StatusUnauthorized},
		{"common name", "/ops/x", &testkit.Leaf{CommonName: "ops-laptop"}, clientsCA, http.StatusOK},
		{"other common name", "/ops/x", &testkit.Leaf{CommonName: "svc"}, clientsCA, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.origin.hits.Load()
			r := send(t, tt.path, tt.leaf, tt.signer)
			if r.StatusCode != tt.want {
				t.Errorf("GET %s: %d %q, want %d", tt.path, r.StatusCode, r.body, tt.want)
			}
			if reached := e.origin.hits.Load() - before; (reached > 0) != (tt.want == http.StatusOK) {
				t.Errorf("origin reached %d times, want it only on 200", reached)
			}
		})
	}
}
