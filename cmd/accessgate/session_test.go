package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/policies"
)

const bindingPolicyYAML = `default_action: allow
issuers:
  - name: team
    issuer: https://team.example.com
    jwks_url: https://team.example.com/certs
    login_url: https://team.example.com/login?r={redirect}
applications:
  - name: public
    domains: [app.example.com]
    issuer: team
    audience: aud
    cors: {allow_origins: [https://www.example.com], allow_methods: [GET]}
    policies: [{name: open, action: bypass, include: [{everyone: true}]}]
  - name: admin
    domains: [app.example.com/admin]
    issuer: team
    audience: aud
    policies: [{name: staff, action: allow, include: [{email_domain: [example.com]}]}]
`

// TestCheckApplicationAndRule: check --request takes "application" (the
// per-route binding) and prints "rule".
func TestCheckApplicationAndRule(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.yaml", bindingPolicyYAML)
	tests := []struct {
		name       string
		give       string
		wantApp    string
		wantReason string
		wantRule   string
		wantStatus float64
	}{
		{"bound to public", `{"host":"app.example.com","path":"/admin/x","application":"public"}`, "public", "bypass", "include[0].everyone", 200},
		{"unbound: the lookup", `{"host":"app.example.com","path":"/admin/x","headers":{"accept":"application/json"}}`, "admin", "token_missing", "", 401},
		{"unknown binding", `{"host":"app.example.com","path":"/","application":"ghost"}`, "", "no_application", "", 403},
		{"empty binding", `{"host":"app.example.com","path":"/","application":""}`, "", "no_application", "", 403},
		{"host not covered", `{"host":"other.example.com","path":"/","application":"public"}`, "public", "application_mismatch", "", 403},
		{"refused preflight", `{"method":"OPTIONS","host":"app.example.com","path":"/","headers":{"origin":"https://evil.test","access-control-request-method":"GET"}}`, "public", "preflight_origin", "cors.allow_origins", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := writeFile(t, dir, "req.json", tt.give)
			code, out, errOut := runCLI(t, nil, "check", "--config", policy, "--request", req)
			if code != 0 {
				t.Fatalf("check: exit %d: %s", code, errOut)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("check output: %v\n%s", err, out)
			}
			if _, ok := got["rule"]; !ok {
				t.Errorf("check output lacks rule:\n%s", out)
			}
			if got["application"] != tt.wantApp || got["reason"] != tt.wantReason || got["rule"] != tt.wantRule || got["status"] != tt.wantStatus {
				t.Errorf("check = app %v reason %v rule %v status %v, want %s %s %q %v", got["application"], got["reason"], got["rule"], got["status"], tt.wantApp, tt.wantReason, tt.wantRule, tt.wantStatus)
			}
		})
	}
}

