package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"

	"github.com/accessgate/accessgate/policies"
)

// keygenRSABits is the size of the RSA keys keygen writes: the smallest
// the login section accepts, as Cloudflare's own keys are.
const keygenRSABits = 2048

// keygen implements `accessgate keygen [--alg ES256|RS256] --out FILE`: a
// new private key for login.signing_key_files, written as PKCS #8 PEM with
// mode 0600, its kid printed on stdout. An existing file is never
// overwritten: it may be a key that signed tokens still in use.
func (c *cli) keygen(args []string) int {
	var alg, out string
	if code, ok := c.parse(c.keygenFlagSet(&alg, &out), args); !ok {
		return code
	}
	if out == "" {
		fmt.Fprintln(c.stderr, "accessgate keygen: --out is required")
		return exitUsage
	}
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, keygenRSABits)
	default:
		fmt.Fprintf(c.stderr, "accessgate keygen: unknown --alg %q (want ES256 or RS256)\n", alg)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate keygen: generate key: %v\n", err)
		return exitFail
	}
	kid, err := writeKey(out, key)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate keygen: %v\n", err)
		return exitFail
	}
	fmt.Fprintln(c.stdout, kid)
	return exitOK
}

// keygenFlagSet is keygen's flags.
func (c *cli) keygenFlagSet(alg, out *string) *flag.FlagSet {
	fs := c.flagSet("keygen")
	fs.StringVar(alg, "alg", "ES256", "ES256 (EC P-256) or RS256 (RSA 2048)")
	fs.StringVar(out, "out", "", "file to write the PEM private key to (must not exist)")
	return fs
}

// writeKey writes key to a new file (O_EXCL: never over an existing one)
// and returns its kid.
func writeKey(path string, key crypto.Signer) (string, error) {
	kid, err := policies.KeyID(key.Public())
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("encode key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("%s already exists; refusing to overwrite it", path)
	}
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return kid, nil
}
