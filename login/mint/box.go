package mint

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrSealed is returned for a sealed value that is malformed, too long,
// tampered with, sealed for another purpose or with another secret.
var ErrSealed = errors.New("sealed value not authentic")

// ErrExpired is returned for an authentic sealed value past its expiry.
var ErrExpired = errors.New("sealed value expired")

// maxSealed bounds the text Open decodes: every sealed value accessgate
// makes (state cookie, transfer code) is far shorter, and a cookie or
// query parameter of a megabyte must cost nothing.
const maxSealed = 4096

// sealVersion prefixes every sealed value, so that a later format can be
// told apart.
const sealVersion = 1

// Box seals values with AES-256-GCM under a key derived from the cookie
// secret for one purpose: a value sealed for one purpose (a state cookie)
// never opens as another (a transfer code), because both the key and the
// associated data differ.
type Box struct {
	aead    cipher.AEAD
	purpose []byte
}

// NewBox derives the key of purpose from secret with HKDF-SHA-256.
func NewBox(secret []byte, purpose string) (*Box, error) {
	if len(secret) < 32 {
		return nil, errors.New("cookie secret shorter than 32 bytes")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "accessgate "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, purpose: []byte(purpose)}, nil
}

// Seal encodes v as JSON with its expiry and returns it encrypted and
// authenticated, as unpadded base64url (safe in cookies and query strings).
func (b *Box) Seal(v any, expires time.Time) (string, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	plain := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint64(plain, uint64(expires.Unix()))
	plain = append(plain, body...)
	ns := b.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+b.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out = b.aead.Seal(out, out[1:1+ns], plain, b.purpose)
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open authenticates and decrypts s into v. It returns ErrSealed for
// anything not sealed by this Box, and ErrExpired once now is at or past
// the expiry (v is left untouched then).
func (b *Box) Open(s string, v any, now time.Time) error {
	if s == "" || len(s) > maxSealed {
		return ErrSealed
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	ns := b.aead.NonceSize()
	if err != nil || len(raw) < 1+ns+b.aead.Overhead()+8 || raw[0] != sealVersion {
		return ErrSealed
	}
	plain, err := b.aead.Open(nil, raw[1:1+ns], raw[1+ns:], b.purpose)
	if err != nil {
		return ErrSealed
	}
	exp := int64(binary.BigEndian.Uint64(plain))
	if now.Unix() >= exp {
		return ErrExpired
	}
	if err := json.Unmarshal(plain[8:], v); err != nil {
		return ErrSealed
	}
	return nil
}
