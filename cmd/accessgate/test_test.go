package main

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestShippedPolicyTests runs the test files shipped beside the example
// policies, so `make test` proves the examples do what their tests say.
func TestShippedPolicyTests(t *testing.T) {
	tests := []struct{ policy, tests string }{
		{"demo/policy.yaml", "demo/policy_test.yaml"},
		{"../../envoy/compose/accessgate/policy.yaml", "../../envoy/compose/accessgate/policy_test.yaml"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(filepath.Dir(tt.policy)), func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "test", "--config", tt.policy, tt.tests)
			if code != 0 || errOut != "" || !regexp.MustCompile(`(?m)^[1-9]\d* passed, 0 failed\n\z`).MatchString(out) {
				t.Errorf("test %s: exit %d, stderr %q\n%s", tt.tests, code, errOut, out)
			}
		})
	}
}

const cliPolicyTests = `tests:
  - name: alice is allowed
    request: {host: app.example.com, path: /}
    identity: {email: alice@example.com}
    expect: {status: 200, reason: allowed}
  - name: wrong expectation
    request: {host: app.example.com, path: /}
    identity: {email: alice@example.com}
    expect: {status: 403, policy: staff, headers: {cf-access-authenticated-user-email: bob@example.com}}
  - name: expects a rule
    request: {host: app.example.com, path: /}
    identity: {email: alice@example.com}
    expect: {status: 200, rule: "include[0].email_domain"}
`

// TestTestCommand: the output lines, the summary and the exit status of
// contract section 9.
func TestTestCommand(t *testing.T) {
	d := demoDir(t)
	dir := t.TempDir()
	mixed := writeFile(t, dir, "mixed.yaml", cliPolicyTests)
	passing := writeFile(t, dir, "pass.yaml", strings.SplitN(cliPolicyTests, "  - name: wrong", 2)[0])
	invalid := writeFile(t, dir, "invalid.yaml", "tests:\n  - name: x\n    request: {host: app.example.com, verb: GET}\n    expect: {status: 200}\n")

	code, out, errOut := runCLI(t, nil, "test", "--config", d.policy, mixed)
	want := "ok alice is allowed\n" +
		"FAIL wrong expectation\n" +
		"status: want 403, got 200\n" +
		"headers.cf-access-authenticated-user-email: want bob@example.com, got alice@example.com\n" +
		"ok expects a rule\n" +
		"2 passed, 1 failed\n"
	if code != 1 || out != want {
		t.Errorf("test mixed: exit %d, stdout:\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
	if errOut != "" {
		t.Errorf("test mixed: stderr %q, want none (rule is compared like any field)", errOut)
	}

	code, out, errOut = runCLI(t, nil, "test", "--config", d.policy, passing, passing)
	if code != 0 || out != "ok alice is allowed\nok alice is allowed\n2 passed, 0 failed\n" || errOut != "" {
		t.Errorf("test passing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	code, out, errOut = runCLI(t, nil, "test", "--config", d.policy, invalid, passing)
	if code != 1 || errOut != invalid+`:3:38: unknown key "verb" in request (want one of method, scheme, host, path, headers, source_ip, client_cert, application)`+"\n" ||
		out != "ok alice is allowed\n1 passed, 0 failed\n" {
		t.Errorf("test invalid: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	for _, args := range [][]string{
		{"--config", d.policy},
		{mixed},
	} {
		if code, _, _ := runCLI(t, nil, append([]string{"test"}, args...)...); code != 2 {
			t.Errorf("test %v: exit %d, want 2 (usage)", args, code)
		}
	}
	code, _, errOut = runCLI(t, nil, "test", "--config", filepath.Join(dir, "nope.yaml"), passing)
	if code != 1 || !strings.Contains(errOut, "nope.yaml") {
		t.Errorf("test missing config: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, nil, "test", "--config", d.policy, filepath.Join(dir, "nope.yaml"))
	if code != 1 || !strings.Contains(errOut, "nope.yaml") {
		t.Errorf("test missing test file: exit %d, stderr %q", code, errOut)
	}
}
