package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestImportCommand: the policy file on stdout passes validate unchanged,
// the report goes to stderr; an import that would widen access exits 1
// with nothing on stdout.
func TestImportCommand(t *testing.T) {
	td := "../../cfimport/testdata/"
	code, out, errOut := runCLI(t, nil, "import", "cloudflare",
		"--apps", td+"apps.json", "--groups", td+"groups.json", "--policies", td+"policies.json",
		"--service-tokens", td+"service_tokens.json", "--team-domain", "https://acme.cloudflareaccess.com")
	if code != 0 || !strings.HasPrefix(out, "# Imported from Cloudflare Access") {
		t.Fatalf("import: exit %d, stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, `policy "GitHub org" (id b0a1c2d3-0000-4000-8000-0000000000p5) dropped`) || strings.Contains(errOut, "applications:") {
		t.Errorf("import: stderr is not the report:\n%s", errOut)
	}
	path := writeFile(t, t.TempDir(), "imported.yaml", out)
	if code, vout, verr := runCLI(t, nil, "validate", "--config", path); code != 0 || vout != "ok\n" {
		t.Errorf("validate imported: exit %d, %s%s", code, vout, verr)
	}

	code, out, errOut = runCLI(t, nil, "import", "cloudflare", "--apps", td+"apps_widening.json", "--team-domain", "https://acme.cloudflareaccess.com")
	if code != 1 || out != "" {
		t.Errorf("import widening: exit %d, stdout %q; want 1 and nothing", code, out)
	}
	for _, want := range []string{
		`policy "Finance team on managed laptops" (id d2000000-0000-4000-8000-0000000000f1): exclude rule device_posture cannot be mapped`,
		`policy "Block risky sign-ins" (id d2000000-0000-4000-8000-0000000000f2): include rule user_risk_score cannot be mapped`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("import widening: stderr lacks %q:\n%s", want, errOut)
		}
	}

	if code, _, errOut := runCLI(t, nil, "import", "-h"); code != 0 || !strings.Contains(errOut, "-team-domain") {
		t.Errorf("import -h: exit %d, %s; want 0 and the flags", code, errOut)
	}
	for _, args := range [][]string{
		{"import"},
		{"import", "okta", "--apps", td + "apps.json"},
		{"import", "cloudflare", "--apps", td + "apps.json"},
		{"import", "cloudflare", "--team-domain", "https://acme.cloudflareaccess.com"},
	} {
		if code, _, _ := runCLI(t, nil, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	code, _, errOut = runCLI(t, nil, "import", "cloudflare", "--apps", filepath.Join(t.TempDir(), "nope.json"), "--team-domain", "https://acme.cloudflareaccess.com")
	if code != 1 || !strings.Contains(errOut, "nope.json") {
		t.Errorf("import missing file: exit %d, %s", code, errOut)
	}
}
