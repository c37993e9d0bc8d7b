package watch

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// startWith is start with refs listed by Also before Run.
func startWith(t *testing.T, path string, refs ...string) (*Watcher, <-chan string) {
	t.Helper()
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(path, cur, 10*time.Millisecond, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Also(refs)
	return w, run(t, w)
}

// run runs w until the test ends, reporting each callback's content on the
// returned channel.
func run(t *testing.T, w *Watcher) <-chan string {
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
	return ch
}

// TestReferencedFileChanges: a file listed with Also, in a folder of its
// own, reports the main file's content whenever its own content changes,
// however it is written; writes that leave it unchanged and other files of
// its folder report nothing.
func TestReferencedFileChanges(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, policy, "policy v1")
	keysDir := t.TempDir()
	jwks := filepath.Join(keysDir, "jwks.json")
	write(t, jwks, "keys v1")
	_, ch := startWith(t, policy, jwks)

	for _, step := range []struct {
		name  string
		write func(content string)
	}{
		{"in place", func(c string) { write(t, jwks, c) }},
		{"rename over", func(c string) {
			tmp := filepath.Join(keysDir, ".jwks.json.tmp")
			write(t, tmp, c)
			if err := os.Rename(tmp, jwks); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		// Quiet first: the same content again, and a neighbour.
		step.write(readString(t, jwks))
		write(t, filepath.Join(keysDir, "other.json"), step.name)
		step.write("keys " + step.name)
		if got := next(t, ch); got != "policy v1" {
			t.Errorf("%s: reported %q, want the policy file's content", step.name, got)
		}
	}
	// The policy file itself still reports its own changes.
	write(t, policy, "policy v2")
	if got := next(t, ch); got != "policy v2" {
		t.Errorf("policy change: reported %q, want policy v2", got)
	}
}

// TestReferencedListReplaced: Also replaces the list. A file dropped from
// it is no longer read (its folder no longer watched); a file added is,
// from the content it had when added.
func TestReferencedListReplaced(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	write(t, policy, "policy")
	oldDir, newDir := t.TempDir(), t.TempDir()
	oldFile, newFile := filepath.Join(oldDir, "ca.pem"), filepath.Join(newDir, "ca.pem")
	write(t, oldFile, "old ca")
	write(t, newFile, "new ca")

	w, err := New(policy, []byte("policy"), 10*time.Millisecond, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Also([]string{oldFile})
	if !slices.Contains(w.dirs, oldDir) {
		t.Fatalf("watched folders %q lack %s", w.dirs, oldDir)
	}
	write(t, oldFile, "old ca v2")
	if got := w.refsChanged(); !slices.Equal(got, []string{oldFile}) {
		t.Fatalf("changed %q, want %s", got, oldFile)
	}

	w.Also([]string{newFile})
	if slices.Contains(w.dirs, oldDir) || !slices.Contains(w.dirs, newDir) {
		t.Errorf("watched folders %q: want %s and not %s", w.dirs, newDir, oldDir)
	}
	write(t, oldFile, "old ca v3")
	if got := w.refsChanged(); len(got) != 0 {
		t.Errorf("changed %q after %s was dropped, want none", got, oldFile)
	}
	// The added file is watched for real: Run reports its next change.
	ch := run(t, w)
	write(t, newFile, "new ca v2")
	if got := next(t, ch); got != "policy" {
		t.Errorf("reported %q, want policy", got)
	}
}

// TestReferencedFileGoneAndBack: a referenced file that disappears or is
// emptied (a key removed from a Secret, an in-place write caught between
// truncate and write) is no change; it reports when it comes back with
// new content, and not when it comes back as it was.
func TestReferencedFileGoneAndBack(t *testing.T) {
	dir := t.TempDir()
	policy, key := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "signing.pem")
	write(t, policy, "policy")
	write(t, key, "key v1")
	w, ch := startWith(t, policy, key)
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	w.Trigger() // a forced report, to order the steps: the removal is quiet
	if got := next(t, ch); got != "policy" {
		t.Fatalf("reported %q, want policy", got)
	}
	write(t, key, "")
	write(t, key, "key v1") // back as it was: quiet
	write(t, key, "key v2") // a change
	if got := next(t, ch); got != "policy" {
		t.Fatalf("reported %q, want policy", got)
	}
	select {
	case s := <-ch:
		t.Errorf("extra report %q", s)
	default:
	}
}

// TestKubeletReferencedKeys: the policy file in a ConfigMap volume and its
// key files in a Secret volume, both updated the way the kubelet does. A
// rotation of the Secret alone reports the (unchanged) policy file.
func TestKubeletReferencedKeys(t *testing.T) {
	cm := newKubeletVolume(t, 0o644, map[string]string{"policy.yaml": "policy v1"})
	sec := newKubeletVolume(t, 0o440, map[string]string{"jwks.json": "jwks k1", "ca.pem": "ca 1"})
	_, ch := startWith(t, cm.path("policy.yaml"), sec.path("jwks.json"), sec.path("ca.pem"))

	sec.write(map[string]string{"jwks.json": "jwks k2", "ca.pem": "ca 1"})
	if got := next(t, ch); got != "policy v1" {
		t.Errorf("key rotation: reported %q, want policy v1", got)
	}
	sec.write(map[string]string{"jwks.json": "jwks k2", "ca.pem": "ca 2"})
	if got := next(t, ch); got != "policy v1" {
		t.Errorf("CA swap: reported %q, want policy v1", got)
	}
	cm.write(map[string]string{"policy.yaml": "policy v2"})
	if got := next(t, ch); got != "policy v2" {
		t.Errorf("policy update: reported %q, want policy v2", got)
	}
	// A Secret update that changes nothing reports nothing: the next
	// report is the next real change.
	sec.write(map[string]string{"jwks.json": "jwks k2", "ca.pem": "ca 2"})
	sec.write(map[string]string{"jwks.json": "jwks k3", "ca.pem": "ca 2"})
	if got := next(t, ch); got != "policy v2" {
		t.Errorf("second rotation: reported %q, want policy v2", got)
	}
	select {
	case s := <-ch:
		t.Errorf("extra report %q", s)
	default:
	}
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAlsoWhileRunning: Also may come from any goroutine while Run reads
// the referenced files (serve reloads from more than one); under -race
// this fails if they share state unguarded. The last list wins.
func TestAlsoWhileRunning(t *testing.T) {
	dir := t.TempDir()
	policy, a, b := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "a.pem"), filepath.Join(dir, "b.pem")
	write(t, policy, "policy")
	write(t, a, "a1")
	write(t, b, "b1")
	w, ch := startWith(t, policy, a)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				w.Also([]string{b})
				return
			default:
				w.Also([][]string{{a}, {a, b}}[i%2])
			}
		}
	}()
	// Each forced report makes Run read the referenced files, while the
	// goroutine above keeps changing the list.
	for range 10 {
		w.Trigger()
		if got := next(t, ch); got != "policy" {
			t.Fatalf("reported %q, want policy", got)
		}
	}
	close(stop)
	<-done
	write(t, b, "b2")
	if got := next(t, ch); got != "policy" {
		t.Errorf("reported %q, want policy", got)
	}
}
