package login

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/accessgate/accessgate/policies"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// certValidity is how long the self-signed certificates of the certs
// document are valid. They are informational (verifiers use the JWKs), and
// are made afresh whenever the configuration is loaded.
const certValidity = 5 * 365 * 24 * time.Hour

// publicCert is one entry of public_cert / public_certs.
type publicCert struct {
	KID  string `json:"kid"`
	Cert string `json:"cert"`
}

// certsDocument is /cdn-cgi/access/certs in Cloudflare's shape.
type certsDocument struct {
	Keys        []jwk.Key    `json:"keys"`
	PublicCert  publicCert   `json:"public_cert"`
	PublicCerts []publicCert `json:"public_certs"`
}

// certsBody builds the certs document of l once: every signing key's
// public JWK, and a self-signed certificate for each, the signing key's
// first.
func certsBody(l *policies.Login, now time.Time) ([]byte, error) {
	doc := certsDocument{Keys: []jwk.Key{}, PublicCerts: []publicCert{}}
	cn := l.TeamDomain
	if u, err := url.Parse(l.TeamDomain); err == nil {
		cn = u.Hostname()
	}
	for _, k := range l.SigningKeys {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial,
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(certValidity),
			KeyUsage:     x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Private.Public(), k.Private)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate for %s: %w", k.File, err)
		}
		pc := publicCert{KID: k.KID, Cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
		doc.Keys = append(doc.Keys, k.JWK)
		doc.PublicCerts = append(doc.PublicCerts, pc)
	}
	if len(doc.PublicCerts) > 0 {
		doc.PublicCert = doc.PublicCerts[0]
	}
	return json.Marshal(doc)
}
