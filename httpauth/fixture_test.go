package httpauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fileKeys serves the keys of jwks_file issuers, as the key manager does.
type fileKeys struct{}

var errUnknownKey = errors.New("unknown key")

func (fileKeys) Key(_ context.Context, iss *policies.Issuer, kid string) (jwk.Key, error) {
	if iss.FileKeys != nil {
		if k, ok := iss.FileKeys.LookupKeyID(kid); ok {
			return k, nil
		}
	}
	return nil, errUnknownKey
}

// fixture is a real Engine on testdata/policy.yaml with a key made in the
// test.
type fixture struct {
	engine *authz.Engine
	key    jwk.Key
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	priv := testkit.ES256(t, "k1")
	dir := t.TempDir()
	policy, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"policy.yaml": policy, "jwks.json": testkit.JWKS(t, priv)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set, err := policies.Load(filepath.Join(dir, "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := authz.New(fileKeys{})
	e.Swap(set)
	return &fixture{engine: e, key: priv}
}

// token signs a dashboard token for email.
func (f *fixture) token(t testing.TB, email string) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewBuilder().Issuer("https://team.example.com").Audience([]string{"aud-dashboard"}).
		IssuedAt(now.Add(-time.Minute)).Expiration(now.Add(time.Hour)).Claim("email", email).Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, f.key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// served is a Server on 127.0.0.1:0, stopped at test end.
type served struct {
	srv  *Server
	hs   *http.Server
	addr string
}

func serve(t testing.TB, d Decider, opts ...Option) *served {
	t.Helper()
	s := NewServer(d, zap.NewNop(), opts...)
	return serveServer(t, s)
}

func serveServer(t testing.TB, s *Server) *served {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(nil, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(l)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx, hs)
		<-done
	})
	return &served{srv: s, hs: hs, addr: l.Addr().String()}
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool
// trusting its CA.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testkit.NewCA(t, "httpauth test CA")
	certPEM, keyPEM := ca.Issue(t, testkit.Leaf{CommonName: "accessgate", Server: true, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	return cert, pool
}
