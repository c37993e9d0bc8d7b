package policytest

import (
	"context"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

func loadPolicy(t *testing.T) *policies.Set {
	t.Helper()
	set, err := policies.Load("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// runOne parses a file holding one test and runs it.
func runOne(t *testing.T, r *Runner, set *policies.Set, yaml string) Result {
	t.Helper()
	f, err := Parse("t.yaml", []byte("tests:\n"+yaml), set)
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, yaml)
	}
	if len(f.Tests) != 1 {
		t.Fatalf("Parse: %d tests, want 1", len(f.Tests))
	}
	res, err := r.Run(context.Background(), f.Tests[0])
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// TestRun runs tests through the real engine, each against what it must
// report: no differences for a test that holds, the exact lines for one
// that does not.
func TestRun(t *testing.T) {
	set := loadPolicy(t)
	r, err := New(set)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		give string
		want []string
	}{
		{
			name: "minted email is allowed",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {status: 200, reason: allowed, policy: staff, application: wiki,
             headers: {cf-access-authenticated-user-email: alice@example.com}}`,
		},
		{
			name: "every scalar field differs",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {status: 403, reason: blocked, policy: nope, application: other}`,
			want: []string{
				"application: want other, got wiki",
				"policy: want nope, got staff",
				"reason: want blocked, got allowed",
				"status: want 403, got 200",
			},
		},
		{
			name: "expired identity",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com, expired: true}
    expect: {status: 401, reason: token_expired, policy: ""}`,
		},
		{
			name: "other audience",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com, audience: [x, y]}
    expect: {reason: token_audience}`,
		},
		{
			name: "other issuer",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com, issuer: https://evil.example.net}
    expect: {reason: token_issuer}`,
		},
		{
			name: "groups claim reaches the group selector",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /admin/users}
    identity: {email: root@corp.example.net, groups: [admins]}
    expect: {status: 200, policy: admins}`,
		},
		{
			name: "without the group the block decides",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /admin/users}
    identity: {email: root@corp.example.net, groups: [users]}
    expect: {status: 403, reason: blocked, policy: no-admin}`,
		},
		{
			name: "custom claim and country",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: eve@corp.example.net, country: DE, custom: {department: engineering}}
    expect: {status: 200, policy: engineering}`,
		},
		{
			name: "custom claim from the wrong country",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: eve@corp.example.net, country: US, custom: {department: engineering}}
    expect: {status: 403, reason: no_policy_match}`,
		},
		{
			name: "any other claim overrides a default",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com, nbf: 4102444800}
    expect: {status: 401, reason: token_not_yet_valid}`,
		},
		{
			name: "service token presented without its secret",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /api}
    service_token: ci-bot
    expect: {status: 200, reason: service_token, policy: bots,
             headers: {cf-access-client-id: ci-bot.access, cf-access-authenticated-user-email: null}}`,
		},
		{
			name: "an expired service token stays expired",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /api}
    service_token: old-bot
    expect: {status: 401, reason: service_token_expired}`,
		},
		{
			name: "source_ip defaults to 203.0.113.1",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /public/x}
    expect: {status: 401, reason: token_missing}`,
		},
		{
			name: "source_ip in the bypass range",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /public/x, source_ip: 192.0.2.9}
    expect: {status: 200, reason: bypass, policy: office}`,
		},
		{
			name: "x-forwarded-for through a trusted proxy",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /public/x, source_ip: 10.1.2.3, headers: {X-Forwarded-For: "192.0.2.44"}}
    expect: {status: 200, reason: bypass}`,
		},
		{
			name: "headers by name, absent and present",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page, headers: {origin: "https://www.example.com"}}
    identity: {email: alice@example.com}
    expect:
      headers: {cf-access-authenticated-user-email: bob@example.com, x-missing: here, cf-access-client-id: null}
      response_headers: {access-control-allow-origin: "https://www.example.com", access-control-allow-credentials: "false", vary: null}`,
			want: []string{
				"headers.cf-access-authenticated-user-email: want bob@example.com, got alice@example.com",
				"headers.x-missing: want here, got (absent)",
				"response_headers.access-control-allow-credentials: want false, got true",
				"response_headers.vary: want (absent), got Origin",
			},
		},
		{
			name: "headers_to_remove is a set",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {headers_to_remove: [CF-Access-Token, cf-access-client-secret, cf-access-client-id, cf-access-token]}`,
		},
		{
			name: "headers_to_remove differs",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {headers_to_remove: [cf-access-token]}`,
			want: []string{`headers_to_remove: want ["cf-access-token"], got ["cf-access-client-id","cf-access-client-secret","cf-access-token"]`},
		},
		{
			name: "body as a JSON subset",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    expect: {body: {error: unauthenticated, reason: token_missing}}`,
		},
		{
			name: "body subset that differs",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    expect: {body: {reason: token_expired}}`,
			want: []string{`body: want {"reason":"token_expired"}, got {"error":"unauthenticated","reason":"token_missing","login_url":"https://team.example.com/cdn-cgi/access/login/wiki.example.com?kid=wiki-aud&redirect_url=https%3A%2F%2Fwiki.example.com%2Fpage"}`},
		},
		{
			name: "body as a whole string",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: nobody@elsewhere.example.net}
    expect: {body: '{"error":"forbidden","reason":"no_policy_match"}'}`,
		},
		{
			name: "whole body string differs on an empty body",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {body: x}`,
			want: []string{`body: want x, got ""`},
		},
		{
			name: "map body against a body that is not JSON",
			give: `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {body: {a: 1}}`,
			want: []string{`body: want {"a":1}, got ""`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runOne(t, r, set, tt.give)
			if !slices.Equal(res.Diffs, tt.want) {
				t.Errorf("Run diffs:\n%s\nwant:\n%s\ndecision: %s", strings.Join(res.Diffs, "\n"), strings.Join(tt.want, "\n"), res.Got.JSON())
			}
			if res.Passed() != (len(tt.want) == 0) {
				t.Errorf("Passed() = %v with %d diffs", res.Passed(), len(res.Diffs))
			}
		})
	}
}

