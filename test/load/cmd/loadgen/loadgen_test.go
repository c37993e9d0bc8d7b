package main

import (
	"net/http"
	"os"
	"os/exec"
	"slices"
	"testing"
)

// TestMain lets the test binary stand in for loadgen when it re-executes
// itself as `serve-empty` (the empty server, also with -answer) or
// `serve-http` (the net/http baseline).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "serve-empty" {
		if err := serveEmpty(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == "serve-http" {
		if err := serveHTTPBaseline(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestCompareSmoke runs the whole comparison briefly: it builds and starts
// the accessgate binary (small and big policy, gRPC and the HTTP
// endpoints), the empty server (empty and with accessgate's answer) and
// the net/http baseline, loads each, reads their CPU time and RSS from /proc and prints the table. Under
// -race it also checks the tool's own concurrency (output buffers, RSS
// sampler). It measures nothing worth reading: the empty server is this
// test binary, built with -race when the test is.
func TestCompareSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	err := compare([]string{"-duration", "200ms", "-warmup", "50ms", "-apps", "20", "-cache", "20", "-envoy", "off"})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPinned: -server-cpus wraps a server's command in taskset, the
// program and its arguments kept in order; without it the command is
// unchanged.
func TestPinned(t *testing.T) {
	defer func(old string) { pinCPUs = old }(pinCPUs)
	pinCPUs = ""
	cmd := exec.Command("/bin/accessgate", "serve", "--config", "p.yaml")
	if got := pinned(cmd); got != cmd {
		t.Errorf("pinned without -server-cpus changed the command: %v", got.Args)
	}
	pinCPUs = "0"
	got := pinned(cmd).Args
	want := []string{"taskset", "-c", "0", "/bin/accessgate", "serve", "--config", "p.yaml"}
	if !slices.Equal(got, want) {
		t.Errorf("pinned args = %q, want %q", got, want)
	}
}

// TestSameHeaders: the net/http baseline must answer with accessgate's
// headers exactly (values in any order, nothing more or less); Date and
// Content-Length, which net/http writes itself, are not compared.
func TestSameHeaders(t *testing.T) {
	a := answerHeaders(http.Header{"Vary": {"Origin", "Accept"}, "X-A": {"1"}, "Date": {"now"}, "Content-Length": {"0"}})
	tests := []struct {
		name string
		b    http.Header
		want bool
	}{
		{"same, values reordered", http.Header{"Vary": {"Accept", "Origin"}, "X-A": {"1"}}, true},
		{"a value differs", http.Header{"Vary": {"Origin", "Accept"}, "X-A": {"2"}}, false},
		{"a header missing", http.Header{"Vary": {"Origin", "Accept"}}, false},
		{"a header more", http.Header{"Vary": {"Origin", "Accept"}, "X-A": {"1"}, "X-B": {"1"}}, false},
		{"a value more", http.Header{"Vary": {"Origin", "Accept", "Cookie"}, "X-A": {"1"}}, false},
	}
	for _, tt := range tests {
		if got := sameHeaders(a, tt.b); got != tt.want {
			t.Errorf("%s: sameHeaders = %v, want %v", tt.name, got, tt.want)
		}
	}
}
