package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

// TestKeygen writes a key of each algorithm, loads it back as the login
// section does, and recomputes the printed kid from the file.
func TestKeygen(t *testing.T) {
	tests := []struct {
		args    []string
		wantAlg string
	}{
		{nil, "ES256"},
		{[]string{"--alg", "ES256"}, "ES256"},
		{[]string{"--alg", "RS256"}, "RS256"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{"default"}, tt.args...), "-"), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "signing.pem")
			code, stdout, stderr := runCLI(t, nil, append([]string{"keygen", "--out", out}, tt.args...)...)
			if code != 0 || stderr != "" {
				t.Fatalf("keygen: exit %d, stderr %q; want 0, nothing", code, stderr)
			}
			st, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("key file mode = %v, want 0600", st.Mode().Perm())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			key, alg, err := policies.ParseSigningKey(data)
			if err != nil || alg != tt.wantAlg {
				t.Fatalf("ParseSigningKey(keygen output) = %s, %v; want %s", alg, err, tt.wantAlg)
			}
			der, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(der)
			if want := hex.EncodeToString(sum[:]) + "\n"; stdout != want {
				t.Errorf("keygen stdout = %q, want the kid %q", stdout, want)
			}
		})
	}
}

// TestKeygenRefusesOverwrite: an existing file (a key in use) is left as
// it is and keygen exits 1.
func TestKeygenRefusesOverwrite(t *testing.T) {
	out := writeFile(t, t.TempDir(), "signing.pem", "existing key\n")
	code, stdout, stderr := runCLI(t, nil, "keygen", "--out", out)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "already exists") {
		t.Errorf("keygen over an existing file: exit %d, stdout %q, stderr %q; want 1, nothing, \"already exists\"", code, stdout, stderr)
	}
	if data, _ := os.ReadFile(out); string(data) != "existing key\n" {
		t.Errorf("existing file now holds %q; want it untouched", data)
	}
}

func TestKeygenUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"keygen"}, "--out is required"},
		{[]string{"keygen", "--alg", "HS256", "--out", "x.pem"}, `unknown --alg "HS256"`},
	}
	for _, tt := range tests {
		t.Chdir(t.TempDir())
		code, _, stderr := runCLI(t, nil, tt.args...)
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
		if _, err := os.Stat("x.pem"); err == nil {
			t.Errorf("%v wrote x.pem", tt.args)
		}
	}
}
