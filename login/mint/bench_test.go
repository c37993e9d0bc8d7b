package mint_test

import (
	"testing"
	"time"

	"github.com/accessgate/accessgate/login/internal/logintest"
	"github.com/accessgate/accessgate/login/mint"
)

// BenchmarkAuthorized is the work of one /cdn-cgi/access/authorized on an
// application host: redeem the code, mint the application token.
func BenchmarkAuthorized(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			s := logintest.Load(b, logintest.Config{Algs: []string{alg}})
			m, err := mint.New(s.Login, time.Now)
			if err != nil {
				b.Fatal(err)
			}
			app := s.Applications[0]
			id := mint.Identity{Email: "alice@example.com", Groups: []string{"a", "b"}, IdP: "corp"}
			code, err := m.Code(mint.Transfer{Host: "app.example.com", Audience: app.Audience, Nonce: "nonce-0123456789abcdef", Redirect: "/", Identity: id})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				got, _, err := m.Redeem(code, "app.example.com", app.Audience, "nonce-0123456789abcdef")
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := m.AppToken(got, app); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
