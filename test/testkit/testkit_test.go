package testkit

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

func TestJWKSPublishesPublicKeys(t *testing.T) {
	a, b := ES256(t, "a"), ES256(t, "b")
	set, err := jwk.Parse(JWKS(t, a, b))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 {
		t.Fatalf("JWKS has %d keys, want 2", set.Len())
	}
	for _, kid := range []string{"a", "b"} {
		k, ok := set.LookupKeyID(kid)
		if !ok {
			t.Fatalf("JWKS lacks kid %q", kid)
		}
		if _, private := k.(jwk.ECDSAPrivateKey); private {
			t.Errorf("kid %q: JWKS publishes a private key", kid)
		}
	}
}

func TestIssueVerifiesAgainstCA(t *testing.T) {
	ca, other := NewCA(t, "ca"), NewCA(t, "other")
	certPEM, keyPEM := ca.Issue(t, Leaf{CommonName: "srv", Server: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	verify := func(c *CA) error {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(c.PEM)
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1"})
		return err
	}
	if err := verify(ca); err != nil {
		t.Errorf("leaf does not verify against its CA: %v", err)
	}
	if err := verify(other); err == nil {
		t.Error("leaf verifies against another CA")
	}
}
