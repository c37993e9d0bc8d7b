package cfimport

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/test/testkit"
)

var update = flag.Bool("update", false, "rewrite testdata/imported.golden.yaml")

// TestImportGolden: the import of the corpus reads as committed, comments
// naming the Cloudflare ids included, and is the same on every run.
func TestImportGolden(t *testing.T) {
	res := corpus(t)
	again := corpus(t)
	if string(res.YAML) != string(again.YAML) || strings.Join(res.Report, "\n") != strings.Join(again.Report, "\n") {
		t.Fatal("two imports of the same input differ")
	}
	const golden = "testdata/imported.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, res.YAML, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.YAML) != string(want) {
		t.Errorf("import differs from %s (go test -update to rewrite):\n%s", golden, res.YAML)
	}
	// The file passes validate as it is, written to disk and loaded.
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, res.YAML, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Load(path); err != nil {
		t.Errorf("imported file does not validate: %v", err)
	}
	for _, id := range []string{"f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1", "b0a1c2d3-0000-4000-8000-0000000000p2", "e7d6c5b4-0000-4000-8000-0000000000t1"} {
		if !strings.Contains(string(res.YAML), "# Cloudflare ") || !strings.Contains(string(res.YAML), id) {
			t.Errorf("no comment names Cloudflare id %s", id)
		}
	}
}

