package main

import (
	"regexp"
	"strings"
	"testing"
)

const invalidPolicy = `default_action: maybe
issuers:
  - name: team
    issuer: https://team.example.com
    login_url: https://team.example.com/login?r={redirect}
applications: []
colour: blue
`

func TestValidate(t *testing.T) {
	d := demoDir(t)
	t.Chdir(t.TempDir())
	writeFile(t, ".", "bad.yaml", invalidPolicy)
	problem := regexp.MustCompile(`^bad\.yaml:\d+:\d+: .+$`)

	code, out, errOut := runCLI(t, nil, "validate", "--config", d.policy)
	if code != 0 || out != "ok\n" || errOut != "" {
		t.Errorf("validate valid: exit %d, stdout %q, stderr %q; want 0, \"ok\\n\", \"\"", code, out, errOut)
	}

	code, out, errOut = runCLI(t, nil, "validate", "--config", "bad.yaml")
	if code != 1 || out != "" {
		t.Errorf("validate invalid: exit %d, stdout %q; want 1, \"\"", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) < 3 {
		t.Errorf("validate invalid: %d problems, want every one (at least 3):\n%s", len(lines), errOut)
	}
	for _, l := range lines {
		if !problem.MatchString(l) {
			t.Errorf("validate invalid: line %q is not FILE:LINE:COL: message with FILE as given", l)
		}
	}
	for _, want := range []string{"bad.yaml:1:", "bad.yaml:7:1:"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("validate invalid: no problem at %s in:\n%s", want, errOut)
		}
	}

	code, _, errOut = runCLI(t, nil, "validate", "--config", "missing.yaml")
	if code != 1 || !strings.Contains(errOut, "missing.yaml") {
		t.Errorf("validate missing file: exit %d, stderr %q; want 1 naming the file", code, errOut)
	}
}

// TestEnvFallback: ACCESSGATE_CONFIG stands in for --config, and a flag
// beats its variable.
func TestEnvFallback(t *testing.T) {
	d := demoDir(t)
	bad := writeFile(t, t.TempDir(), "bad.yaml", invalidPolicy)
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
	}{
		{name: "env only, valid", env: map[string]string{envName("config"): d.policy}, args: []string{"validate"}, wantCode: 0},
		{name: "env only, invalid", env: map[string]string{envName("config"): bad}, args: []string{"validate"}, wantCode: 1},
		{name: "flag beats env", env: map[string]string{envName("config"): bad}, args: []string{"validate", "--config", d.policy}, wantCode: 0},
		{name: "flag beats env, other way", env: map[string]string{envName("config"): d.policy}, args: []string{"validate", "--config", bad}, wantCode: 1},
		{name: "bad log level from env", env: map[string]string{envName("config"): d.policy, envName("log-level"): "loud"}, args: []string{"serve"}, wantCode: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, _, errOut := runCLI(t, tt.env, tt.args...); code != tt.wantCode {
				t.Errorf("exit %d, want %d (stderr %q)", code, tt.wantCode, errOut)
			}
		})
	}
}
