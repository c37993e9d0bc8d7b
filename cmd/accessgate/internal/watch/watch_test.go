package watch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs a Watcher on path and returns the channel of contents it
// reports. The watcher stops when the test ends.
func start(t *testing.T, path string) (*Watcher, <-chan string) {
	t.Helper()
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(path, cur, 10*time.Millisecond, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.Run(ctx, func(data []byte) { ch <- string(data) })
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return w, ch
}

// next waits (to a deadline) for the next reported content.
func next(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported within 10s")
		return ""
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWriteInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, "v1")
	_, ch := start(t, path)
	write(t, path, "v2")
	if got := next(t, ch); got != "v2" {
		t.Errorf("reported %q, want v2", got)
	}
}

// TestRenameReplace is how editors (vim, VS Code) and atomic writers save.
func TestRenameReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, "v1")
	_, ch := start(t, path)
	for _, v := range []string{"v2", "v3"} {
		tmp := filepath.Join(dir, ".policy.yaml.swp")
		write(t, tmp, v)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if got := next(t, ch); got != v {
			t.Errorf("reported %q, want %s", got, v)
		}
	}
}

// TestConfigMapSwap reproduces a Kubernetes ConfigMap volume update: the
// file is a symlink through ..data, and ..data is atomically re-pointed.
func TestConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "policy.yaml"), content)
	}
	mkVersion("..2026_01_01_00_00_00.1", "v1")
	if err := os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "policy.yaml")
	if err := os.Symlink("..data/policy.yaml", path); err != nil {
		t.Fatal(err)
	}
	_, ch := start(t, path)

	mkVersion("..2026_01_01_00_01_00.2", "v2")
	if err := os.Symlink("..2026_01_01_00_01_00.2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2026_01_01_00_00_00.1")); err != nil {
		t.Fatal(err)
	}
	if got := next(t, ch); got != "v2" {
		t.Errorf("reported %q, want v2", got)
	}
}

// TestUnchangedContentIsQuiet: events that leave the content as it was (a
// touch, another file in the folder) report nothing; the first report is
// the next real change.
func TestUnchangedContentIsQuiet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	write(t, path, "v1")
	_, ch := start(t, path)
	write(t, path, "v1")
	write(t, filepath.Join(dir, "other.txt"), "x")
	write(t, path, "v2")
	if got := next(t, ch); got != "v2" {
		t.Errorf("first report %q, want v2 (an unchanged write was reported)", got)
	}
}

// TestTrigger: a forced reload (SIGHUP) reports even unchanged content.
func TestTrigger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, "v1")
	w, ch := start(t, path)
	w.Trigger()
	w.Trigger() // merged with the first, never blocks
	if got := next(t, ch); got != "v1" {
		t.Errorf("reported %q, want v1", got)
	}
}

// TestDeletedThenRecreated: a missing file is skipped, and the watch
// survives to see it come back.
func TestDeletedThenRecreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, path, "v1")
	w, ch := start(t, path)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	w.Trigger()
	write(t, path, "v2")
	if got := next(t, ch); got != "v2" {
		t.Errorf("reported %q, want v2", got)
	}
}

func TestNewMissingFolder(t *testing.T) {
	if _, err := New(filepath.Join(t.TempDir(), "nope", "policy.yaml"), nil, 0, nil); err == nil {
		t.Error("New on a missing folder: err = nil, want an error")
	}
}
