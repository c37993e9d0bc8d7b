package authz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// intermediate returns a CA signed by root, as a testkit.CA.
func intermediate(t *testing.T, root *testkit.CA, name string) *testkit.CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(12 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, &key.PublicKey, root.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testkit.CA{Cert: c, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func leafPEM(t *testing.T, ca *testkit.CA, l testkit.Leaf) string {
	t.Helper()
	c, _ := ca.Issue(t, l)
	return string(c)
}

// certFixture is an Engine on testdata/revision.yaml whose "plain"
// application is replaced by certificate policies, with a CA pool set on
// the Set by hand (the field the policy file's client_certificate_authorities
// fills).
type certFixture struct {
	*engineFixture
	ca, other *testkit.CA
	inter     *testkit.CA
	clock     time.Time
}

func newCertFixture(t *testing.T) *certFixture {
	t.Helper()
	f := revisionFixture(t)
	cf := &certFixture{engineFixture: f, ca: testkit.NewCA(t, "clients CA"), other: testkit.NewCA(t, "other CA"), clock: time.Now()}
	cf.inter = intermediate(t, cf.ca, "clients intermediate")
	pool := x509.NewCertPool()
	pool.AddCert(cf.ca.Cert)
	set := f.engine.Set()
	set.ClientCAs = pool
	app := appNamed(t, set, "plain")
	app.PreAuth = []*policies.Policy{{
		Name: "machines", Action: policies.ActionBypass,
		Include: []*policies.Selector{{Kind: policies.SelValidCertificate}},
		Exclude: []*policies.Selector{{Kind: policies.SelCommonName, Set: map[string]struct{}{"revoked-client": {}}}},
	}}
	app.PostAuth = []*policies.Policy{{
		Name: "named", Action: policies.ActionAllow,
		Include: []*policies.Selector{{Kind: policies.SelCommonName, Set: map[string]struct{}{"ops-laptop": {}}}},
	}}
	e := New(fileKeySource{}, WithClock(func() time.Time { return cf.clock }))
	e.Swap(set)
	f.engine = e
	return cf
}

// TestDecideClientCertificates: valid_certificate verifies the PEM against
// the CA pool with crypto/x509: chain, validity period by the engine clock,
// and clientAuth named in the extended key usage.
func TestDecideClientCertificates(t *testing.T) {
	f := newCertFixture(t)
	now := time.Now()
	good := leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc"})
	viaInter := leafPEM(t, f.inter, testkit.Leaf{CommonName: "svc"}) + string(f.inter.PEM)
	tests := []struct {
		name       string
		cert       string
		wantStatus int
		wantReason Reason
	}{
		{"valid", good, 200, ReasonBypass},
		{"valid with an intermediate", viaInter, 200, ReasonBypass},
		{"none", "", 401, ReasonTokenMissing},
		{"other CA", leafPEM(t, f.other, testkit.Leaf{CommonName: "svc"}), 401, ReasonTokenMissing},
		{"intermediate missing", leafPEM(t, f.inter, testkit.Leaf{CommonName: "svc"}), 401, ReasonTokenMissing},
		{"no extended key usage", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", NoExtKeyUsage: true}), 401, ReasonTokenMissing},
		{"any extended key usage only", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}), 401, ReasonTokenMissing},
		{"server auth only", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}), 401, ReasonTokenMissing},
		{"client and server auth", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}), 200, ReasonBypass},
		{"expired", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", NotAfter: now.Add(-time.Minute)}), 401, ReasonTokenMissing},
		{"not yet valid", leafPEM(t, f.ca, testkit.Leaf{CommonName: "svc", NotBefore: now.Add(time.Hour)}), 401, ReasonTokenMissing},
		{"the CA itself", string(f.ca.PEM), 401, ReasonTokenMissing},
		{"garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", 401, ReasonTokenMissing},
		{"not PEM", "MIIB", 401, ReasonTokenMissing},
		{"still URL-encoded", url.PathEscape(good), 401, ReasonTokenMissing},
		{"excluded common name", leafPEM(t, f.ca, testkit.Leaf{CommonName: "revoked-client"}), 401, ReasonTokenMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req("GET", "plain.example.com", "/")
			r.ClientCert = tt.cert
			d := f.engine.Decide(context.Background(), r)
			if d.Status != tt.wantStatus || d.Reason != tt.wantReason {
				t.Errorf("Decide = %d %q, want %d %q", d.Status, d.Reason, tt.wantStatus, tt.wantReason)
			}
		})
	}
}

