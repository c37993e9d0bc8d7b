package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// kubeletVolume writes a folder the way the kubelet's AtomicWriter updates a
// ConfigMap or Secret volume (pkg/volume/util/atomic_writer.go):
//
//	..2026_12_08_01_02_03.1234567/   the payload of one revision (files)
//	..data -> ..2026_12_08_01_02_03.1234567
//	policy.yaml -> ..data/policy.yaml   one symlink per key, made once
//
// An update writes the new revision into a new timestamped folder, points
// a new symlink ..data_tmp at it, renames ..data_tmp over ..data (the one
// atomic step), adds symlinks for new keys, removes those of deleted keys,
// and deletes the old revision's folder.
type kubeletVolume struct {
	t    *testing.T
	dir  string
	mode os.FileMode // 0644 for ConfigMaps; a Secret's defaultMode, e.g. 0440
	keys map[string]bool
	rev  int
}

func newKubeletVolume(t *testing.T, mode os.FileMode, payload map[string]string) *kubeletVolume {
	v := &kubeletVolume{t: t, dir: t.TempDir(), mode: mode, keys: map[string]bool{}}
	v.write(payload)
	return v
}

func (v *kubeletVolume) path(key string) string { return filepath.Join(v.dir, key) }

func (v *kubeletVolume) write(payload map[string]string) {
	t := v.t
	t.Helper()
	v.rev++
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))

	// 1. The new revision, complete, in its own timestamped folder.
	ts, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for key, content := range payload {
		if err := os.WriteFile(filepath.Join(ts, key), []byte(content), v.mode); err != nil {
			t.Fatal(err)
		}
	}
	// 2. The atomic swap: ..data_tmp -> new folder, renamed over ..data.
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	// 3. User-visible symlinks: new keys get one; deleted keys lose theirs.
	for key := range payload {
		if !v.keys[key] {
			if err := os.Symlink(filepath.Join("..data", key), v.path(key)); err != nil {
				t.Fatal(err)
			}
			v.keys[key] = true
		}
	}
	for key := range v.keys {
		if _, ok := payload[key]; !ok {
			if err := os.Remove(v.path(key)); err != nil {
				t.Fatal(err)
			}
			delete(v.keys, key)
		}
	}
	// 4. The old revision goes.
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// layout lists the folder's entries, to check the reproduction itself.
func (v *kubeletVolume) layout() []string {
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		v.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		s := e.Name()
		if e.Type()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(v.path(e.Name()))
			s += " -> " + target
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// TestKubeletConfigMapRevisions: the policy file and the revocations file
// of one ConfigMap volume, each with its own watcher, across several
// kubelet updates. Each watcher reports exactly the revisions that changed
// its file, in order; an update of the other key alone leaves it quiet.
func TestKubeletConfigMapRevisions(t *testing.T) {
	v := newKubeletVolume(t, 0o644, map[string]string{
		"policy.yaml":      "policy v1",
		"revocations.yaml": "revoked v1",
	})
	// The reproduction is the kubelet's layout: two key symlinks through
	// ..data, one timestamped folder.
	if got := v.layout(); len(got) != 4 || got[0][:4] != "..20" || got[1] != "..data -> "+got[0] ||
		got[2] != "policy.yaml -> ..data/policy.yaml" || got[3] != "revocations.yaml -> ..data/revocations.yaml" {
		t.Fatalf("layout %q is not the kubelet's", got)
	}
	_, policy := start(t, v.path("policy.yaml"))
	_, revoked := start(t, v.path("revocations.yaml"))

	for i, step := range []struct {
		policy, revoked string
	}{
		{"policy v2", "revoked v1"}, // the policy alone
		{"policy v2", "revoked v2"}, // the revocations alone
		{"policy v3", "revoked v3"}, // both in one swap
		{"policy v4", "revoked v3"},
	} {
		v.write(map[string]string{"policy.yaml": step.policy, "revocations.yaml": step.revoked})
		// A file whose content did not change reports nothing: the next
		// report on its channel is its next real change (checked on the
		// following steps, whose first report must be the new content).
		if i != 1 {
			if got := next(t, policy); got != step.policy {
				t.Errorf("revision %d: policy watcher reported %q, want %q", v.rev, got, step.policy)
			}
		}
		if i != 0 && i != 3 {
			if got := next(t, revoked); got != step.revoked {
				t.Errorf("revision %d: revocations watcher reported %q, want %q", v.rev, got, step.revoked)
			}
		}
	}
	// Nothing left pending: a last change of each is the next report.
	v.write(map[string]string{"policy.yaml": "policy v5", "revocations.yaml": "revoked v5"})
	if got := next(t, policy); got != "policy v5" {
		t.Errorf("policy watcher reported %q, want policy v5", got)
	}
	if got := next(t, revoked); got != "revoked v5" {
		t.Errorf("revocations watcher reported %q, want revoked v5", got)
	}
}

// TestKubeletSecretKeyRotation: key files of a Secret volume (mode 0440, as
// a Secret's defaultMode), one watcher each. Rotating one key reports that
// key only; removing a key from the Secret (its symlink disappears) reports
// nothing and keeps the last content in force; adding it back reports it.
func TestKubeletSecretKeyRotation(t *testing.T) {
	keys := map[string]string{
		"signing.pem": "signing k1",
		"cookie.key":  "cookie k1",
		"jwks.json":   "jwks k1",
	}
	v := newKubeletVolume(t, 0o440, keys)
	ch := map[string]<-chan string{}
	for k := range keys {
		_, ch[k] = start(t, v.path(k))
	}
	rotate := func(changes map[string]string, drop ...string) {
		t.Helper()
		for k, c := range changes {
			keys[k] = c
		}
		for _, k := range drop {
			delete(keys, k)
		}
		payload := map[string]string{}
		for k, c := range keys {
			payload[k] = c
		}
		v.write(payload)
	}

	rotate(map[string]string{"signing.pem": "signing k2"})
	if got := next(t, ch["signing.pem"]); got != "signing k2" {
		t.Errorf("signing.pem: reported %q, want signing k2", got)
	}
	rotate(map[string]string{"cookie.key": "cookie k2", "jwks.json": "jwks k2"})
	for k, want := range map[string]string{"cookie.key": "cookie k2", "jwks.json": "jwks k2"} {
		if got := next(t, ch[k]); got != want {
			t.Errorf("%s: reported %q, want %q", k, got, want)
		}
	}
	// jwks.json leaves the Secret, then returns with new content: the
	// removal is no change (unreadable is skipped), the return is one.
	rotate(nil, "jwks.json")
	if _, err := os.Stat(v.path("jwks.json")); !os.IsNotExist(err) {
		t.Fatalf("jwks.json still visible after its key was removed: %v", err)
	}
	rotate(map[string]string{"jwks.json": "jwks k3"})
	if got := next(t, ch["jwks.json"]); got != "jwks k3" {
		t.Errorf("jwks.json: first report after removal and return %q, want jwks k3", got)
	}
	// The keys untouched since their last report report their next change
	// first: nothing was reported for the swaps that left them unchanged.
	rotate(map[string]string{"signing.pem": "signing k3", "cookie.key": "cookie k3"})
	for k, want := range map[string]string{"signing.pem": "signing k3", "cookie.key": "cookie k3"} {
		if got := next(t, ch[k]); got != want {
			t.Errorf("%s: reported %q, want %q", k, got, want)
		}
	}
	for k, c := range ch {
		select {
		case s := <-c:
			t.Errorf("%s: unexpected extra report %q", k, s)
		default:
		}
	}
}

// TestKubeletOldRevisionGone: after several swaps only the current
// revision's folder remains, so the reproduction deletes what the kubelet
// deletes (a watcher that held on to the old folder would see nothing).
func TestKubeletOldRevisionGone(t *testing.T) {
	v := newKubeletVolume(t, 0o644, map[string]string{"policy.yaml": "v1"})
	_, ch := start(t, v.path("policy.yaml"))
	for i := 2; i <= 4; i++ {
		want := fmt.Sprintf("v%d", i)
		v.write(map[string]string{"policy.yaml": want})
		if got := next(t, ch); got != want {
			t.Errorf("reported %q, want %q", got, want)
		}
	}
	var revisions int
	for _, e := range v.layout() {
		if len(e) > 4 && e[:4] == "..20" {
			revisions++
		}
	}
	if revisions != 1 {
		t.Errorf("%d revision folders remain, want 1: %v", revisions, v.layout())
	}
}
