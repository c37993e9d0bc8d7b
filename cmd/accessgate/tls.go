package main

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// tlsRecheck is how often, at most, the certificate and CA files are read
// again to see whether they changed. The check runs lazily, in the TLS
// handshake of the first new connection after the interval, so an idle
// server reads nothing and a busy one reads its files once a second.
const tlsRecheck = time.Second

// tlsFiles names the PEM files of one TLS listener. cert and key come
// together; clientCA, when set, turns on mutual TLS.
type tlsFiles struct {
	cert, key, clientCA string
}

// errTLSFlags is the error of an incomplete set of TLS flags.
var errTLSFlags = errors.New("incomplete TLS flags")

// check reports an incomplete set: a certificate without its key or the
// other way round, or a client CA without a certificate. names are the
// flags' names, for the message.
func (f tlsFiles) check(certFlag, keyFlag, caFlag string) error {
	switch {
	case f.cert != "" && f.key == "":
		return fmt.Errorf("%w: --%s needs --%s", errTLSFlags, certFlag, keyFlag)
	case f.key != "" && f.cert == "":
		return fmt.Errorf("%w: --%s needs --%s", errTLSFlags, keyFlag, certFlag)
	case f.clientCA != "" && f.cert == "":
		return fmt.Errorf("%w: --%s needs --%s and --%s", errTLSFlags, caFlag, certFlag, keyFlag)
	}
	return nil
}

// enabled reports whether the listener serves TLS.
func (f tlsFiles) enabled() bool { return f.cert != "" }

// reloading is a value parsed from files that follows their content: get
// re-reads the files at most once per interval and, when their content
// changed, parses them again. A read or parse failure is logged and the
// previous value stays in force, so a half-written or broken replacement
// never takes the listener down.
type reloading[T any] struct {
	what  string // e.g. "grpc certificate", for the logs
	paths []string
	parse func(data [][]byte) (T, error)
	log   *zap.Logger
	now   func() time.Time
	every time.Duration

	cur  atomic.Pointer[T]
	next atomic.Int64 // UnixNano of the next check

	mu      sync.Mutex // serialises checks; guards sum and lastErr
	sum     [sha256.Size]byte
	lastErr string
}

// newReloading reads and parses paths once; it fails when that fails.
func newReloading[T any](what string, paths []string, parse func([][]byte) (T, error), log *zap.Logger) (*reloading[T], error) {
	r := &reloading[T]{what: what, paths: paths, parse: parse, log: log, now: time.Now, every: tlsRecheck}
	data, sum, err := r.read()
	if err != nil {
		return nil, err
	}
	v, err := parse(data)
	if err != nil {
		return nil, err
	}
	r.cur.Store(&v)
	r.sum = sum
	r.next.Store(r.now().Add(r.every).UnixNano())
	return r, nil
}

// read returns the files' contents and a digest of them all.
func (r *reloading[T]) read() ([][]byte, [sha256.Size]byte, error) {
	h := sha256.New()
	data := make([][]byte, len(r.paths))
	for i, p := range r.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, [sha256.Size]byte{}, fmt.Errorf("read %s: %w", r.what, err)
		}
		data[i] = b
		// The length first, so that moving bytes from one file to the
		// next changes the digest.
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return data, sum, nil
}

// get returns the current value, checking the files first when the
// interval has passed. Concurrent handshakes never wait for a check in
// progress: they use the current value.
func (r *reloading[T]) get() *T {
	now := r.now()
	if now.UnixNano() >= r.next.Load() && r.mu.TryLock() {
		r.check(now)
		r.mu.Unlock()
	}
	return r.cur.Load()
}

// check re-reads the files; r.mu is held.
func (r *reloading[T]) check(now time.Time) {
	r.next.Store(now.Add(r.every).UnixNano())
	data, sum, err := r.read()
	if err == nil && sum == r.sum {
		return
	}
	if err == nil {
		var v T
		if v, err = r.parse(data); err == nil {
			r.sum, r.lastErr = sum, ""
			r.cur.Store(&v)
			r.log.Info("tls files reloaded", zap.String("what", r.what), zap.Strings("files", r.paths))
			return
		}
		// Do not parse the same broken content again; a new write
		// changes the digest and is tried.
		r.sum = sum
	}
	// Log each distinct failure once, not on every check.
	if msg := err.Error(); msg != r.lastErr {
		r.lastErr = msg
		r.log.Error("tls files unusable, keeping previous", zap.String("what", r.what), zap.Strings("files", r.paths), zap.Error(err))
	}
}

// parseKeyPair parses a PEM certificate chain and its private key. A
// certificate already expired is refused: serving it would break every
// client, while the previous one may still be valid.
func parseKeyPair(now func() time.Time) func([][]byte) (tls.Certificate, error) {
	return func(data [][]byte) (tls.Certificate, error) {
		c, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("certificate and key: %w", err)
		}
		// X509KeyPair fills Leaf since Go 1.23.
		if c.Leaf != nil && now().After(c.Leaf.NotAfter) {
			return tls.Certificate{}, fmt.Errorf("certificate %q expired at %s", c.Leaf.Subject, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return c, nil
	}
}

// parseCAs parses a PEM bundle of CA certificates.
func parseCAs(data [][]byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data[0]) {
		return nil, errors.New("client CA bundle: no PEM certificates")
	}
	return pool, nil
}

// serverTLS returns the TLS configuration of a listener serving files'
// certificate, and requiring client certificates signed by files.clientCA
// when that is set. Both follow their files (see reloading). name ("grpc",
// "http") labels the logs and errors.
func serverTLS(name string, files tlsFiles, log *zap.Logger) (*tls.Config, error) {
	certs, err := newReloading(name+" certificate", []string{files.cert, files.key}, parseKeyPair(time.Now), log)
	if err != nil {
		return nil, fmt.Errorf("%s tls: %w", name, err)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return certs.get(), nil
		},
	}
	if files.clientCA == "" {
		return cfg, nil
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	// A resumed session skips the client certificate's verification, so
	// a CA removed from the bundle would still admit its clients until
	// their tickets expire. Envoy keeps its connections open, so full
	// handshakes cost nothing that matters.
	cfg.SessionTicketsDisabled = true
	// Each CA bundle gets its own Config, built once when the bundle is
	// read, so a handshake only loads a pointer.
	base := cfg.Clone()
	cas, err := newReloading(name+" client CA", []string{files.clientCA}, func(data [][]byte) (*tls.Config, error) {
		pool, err := parseCAs(data)
		if err != nil {
			return nil, err
		}
		c := base.Clone()
		c.ClientCAs = pool
		return c, nil
	}, log)
	if err != nil {
		return nil, fmt.Errorf("%s tls: %w", name, err)
	}
	// The first Config must refuse clients too if GetConfigForClient is
	// ever bypassed: it holds the first bundle.
	cfg.ClientCAs = (*cas.get()).ClientCAs
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return *cas.get(), nil
	}
	return cfg, nil
}
