package authz

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

// BenchmarkDecideSession is a cached allow with the revision-3 rules in
// play: a revocations file of 1,000 entries (none for this user), the
// request bound to its application by the route, and a WebSocket upgrade
// from the app's own origin. The first two allocate nothing; the socket's
// one allocation is its CORS answer headers (the request carries an
// Origin), as in BenchmarkDecide/forward_cors.
func BenchmarkDecideSession(b *testing.B) {
	priv := testkit.ES256(b, "k1")
	dir := b.TempDir()
	policy, err := os.ReadFile("testdata/session.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var rev strings.Builder
	rev.WriteString("revoked:\n")
	for i := range 1000 {
		fmt.Fprintf(&rev, "  - {email: user%d@example.com, before: 2026-12-08T10:00:00Z}\n", i)
	}
	for name, data := range map[string][]byte{"jwks.json": testkit.JWKS(b, priv), "session.yaml": policy, "revoked.yaml": []byte(rev.String())} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	set, err := policies.Load(filepath.Join(dir, "session.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	e := New(fileKeySource{})
	e.Swap(set)
	tok, err := jwt.NewBuilder().Issuer("https://team.example.com").Audience([]string{"aud-dashboard"}).
		Subject("7335d417").IssuedAt(time.Now().Add(-time.Minute)).Expiration(time.Now().Add(time.Hour)).
		Claim("email", "alice@example.com").Claim("dept", "eng").Build()
	if err != nil {
		b.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.ES256, priv))
	if err != nil {
		b.Fatal(err)
	}
	cookie := "CF_Authorization=" + string(signed)
	plain := req("GET", "app.example.com", "/reports", "cookie", cookie)
	boundReq := req("GET", "app.example.com", "/reports", "cookie", cookie)
	boundReq.Application = "dashboard"
	socket := req("GET", "app.example.com", "/socket", "cookie", cookie, "upgrade", "websocket", "origin", "https://app.example.com")
	for _, c := range []struct {
		name string
		r    *Request
	}{{"allow_cached_revocations", plain}, {"allow_cached_bound", boundReq}, {"websocket_own_origin", socket}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			if d := e.Decide(ctx, c.r); d.Reason != ReasonAllowed || d.Rule != "include[1].email_domain" {
				b.Fatalf("Decide = %q rule %q, want allowed", d.Reason, d.Rule)
			}
			b.ReportAllocs()
			for b.Loop() {
				e.Decide(ctx, c.r)
			}
		})
	}
}
