package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/accessgate/accessgate/test/testkit"
)

// testCA issues this file's certificate shapes from a testkit CA: a server
// certificate for 127.0.0.1 and localhost, or a client certificate.
type testCA struct{ *testkit.CA }

func newTestCA(t *testing.T, name string) testCA { return testCA{testkit.NewCA(t, name)} }

func (ca testCA) issue(t *testing.T, cn string, server bool, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	l := testkit.Leaf{CommonName: cn, Server: server, NotAfter: notAfter}
	if server {
		l.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
		l.DNSNames = []string{"localhost"}
	}
	return ca.Issue(t, l)
}

// pki is a CA, a server certificate for 127.0.0.1 and a client
// certificate, written to a test folder.
type pki struct {
	dir               string
	ca                testCA
	caFile            string
	certFile, keyFile string // the server's
	client            tls.Certificate
	serverCN          string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir(), ca: newTestCA(t, "accessgate test CA"), serverCN: "server-1"}
	p.caFile = writeFile(t, p.dir, "ca.crt", string(p.ca.PEM))
	c, k := p.ca.issue(t, p.serverCN, true, time.Now().Add(24*time.Hour))
	p.certFile = writeFile(t, p.dir, "server.crt", string(c))
	p.keyFile = writeFile(t, p.dir, "server.key", string(k))
	c, k = p.ca.issue(t, "envoy", false, time.Now().Add(24*time.Hour))
	p.client = keyPair(t, c, k)
	return p
}

func keyPair(t *testing.T, c, k []byte) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// clientTLS trusts p's CA and presents certs (none when nil).
func (p *pki) clientTLS(certs ...tls.Certificate) *tls.Config {
	roots := x509.NewCertPool()
	roots.AddCert(p.ca.Cert)
	return &tls.Config{RootCAs: roots, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// rotate replaces the server certificate on disk with a new one for cn,
// the way a renewal does: both files written in place.
func (p *pki) rotate(t *testing.T, cn string) {
	t.Helper()
	c, k := p.ca.issue(t, cn, true, time.Now().Add(24*time.Hour))
	writeFile(t, p.dir, "server.crt", string(c))
	writeFile(t, p.dir, "server.key", string(k))
}

// handshake dials addr with cfg and returns the server's leaf CN, or the
// handshake error. With TLS 1.3 a refused client certificate is reported
// after the handshake, so it also reads until the server's verdict.
func handshake(addr string, cfg *tls.Config) (string, error) {
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// gRPC's server speaks first (HTTP/2 SETTINGS) once the client
	// certificate is accepted; a refused one yields an alert instead.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return "", err
	}
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// checkOverTLS sends one Check with cfg and returns its gRPC error.
func checkOverTLS(t *testing.T, addr string, cfg *tls.Config, d *demoFiles) (*authv3.CheckResponse, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return authv3.NewAuthorizationClient(conn).Check(ctx, envoyRequest(d.token))
}

func TestServeMutualTLS(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy,
		"--tls-cert", p.certFile, "--tls-key", p.keyFile, "--client-ca", p.caFile)

	t.Run("client certificate from the CA", func(t *testing.T) {
		resp, err := checkOverTLS(t, s.grpcAddr, p.clientTLS(p.client), d)
		if err != nil {
			t.Fatalf("Check over mTLS: %v", err)
		}
		if c := codes.Code(resp.GetStatus().GetCode()); c != codes.OK {
			t.Errorf("Check over mTLS: status %v, want OK", c)
		}
	})

	other := newTestCA(t, "another CA")
	oc, ok := other.issue(t, "intruder", false, time.Now().Add(time.Hour))
	tests := []struct {
		name  string
		certs []tls.Certificate
	}{
		{"no client certificate", nil},
		{"client certificate from another CA", []tls.Certificate{keyPair(t, oc, ok)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := handshake(s.grpcAddr, p.clientTLS(tt.certs...)); err == nil {
				t.Error("handshake succeeded, want it refused")
			}
			_, err := checkOverTLS(t, s.grpcAddr, p.clientTLS(tt.certs...), d)
			if c := grpcstatus.Code(err); c != codes.Unavailable {
				t.Errorf("Check: %v, want Unavailable", err)
			}
		})
	}

	t.Run("plaintext client", func(t *testing.T) {
		resp, err := authv3.NewAuthorizationClient(s.dial()).Check(context.Background(), envoyRequest(d.token))
		if err == nil {
			t.Errorf("Check over plaintext answered %v, want an error", resp.GetStatus())
		}
	})

	t.Run("TLS 1.1 refused", func(t *testing.T) {
		cfg := p.clientTLS(p.client)
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
		if _, err := handshake(s.grpcAddr, cfg); err == nil {
			t.Error("TLS 1.1 handshake succeeded, want it refused")
		}
	})

	logs := s.stderr.String()
	if !strings.Contains(logs, `"grpc_tls":"mtls"`) {
		t.Errorf("start line does not say grpc_tls mtls:\n%s", logs)
	}
}

// TestServeTLSRotation: new connections see a renewed certificate; a
// broken replacement keeps the previous one and is logged.
func TestServeTLSRotation(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy,
		"--tls-cert", p.certFile, "--tls-key", p.keyFile, "--client-ca", p.caFile)
	cfg := p.clientTLS(p.client)
	serverCN := func() string {
		cn, err := handshake(s.grpcAddr, cfg)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		return cn
	}
	if cn := serverCN(); cn != "server-1" {
		t.Fatalf("server certificate CN = %q, want server-1", cn)
	}

	p.rotate(t, "server-2")
	eventually(t, "the renewed certificate served", func() bool { return serverCN() == "server-2" })

	// A truncated certificate: the previous one stays, and it is logged.
	const unusable = "tls files unusable, keeping previous"
	before := strings.Count(s.stderr.String(), unusable)
	writeFile(t, p.dir, "server.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n")
	// Files are checked in handshakes: each attempt may be the one that
	// reads the broken file.
	eventually(t, "the broken certificate logged", func() bool {
		if cn := serverCN(); cn != "server-2" {
			t.Fatalf("with a broken replacement: CN = %q, want server-2 still", cn)
		}
		return strings.Count(s.stderr.String(), unusable) > before
	})
	if cn := serverCN(); cn != "server-2" {
		t.Errorf("after a broken replacement: CN = %q, want server-2 still", cn)
	}
	if _, err := checkOverTLS(t, s.grpcAddr, cfg, d); err != nil {
		t.Errorf("Check after a broken replacement: %v", err)
	}

	// Repaired: the next good pair is served.
	p.rotate(t, "server-3")
	eventually(t, "the repaired certificate served", func() bool { return serverCN() == "server-3" })

	// A new client CA: its clients get in, the old CA's no longer do.
	next := newTestCA(t, "next CA")
	nc, nk := next.issue(t, "envoy-2", false, time.Now().Add(time.Hour))
	nextCfg := p.clientTLS(keyPair(t, nc, nk))
	writeFile(t, p.dir, "ca.crt", string(next.PEM))
	eventually(t, "the new client CA in force", func() bool {
		_, err := handshake(s.grpcAddr, nextCfg)
		return err == nil
	})
	if _, err := handshake(s.grpcAddr, cfg); err == nil {
		t.Error("a client of the replaced CA still got in")
	}
}

