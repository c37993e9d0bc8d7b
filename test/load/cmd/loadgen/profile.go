package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/accessgate/accessgate/test/internal/proc"
)

// profiler records a server's CPU profile with Linux perf (`perf record
// -g`) over its c=50 run, into dir/NAME.perf.data, when -perf DIR is set.
// It profiles the process as it runs, the shipped binary included, without
// building anything into it; read one with
//
//	perf report -i bin/perf/accessgate.perf.data --no-children --sort symbol
type profiler struct {
	dir string // "" when off
}

// start begins recording pid; stop ends the recording and waits for perf to
// write its file.
func (p profiler) start(name string, pid int) (stop func() error, err error) {
	if p.dir == "" {
		return func() error { return nil }, nil
	}
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("-perf: %w (apt-get install linux-perf)", err)
	}
	out := filepath.Join(p.dir, name+".perf.data")
	cmd := exec.Command(bin, "record", "-g", "-F", "999", "-p", strconv.Itoa(pid), "-o", out)
	pr, err := proc.Start("perf "+name, cmd, &proc.Output{Max: 16 << 10})
	if err != nil {
		return nil, err
	}
	// perf needs a moment to attach to every thread.
	time.Sleep(200 * time.Millisecond)
	return func() error {
		_ = pr.Signal(syscall.SIGINT)
		select {
		case <-pr.Done():
		case <-time.After(30 * time.Second):
			pr.Stop(time.Second)
			return fmt.Errorf("perf %s did not stop: %s", name, pr.Out)
		}
		fmt.Printf("profile of %s: %s\n", name, out)
		return nil
	}, nil
}
