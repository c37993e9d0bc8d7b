package authz

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"sync"
	"time"
)

// certCacheSize bounds the verified client certificates an Engine keeps.
const certCacheSize = 4096

// maxCertPEM bounds the PEM a request may ask the gate to parse: a leaf
// and a few intermediates are a few KiB (the 64 KiB header limit does not
// cover attributes.source.certificate).
const maxCertPEM = 32 << 10

// clientCert is a client certificate that verified: its leaf's common
// name, and when the whole chain is valid (the verification holds only
// between the two).
type clientCert struct {
	commonName          string
	notBefore, notAfter time.Time
}

// verifyClientCert checks the PEM the proxy passed for the `valid_certificate`
// and `common_name` selectors (contract section 2): the first CERTIFICATE
// block is the leaf, any further ones are intermediates; the leaf must chain
// to roots (client_certificate_authorities), be within its validity period at
// now, and list clientAuth in its extended key usage by name. Go's verifier
// takes a leaf without the extension, or with anyExtendedKeyUsage, as good
// for every usage; those do not count here. It returns nil for anything
// that does not verify.
func verifyClientCert(pemText string, roots *x509.CertPool, now time.Time) *clientCert {
	if roots == nil || pemText == "" || len(pemText) > maxCertPEM {
		return nil
	}
	var leaf *x509.Certificate
	inter := x509.NewCertPool()
	rest := []byte(pemText)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil
		}
		if leaf == nil {
			leaf = c
		} else {
			inter.AddCert(c)
		}
	}
	if leaf == nil || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return nil
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil || len(chains) == 0 {
		return nil
	}
	cc := &clientCert{commonName: leaf.Subject.CommonName, notBefore: leaf.NotBefore, notAfter: leaf.NotAfter}
	for _, c := range chains[0][1:] {
		if c.NotBefore.After(cc.notBefore) {
			cc.notBefore = c.NotBefore
		}
		if c.NotAfter.Before(cc.notAfter) {
			cc.notAfter = c.NotAfter
		}
	}
	return cc
}

// validAt reports whether the verification still holds at now.
func (c *clientCert) validAt(now time.Time) bool {
	return !now.Before(c.notBefore) && !now.After(c.notAfter)
}

// certCache remembers certificates that verified, by the SHA-256 of their
// PEM: a browser or service presents the same certificate on every
// request, and a chain verification costs far more than a hash. Only
// successes are kept (a failure may turn into a success once a certificate
// becomes valid), each only for its validity period; the cache is emptied
// when the policy Set (and so the CA pool) changes, and when it is full.
type certCache struct {
	mu   sync.Mutex
	max  int
	pool *x509.CertPool // the roots the entries were verified against
	m    map[[sha256.Size]byte]*clientCert
}

func newCertCache(n int) *certCache {
	return &certCache{max: n, m: make(map[[sha256.Size]byte]*clientCert)}
}

// verify is verifyClientCert through the cache.
func (cc *certCache) verify(pemText string, roots *x509.CertPool, now time.Time) *clientCert {
	if roots == nil || pemText == "" || len(pemText) > maxCertPEM {
		return nil
	}
	if cc == nil {
		return verifyClientCert(pemText, roots, now)
	}
	key := sha256.Sum256([]byte(pemText))
	cc.mu.Lock()
	c, ok := cc.m[key]
	if ok && cc.pool != roots {
		ok = false
	}
	cc.mu.Unlock()
	if ok && c.validAt(now) {
		return c
	}
	c = verifyClientCert(pemText, roots, now)
	if c == nil {
		return nil
	}
	cc.mu.Lock()
	if cc.pool != roots || len(cc.m) >= cc.max {
		clear(cc.m)
		cc.pool = roots
	}
	cc.m[key] = c
	cc.mu.Unlock()
	return c
}

func (cc *certCache) purge() {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	clear(cc.m)
	cc.pool = nil
	cc.mu.Unlock()
}