// TestServeTLSFlagErrors: incomplete or unusable TLS settings stop serve
// with exit 1 and a message naming the problem.
func TestServeTLSFlagErrors(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	garbage := writeFile(t, p.dir, "garbage.pem", "not a certificate")
	otherKey := func() string {
		_, k := newTestCA(t, "x").issue(t, "x", true, time.Now().Add(time.Hour))
		return writeFile(t, t.TempDir(), "other.key", string(k))
	}()
	expiredCert, expiredKey := func() (string, string) {
		c, k := p.ca.issue(t, "old", true, time.Now().Add(-time.Hour))
		dir := t.TempDir()
		return writeFile(t, dir, "expired.crt", string(c)), writeFile(t, dir, "expired.key", string(k))
	}()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"cert without key", nil, []string{"--tls-cert", p.certFile}, "--tls-cert needs --tls-key"},
		{"key without cert", nil, []string{"--tls-key", p.keyFile}, "--tls-key needs --tls-cert"},
		{"client CA without cert", nil, []string{"--client-ca", p.caFile}, "--client-ca needs --tls-cert"},
		{"cert without key from env", map[string]string{envName("tls-cert"): p.certFile}, nil, "--tls-cert needs --tls-key"},
		{"http cert without key", nil, []string{"--http-tls-cert", p.certFile}, "--http-tls-cert needs --http-tls-key"},
		{"missing cert file", nil, []string{"--tls-cert", filepath.Join(p.dir, "nope.crt"), "--tls-key", p.keyFile}, "nope.crt"},
		{"garbage cert", nil, []string{"--tls-cert", garbage, "--tls-key", p.keyFile}, "grpc tls: certificate and key"},
		{"key of another cert", nil, []string{"--tls-cert", p.certFile, "--tls-key", otherKey}, "grpc tls: certificate and key"},
		{"expired cert", nil, []string{"--tls-cert", expiredCert, "--tls-key", expiredKey}, "expired"},
		{"garbage client CA", nil, []string{"--tls-cert", p.certFile, "--tls-key", p.keyFile, "--client-ca", garbage}, "no PEM certificates"},
		{"garbage http cert", nil, []string{"--http-tls-cert", garbage, "--http-tls-key", p.keyFile}, "http tls: certificate and key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--config", d.policy}, tt.args...)
			code, _, stderr := runCLI(t, loopbackEnv(tt.env), args...)
			if code != exitFail || !strings.Contains(stderr, tt.want) {
				t.Errorf("serve %v: exit %d, stderr %q; want exit 1 and %q", tt.args, code, stderr, tt.want)
			}
		})
	}
}