// TestImportReport: one line per dropped policy and per setting not
// carried over, each with its ids.
func TestImportReport(t *testing.T) {
	report := strings.Join(corpus(t).Report, "\n") + "\n"
	for _, want := range []string{
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): policy "Break glass" (id b0a1c2d3-0000-4000-8000-0000000000p4) dropped: approval_required is set`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): policy "GitHub org" (id b0a1c2d3-0000-4000-8000-0000000000p5) dropped: include rule github-organization cannot be mapped`,
		`policy "Partners on managed devices" (id b0a1c2d3-0000-4000-8000-0000000000p6) dropped: require rule device_posture cannot be mapped`,
		`policy "Engineers" (id c1000000-0000-4000-8000-0000000000q4) dropped: require rule group cannot be mapped: in a require, the Access group's rules (email_domain, email) must all be of one type`,
		`policy "mTLS" (id c1000000-0000-4000-8000-0000000000m2) dropped: include rule certificate cannot be mapped: needs --client-ca`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): setting session_duration = "8h" not carried over`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): setting custom_deny_url = "https://www.example.com/denied" not carried over`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): setting same_site_cookie_attribute = "lax" not carried over`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): setting allowed_idps = ["0f1e2d3c-0000-4000-8000-0000000001dp"] not carried over`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): 1 private destination(s) not imported`,
		`app "Dashboard" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a1): self_hosted_domains old-dash.example.com ignored: destinations win`,
		`domain "dash.example.com/reports/*" imported as "dash.example.com/reports"`,
		`policy "On-call rotation" (id b0a1c2d3-0000-4000-8000-0000000000p3): setting session_duration = "4h" not carried over`,
		`service token "ci-deploy" (id e7d6c5b4-0000-4000-8000-0000000000t1): client_secret_sha256 set to 64 zeros`,
		`app "Payroll" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a4): not imported: type saas`,
		`app "Wiki" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a6): cors_headers.max_age -1 not carried over`,
		`app "Test hosts" (id f1d2c3b4-0a1b-4c2d-8e3f-0000000000a7): domain "*test.example.com" not imported`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, never := range []string{"http_only_cookie_attribute", "app_launcher_visible", `setting session_duration = "24h"`, "unused", "created_at", "logo_url"} {
		if strings.Contains(report, never) {
			t.Errorf("report names %q, a default or unused setting", never)
		}
	}
}

// app wraps policies in one self-hosted application.
func app(policies string) string {
	return `[{"id": "app1", "type": "self_hosted", "name": "App", "aud": "aud1", "domain": "app.example.com", "policies": [` + policies + `]}]`
}

const (
	groupsJSON = `[
	 {"id": "g-emails", "name": "Emails", "include": [{"email": {"email": "a@example.com"}}, {"email": {"email": "b@example.com"}}]},
	 {"id": "g-mixed", "name": "Mixed", "include": [{"email": {"email": "a@example.com"}}, {"ip": {"ip": "10.0.0.0/8"}}]},
	 {"id": "g-require", "name": "With require", "include": [{"everyone": {}}], "require": [{"geo": {"country_code": "US"}}]},
	 {"id": "g-nested", "name": "Nested", "include": [{"group": {"id": "g-emails"}}, {"email_domain": {"domain": "c.example.com"}}]},
	 {"id": "g-loop", "name": "Loop", "include": [{"group": {"id": "g-loop"}}]},
	 {"id": "g-posture", "name": "Posture", "include": [{"device_posture": {"integration_uid": "x"}}]}]`
	tokensJSON = `{"result": [{"id": "t1", "name": "ci", "client_id": "ci.access", "expires_at": "2027-01-02T03:04:05Z"},
	 {"id": "t2", "name": "ci", "client_id": "ci2.access"}, {"id": "t3", "name": "bad", "client_id": "bad.access", "expires_at": "soon"}]}`
)

func run(apps string, opts ...func(*Options)) (*Result, error) {
	o := Options{TeamDomain: teamURL, Apps: []byte(apps), Groups: []byte(groupsJSON), ServiceTokens: []byte(tokensJSON)}
	for _, f := range opts {
		f(&o)
	}
	return Import(o)
}

// TestImportPolicies: how each policy shape maps, is dropped (reported) or
// fails the import.
func TestImportPolicies(t *testing.T) {
	tests := []struct {
		name       string
		apps       string
		opts       []func(*Options)
		wantYAML   []string // fragments of the output
		notYAML    []string
		wantReport string // a report fragment
		wantErr    string // a fragment of the failure, "" for success
		needsCA    bool   // the output holds client_certificate_authorities
	}{
		{
			name:     "each require rule its own entry",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"email": {"email": "a@example.com"}}, {"email": {"email": "b@example.com"}}], "require": [{"ip": {"ip": "10.0.0.0/8"}}, {"ip": {"ip": "10.1.0.0/16"}}, {"geo": {"country_code": "DE"}}]}`),
			wantYAML: []string{"include:\n          - {email: [a@example.com, b@example.com]}\n        require:\n          - {ip: [10.0.0.0/8]}\n          - {ip: [10.1.0.0/16]}\n          - {country: [DE]}"},
		},
		{
			name:     "access group in a require, one selector type: one entry",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "require": [{"group": {"id": "g-emails"}}]}`),
			wantYAML: []string{"require:\n          - {email: [a@example.com, b@example.com]}"},
		},
		{
			name:       "access group in a require, mixed types: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "require": [{"group": {"id": "g-mixed"}}]}`),
			wantReport: `policy "P" (id p1) dropped: require rule group cannot be mapped`,
			wantYAML:   []string{"policies:\n      # No Cloudflare policy of this application could be carried over.\n      - name: nothing imported\n        action: block\n        include:\n          - {everyone: true}"},
		},
		{
			name:     "nested access groups in an include",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"group": {"id": "g-nested"}}]}`),
			wantYAML: []string{"- {email: [a@example.com, b@example.com]}\n          - {email_domain: [c.example.com]}"},
		},
		{
			name:       "access group cycle",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"group": {"id": "g-loop"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: include rule group cannot be mapped: Access group "Loop" (id g-loop)`,
		},
		{
			name:    "access group with its own require in an exclude fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"group": {"id": "g-require"}}]}`),
			wantErr: `app "App" (id app1): policy "P" (id p1): exclude rule group cannot be mapped: Access group "With require" (id g-require) has require or exclude rules of its own: dropping it would widen access`,
		},
		{
			name:       "access group with its own require in an include: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"group": {"id": "g-require"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"email": {"email": "q@example.com"}}]}`),
			wantReport: `policy "P" (id p1) dropped: include rule group cannot be mapped: Access group "With require" (id g-require) has require or exclude rules of its own`,
			notYAML:    []string{"everyone"},
		},
		{
			name:    "access group holding an unmappable rule in a deny fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "deny", "include": [{"group": {"id": "g-posture"}}]}`),
			wantErr: `include rule group cannot be mapped: Access group "Posture" (id g-posture): device_posture cannot be mapped`,
		},
		{
			name:       "access group without --groups",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"group": {"id": "g-emails"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"email": {"email": "q@example.com"}}]}`),
			opts:       []func(*Options){func(o *Options) { o.Groups = nil }},
			wantReport: `include rule group cannot be mapped: Access group g-emails: needs --groups`,
		},
		{
			name:     "access group in an exclude: each rule excludes",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"group": {"id": "g-mixed"}}]}`),
			wantYAML: []string{"exclude:\n          - {email: [a@example.com]}\n          - {ip: [10.0.0.0/8]}"},
		},
		{
			name:    "unmappable rule in an exclude fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"device_posture": {"integration_uid": "u"}}]}`),
			wantErr: `policy "P" (id p1): exclude rule device_posture cannot be mapped: dropping it would widen access`,
		},
		{
			name:    "unmappable rule in a deny include fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "deny", "include": [{"login_method": {"id": "otp"}}]}`),
			wantErr: `policy "P" (id p1): include rule login_method cannot be mapped`,
		},
		{
			name:    "unmappable rule in a deny require fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "deny", "include": [{"everyone": {}}], "require": [{"auth_method": {"auth_method": "mfa"}}]}`),
			wantErr: `policy "P" (id p1): require rule auth_method cannot be mapped`,
		},
		{
			name:    "certificate in a deny without --client-ca fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "deny", "include": [{"certificate": {}}]}`),
			wantErr: `include rule certificate cannot be mapped: needs --client-ca`,
		},
		{
			name:    "common_name in an exclude without --client-ca fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"common_name": {"common_name": "bot"}}]}`),
			wantErr: `exclude rule common_name cannot be mapped: needs --client-ca`,
		},
		{
			name:       "external evaluation in an allow include: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"external_evaluation": {"evaluate_url": "https://x", "keys_url": "https://y"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: include rule external_evaluation cannot be mapped`,
			notYAML:    []string{"name: P\n"},
		},
		{
			name:       "purpose justification: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "purpose_justification_required": true, "purpose_justification_prompt": "why?", "include": [{"everyone": {}}]}, {"id": "p2", "name": "Q", "decision": "deny", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: purpose_justification_required is set`,
		},
		{
			name:       "isolation: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "allow", "isolation_required": true, "include": [{"everyone": {}}]}, {"id": "p2", "name": "Q", "decision": "deny", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: isolation_required is set`,
		},
		{
			name:     "approval on a deny policy is kept: it still blocks",
			apps:     app(`{"id": "p1", "name": "P", "decision": "deny", "approval_required": true, "include": [{"everyone": {}}]}`),
			wantYAML: []string{"action: block"},
		},
		{
			name:     "non_identity with ip and certificate only: bypass",
			apps:     app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"ip": {"ip": "192.0.2.1"}}, {"certificate": {}}]}`),
			opts:     []func(*Options){withClientCA(t)},
			needsCA:  true,
			wantYAML: []string{"action: bypass\n        include:\n          - {ip: [192.0.2.1]}\n          - {valid_certificate: true}", "client_certificate_authorities: ["},
		},
		{
			name:     "non_identity with everyone: bypass",
			apps:     app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"everyone": {}}]}`),
			wantYAML: []string{"action: bypass\n        include:\n          - {everyone: true}", "unauthenticated: deny"},
		},
		{
			name:     "non_identity with a service token: service_auth",
			apps:     app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"service_token": {"token_id": "t1"}}], "require": [{"ip": {"ip": "10.0.0.0/8"}}]}`),
			wantYAML: []string{"name: P\n        action: service_auth\n        include:\n          - {service_token: [ci]}\n        require:\n          - {ip: [10.0.0.0/8]}", "expires: \"2027-01-02T03:04:05Z\""},
			notYAML:  []string{"ci2.access"},
		},
		{
			name: "non_identity mixing service tokens and ip: two policies",
			apps: app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"any_valid_service_token": {}}, {"ip": {"ip": "10.0.0.0/8"}}], "exclude": [{"ip": {"ip": "10.9.0.0/16"}}]}`),
			wantYAML: []string{
				"name: P (service token)\n        action: service_auth\n        include:\n          - {any_service_token: true}\n        exclude:\n          - {ip: [10.9.0.0/16]}",
				"name: P (no identity)\n        action: bypass\n        include:\n          - {ip: [10.0.0.0/8]}\n        exclude:\n          - {ip: [10.9.0.0/16]}",
			},
		},
		{
			name:       "identity rule in a non_identity include: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"email": {"email": "a@example.com"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: include rule email cannot be mapped: it reads the Access token, which a non_identity policy never sees`,
		},
		{
			name:    "geo in a bypass exclude fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "bypass", "include": [{"everyone": {}}], "exclude": [{"geo": {"country_code": "KP"}}]}`),
			wantErr: `policy "P" (id p1): exclude rule country cannot be mapped: it reads the Access token, which a bypass policy never sees`,
		},
		{
			name:       "geo in a bypass include: dropped",
			apps:       app(`{"id": "p1", "name": "P", "decision": "bypass", "include": [{"geo": {"country_code": "DE"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `policy "P" (id p1) dropped: include rule country cannot be mapped`,
		},
		{
			name:       "service token rule without --service-tokens",
			apps:       app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"service_token": {"token_id": "t1"}}]}, {"id": "p2", "name": "Q", "decision": "non_identity", "include": [{"any_valid_service_token": {}}]}`),
			opts:       []func(*Options){func(o *Options) { o.ServiceTokens = nil }},
			wantReport: `policy "P" (id p1) dropped: include rule service_token cannot be mapped: token t1: needs --service-tokens`,
			wantYAML:   []string{"{any_service_token: true}"},
			notYAML:    []string{"service_tokens:"},
		},
		{
			name:       "service token absent from the file",
			apps:       app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"service_token": {"token_id": "t9"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `include rule service_token cannot be mapped: token t9 is not in the --service-tokens file`,
		},
		{
			name:       "service token with an unreadable expiry",
			apps:       app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"service_token": {"token_id": "t3"}}]}, {"id": "p2", "name": "Q", "decision": "allow", "include": [{"everyone": {}}]}`),
			wantReport: `token t3 has an unreadable expires_at "soon"`,
		},
		{
			name:     "two tokens with one name",
			apps:     app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"service_token": {"token_id": "t1"}}, {"service_token": {"token_id": "t2"}}]}`),
			wantYAML: []string{"{service_token: [ci, ci (t2)]}", "name: ci (t2)\n    client_id: ci2.access"},
		},
		{
			name:     "saml and oidc: groups by any case become group, others claim",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"saml": {"attribute_name": "GROUPS", "attribute_value": "ops"}}, {"oidc": {"claim_name": "team", "claim_value": "blue"}}, {"oidc": {"claim_name": "level", "claim_value": "3"}}]}`),
			wantYAML: []string{"- {group: [ops]}\n          - {claim: {team: blue}}\n          - {claim: {level: \"3\"}}"},
		},
		{
			name:    "saml attribute with a dot in an exclude fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"saml": {"attribute_name": "http://schemas.example.com/claims/role", "attribute_value": "intern"}}]}`),
			wantErr: `exclude rule saml cannot be mapped: attribute name "http://schemas.example.com/claims/role" holds a dot`,
		},
		{
			name:    "non-ASCII e-mail in an exclude fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"everyone": {}}], "exclude": [{"email": {"email": "éve@example.com"}}]}`),
			wantErr: `exclude rule email cannot be mapped: "éve@example.com" holds a non-ASCII character`,
		},
		{
			name:    "non-ASCII e-mail domain in a deny policy fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "deny", "include": [{"email_domain": {"domain": "exämple.com"}}]}`),
			wantErr: `include rule email_domain cannot be mapped`,
		},
		{
			name:     "non-ASCII e-mail in an allow include is kept: it can only fail closed",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"email": {"email": "éve@example.com"}}]}`),
			wantYAML: []string{"{email: [éve@example.com]}"},
		},
		{
			name:    "unknown decision fails",
			apps:    app(`{"id": "p1", "name": "P", "decision": "maybe", "include": [{"everyone": {}}]}`),
			wantErr: `unknown decision "maybe"`,
		},
		{
			name:    "reference to a policy --policies does not hold fails",
			apps:    app(`{"id": "p404", "precedence": 1}`),
			opts:    []func(*Options){func(o *Options) { o.Policies = []byte(`[]`) }},
			wantErr: `refers to policy p404, but --policies does not hold it`,
		},
		{
			name: "terraform bare ids and reusable policies in precedence order",
			apps: `[{"id": "app1", "type": "self_hosted", "name": "App", "aud": "aud1", "domain": "app.example.com",
			 "policies": [{"id": "r2", "precedence": 2}, {"id": "r1", "precedence": 1}]}]`,
			opts: []func(*Options){func(o *Options) {
				o.Policies = []byte(`{"result": [{"id": "r1", "name": "First", "decision": "deny", "reusable": true, "include": [{"everyone": {}}]},
				 {"id": "r2", "name": "Second", "decision": "allow", "reusable": true, "include": [{"everyone": {}}]}]}`)
			}},
			wantYAML: []string{"name: First\n        action: block", "reusable)\n      - name: Second\n        action: allow"},
		},
		{
			name:     "email_domain with a leading @",
			apps:     app(`{"id": "p1", "name": "P", "decision": "allow", "include": [{"email_domain": {"domain": "@example.com"}}]}`),
			wantYAML: []string{"{email_domain: [example.com]}"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsCA && !parserKnowsClientCA() {
				t.Skip("this build's policy parser does not know client_certificate_authorities yet")
			}
			res, err := run(tt.apps, tt.opts...)
			var ie *Error
			if tt.wantErr != "" {
				if !errors.As(err, &ie) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Import: err = %v, want one naming %q", err, tt.wantErr)
				}
				if tt.wantReport != "" && !strings.Contains(strings.Join(ie.Report, "\n"), tt.wantReport) {
					t.Errorf("report %q lacks %q", ie.Report, tt.wantReport)
				}
				return
			}
			if err != nil {
				t.Fatalf("Import: %v", err)
			}
			if _, err := policies.Parse("out.yaml", res.YAML); err != nil {
				t.Fatalf("output does not validate: %v\n%s", err, res.YAML)
			}
			for _, w := range tt.wantYAML {
				if !strings.Contains(string(res.YAML), w) {
					t.Errorf("output lacks %q:\n%s", w, res.YAML)
				}
			}
			for _, w := range tt.notYAML {
				if strings.Contains(string(res.YAML), w) {
					t.Errorf("output holds %q:\n%s", w, res.YAML)
				}
			}
			if tt.wantReport != "" && !strings.Contains(strings.Join(res.Report, "\n"), tt.wantReport) {
				t.Errorf("report %q lacks %q", res.Report, tt.wantReport)
			}
		})
	}
}

// withClientCA passes --client-ca; the tests that need it skip while the
// policy parser does not know client_certificate_authorities.
func withClientCA(t *testing.T) func(*Options) {
	t.Helper()
	return func(o *Options) {
		path := filepath.Join(t.TempDir(), "clients-ca.pem")
		if err := os.WriteFile(path, testkit.NewCA(t, "clients").PEM, 0o644); err != nil {
			t.Fatal(err)
		}
		o.ClientCA = path
	}
}

// parserKnowsClientCA reports whether this build's policy parser accepts
// client_certificate_authorities (and so the common_name selector).
func parserKnowsClientCA() bool {
	_, err := policies.Parse("p.yaml", []byte("client_certificate_authorities: []\n"))
	return err == nil || !strings.Contains(err.Error(), `unknown key "client_certificate_authorities"`)
}

// TestImportClientCA: with --client-ca, certificate and common_name rules
// map and the bundle is written; while this build's parser cannot load
// such a file, the import refuses it rather than print a file that would
// not validate.
func TestImportClientCA(t *testing.T) {
	apps := app(`{"id": "p1", "name": "P", "decision": "non_identity", "include": [{"certificate": {}}], "require": [{"common_name": {"common_name": "backup-agent"}}]}`)
	res, err := run(apps, withClientCA(t))
	if !parserKnowsClientCA() {
		var ie *Error
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "would not validate") {
			t.Fatalf("Import with --client-ca on a parser without client_certificate_authorities: err = %v, want a refusal", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"client_certificate_authorities: [", "{valid_certificate: true}", "{common_name: [backup-agent]}", "action: bypass"} {
		if !strings.Contains(string(res.YAML), w) {
			t.Errorf("output lacks %q:\n%s", w, res.YAML)
		}
	}
	if _, err := run(apps, func(o *Options) { o.ClientCA = filepath.Join(t.TempDir(), "missing.pem") }); err == nil {
		t.Error("a missing --client-ca file was accepted")
	}
}

// TestImportInputs: the shapes the API, its SDK and Terraform publish, and
// inputs that cannot be read.
func TestImportInputs(t *testing.T) {
	one := `{"id": "a", "type": "self_hosted", "name": "A", "aud": "aud-a", "domain": "a.example.com", "policies": [{"id": "p", "name": "P", "decision": "allow", "include": [{"everyone": {}}]}]}`
	tests := []struct {
		name, apps, team string
		wantErr          string
	}{
		{name: "bare array", apps: "[" + one + "]", team: teamURL},
		{name: "result envelope", apps: `{"success": true, "errors": [], "result": [` + one + `], "result_info": {"count": 1}}`, team: teamURL},
		{name: "one application in result", apps: `{"success": true, "result": ` + one + `}`, team: teamURL},
		{name: "team domain with a trailing slash", apps: "[" + one + "]", team: teamURL + "/"},
		{name: "failed API call", apps: `{"success": false, "errors": [{"code": 10000, "message": "Authentication error"}], "result": null}`, team: teamURL, wantErr: "Authentication error"},
		{name: "not JSON", apps: `<html>`, team: teamURL, wantErr: "--apps"},
		{name: "empty", apps: ``, team: teamURL, wantErr: "empty file"},
		{name: "rule with two keys", apps: `[{"id": "a", "aud": "x", "domain": "a.example.com", "policies": [{"id": "p", "decision": "allow", "include": [{"everyone": {}, "email": {"email": "a@b.c"}}]}]}]`, team: teamURL, wantErr: "one key"},
		{name: "team domain without scheme", apps: "[" + one + "]", team: "acme.cloudflareaccess.com", wantErr: "--team-domain"},
		{name: "team domain over http", apps: "[" + one + "]", team: "http://acme.cloudflareaccess.com", wantErr: "--team-domain"},
		{name: "team domain with a path", apps: "[" + one + "]", team: teamURL + "/cdn-cgi/access/login", wantErr: "--team-domain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Import(Options{TeamDomain: tt.team, Apps: []byte(tt.apps)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Import: err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := "issuer: " + teamURL + "\n    jwks_url: " + teamURL + "/cdn-cgi/access/certs\n    login_url: " + teamURL + "/cdn-cgi/access/login/{host}?kid={aud}&redirect_url={redirect}\n"
			if !strings.Contains(string(res.YAML), want) || !strings.Contains(string(res.YAML), "audience: aud-a") {
				t.Errorf("output:\n%s\nwant the issuer from --team-domain and the app", res.YAML)
			}
		})
	}
}

// TestImportDomains: destinations of type public win over
// self_hosted_domains, which win over domain; wildcards and paths.
func TestImportDomains(t *testing.T) {
	mk := func(fields string) string {
		return `[{"id": "a", "name": "A", "aud": "x", ` + fields + `, "policies": [{"id": "p", "name": "P", "decision": "allow", "include": [{"everyone": {}}]}]}]`
	}
	tests := []struct {
		name   string
		fields string
		want   []string
		report string
	}{
		{"destinations win", `"domain": "d.example.com", "self_hosted_domains": ["s.example.com"], "destinations": [{"type": "public", "uri": "p.example.com/x"}, {"type": "private", "hostname": "internal.corp"}]`,
			[]string{"p.example.com/x"}, "self_hosted_domains s.example.com ignored"},
		{"self_hosted_domains over domain", `"domain": "d.example.com", "self_hosted_domains": ["s.example.com", "t.example.com"]`, []string{"s.example.com", "t.example.com"}, ""},
		{"domain alone", `"domain": "D.Example.com/"`, []string{"d.example.com"}, ""},
		{"host/* is the whole host", `"domain": "w.example.com/*"`, []string{"w.example.com"}, ""},
		{"one-label wildcard kept", `"domain": "*.w.example.com"`, []string{"'*.w.example.com'"}, ""},
		{"path wildcard refused, others kept", `"self_hosted_domains": ["w.example.com/foo*/bar", "v.example.com"]`, []string{"v.example.com"}, `domain "w.example.com/foo*/bar" not imported: a wildcard inside a path`},
		{"port refused", `"self_hosted_domains": ["w.example.com:8443", "v.example.com"]`, []string{"v.example.com"}, `domain "w.example.com:8443" not imported`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Import(Options{TeamDomain: teamURL, Apps: []byte(mk(tt.fields))})
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, d := range tt.want {
				b.WriteString("      - " + d + "\n")
			}
			if !strings.Contains(string(res.YAML), "domains:\n"+b.String()+"    issuer:") {
				t.Errorf("domains: output\n%s\nwant exactly %v", res.YAML, tt.want)
			}
			if tt.report != "" && !strings.Contains(strings.Join(res.Report, "\n"), tt.report) {
				t.Errorf("report %q lacks %q", res.Report, tt.report)
			}
		})
	}
	// Two applications on one domain would silently merge: refuse.
	two := `[{"id": "a", "name": "A", "aud": "x", "domain": "d.example.com", "policies": [{"id": "p", "decision": "allow", "include": [{"everyone": {}}]}]},
	 {"id": "b", "name": "B", "aud": "y", "domain": "D.example.com/", "policies": [{"id": "q", "decision": "allow", "include": [{"everyone": {}}]}]}]`
	if _, err := Import(Options{TeamDomain: teamURL, Apps: []byte(two)}); err == nil || !strings.Contains(err.Error(), `domain d.example.com is also claimed by application "A"`) {
		t.Errorf("two apps on one domain: err = %v", err)
	}
}

// TestImportCORS: every cors_headers field, and preflight bypass.
func TestImportCORS(t *testing.T) {
	mk := func(fields string) string {
		return `[{"id": "a", "name": "A", "aud": "x", "domain": "a.example.com", ` + fields + `, "policies": [{"id": "p", "name": "P", "decision": "allow", "include": [{"everyone": {}}]}]}]`
	}
	tests := []struct {
		name, fields, want, report string
	}{
		{"every field", `"cors_headers": {"allowed_origins": ["https://a.example.com/", "https://*.b.example.com"], "allowed_methods": ["GET", "PATCH"], "allowed_headers": ["x-a"], "allow_all_headers": false, "allow_credentials": true, "max_age": 0}`,
			"cors:\n      allow_origins: ['https://a.example.com', 'https://*.b.example.com']\n      allow_methods: [GET, PATCH]\n      allow_headers: [x-a]\n      allow_credentials: true\n      max_age: 0\n", ""},
		{"allow all", `"cors_headers": {"allow_all_origins": true, "allowed_origins": ["https://a.example.com"], "allow_all_methods": true, "allow_all_headers": true, "allow_credentials": true, "max_age": 86400}`,
			"cors:\n      allow_all_origins: true\n      allow_all_methods: true\n      allow_all_headers: true\n      allow_credentials: true\n      max_age: 86400\n", ""},
		{"star origin", `"cors_headers": {"allowed_origins": ["*"], "allowed_methods": ["GET"], "max_age": -1}`,
			"cors:\n      allow_all_origins: true\n      allow_methods: [GET]\n    policies", "cors_headers.max_age -1 not carried over"},
		{"preflight bypass", `"options_preflight_bypass": true, "cors_headers": {"allowed_origins": ["https://a.example.com"], "allowed_methods": ["GET"]}`,
			"cors:\n      bypass_options_to_origin: true\n    policies", "cors_headers not imported: options_preflight_bypass"},
		{"empty cors_headers: no cors", `"cors_headers": {"allowed_origins": [], "allowed_methods": [], "allow_all_origins": false}`,
			"audience: x\n    policies", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Import(Options{TeamDomain: teamURL, Apps: []byte(mk(tt.fields))})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(res.YAML), tt.want) {
				t.Errorf("output:\n%s\nwant %q", res.YAML, tt.want)
			}
			if tt.report != "" && !strings.Contains(strings.Join(res.Report, "\n"), tt.report) {
				t.Errorf("report %q lacks %q", res.Report, tt.report)
			}
		})
	}
}

// TestImportSDKShapes: responses shaped as the Go SDK's fixtures (no
// `type`, an inline reusable policy) and as the Terraform provider writes
// application policies ({id, precedence} with and without precedence).
func TestImportSDKShapes(t *testing.T) {
	res, err := Import(Options{TeamDomain: teamURL, Apps: readTestdata(t, "sdk_apps.json"), Policies: readTestdata(t, "sdk_policies.json")})
	if err != nil {
		t.Fatal(err)
	}
	set, err := policies.Parse("sdk.yaml", res.YAML)
	if err != nil {
		t.Fatalf("output does not validate: %v\n%s", err, res.YAML)
	}
	if len(set.Applications) != 2 {
		t.Fatalf("%d applications, want 2:\n%s", len(set.Applications), res.YAML)
	}
	admin, staging := set.Applications[0], set.Applications[1]
	if admin.Domains[0] != "test.example.com/admin" || admin.CORS == nil || !admin.CORS.AllowAllHeaders || admin.CORS.MaxAgeValue != "" ||
		len(admin.PostAuth) != 1 || len(admin.PostAuth[0].Require) != 1 || len(admin.PostAuth[0].Exclude) != 1 {
		t.Errorf("Admin Site imported as %+v", admin)
	}
	// Terraform order: the listed order when not every entry has a
	// precedence; the non_identity ip policy becomes a bypass.
	if len(staging.PostAuth) != 1 || staging.PostAuth[0].Name != "staging allow" || len(staging.PreAuth) != 1 ||
		staging.PreAuth[0].Action != policies.ActionBypass || staging.PreAuth[0].Name != "staging machines" {
		t.Errorf("Staging imported as pre %+v post %+v", staging.PreAuth, staging.PostAuth)
	}
	if staging.Unauthenticated != policies.UnauthRedirect {
		t.Errorf("Staging has an allow policy: unauthenticated must stay redirect")
	}
	report := strings.Join(res.Report, "\n")
	for _, want := range []string{
		`app "Admin Site" (id 480f4f69-1a28-4fdd-9240-1ed29f0ac1db): setting allowed_idps = ["f174e90a-fafe-4643-bbbc-4a0ed4fc8415"] not carried over`,
		`app "Admin Site" (id 480f4f69-1a28-4fdd-9240-1ed29f0ac1db): cors_headers.max_age -1 not carried over`,
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestImportKeepsRoutes: a request Cloudflare routes to one application
// never reaches another, less specific one here, whether its own
// application or domain was not imported or a host/x/* domain now covers
// /x itself.
func TestImportKeepsRoutes(t *testing.T) {
	allow := `[{"id": "p", "name": "P", "decision": "allow", "include": [{"everyone": {}}]}]`
	mk := func(id, typ, aud, domain string) string {
		return `{"id": "` + id + `", "name": "` + id + `", "type": "` + typ + `", "aud": "` + aud + `", "domain": "` + domain + `", "policies": ` + allow + `}`
	}
	tests := []struct {
		name    string
		apps    []string
		wantErr string // "" for an import that succeeds
	}{
		{"skipped ssh app under a wildcard", []string{mk("wild", "self_hosted", "a1", "*.example.com"), mk("ssh", "ssh", "a2", "ssh.example.com")},
			`app "ssh" (id ssh): domain "ssh.example.com" is not imported, and its requests would reach application "wild" (domain *.example.com) instead`},
		{"skipped ssh app elsewhere", []string{mk("wild", "self_hosted", "a1", "*.example.com"), mk("ssh", "ssh", "a2", "ssh.example.net")}, ""},
		{"app without aud under its host's app", []string{mk("root", "self_hosted", "a1", "app.example.com"), mk("admin", "self_hosted", "", "app.example.com/admin")},
			`domain "app.example.com/admin" is not imported, and its requests would reach application "root"`},
		{"mid-label wildcard under a wildcard", []string{mk("wild", "self_hosted", "a1", "*.example.com"), mk("mid", "self_hosted", "a2", "*test.example.com")},
			`domain "*test.example.com" is not imported`},
		{"path wildcard under its host's app", []string{mk("root", "self_hosted", "a1", "app.example.com"), mk("foo", "self_hosted", "a2", "app.example.com/foo*/bar")},
			`domain "app.example.com/foo*/bar" is not imported`},
		{"path wildcard beside a more specific app", []string{mk("other", "self_hosted", "a1", "app.example.com/other"), mk("foo", "self_hosted", "a2", "app.example.com/foo*/bar")}, ""},
		{"host/x/* under its host's app", []string{mk("root", "self_hosted", "a1", "app.example.com"), mk("pub", "self_hosted", "a2", "app.example.com/public/*")},
			`app "pub" (id pub): domain app.example.com/public covers /public itself, which Cloudflare leaves to application "root" (domain app.example.com)`},
		{"host/x/* alone", []string{mk("pub", "self_hosted", "a2", "app.example.com/public/*")}, ""},
		{"host/x/* beside a sibling path", []string{mk("pub", "self_hosted", "a2", "app.example.com/public/*"), mk("priv", "self_hosted", "a3", "app.example.com/private")}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Import(Options{TeamDomain: teamURL, Apps: []byte("[" + strings.Join(tt.apps, ",") + "]")})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Import: %v", err)
				}
				if _, err := policies.Parse("out.yaml", res.YAML); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Import: err = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}
