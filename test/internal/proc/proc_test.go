package proc

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStatCPU(t *testing.T) {
	tests := []struct {
		name string
		give string
		want time.Duration
		fail bool
	}{
		{name: "plain", give: "4242 (accessgate) S 1 4242 4242 0 -1 4194560 5000 0 0 0 250 75 0 0 20 0 9 0 100 0 0",
			want: 3250 * time.Millisecond},
		{name: "name with spaces and parentheses", give: "7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0",
			want: 30 * time.Millisecond},
		{name: "cut short", give: "7 (x) R 1 7", fail: true},
		{name: "no name", give: "7 x R", fail: true},
		{name: "not a number", give: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 u s", fail: true},
	}
	for _, tt := range tests {
		got, err := statCPU([]byte(tt.give))
		if (err != nil) != tt.fail || got != tt.want {
			t.Errorf("%s: statCPU = %v, %v; want %v (error: %v)", tt.name, got, err, tt.want, tt.fail)
		}
	}
}

// TestCPUTimeOfThisProcess: the CPU time read from /proc grows while this
// process computes.
func TestCPUTimeOfThisProcess(t *testing.T) {
	before, err := CPUTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for {
		for i := range 1 << 20 {
			x += i
		}
		now, err := CPUTime(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v for 10 s of computing (%d)", before, x)
		}
	}
}

// TestOutputConcurrentTail: writers and readers at once (run with -race),
// and a bounded Output keeps the last bytes.
func TestOutputConcurrentTail(t *testing.T) {
	o := &Output{Max: 8}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				o.Write([]byte("abc"))
				_ = o.String()
			}
		}()
	}
	wg.Wait()
	o.Write([]byte("0123456789"))
	if got := o.String(); got != "23456789" {
		t.Errorf("tail = %q, want the last 8 bytes %q", got, "23456789")
	}
}

// TestStartStop: a process that ignores SIGTERM is killed after the grace
// period; one that exits on it is not; output is kept.
func TestStartStop(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		grace      time.Duration
		wantKilled bool
	}{
		{"exits on SIGTERM", "echo ready; sleep 60", time.Minute, false},
		{"ignores SIGTERM", "trap '' TERM; echo ready; while :; do sleep 1; done", 200 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(tt.name, exec.Command("sh", "-c", tt.script), nil)
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(p.Out.String(), "ready") {
				if time.Now().After(deadline) {
					t.Fatal("no output within 10s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if killed := p.Stop(tt.grace); killed != tt.wantKilled {
				t.Errorf("Stop killed = %v, want %v", killed, tt.wantKilled)
			}
			select {
			case <-p.Done():
			default:
				t.Error("Done not closed after Stop")
			}
		})
	}
}