// TestAuditLine pins the line's fields, their order and their values.
func TestAuditLine(t *testing.T) {
	id := &authz.Identity{Email: "alice@example.com", Sub: "sub-1", Token: "TOKEN-TEXT"}
	r := &authz.Request{
		Method: "GET", Host: "app.example.com:8443", Path: "/reports?code=SECRET-CODE&x=1",
		SourceIP: netip.MustParseAddr("203.0.113.7"),
		Headers: map[string]string{
			"x-request-id": "req\"1\n", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			"cookie": "CF_Authorization=TOKEN-TEXT", "cf-access-client-secret": "CLIENT-SECRET",
		},
	}
	d := &authz.Decision{Status: 200, Reason: authz.ReasonAllowed, Application: "dashboard", Policy: "staff",
		Rule: "include[0].email_domain", Identity: id, ServiceToken: "ci-bot"}
	now := time.Date(2026, 12, 8, 10, 0, 0, 123456000, time.UTC)
	line := string(appendAuditLine(nil, now, "grpc", r, d, 1234567*time.Nanosecond))
	want := `{"time":"2026-12-08T10:00:00.123456Z","request_id":"req\"1\u000a","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",` +
		`"endpoint":"grpc","method":"GET","host":"app.example.com:8443","path":"/reports","source_ip":"203.0.113.7",` +
		`"application":"dashboard","policy":"staff","rule":"include[0].email_domain","reason":"allowed","status":200,` +
		`"email":"alice@example.com","sub":"sub-1","service_token":"ci-bot","took_us":1234}` + "\n"
	if line != want {
		t.Errorf("audit line:\n%s\nwant:\n%s", line, want)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if len(m) != 17 {
		t.Errorf("%d fields, want 17", len(m))
	}
	for _, secret := range []string{"TOKEN-TEXT", "SECRET-CODE", "CLIENT-SECRET", "code="} {
		if strings.Contains(line, secret) {
			t.Errorf("audit line holds %q", secret)
		}
	}
	// Empty request and decision: every field still there.
	if err := json.Unmarshal(appendAuditLine(nil, now, "", nil, &authz.Decision{}, 0), &m); err != nil || len(m) != 17 {
		t.Errorf("empty line: %v, %d fields", err, len(m))
	}
}

func TestTraceID(t *testing.T) {
	tests := []struct{ give, want string }{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra", "4bf92f3577b34da6a3ce929d0e0e4736"},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ""},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := traceID(tt.give); got != tt.want {
			t.Errorf("traceID(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func readLines(t *testing.T, file string) []map[string]any {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %q: %v", file, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditLogFile: every line written once, reopened after a rotation,
// and a full disk or an unwritable file counted, never blocking.
func TestAuditLogFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.log")
	m := newMetrics().session
	a := openAudit(file, zap.NewNop(), m)
	r := &authz.Request{Method: "GET", Host: "h", Path: "/", Headers: map[string]string{}}
	d := &authz.Decision{Status: 403, Reason: authz.ReasonNoApplication}
	for i := 0; i < 100; i++ {
		a.record(r, d, time.Microsecond)
	}
	// Rotation: move the file away, reopen, write more.
	rotated := file + ".1"
	eventually(t, "first lines flushed", func() bool { return len(readLinesQuiet(file)) == 100 })
	if err := os.Rename(file, rotated); err != nil {
		t.Fatal(err)
	}
	a.Reopen()
	eventually(t, "reopened file created", func() bool { _, err := os.Stat(file); return err == nil })
	for i := 0; i < 10; i++ {
		a.record(r, d, time.Microsecond)
	}
	a.Close()
	if got := len(readLines(t, rotated)); got != 100 {
		t.Errorf("rotated file: %d lines, want 100", got)
	}
	if got := len(readLines(t, file)); got != 10 {
		t.Errorf("reopened file: %d lines, want 10", got)
	}
	if v := testutil.ToFloat64(m.auditLines); v != 110 {
		t.Errorf("audit lines = %v, want 110", v)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("audit log mode = %v, %v; want 0640", st.Mode().Perm(), err)
	}

	// A full disk: /dev/full refuses every write with ENOSPC.
	if _, err := os.Stat("/dev/full"); err == nil {
		m := newMetrics().session
		a := openAudit("/dev/full", zap.NewNop(), m)
		for i := 0; i < 3*auditMaxBatch/200; i++ { // more than a batch holds: never blocks
			a.record(r, d, time.Microsecond)
		}
		a.Close()
		if testutil.ToFloat64(m.auditErrors) == 0 {
			t.Error("writes to a full disk were not counted as errors")
		}
		if testutil.ToFloat64(m.auditLines) != 0 {
			t.Errorf("audit lines = %v on a full disk, want 0", testutil.ToFloat64(m.auditLines))
		}
	}

	// A file that cannot be opened: lines dropped and counted.
	m2 := newMetrics().session
	a2 := openAudit(filepath.Join(dir, "missing-dir", "audit.log"), zap.NewNop(), m2)
	for i := 0; i < 5; i++ {
		a2.record(r, d, time.Microsecond)
	}
	a2.Close()
	if testutil.ToFloat64(m2.auditErrors) < 1 || testutil.ToFloat64(m2.auditDropped) != 5 {
		t.Errorf("unwritable file: errors %v dropped %v, want ≥1 and 5", testutil.ToFloat64(m2.auditErrors), testutil.ToFloat64(m2.auditDropped))
	}
}

func readLinesQuiet(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestRevokeCommand: entries added and pruned under the lock, a missing
// file created 0644, a malformed file refused untouched.
func TestRevokeCommand(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "revoked.yaml")
	code, out, errOut := runCLI(t, nil, "revoke", "--file", file, "--email", "Alice@Example.com")
	if code != 0 || !strings.Contains(out, "revoked email Alice@Example.com") {
		t.Fatalf("revoke --email: exit %d, %q %q", code, out, errOut)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("created file: %v, %v; want mode 0644", st, err)
	}
	old := time.Now().Add(-1000 * time.Hour).UTC().Truncate(time.Second)
	steps := [][]string{
		{"--sub", "sub-1", "--before", "2026-12-01T00:00:00Z"},
		{"--email", "bob@example.com", "--before", old.Format(time.RFC3339)},
	}
	for _, s := range steps {
		if code, _, errOut := runCLI(t, nil, append([]string{"revoke", "--file", file}, s...)...); code != 0 {
			t.Fatalf("revoke %v: exit %d: %s", s, code, errOut)
		}
	}
	r, err := policies.LoadRevocations(file)
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 3 || r.Entries[0].Email != "Alice@Example.com" || time.Since(r.Entries[0].Before) > time.Minute ||
		r.Entries[1].Sub != "sub-1" || !r.Entries[2].Before.Equal(old) {
		t.Errorf("entries = %+v", r.Entries)
	}
	// Prune what is older than 100 hours: bob's entry goes, and sub-1's
	// only if that date is in the past by then.
	if code, out, errOut := runCLI(t, nil, "revoke", "--file", file, "--prune", "--older-than", "100h"); code != 0 || !strings.Contains(out, "pruned") {
		t.Fatalf("prune: exit %d, %q %q", code, out, errOut)
	}
	r, _ = policies.LoadRevocations(file)
	for _, e := range r.Entries {
		if e.Email == "bob@example.com" {
			t.Errorf("prune kept %+v", e)
		}
	}
	if r.Len() < 1 || r.Entries[0].Email != "Alice@Example.com" {
		t.Errorf("prune dropped the recent entry: %+v", r.Entries)
	}

	// Refusals leave the file as it is.
	before, _ := os.ReadFile(file)
	malformed := writeFile(t, dir, "bad.yaml", "revoked: [{email: x@y}]\n")
	badBefore, _ := os.ReadFile(malformed)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		target   string
		wantErr  string
	}{
		{"malformed file", []string{"--file", malformed, "--email", "a@example.com"}, 1, malformed, "bad.yaml:1:"},
		{"non-ASCII email", []string{"--file", file, "--email", "e\u0301ve@example.com"}, 1, file, "non-ASCII"},
		{"both email and sub", []string{"--file", file, "--email", "a@example.com", "--sub", "x"}, 2, file, "exactly one"},
		{"neither", []string{"--file", file}, 2, file, "exactly one"},
		{"bad before", []string{"--file", file, "--email", "a@example.com", "--before", "yesterday"}, 2, file, "RFC 3339"},
		{"prune without older-than", []string{"--file", file, "--prune"}, 2, file, "--older-than"},
		{"prune with email", []string{"--file", file, "--prune", "--older-than", "1h", "--email", "a@example.com"}, 2, file, "--prune takes only"},
		{"no file", []string{"--email", "a@example.com"}, 2, file, "--file is required"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, nil, append([]string{"revoke"}, tt.args...)...)
		if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("%s: exit %d, stderr %q; want %d and %q", tt.name, code, errOut, tt.wantCode, tt.wantErr)
		}
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Error("a refused revoke changed the file")
	}
	if after, _ := os.ReadFile(malformed); string(after) != string(badBefore) {
		t.Error("revoke touched a malformed file")
	}
}

// TestRevokeConcurrent: runs at once never lose an entry (flock on
// FILE.lock, rename over FILE).
func TestRevokeConcurrent(t *testing.T) {
	file := filepath.Join(t.TempDir(), "revoked.yaml")
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, errOut := runCLI(t, nil, "revoke", "--file", file, "--email", fmt.Sprintf("user%d@example.com", i)); code != 0 {
				errs <- errOut
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	r, err := policies.LoadRevocations(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range r.Entries {
		seen[e.Email] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct entries after %d concurrent runs, want %d", len(seen), n, n)
	}
}

// revocationServe starts serve on a copy of the demo with
// revocations_file pointing at rev (shared by every server started so).
func revocationServe(t *testing.T, rev string, extra ...string) (*served, *demoFiles) {
	t.Helper()
	d := demoDir(t)
	data, err := os.ReadFile(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.policy, append([]byte("revocations_file: "+rev+"\n"), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	return startServe(t, loopbackEnv(nil), append([]string{"--config", d.policy}, extra...)...), d
}

func checkReason(t *testing.T, s *served, token string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(s.dial()).Check(ctx, envoyRequest(token))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetOkResponse() != nil {
		return "allowed"
	}
	var body struct{ Reason string }
	_ = json.Unmarshal([]byte(resp.GetDeniedResponse().GetBody()), &body)
	return body.Reason
}

// TestRevocationAcrossReplicas: two servers sharing only the revocations
// file; one revoke is refused by both within one reload. A broken file
// afterwards is counted and the last good one stays.
func TestRevocationAcrossReplicas(t *testing.T) {
	rev := filepath.Join(t.TempDir(), "revoked.yaml")
	writeFile(t, filepath.Dir(rev), "revoked.yaml", "revoked: []\n")
	audit := filepath.Join(t.TempDir(), "audit.log")
	a, da := revocationServe(t, rev, "--audit-log", audit)
	b, db := revocationServe(t, rev)
	if checkReason(t, a, da.token) != "allowed" || checkReason(t, b, db.token) != "allowed" {
		t.Fatal("alice refused before any revocation")
	}
	if v := a.metric("accessgate_revocations_entries"); v != 0 {
		t.Errorf("revocations entries = %v at start, want 0", v)
	}
	if code, _, errOut := runCLI(t, nil, "revoke", "--file", rev, "--email", "ALICE@example.com"); code != 0 {
		t.Fatalf("revoke: %s", errOut)
	}
	eventually(t, "replica a refuses alice", func() bool { return checkReason(t, a, da.token) == "token_revoked" })
	eventually(t, "replica b refuses alice", func() bool { return checkReason(t, b, db.token) == "token_revoked" })
	if v := a.metric("accessgate_revocations_entries"); v != 1 {
		t.Errorf("revocations entries = %v, want 1", v)
	}
	if v := a.metric("accessgate_revocations_last_load_success_timestamp_seconds"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last load = %v, want about now", v)
	}

	// Broken, then deleted: logged, counted, the last good stays.
	failures := `accessgate_revocations_reloads_total{result="failure"}`
	writeFile(t, filepath.Dir(rev), "revoked.yaml", "revoked: [{email: x}]\n")
	eventually(t, "broken file counted", func() bool { return a.metric(failures) >= 1 })
	if err := os.Remove(rev); err != nil {
		t.Fatal(err)
	}
	eventually(t, "deleted file counted", func() bool { return a.metric(failures) >= 2 })
	if got := checkReason(t, a, da.token); got != "token_revoked" {
		t.Errorf("after a broken file: %s, want token_revoked (last good kept)", got)
	}
	if !strings.Contains(a.stderr.String(), "invalid revocations file") || !strings.Contains(a.stderr.String(), "keeping previous revocations") {
		t.Errorf("the broken file was not logged:\n%s", a.stderr)
	}

	// The audit log: the refusal is there, named, and holds no token,
	// cookie or query.
	a.stop()
	lines := readLines(t, audit)
	var revoked map[string]any
	for _, l := range lines {
		if l["reason"] == "token_revoked" {
			revoked = l
		}
	}
	if revoked == nil || revoked["rule"] != "session.revoked" || revoked["email"] != "alice@example.com" || revoked["endpoint"] != "grpc" ||
		revoked["path"] != "/reports" || revoked["status"] != float64(401) || revoked["request_id"] != "req-e2e-1" {
		t.Errorf("audit line of the refusal = %v", revoked)
	}
	raw, _ := os.ReadFile(audit)
	for _, secret := range []string{da.token, "access_token", "CF_Authorization", "Bearer"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("audit log holds %.20q", secret)
		}
	}
	want := []string{"time", "request_id", "trace_id", "endpoint", "method", "host", "path", "source_ip", "application", "policy", "rule", "reason", "status", "email", "sub", "service_token", "took_us"}
	first := strings.SplitN(string(raw), "\n", 2)[0]
	var keys []string
	dec := json.NewDecoder(strings.NewReader(first))
	dec.Token()
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var v any
		dec.Decode(&v)
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("audit fields = %v, want %v", keys, want)
	}
}

// TestValidateRevocationsFile: validate reports a missing revocations file
// as FILE: message and an invalid one as FILE:LINE:COL: message.
func TestValidateRevocationsFile(t *testing.T) {
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.yaml", "revocations_file: revoked.yaml\n"+bindingPolicyYAML)
	code, _, errOut := runCLI(t, nil, "validate", "--config", policy)
	if want := filepath.Join(dir, "revoked.yaml") + ": cannot read revocations file: no such file or directory\n"; code != 1 || errOut != want {
		t.Errorf("missing: exit %d, stderr %q; want 1, %q", code, errOut, want)
	}
	writeFile(t, dir, "revoked.yaml", "revoked:\n  - {email: a@example.com, before: soon}\n")
	code, _, errOut = runCLI(t, nil, "validate", "--config", policy)
	if want := filepath.Join(dir, "revoked.yaml") + `:2:36: malformed before "soon"`; code != 1 || !strings.HasPrefix(errOut, want) {
		t.Errorf("invalid: exit %d, stderr %q; want 1, %q...", code, errOut, want)
	}
	writeFile(t, dir, "revoked.yaml", "revoked: []\n")
	if code, out, _ := runCLI(t, nil, "validate", "--config", policy); code != 0 || out != "ok\n" {
		t.Errorf("valid: exit %d %q", code, out)
	}
	// serve refuses to start with the same message.
	writeFile(t, dir, "revoked.yaml", "revoked: {}\n")
	code, _, errOut = runCLI(t, loopbackEnv(nil), "serve", "--config", policy)
	if code != 1 || !strings.Contains(errOut, "revoked.yaml:1:10: revoked must be a list") {
		t.Errorf("serve: exit %d, stderr %q", code, errOut)
	}
}

// TestServeSignals: SIGUSR1 reopens the audit log (rotation), SIGHUP
// re-reads the revocations file even when no file event came.
func TestServeSignals(t *testing.T) {
	dir := t.TempDir()
	rev := writeFile(t, dir, "revoked.yaml", "revoked: []\n")
	audit := filepath.Join(dir, "audit.log")
	s, d := revocationServe(t, rev, "--audit-log", audit)
	if got := checkReason(t, s, d.token); got != "allowed" {
		t.Fatalf("first check: %s", got)
	}
	eventually(t, "first line written", func() bool { return len(readLinesQuiet(audit)) == 1 && readLinesQuiet(audit)[0] != "" })
	if err := os.Rename(audit, audit+".1"); err != nil {
		t.Fatal(err)
	}
	s.sigs <- syscall.SIGUSR1
	eventually(t, "audit log reopened", func() bool { _, err := os.Stat(audit); return err == nil })
	checkReason(t, s, d.token)
	eventually(t, "second line in the new file", func() bool { return len(readLinesQuiet(audit)) == 1 && readLinesQuiet(audit)[0] != "" })
	if n := len(readLinesQuiet(audit + ".1")); n != 1 {
		t.Errorf("rotated file has %d lines, want 1", n)
	}

	ok := `accessgate_revocations_reloads_total{result="success"}`
	before := s.metric(ok)
	s.sigs <- syscall.SIGHUP
	eventually(t, "SIGHUP re-reads the revocations file", func() bool { return s.metric(ok) > before })
}
