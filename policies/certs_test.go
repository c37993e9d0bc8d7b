package policies

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// poolOf reads a PEM bundle into a pool, independently of the loader.
func poolOf(tb testing.TB, file string) *x509.CertPool {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		tb.Fatalf("%s holds no certificate", file)
	}
	return pool
}

// testCA is a CA generated for one test, with its key.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

func newTestCA(tb testing.TB, name string) testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a client certificate (clientAuth) for cn.
func (ca testCA) leaf(tb testing.TB, cn string) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// verifies reports whether cert chains to pool for client authentication.
func verifies(pool *x509.CertPool, cert *x509.Certificate) bool {
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

func writeTestFile(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// certPolicy is a policy file using valid_certificate and common_name with
// the given client_certificate_authorities line.
func certPolicy(cas string) string {
	return cas + policyFile(`      - name: devices
        action: allow
        include: [{valid_certificate: true}]
        require: [{common_name: [alice-laptop]}]
`)
}

// TestClientCAsReadAtEveryLoad: the bundles are read relative to the
// policy file's folder into Set.ClientCAs, which verifies the CA's client
// certificates and no others; loading again after the bundle changed
// (what a reload does) gives the new CA's pool.
func TestClientCAsReadAtEveryLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	bundle := filepath.Join(dir, "certs", "clients.pem")
	writeTestFile(t, file, []byte(certPolicy("client_certificate_authorities: [certs/clients.pem]\n")))
	oldCA, newCA := newTestCA(t, "old CA"), newTestCA(t, "new CA")
	oldLeaf, newLeaf := oldCA.leaf(t, "alice-laptop"), newCA.leaf(t, "alice-laptop")

	writeTestFile(t, bundle, oldCA.pem)
	first := mustLoad(t, file)
	writeTestFile(t, bundle, newCA.pem)
	second := mustLoad(t, file)

	tests := []struct {
		name string
		set  *Set
		leaf *x509.Certificate
		want bool
	}{
		{"first load, old CA's leaf", first, oldLeaf, true},
		{"first load, new CA's leaf", first, newLeaf, false},
		{"second load, old CA's leaf", second, oldLeaf, false},
		{"second load, new CA's leaf", second, newLeaf, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verifies(tt.set.ClientCAs, tt.leaf); got != tt.want {
				t.Errorf("verifies = %v, want %v", got, tt.want)
			}
		})
	}
	sel := second.Applications[0].PostAuth[0].Require[0]
	if sel.Kind != SelCommonName || len(sel.Set) != 1 {
		t.Errorf("require[0] = %+v, want common_name [alice-laptop]", *sel)
	}
}

// TestClientCAsBundles: several files, and several certificates in one
// file with text around them, all count.
func TestClientCAsBundles(t *testing.T) {
	dir := t.TempDir()
	a, b, c := newTestCA(t, "A"), newTestCA(t, "B"), newTestCA(t, "C")
	writeTestFile(t, filepath.Join(dir, "ab.pem"), []byte("# two CAs\n"+string(a.pem)+"between\n"+string(b.pem)))
	writeTestFile(t, filepath.Join(dir, "c.pem"), c.pem)
	file := filepath.Join(dir, "policy.yaml")
	writeTestFile(t, file, []byte(certPolicy("client_certificate_authorities: [ab.pem, "+filepath.Join(dir, "c.pem")+"]\n")))
	s := mustLoad(t, file)
	for _, ca := range []testCA{a, b, c} {
		if !verifies(s.ClientCAs, ca.leaf(t, "x")) {
			t.Errorf("a leaf of CA %s does not verify", ca.cert.Subject.CommonName)
		}
	}
	if verifies(s.ClientCAs, newTestCA(t, "D").leaf(t, "x")) {
		t.Error("a leaf of an unlisted CA verifies")
	}
}