// TestServeTLSEnv: the TLS files come from ACCESSGATE_* variables too.
func TestServeTLSEnv(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	s := startServe(t, loopbackEnv(map[string]string{
		envName("tls-cert"): p.certFile, envName("tls-key"): p.keyFile, envName("client-ca"): p.caFile,
	}), "--config", d.policy)
	if _, err := checkOverTLS(t, s.grpcAddr, p.clientTLS(p.client), d); err != nil {
		t.Errorf("Check over mTLS set from the environment: %v", err)
	}
	if _, err := handshake(s.grpcAddr, p.clientTLS()); err == nil {
		t.Error("handshake without a client certificate succeeded, want it refused")
	}
}

// TestServeGRPCTLSOnly: --tls-cert without --client-ca serves TLS and takes
// any client.
func TestServeGRPCTLSOnly(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	s := startServe(t, loopbackEnv(nil), "--config", d.policy, "--tls-cert", p.certFile, "--tls-key", p.keyFile)
	if _, err := checkOverTLS(t, s.grpcAddr, p.clientTLS(), d); err != nil {
		t.Errorf("Check over TLS without a client certificate: %v", err)
	}
}

// TestServeHTTPTLS: /healthz over HTTPS, and the certificate follows its
// files there too.
func TestServeHTTPTLS(t *testing.T) {
	d := demoDir(t)
	p := newPKI(t)
	s := startServe(t, loopbackEnv(map[string]string{envName("http-tls-cert"): p.certFile, envName("http-tls-key"): p.keyFile}), "--config", d.policy)
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: p.clientTLS(), DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
	get := func() (string, string) {
		resp, err := client.Get("https://" + s.httpAddr + "/healthz")
		if err != nil {
			t.Fatalf("GET https /healthz: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if body, cn := get(); body != "ok\n" || cn != "server-1" {
		t.Errorf("GET https /healthz = %q from %q, want ok from server-1", body, cn)
	}
	resp, err := s.http.Get("http://" + s.httpAddr + "/healthz")
	if err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP /healthz answered 200 on the HTTPS listener")
		}
		resp.Body.Close()
	}
	p.rotate(t, "server-2")
	eventually(t, "the renewed HTTP certificate served", func() bool {
		_, cn := get()
		return cn == "server-2"
	})
}

// fakeClock is a settable clock for reloading.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

// parseText is a reloading parser: the file's text, refused when it
// starts with "bad".
func parseText(data [][]byte) (string, error) {
	s := string(data[0])
	if strings.HasPrefix(s, "bad") {
		return "", errors.New("bad content")
	}
	return s, nil
}

// TestReloadingInterval: the files are read at most once per interval, a
// change is seen at the first get after it, and a bad change keeps the
// previous value and is logged once.
func TestReloadingInterval(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "v", "one")
	core, logs := observer.New(zap.InfoLevel)
	r, err := newReloading("test", []string{f}, parseText, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{}
	clk.ns.Store(time.Now().UnixNano())
	r.now = clk.now
	r.next.Store(clk.now().Add(r.every).UnixNano())

	writeFile(t, dir, "v", "two")
	if got := *r.get(); got != "one" {
		t.Errorf("get before the interval = %q, want one (no read yet)", got)
	}
	clk.add(tlsRecheck)
	if got := *r.get(); got != "two" {
		t.Errorf("get after the interval = %q, want two", got)
	}

	writeFile(t, dir, "v", "bad three")
	for range 3 {
		clk.add(tlsRecheck)
		if got := *r.get(); got != "two" {
			t.Errorf("get after a bad change = %q, want two kept", got)
		}
	}
	if n := logs.FilterMessage("tls files unusable, keeping previous").Len(); n != 1 {
		t.Errorf("bad content logged %d times, want once", n)
	}

	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	clk.add(tlsRecheck)
	if got := *r.get(); got != "two" {
		t.Errorf("get with the file gone = %q, want two kept", got)
	}
	writeFile(t, dir, "v", "four")
	clk.add(tlsRecheck)
	if got := *r.get(); got != "four" {
		t.Errorf("get after a good change = %q, want four", got)
	}
	if n := logs.FilterMessage("tls files reloaded").Len(); n != 2 {
		t.Errorf("reloads logged %d times, want 2", n)
	}
}