// TestServiceTokenLeavesSetAlone: presenting a token must not change the
// Set the runner was given (it is shared, and its digest is the real one).
func TestServiceTokenLeavesSetAlone(t *testing.T) {
	set := loadPolicy(t)
	r, err := New(set)
	if err != nil {
		t.Fatal(err)
	}
	before := *set.ServiceTokens["ci-bot.access"]
	res := runOne(t, r, set, `
  - name: t
    request: {host: wiki.example.com, path: /api}
    service_token: ci-bot
    expect: {reason: service_token}`)
	if !res.Passed() {
		t.Fatalf("service token test failed: %v", res.Diffs)
	}
	if after := *set.ServiceTokens["ci-bot.access"]; after != before {
		t.Errorf("service token changed in the shared Set: %+v, was %+v", after, before)
	}
	// The real secret of the testdata token is "test": it still works
	// against the Set itself, and the runner's engine is untouched.
	if before.SecretSHA256 != sha256.Sum256([]byte("test")) {
		t.Fatalf("testdata digest is not SHA-256(\"test\")")
	}
	res = runOne(t, r, set, `
  - name: t
    request: {host: wiki.example.com, path: /api, headers: {cf-access-client-id: ci-bot.access, cf-access-client-secret: test}}
    expect: {reason: service_token}`)
	if !res.Passed() {
		t.Errorf("the real secret no longer works: %v", res.Diffs)
	}
}

// TestRuleCompared: an expected rule is compared with the rule that
// decided (section 11), and a wrong one fails the test naming both.
func TestRuleCompared(t *testing.T) {
	set := loadPolicy(t)
	r, err := New(set)
	if err != nil {
		t.Fatal(err)
	}
	res := runOne(t, r, set, `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {rule: "include[0].email_domain", status: 200}`)
	if !res.Passed() {
		t.Errorf("right rule: diffs %v", res.Diffs)
	}
	res = runOne(t, r, set, `
  - name: t
    request: {host: wiki.example.com, path: /page}
    identity: {email: alice@example.com}
    expect: {rule: "include[1].email", status: 200}`)
	if res.Passed() || len(res.Diffs) != 1 || !strings.Contains(res.Diffs[0], "rule: want include[1].email, got include[0].email_domain") {
		t.Errorf("wrong rule: diffs %v, want one rule diff", res.Diffs)
	}
}

// TestTokenFromHeadersIsNotTrusted: a token the test writes itself is not
// signed by the runner's key and fails as a forged one would.
func TestTokenFromHeadersIsNotTrusted(t *testing.T) {
	set := loadPolicy(t)
	r, err := New(set)
	if err != nil {
		t.Fatal(err)
	}
	const forged = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImFjY2Vzc2dhdGUtcG9saWN5dGVzdCJ9.eyJlbWFpbCI6ImFAZXhhbXBsZS5jb20ifQ.AAAA"
	res := runOne(t, r, set, `
  - name: t
    request: {host: wiki.example.com, path: /page, headers: {cf-access-jwt-assertion: `+forged+`}}
    expect: {status: 401}`)
	if !res.Passed() {
		t.Errorf("forged token: %v", res.Diffs)
	}
	if res.Got.Reason == "allowed" {
		t.Errorf("forged token allowed")
	}
}
