package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a running
// server and the reads of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCLI runs one command in-process and returns its exit code and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	c := newCLI(&out, &errb, func(k string) string { return env[k] })
	code = c.run(context.Background(), args)
	return code, out.String(), errb.String()
}

// demoDir writes the demo configuration (policy, keys, requests) to a test
// folder; it is a valid, realistic policy file with a jwks_file.
func demoDir(t *testing.T) *demoFiles {
	t.Helper()
	d, err := fillDemo(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "accessgate ") || !strings.Contains(out, "go1") {
		t.Errorf("version: code %d, stdout %q; want 0 and \"accessgate VERSION goX\"", code, out)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		give     []string
		wantCode int
	}{
		{give: nil, wantCode: exitUsage},
		{give: []string{"frobnicate"}, wantCode: exitUsage},
		{give: []string{"help"}, wantCode: exitOK},
		{give: []string{"validate", "-h"}, wantCode: exitOK},
		{give: []string{"validate", "--nope"}, wantCode: exitUsage},
		{give: []string{"validate"}, wantCode: exitUsage},
		{give: []string{"validate", "--config", "x", "extra"}, wantCode: exitUsage},
		{give: []string{"check", "--config", "x"}, wantCode: exitUsage},
		{give: []string{"serve", "--log-level", "loud"}, wantCode: exitUsage},
		{give: []string{"serve", "--log-format", "xml"}, wantCode: exitUsage},
	}
	for _, tt := range tests {
		if code, _, _ := runCLI(t, nil, tt.give...); code != tt.wantCode {
			t.Errorf("accessgate %v: exit %d, want %d", tt.give, code, tt.wantCode)
		}
	}
}
