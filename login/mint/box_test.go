package mint

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBox(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	b, err := NewBox(secret, "test v1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	type v struct{ A string }
	s, err := b.Seal(v{A: "secret value"}, now.Add(10*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "secret") || strings.ContainsAny(s, "+/=") {
		t.Errorf("Seal = %q: want opaque unpadded base64url", s)
	}
	var got v
	if err := b.Open(s, &got, now); err != nil || got.A != "secret value" {
		t.Errorf("Open = %+v, %v", got, err)
	}
	if err := b.Open(s, &got, now.Add(10*time.Minute)); !errors.Is(err, ErrExpired) {
		t.Errorf("Open at expiry = %v, want ErrExpired", err)
	}
	other, _ := NewBox(secret, "other v1")
	if err := other.Open(s, &got, now); !errors.Is(err, ErrSealed) {
		t.Errorf("Open with another purpose = %v, want ErrSealed", err)
	}
	if _, err := NewBox(secret[:31], "x"); err == nil {
		t.Error("NewBox with a 31-byte secret: want an error")
	}
	// Every single-byte change is caught.
	for i := range s {
		c := []byte(s)
		c[i] ^= 0x01
		if err := b.Open(string(c), &got, now); err == nil {
			t.Fatalf("Open(seal with byte %d changed) = nil, want an error", i)
		}
	}
}