// TestDecideCommonName: common_name is valid_certificate plus the exact
// leaf common name.
func TestDecideCommonName(t *testing.T) {
	f := newCertFixture(t)
	alice := "CF_Authorization=" + f.token(claims{email: "alice@example.com"})
	get := func(cert string) *Request {
		r := req("GET", "plain.example.com", "/", "cookie", alice)
		r.ClientCert = cert
		return r
	}
	// The bypass would take any valid certificate: drop it here.
	appNamed(t, f.engine.Set(), "plain").PreAuth = nil
	runDecide(t, f.engine, []decideCase{
		{"named", get(leafPEM(t, f.ca, testkit.Leaf{CommonName: "ops-laptop"})), 200, ReasonAllowed},
		{"other name", get(leafPEM(t, f.ca, testkit.Leaf{CommonName: "ops-laptop2"})), 403, ReasonNoPolicyMatch},
		{"case differs", get(leafPEM(t, f.ca, testkit.Leaf{CommonName: "OPS-LAPTOP"})), 403, ReasonNoPolicyMatch},
		{"name from another CA", get(leafPEM(t, f.other, testkit.Leaf{CommonName: "ops-laptop"})), 403, ReasonNoPolicyMatch},
		{"name without clientAuth", get(leafPEM(t, f.ca, testkit.Leaf{CommonName: "ops-laptop", NoExtKeyUsage: true})), 403, ReasonNoPolicyMatch},
		{"no certificate", get(""), 403, ReasonNoPolicyMatch},
	})
}

// TestClientCertNoCAs: without client_certificate_authorities no
// certificate counts.
func TestClientCertNoCAs(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	good := leafPEM(t, ca, testkit.Leaf{CommonName: "svc"})
	if c := verifyClientCert(good, nil, time.Now()); c != nil {
		t.Errorf("verifyClientCert without CAs = %+v, want nil", c)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if c := verifyClientCert(good, pool, time.Now()); c == nil || c.commonName != "svc" {
		t.Errorf("verifyClientCert = %+v, want common name svc", c)
	}
}

// TestClientCertCache: a cached verification is served only within the
// certificate's validity period by the engine clock, and never after the
// CA pool changed.
func TestClientCertCache(t *testing.T) {
	ca := testkit.NewCA(t, "ca")
	now := time.Now()
	cert := leafPEM(t, ca, testkit.Leaf{CommonName: "svc", NotAfter: now.Add(time.Hour)})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cc := newCertCache(2)
	if cc.verify(cert, pool, now) == nil {
		t.Fatal("first verification failed")
	}
	if len(cc.m) != 1 {
		t.Fatalf("cache holds %d entries, want 1", len(cc.m))
	}
	if cc.verify(cert, pool, now.Add(2*time.Hour)) != nil {
		t.Error("a cached certificate counted after it expired")
	}
	other := x509.NewCertPool()
	other.AddCert(testkit.NewCA(t, "other").Cert)
	if cc.verify(cert, other, now) != nil {
		t.Error("a cached certificate counted against another CA pool")
	}
	for i := range 5 {
		cc.verify(leafPEM(t, ca, testkit.Leaf{CommonName: "svc" + string(rune('a'+i))}), pool, now)
	}
	if len(cc.m) > 2 {
		t.Errorf("cache holds %d entries, want at most 2", len(cc.m))
	}
}

func BenchmarkClientCert(b *testing.B) {
	ca := testkit.NewCA(b, "ca")
	c, _ := ca.Issue(b, testkit.Leaf{CommonName: "svc"})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	now := time.Now()
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			verifyClientCert(string(c), pool, now)
		}
	})
	b.Run("cached", func(b *testing.B) {
		cc := newCertCache(16)
		for b.Loop() {
			cc.verify(string(c), pool, now)
		}
	})
}
