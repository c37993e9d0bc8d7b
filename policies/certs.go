package policies

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// maxCAFile bounds one client_certificate_authorities bundle; a bundle of
// every public root CA is about 250 KiB.
const maxCAFile = 4 << 20

// clientCAs parses `client_certificate_authorities`: PEM bundles, relative
// to the policy file's folder, read at every load so that a reload picks up
// a changed bundle. Each problem is reported at its list entry.
func (p *parser) clientCAs(v *yaml.Node) *x509.CertPool {
	const what = "client_certificate_authorities"
	list, nodes, _ := p.strList(v, what)
	if v.Kind != yaml.SequenceNode {
		return nil
	}
	if len(v.Content) == 0 {
		p.errorf(v, "%s must not be empty (omit it when no client certificate is checked)", what)
		return nil
	}
	// Entries with errors still count as configured, so that a broken
	// bundle does not also report every certificate selector.
	p.hasClientCAs = true
	pool := x509.NewCertPool()
	for i, given := range list {
		path := given
		if !filepath.IsAbs(path) {
			path = filepath.Join(p.dir, path)
		}
		data, err := p.readFile(path, maxCAFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			p.errorf(nodes[i], "cannot read %s file %q (%s): %v", what, given, path, err)
			continue
		}
		certs, err := parseCABundle(data)
		if err != nil {
			p.errorf(nodes[i], "malformed %s file %q: %v", what, given, err)
			continue
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool
}

// parseCABundle returns every certificate of a PEM bundle. A bundle without
// any certificate, a certificate that does not parse, or a block of another
// type (a private key has no business in a CA bundle, and is likely a
// mix-up of files) is an error; text around the blocks is ignored, as
// openssl writes it.
func parseCABundle(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %s, not CERTIFICATE", n, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}
