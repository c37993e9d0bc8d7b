package main

import (
	"os"
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
