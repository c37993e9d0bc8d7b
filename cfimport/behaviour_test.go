package cfimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

const teamURL = "https://acme.cloudflareaccess.com"

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corpus imports the main test corpus: applications, Access groups,
// reusable policies and service tokens as the API returns them.
func corpus(t *testing.T) *Result {
	t.Helper()
	res, err := Import(Options{
		TeamDomain:    teamURL,
		Apps:          readTestdata(t, "apps.json"),
		Groups:        readTestdata(t, "groups.json"),
		Policies:      readTestdata(t, "policies.json"),
		ServiceTokens: readTestdata(t, "service_tokens.json"),
	})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return res
}

// staticKeys is the issuer's key set in these tests: one ES256 key.
type staticKeys struct{ pub jwk.Key }

func (k staticKeys) Key(_ context.Context, iss *policies.Issuer, kid string) (jwk.Key, error) {
	if iss.Issuer != teamURL || kid != "cf1" {
		return nil, fmt.Errorf("no key %q for %s", kid, iss.Issuer)
	}
	return k.pub, nil
}

func sign(t *testing.T, key jwk.Key, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// Audience tags of the corpus's applications.
const (
	audDashboard = "5d3f0a2b8c1e4f6a9b7c2d1e0f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a"
	audAPI       = "7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"
	audMachines  = "2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c"
	audWiki      = "3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d"
	ciSecret     = "ci-deploy-secret"
	ciClientID   = "4f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c.access"
)

// What Cloudflare Access decides for a request.
const (
	cfAllow = "allow" // reaches the origin
	cfLogin = "login" // sent to log in (302) or 401
	cfDeny  = "deny"  // 403, or never protected the way it was asked
)

// TestImportedBehaviour judges the imported file by what it does: each
// request, with a real signed token or service token, is decided by the
// real engine, and compared with what Cloudflare Access decides for the
// same configuration. Where the import had to drop a policy, accessgate
// may refuse what Cloudflare allows, never the other way round.
func TestImportedBehaviour(t *testing.T) {
	res := corpus(t)
	// The operator writes the real digest of the service token's secret,
	// as the report asks.
	digest := sha256.Sum256([]byte(ciSecret))
	yml := bytes.Replace(res.YAML, []byte(zeroDigest), []byte(hex.EncodeToString(digest[:])), 1)
	set, err := policies.Parse("imported.yaml", yml)
	if err != nil {
		t.Fatalf("imported file does not validate: %v\n%s", err, yml)
	}
	key := testkit.ES256(t, "cf1")
	pub, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	e := authz.New(staticKeys{pub})
	e.Swap(set)
	now := time.Now()

	type identity map[string]any
	tests := []struct {
		name       string
		host, path string
		method     string
		headers    map[string]string
		ip         string
		aud        string   // token audience; "" for no token
		id         identity // token claims beyond iss, aud, exp, iat
		svc        bool     // present the ci-deploy service token
		cf         string
		status     int
		reason     string
		policy     string
	}{
		// Dashboard: block contractors (precedence 1) before staff in
		// the office (2), which excludes mallory; on-call by SAML group.
		{name: "staff in the office", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "alice@example.com"}, cf: cfAllow, status: 200, reason: "allowed", policy: "Staff in the office"},
		{name: "staff outside the office", host: "dash.example.com", path: "/", ip: "203.0.113.9", aud: audDashboard,
			id: identity{"email": "alice@example.com"}, cf: cfDeny, status: 403, reason: "no_policy_match"},
		{name: "mallory is excluded", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "mallory@example.com"}, cf: cfDeny, status: 403, reason: "no_policy_match"},
		{name: "contractor blocked", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "dave@contractor.example.com"}, cf: cfDeny, status: 403, reason: "blocked", policy: "Block contractors"},
		{name: "temp staff blocked by precedence before staff", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "temp@example.com"}, cf: cfDeny, status: 403, reason: "blocked", policy: "Block contractors"},
		{name: "engineer through the inlined group", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "eve@eng.example.com"}, cf: cfAllow, status: 200, reason: "allowed", policy: "Staff in the office"},
		{name: "partner through the inlined group", host: "dash.example.com", path: "/reports/q3", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "alice@partner.example.org"}, cf: cfAllow, status: 200, reason: "allowed"},
		{name: "wildcard destination", host: "eu.dash.example.com", path: "/", ip: "198.51.100.7", aud: audDashboard,
			id: identity{"email": "alice@example.com"}, cf: cfAllow, status: 200, reason: "allowed"},
		{name: "on-call by SAML groups, anywhere", host: "dash.example.com", path: "/", ip: "203.0.113.9", aud: audDashboard,
			id: identity{"email": "oscar@elsewhere.example.net", "groups": []string{"oncall"}}, cf: cfAllow, status: 200, policy: "On-call rotation"},
		{name: "approval-required policy dropped", host: "dash.example.com", path: "/", ip: "203.0.113.9", aud: audDashboard,
			id: identity{"email": "visitor@elsewhere.example.net"}, cf: cfDeny, status: 403, reason: "no_policy_match"},
		{name: "github org policy dropped: narrower", host: "dash.example.com", path: "/", ip: "203.0.113.9", aud: audDashboard,
			id: identity{"email": "octo@github.example.net"}, cf: cfAllow, status: 403, reason: "no_policy_match"},
		{name: "posture policy dropped: narrower", host: "dash.example.com", path: "/", ip: "203.0.113.9", aud: audDashboard,
			id: identity{"email": "pat@partner.example.org"}, cf: cfAllow, status: 403, reason: "no_policy_match"},
		{name: "browser without a token logs in", host: "dash.example.com", path: "/", headers: map[string]string{"accept": "text/html"},
			cf: cfLogin, status: 302, reason: "token_missing"},
		{name: "token for another application", host: "dash.example.com", path: "/", ip: "198.51.100.7", aud: audAPI,
			id: identity{"email": "alice@example.com"}, cf: cfLogin, status: 401, reason: "token_audience"},
		{name: "preflight answered from cors_headers", host: "dash.example.com", path: "/api", method: "OPTIONS",
			headers: map[string]string{"origin": "https://admin.example.com", "access-control-request-method": "PUT"}, cf: cfAllow, status: 204, reason: "preflight"},
		{name: "preflight from another origin", host: "dash.example.com", path: "/api", method: "OPTIONS",
			headers: map[string]string{"origin": "https://evil.example.net", "access-control-request-method": "PUT"}, cf: cfDeny, status: 403, reason: "preflight_origin"},
		{name: "self_hosted_domains lose to destinations", host: "old-dash.example.com", path: "/", aud: audDashboard,
			id: identity{"email": "alice@example.com"}, ip: "198.51.100.7", cf: cfDeny, status: 403, reason: "no_application"},

		// API: non_identity split into a service_auth and a bypass; a
		// deny on country; on-call required through a one-type group.
		{name: "service token", host: "api.example.com", path: "/v1/deploy", method: "POST", svc: true,
			cf: cfAllow, status: 200, reason: "service_token", policy: "Machines (service token)"},
		{name: "wrong service token secret", host: "api.example.com", path: "/v1/deploy", method: "POST",
			headers: map[string]string{"cf-access-client-id": ciClientID, "cf-access-client-secret": "guess"}, cf: cfLogin, status: 401, reason: "service_token_invalid"},
		{name: "machine network needs no identity", host: "api.example.com", path: "/v1/x", ip: "192.0.2.55",
			cf: cfAllow, status: 200, reason: "bypass", policy: "Machines (no identity)"},
		{name: "api call without anything", host: "api.example.net", path: "/v1/x", ip: "203.0.113.1",
			cf: cfLogin, status: 401, reason: "token_missing"},
		{name: "on-call engineer", host: "api.example.com", path: "/v1/x", aud: audAPI,
			id: identity{"email": "bob@example.com", "country": "US"}, cf: cfAllow, status: 200, policy: "On-call engineers"},
		{name: "staff not on call", host: "api.example.com", path: "/v1/x", aud: audAPI,
			id: identity{"email": "alice@example.com"}, cf: cfDeny, status: 403, reason: "no_policy_match"},
		{name: "embargoed country", host: "api.example.com", path: "/v1/x", aud: audAPI,
			id: identity{"email": "bob@example.com", "country": "KP"}, cf: cfDeny, status: 403, reason: "blocked"},
		{name: "engineers policy dropped: narrower", host: "api.example.com", path: "/v1/x", aud: audAPI,
			id: identity{"email": "eve@eng.example.com"}, cf: cfAllow, status: 403, reason: "no_policy_match"},
		{name: "preflight goes to the origin", host: "api.example.com", path: "/v1/x", method: "OPTIONS",
			headers: map[string]string{"origin": "https://www.example.com", "access-control-request-method": "PUT"}, cf: cfAllow, status: 200, reason: "preflight"},
		{name: "health bypass, a longer path", host: "api.example.com", path: "/v1/health", cf: cfAllow, status: 200, reason: "bypass", policy: "Probes"},

		// Machines: only non-identity policies, so no login redirect.
		{name: "any service token", host: "machines.example.com", path: "/", svc: true, cf: cfAllow, status: 200, reason: "service_token"},
		{name: "no login redirect on a machines-only app", host: "machines.example.com", path: "/",
			headers: map[string]string{"accept": "text/html", "sec-fetch-mode": "navigate"}, cf: cfDeny, status: 401, reason: "token_missing"},

		// Wiki: identity-provider groups and an OIDC claim.
		{name: "okta group", host: "wiki.example.com", path: "/", aud: audWiki, id: identity{"email": "w@elsewhere.example.net", "groups": []string{"wiki-editors"}},
			cf: cfAllow, status: 200, policy: "Editors"},
		{name: "azure group by object id", host: "wiki.example.com", path: "/", aud: audWiki,
			id: identity{"email": "w@elsewhere.example.net", "custom": map[string]any{"groups": []string{"6f9c1e2a-0000-4000-8000-00000000aad1"}}}, cf: cfAllow, status: 200},
		{name: "saml Groups attribute", host: "wiki.example.com", path: "/", aud: audWiki, id: identity{"email": "w@elsewhere.example.net", "groups": []string{"wiki-readers"}},
			cf: cfAllow, status: 200},
		{name: "oidc claim", host: "wiki.example.com", path: "/", aud: audWiki, id: identity{"email": "w@elsewhere.example.net", "department": "engineering"},
			cf: cfAllow, status: 200},
		{name: "oidc claim, other value", host: "wiki.example.com", path: "/", aud: audWiki, id: identity{"email": "w@elsewhere.example.net", "department": "sales"},
			cf: cfDeny, status: 403},
		{name: "excluded contractor in the editors group", host: "wiki.example.com", path: "/", aud: audWiki,
			id: identity{"email": "c@contractor.example.com", "groups": []string{"wiki-editors"}}, cf: cfDeny, status: 403, reason: "no_policy_match"},
		{name: "reusable policy by bare id", host: "wiki.example.com", path: "/", aud: audWiki,
			id: identity{"email": "o@elsewhere.example.net", "groups": []string{"oncall"}}, cf: cfAllow, status: 200, policy: "On-call rotation"},

		// Not imported: a SaaS application and a mid-label wildcard; its
		// hosts fall to default_action: deny.
		{name: "mid-label wildcard not imported: narrower", host: "footest.example.com", path: "/", aud: audDashboard,
			id: identity{"email": "alice@example.com"}, cf: cfAllow, status: 403, reason: "no_application"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &authz.Request{Method: "GET", Scheme: "https", Host: tt.host, Path: tt.path, Headers: map[string]string{}}
			if tt.method != "" {
				r.Method = tt.method
			}
			maps.Copy(r.Headers, tt.headers)
			ip := tt.ip
			if ip == "" {
				ip = "203.0.113.1"
			}
			r.SourceIP = netip.MustParseAddr(ip)
			if tt.aud != "" {
				claims := map[string]any{"iss": teamURL, "aud": []string{tt.aud}, "exp": now.Add(time.Hour).Unix(), "iat": now.Add(-time.Minute).Unix(), "type": "app", "sub": "u1"}
				maps.Copy(claims, tt.id)
				r.Headers["cf-access-jwt-assertion"] = sign(t, key, claims)
			}
			if tt.svc {
				r.Headers["cf-access-client-id"] = ciClientID
				r.Headers["cf-access-client-secret"] = ciSecret
			}
			d := e.Decide(context.Background(), r)
			if d.Status != tt.status || (tt.reason != "" && string(d.Reason) != tt.reason) || (tt.policy != "" && d.Policy != tt.policy) {
				t.Errorf("Decide(%s): status %d, reason %s, policy %q; want %d, %s, %q", tt.name, d.Status, d.Reason, d.Policy, tt.status, tt.reason, tt.policy)
			}
			// Never wider than Cloudflare: what it refuses stays refused.
			if tt.cf != cfAllow && d.Verdict == authz.Forward {
				t.Errorf("Decide(%s): forwarded a request Cloudflare Access refuses", tt.name)
			}
		})
	}
}
