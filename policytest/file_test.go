package policytest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/policies"
)

// TestParseErrors: every problem of an invalid test file, at the position
// of the key or value at fault, as FILE:LINE:COL: message.
func TestParseErrors(t *testing.T) {
	set := loadPolicy(t)
	tests := []struct {
		name string
		give string
		want []string
	}{
		{
			name: "empty file",
			give: ``,
			want: []string{"t.yaml:1:1: empty test file"},
		},
		{
			name: "syntax error",
			give: "tests:\n  - name: [x\n",
			want: []string{"t.yaml:2:1: yaml syntax error: did not find expected ',' or ']'"},
		},
		{
			name: "unknown top-level key",
			give: "tests: []\nbogus: 1\n",
			want: []string{
				"t.yaml:1:8: tests must not be empty",
				`t.yaml:2:1: unknown key "bogus" in test file (want one of tests)`,
			},
		},
		{
			name: "missing tests",
			give: "{}\n",
			want: []string{`t.yaml:1:1: missing required key "tests" in test file`},
		},
		{
			name: "unknown keys at every level",
			give: `tests:
  - name: a
    when: now
    request: {host: a.example.com, body: x}
    expect: {status: 200, latency: 1}
`,
			want: []string{
				`t.yaml:3:5: unknown key "when" in test (want one of name, request, identity, service_token, expect)`,
				`t.yaml:4:36: unknown key "body" in request (want one of method, scheme, host, path, headers, source_ip, client_cert, application)`,
				`t.yaml:5:27: unknown key "latency" in expect (want one of application, policy, rule, reason, status, headers, headers_to_remove, response_headers, body)`,
			},
		},
		{
			name: "type errors at the value",
			give: `tests:
  - name: a
    request: {host: [a], headers: [x], source_ip: 10.0.0.300, client_cert: [pem]}
    identity: {email: 1, groups: admins, expired: "no", custom: x, audience: {a: b}}
    expect: {status: "200", headers: {a: [b]}, headers_to_remove: x, body: [1], reason: {a: b}}
`,
			want: []string{
				"t.yaml:3:21: host must be a string, not a list",
				"t.yaml:3:35: headers must be a mapping, not a list",
				`t.yaml:3:51: malformed source_ip "10.0.0.300"`,
				"t.yaml:3:76: client_cert must be a string, not a list",
				"t.yaml:4:34: identity.groups must be a list, not a string",
				"t.yaml:4:51: identity.expired must be true or false, not a string",
				"t.yaml:4:65: identity.custom must be a mapping, not a string",
				"t.yaml:4:78: identity.audience (a string or a list) must be a string, not a mapping",
				"t.yaml:5:22: expect.status must be an integer, not a string",
				"t.yaml:5:42: expect.headers.a must be a string, not a list",
				"t.yaml:5:67: expect.headers_to_remove must be a list, not a string",
				"t.yaml:5:76: expect.body (a string or a mapping) must be a string, not a list",
				"t.yaml:5:89: expect.reason must be a string, not a mapping",
			},
		},
		{
			name: "identity and service_token together",
			give: `tests:
  - name: a
    request: {host: a.example.com}
    identity: {email: a@example.com}
    service_token: ci-bot
    expect: {status: 200}
`,
			want: []string{"t.yaml:5:5: a test has identity or service_token, not both (identity at t.yaml:4:5)"},
		},
		{
			name: "unknown service token",
			give: `tests:
  - name: a
    request: {host: a.example.com}
    service_token: nobody
    expect: {status: 200}
`,
			want: []string{`t.yaml:4:20: unknown service token "nobody" (not in the policy file's service_tokens)`},
		},
		{
			name: "missing keys, empty expect, bad status",
			give: `tests:
  - name: a
    expect: {}
  - request: {}
    expect: {status: 42}
`,
			want: []string{
				`t.yaml:2:5: missing required key "request" in test`,
				"t.yaml:3:13: expect must name at least one field",
				`t.yaml:4:5: missing required key "name" in test`,
				"t.yaml:5:22: expect.status 42 is not an HTTP status (100..599)",
			},
		},
		{
			name: "duplicate names and keys",
			give: `tests:
  - name: a
    request: {host: a.example.com}
    expect: {status: 200, status: 403}
  - name: a
    request: {host: a.example.com, headers: {X-A: 1, x-a: 2}}
    expect: {status: 200}
`,
			want: []string{
				"t.yaml:2:5: duplicate test name \"a\" (again at line 5)",
				`t.yaml:4:27: duplicate key "status" (first at t.yaml:4:14)`,
				`t.yaml:6:54: header "x-a" given twice in headers (names are case-insensitive)`,
			},
		},
		{
			name: "expired and exp together",
			give: `tests:
  - name: a
    request: {host: a.example.com}
    identity: {expired: true, exp: 1}
    expect: {status: 401}
`,
			want: []string{"t.yaml:4:15: identity has both expired and an exp claim; keep one"},
		},
		{
			name: "two documents",
			give: "tests: []\n---\ntests: []\n",
			want: []string{"t.yaml:2:1: only one YAML document is allowed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.give), set)
			var list policies.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Parse: err = %v, want an ErrorList", err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Parse errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParseValid reads every field of the format.
func TestParseValid(t *testing.T) {
	f, err := Parse("t.yaml", []byte(`tests:
  - name: full
    request:
      method: POST
      scheme: http
      host: a.example.com
      path: /x?y=1
      headers: {Accept: text/html, X-Num: 5}
      source_ip: 192.0.2.1
      client_cert: "-----BEGIN CERTIFICATE-----"
    identity: {email: a@example.com, groups: [g], country: DE, custom: {n: 1}, amr: [pwd], expired: true, audience: aud2, issuer: https://i.example.com}
    expect:
      application: app
      policy: p
      rule: include[0].email
      reason: allowed
      status: 200
      headers: {X-A: "1", x-gone: null}
      headers_to_remove: [CF-Access-Token]
      response_headers: {vary: Origin}
      body: {error: forbidden, n: 2}
  - name: defaults
    request: {host: b.example.com}
    service_token: ci-bot
    expect: {body: plain}
`), loadPolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) != 2 {
		t.Fatalf("%d tests, want 2", len(f.Tests))
	}
	full, def := f.Tests[0], f.Tests[1]
	r := full.Request
	if r.Method != "POST" || r.Scheme != "http" || r.Path != "/x?y=1" || r.Headers["accept"] != "text/html" || r.Headers["x-num"] != "5" || r.SourceIP != "192.0.2.1" || r.ClientCert != "-----BEGIN CERTIFICATE-----" {
		t.Errorf("request = %+v", r)
	}
	id := full.Identity
	if id == nil || !id.Expired || id.Audience != "aud2" || *id.Issuer != "https://i.example.com" || id.Claims["country"] != "DE" ||
		!slices.Equal(id.Claims["groups"].([]string), []string{"g"}) || id.Claims["custom"].(map[string]any)["n"] != float64(1) {
		t.Errorf("identity = %+v", id)
	}
	if _, ok := id.Claims["expired"]; ok {
		t.Errorf("expired became a claim")
	}
	e := full.Expect
	if *e.Application != "app" || *e.Policy != "p" || *e.Rule != "include[0].email" || *e.Reason != "allowed" || *e.Status != 200 ||
		*e.Headers["x-a"] != "1" || e.Headers["x-gone"] != nil || !e.HasHeadersToRemove || e.HeadersToRemove[0] != "cf-access-token" ||
		*e.ResponseHeaders["vary"] != "Origin" || e.BodyJSON["n"] != float64(2) || e.Body != nil {
		t.Errorf("expect = %+v", e)
	}
	if def.Request.SourceIP != DefaultSourceIP || def.ServiceToken != "ci-bot" || *def.Expect.Body != "plain" || def.Expect.BodyJSON != nil {
		t.Errorf("defaults = %+v", def)
	}
	if _, ok := e.Headers["x-gone"]; !ok {
		t.Errorf("a null header must be kept as 'absent'")
	}
}
