package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCheckDemoExamples runs `check` on each demo request and asserts the
// decision the demo promises for it, through the real engine and keys.
func TestCheckDemoExamples(t *testing.T) {
	d := demoDir(t)
	want := map[string]struct {
		reason string
		status int
		header string // a response header the answer must carry
	}{
		"allow":           {"allowed", 200, ""},
		"cors":            {"allowed", 200, "access-control-allow-origin"},
		"preflight":       {"preflight", 204, "access-control-allow-methods"},
		"redirect":        {"token_missing", 302, "location"},
		"unauthenticated": {"token_missing", 401, "www-authenticate"},
		"blocked":         {"blocked", 403, ""},
		"bypass":          {"bypass", 200, ""},
		"service-token":   {"service_token", 200, ""},
		"no-application":  {"no_application", 403, ""},
	}
	if len(d.examples) != len(want) {
		t.Errorf("demo has %d examples, test knows %d", len(d.examples), len(want))
	}
	for _, ex := range d.examples {
		t.Run(ex.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, "check", "--config", d.policy, "--request", ex.file)
			if code != 0 {
				t.Fatalf("check: exit %d, stderr %s", code, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("check output is not JSON: %v\n%s", err, out)
			}
			for _, f := range []string{"application", "policy", "reason", "status", "headers", "headers_to_remove", "response_headers", "body"} {
				if _, ok := got[f]; !ok {
					t.Errorf("check output lacks %q:\n%s", f, out)
				}
			}
			w := want[ex.name]
			if got["reason"] != w.reason || got["status"] != float64(w.status) {
				t.Errorf("check %s: reason %v status %v, want %s %d", ex.name, got["reason"], got["status"], w.reason, w.status)
			}
			if rh, _ := got["response_headers"].(map[string]any); w.header != "" && rh[w.header] == nil {
				t.Errorf("check %s: response_headers lack %s: %v", ex.name, w.header, rh)
			}
		})
	}
}

func TestCheckIdentityHeaders(t *testing.T) {
	d := demoDir(t)
	_, out, _ := runCLI(t, nil, "check", "--config", d.policy, "--request", d.examples[0].file)
	var got decisionJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Headers["cf-access-authenticated-user-email"] != "alice@example.com" || got.Headers["cf-access-jwt-assertion"] != d.token {
		t.Errorf("check allow: headers = %v, want alice's identity headers", got.Headers)
	}
	if !strings.Contains(strings.Join(got.HeadersToRemove, " "), "cf-access-client-secret") {
		t.Errorf("check allow: headers_to_remove = %v, want the spoofable headers", got.HeadersToRemove)
	}
}

func TestCheckErrors(t *testing.T) {
	d := demoDir(t)
	dir := t.TempDir()
	badJSON := writeFile(t, dir, "bad.json", `{"method": "GET",`)
	badIP := writeFile(t, dir, "ip.json", `{"host": "app.example.com", "path": "/", "source_ip": "10.0.0.300"}`)
	badConfig := writeFile(t, dir, "bad.yaml", invalidPolicy)
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "request not JSON", args: []string{"--config", d.policy, "--request", badJSON}, wantErr: "bad.json"},
		{name: "bad source_ip", args: []string{"--config", d.policy, "--request", badIP}, wantErr: "source_ip"},
		{name: "request missing", args: []string{"--config", d.policy, "--request", dir + "/nope.json"}, wantErr: "nope.json"},
		{name: "config missing", args: []string{"--config", dir + "/nope.yaml", "--request", badIP}, wantErr: "nope.yaml"},
		{name: "config invalid", args: []string{"--config", badConfig, "--request", d.examples[0].file}, wantErr: badConfig + ":1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, nil, append([]string{"check"}, tt.args...)...)
			if code != 1 || out != "" || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("check: exit %d, stdout %q, stderr %q; want 1, nothing, a message naming %q", code, out, errOut, tt.wantErr)
			}
		})
	}
}

func TestReadRequestDefaults(t *testing.T) {
	r, err := readRequest([]byte(`{"headers": {"Host": "App.example.com", "X-Request-Id": "r1"}, "source_ip": "::ffff:10.0.0.1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Method != "GET" || r.Scheme != "https" || r.Path != "/" || r.Host != "App.example.com" || r.Headers["x-request-id"] != "r1" || r.SourceIP.String() != "10.0.0.1" {
		t.Errorf("readRequest defaults = %+v", r)
	}
}