// TestClientCAsErrors: each bad bundle is an error at its list entry.
func TestClientCAsErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "A")
	writeTestFile(t, filepath.Join(dir, "ok.pem"), ca.pem)
	writeTestFile(t, filepath.Join(dir, "empty.pem"), []byte("no certificate here\n"))
	writeTestFile(t, filepath.Join(dir, "key.pem"), append(append([]byte{}, ca.pem...), "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"...))
	writeTestFile(t, filepath.Join(dir, "broken.pem"), []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	if err := os.Mkdir(filepath.Join(dir, "folder.pem"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Opening a FIFO blocks until a writer comes: the load must refuse it
	// without opening it.
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give string // the client_certificate_authorities line
		want string // the message, after FILE:
	}{
		{"missing", "client_certificate_authorities: [ok.pem, nope.pem]", `1:42: cannot read client_certificate_authorities file "nope.pem" (` + filepath.Join(dir, "nope.pem") + `): no such file or directory`},
		{"a folder", "client_certificate_authorities: [folder.pem]", `1:34: cannot read client_certificate_authorities file "folder.pem" (` + filepath.Join(dir, "folder.pem") + `): not a regular file`},
		{"a pipe", "client_certificate_authorities: [pipe.pem]", `1:34: cannot read client_certificate_authorities file "pipe.pem" (` + filepath.Join(dir, "pipe.pem") + `): not a regular file`},
		{"no certificate", "client_certificate_authorities: [empty.pem]", `1:34: malformed client_certificate_authorities file "empty.pem": no PEM certificate`},
		{"a private key", "client_certificate_authorities: [key.pem]", `1:34: malformed client_certificate_authorities file "key.pem": PEM block 2 is EC PRIVATE KEY, not CERTIFICATE`},
		{"broken certificate", "client_certificate_authorities: [broken.pem]", `1:34: malformed client_certificate_authorities file "broken.pem": certificate 1: x509: malformed certificate`},
		{"empty list", "client_certificate_authorities: []", `1:33: client_certificate_authorities must not be empty (omit it when no client certificate is checked)`},
		{"not a list", "client_certificate_authorities: ok.pem", `1:33: client_certificate_authorities must be a list, not a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(dir, "policy.yaml")
			_, err := Parse(file, []byte(certPolicy(tt.give+"\n")))
			if err == nil {
				t.Fatal("Parse = nil error")
			}
			// Only the bundle's error: the certificate selectors do not
			// add "needs client_certificate_authorities" on top (but an
			// empty or non-list key leaves them unsupported).
			want := file + ":" + tt.want
			lines := strings.Split(err.Error(), "\n")
			if lines[0] != want {
				t.Errorf("error =\n%s\nwant first line\n%s", err, want)
			}
			if len(lines) > 1 && !strings.HasSuffix(tt.name, "list") {
				t.Errorf("more than one error:\n%s", err)
			}
		})
	}
}

// TestCertificateSelectorsNeedCAs: valid_certificate and common_name
// without client_certificate_authorities are errors at the selector's key,
// wherever they sit; with a bundle they are valid.
func TestCertificateSelectorsNeedCAs(t *testing.T) {
	const cas = "client_certificate_authorities: [testdata/valid/certs/ca.pem]\n"
	tests := []struct {
		name    string
		cas     string
		give    string // the policy, flow style
		wantKey string // the selector the error points at; "" for valid
	}{
		{"valid_certificate in include", "", "{name: p, action: allow, include: [{valid_certificate: true}]}", "valid_certificate"},
		{"common_name in require", "", "{name: p, action: allow, include: [{everyone: true}], require: [{common_name: [a]}]}", "common_name"},
		{"common_name in exclude", "", "{name: p, action: allow, include: [{everyone: true}], exclude: [{common_name: [a]}]}", "common_name"},
		{"valid_certificate in bypass", "", "{name: p, action: bypass, include: [{valid_certificate: true}]}", "valid_certificate"},
		{"with a bundle", cas, "{name: p, action: allow, include: [{valid_certificate: true}], exclude: [{common_name: [a]}]}", ""},
		{"with a bundle, in bypass", cas, "{name: p, action: bypass, include: [{common_name: [a]}]}", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := "      - " + tt.give
			src := tt.cas + policyFile(line+"\n")
			_, err := Parse("p.yaml", []byte(src))
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			lineNo := strings.Count(src, "\n")
			want := fmt.Sprintf("p.yaml:%d:%d: %s needs client_certificate_authorities: without them no client certificate can be verified",
				lineNo, strings.Index(line, tt.wantKey)+1, tt.wantKey)
			if err == nil || err.Error() != want {
				t.Errorf("Parse error =\n%v\nwant\n%s", err, want)
			}
		})
	}
}
