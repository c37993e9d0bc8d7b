package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// TestReloadUnderLoad: 100 reloads through the real file watcher, valid and
// invalid alternating, each written as editors save (a new file renamed
// over the old), while 8 goroutines send checks. The two valid versions
// answer the probe (alice, allowed by the demo policy) differently: A
// forwards it, B blocks alice. No check fails, every answer is A's or B's
// byte for byte, each reload is in force (or refused) once counted, and
// goroutines and heap come back down afterwards.
func TestReloadUnderLoad(t *testing.T) {
	const (
		reloads = 100
		workers = 8
	)
	baseGoroutines := runtime.NumGoroutine()

	d := demoDir(t)
	a, err := os.ReadFile(d.policy)
	if err != nil {
		t.Fatal(err)
	}
	const blockLine = "include: [{email_domain: [contractor.example.com]}]"
	if !strings.Contains(string(a), blockLine) {
		t.Fatalf("demo policy lacks %q", blockLine)
	}
	versionA := string(a)
	versionB := strings.Replace(versionA, blockLine, "include: [{email_domain: [contractor.example.com]}, {email: [alice@example.com]}]", 1)
	invalid := []string{
		versionA + "colour: blue\n", // unknown key
		versionB + "issuers: [\n",   // YAML syntax
		strings.Replace(versionA, "issuer: demo\n", "issuer: nobody\n", 1), // undefined issuer
		strings.Replace(versionB, "max_age: 600", "max_age: 99999", 1),     // out of range
		versionA + "default_action: allow\n",                               // duplicate key
	}
	dir := filepath.Dir(d.policy)
	// save replaces the policy file the way editors do: write a new file,
	// rename it over the old one.
	save := func(n int, content string) {
		t.Helper()
		tmp := filepath.Join(dir, ".policy.yaml.tmp"+strconv.Itoa(n))
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, d.policy); err != nil {
			t.Fatal(err)
		}
	}

	s := startServe(t, loopbackEnv(nil), "--config", d.policy)
	conn, err := grpc.NewClient(s.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client := authv3.NewAuthorizationClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req := envoyRequest(d.token)
	// answer is a response's exact bytes, to compare answers whole.
	answer := func(resp *authv3.CheckResponse) string {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(resp)
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	probe := func() string {
		t.Helper()
		resp, err := client.Check(ctx, req)
		if err != nil {
			t.Fatalf("probe Check: %v", err)
		}
		return answer(resp)
	}
	answerA := probe()

	// Warm up, then take the heap baseline with the server running.
	for range 100 {
		probe()
	}
	heapBefore := heapAfterGC()

	var (
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		checks  atomic.Int64
		failed  atomic.Int64
		mu      sync.Mutex
		answers = map[string]int{}
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]int{}
			defer func() {
				mu.Lock()
				for k, n := range seen {
					answers[k] += n
				}
				mu.Unlock()
			}()
			// Bounded in count and by ctx as well as by stop.
			for range 1_000_000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Check(ctx, req)
				checks.Add(1)
				if err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("Check during reloads: %v", err)
					}
					continue
				}
				seen[answer(resp)]++
			}
		}()
	}

	loaded, refused := s.metric(reloadsOK), s.metric(reloadsFailed)
	inForce, answerB := "A", ""
	for i := range reloads {
		// A, invalid, B, invalid, A, ...: each version differs from the
		// one before, so that each is a change the watcher reports.
		switch i % 4 {
		case 0:
			save(i, versionB)
			inForce = "B"
			loaded++
		case 2:
			save(i, versionA)
			inForce = "A"
			loaded++
		default:
			save(i, invalid[(i/2)%len(invalid)])
			refused++
		}
		waitReloads(t, s, loaded, refused)
		got := probe()
		if answerB == "" && inForce == "B" {
			answerB = got
			if answerB == answerA {
				t.Fatal("versions A and B give the same answer; the test would prove nothing")
			}
		}
		if want := map[string]string{"A": answerA, "B": answerB}[inForce]; got != want {
			t.Fatalf("after reload %d: the probe got a different answer than version %s's", i, inForce)
		}
	}
	close(stop)
	wg.Wait()
	if ok, bad := s.metric(reloadsOK), s.metric(reloadsFailed); ok != loaded || bad != refused {
		t.Errorf("reload metrics: %v loaded, %v refused; want %v and %v", ok, bad, loaded, refused)
	}

	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d checks failed during the reloads", n, checks.Load())
	}
	for k, n := range answers {
		if k != answerA && k != answerB {
			t.Errorf("%d answers were neither version A's nor version B's", n)
		}
	}
	t.Logf("%d reloads (%v loaded, %v refused in all), %d concurrent checks: %d answered as A, %d as B",
		reloads, loaded, refused, checks.Load(), answers[answerA], answers[answerB])
	if answers[answerA] == 0 || answers[answerB] == 0 {
		t.Errorf("answers A %d, B %d: both versions should have answered some checks", answers[answerA], answers[answerB])
	}
	// The last version saved is invalid (i = 99), so the last valid one,
	// A (i = 98), is in force.
	if inForce != "A" || probe() != answerA {
		t.Errorf("after the run: version %s should be in force", inForce)
	}

	heapAfter := heapAfterGC()
	t.Logf("heap in use after GC: %d KiB before the reloads, %d KiB after", heapBefore>>10, heapAfter>>10)
	// Generous: the race detector's shadow state, gRPC buffers and the
	// test's own maps live in this heap too; the figures are logged.
	if heapAfter > 2*heapBefore+64<<20 {
		t.Errorf("heap grew from %d to %d bytes over %d reloads", heapBefore, heapAfter, reloads)
	}

	conn.Close()
	if code := s.stop(); code != 0 {
		t.Errorf("serve exit = %d, want 0", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for n := runtime.NumGoroutine(); n > baseGoroutines; n = runtime.NumGoroutine() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after the server stopped, %d before it started", n, baseGoroutines)
		}
		<-tick.C
	}
}

// waitReloads polls until serve has loaded and refused that many policy
// files in all (counting the load at start). It reads the log lines each
// reload ends with, which come after the metric is counted and the new set
// is live: a scrape of /metrics takes some 20 ms under -race, a fifth of the
// watcher's debounce, and 100 reloads would spend seconds scraping. The
// metric itself is checked once the reloads are done.
func waitReloads(t *testing.T, s *served, loaded, refused float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		logs := s.stderr.String()
		// The load at start logs "accessgate started" instead.
		ok := 1 + strings.Count(logs, `"msg":"config reloaded"`)
		bad := strings.Count(logs, `"msg":"keeping previous config"`)
		if float64(ok) == loaded && float64(bad) == refused {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %v loads and %v refusals, logged %d and %d", loaded, refused, ok, bad)
		}
		<-tick.C
	}
}

// heapAfterGC returns the bytes of live heap objects after a collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
