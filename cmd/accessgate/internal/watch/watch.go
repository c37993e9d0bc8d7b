// Package watch reports when a file's content changes, the way configuration
// files really change on disk.
//
// It watches the file's folder, not the file: editors save by writing a new
// file and renaming it over the old one, and Kubernetes updates a mounted
// ConfigMap by swapping the `..data` symlink, so a watch on the file itself
// would be lost at the first save. Any event in the folder (debounced)
// re-reads the file, and the callback runs only when the content's SHA-256
// differs from the last content seen, so unrelated files in the folder,
// chmods and repeated events cost one read each and nothing more.
//
// A watcher also watches the files the main file references (Also): key
// files, CA bundles, secrets, wherever they live. A change of any of them
// calls the callback with the main file's content, exactly as a change of
// the main file does, so that the caller reloads everything in one place.
package watch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is how long the folder must be quiet before the file is
// re-read: long enough to see an editor's write-and-rename or a ConfigMap
// swap as one change, short enough to feel immediate.
const DefaultDebounce = 100 * time.Millisecond

// Watcher watches one file, and the files it references. Create it with
// New, run it with Run.
type Watcher struct {
	// mu guards dirs and refs: Also may run on any goroutine.
	mu sync.Mutex
	// own are the folders New watches for the main file; dirs every
	// folder watched, for Also to add and drop.
	own, dirs []string
	// refs are the referenced files (Also) and the SHA-256 of the content
	// last seen of each; the zero sum while one was never readable.
	refs map[string][sha256.Size]byte

	path     string
	debounce time.Duration
	log      *zap.Logger
	fsw      *fsnotify.Watcher
	force    chan struct{}
	last     [sha256.Size]byte
	// what names the file in log lines; unreadable, when set, hears of
	// every read that failed (see Describe and OnUnreadable).
	what       string
	unreadable func(error)
}

// Describe sets what the file is called in log lines ("policy file" by
// default; "revocations file", say). Call it before Run.
func (w *Watcher) Describe(what string) { w.what = what }

// OnUnreadable sets f to be called on Run's goroutine whenever the file
// could not be read after a change (deleted, say): the callback of Run is
// not called then, and f lets the caller count it. Call it before Run.
func (w *Watcher) OnUnreadable(f func(error)) { w.unreadable = f }

// New watches path, whose current content is current (so that an event that
// leaves the content as it is calls nothing). The folder of path is watched,
// and so is the folder of its symlink target when that is elsewhere.
func New(path string, current []byte, debounce time.Duration, log *zap.Logger) (*Watcher, error) {
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	if log == nil {
		log = zap.NewNop()
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	dirs := folders(path)
	for _, d := range dirs {
		if err := fsw.Add(d); err != nil {
			fsw.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	return &Watcher{
		own:      dirs,
		dirs:     slices.Clone(dirs),
		refs:     map[string][sha256.Size]byte{},
		path:     path,
		debounce: debounce,
		log:      log,
		fsw:      fsw,
		force:    make(chan struct{}, 1),
		last:     sha256.Sum256(current),
		what:     "policy file",
	}, nil
}

// folders are the folders to watch for path: its own, and its symlink
// target's when that is another one. Kubernetes' ..data lives in the
// file's own folder, but the file's target is inside the timestamped
// revision folder, also watched (until the kubelet deletes it); a symlink
// into another folder altogether (/etc/x.pem -> /run/secrets/x.pem) is
// seen through its target's folder.
func folders(path string) []string {
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		if d := filepath.Dir(real); d != dirs[0] {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Also makes paths the referenced files: from now on a change of the
// content of any of them calls Run's callback with the main file's
// content, as a change of the main file does. The list replaces the last
// one. A path already listed keeps the content last seen (Run reads every
// referenced file before its callback, so a change during the callback is
// seen afterwards); a new one is read now as its starting point. Call Also
// right after parsing what was read; it is safe to call from any goroutine,
// before or while Run runs.
//
// A folder that cannot be watched is logged and skipped: the file is then
// re-read only when its folder is also the main file's, or on Trigger.
func (w *Watcher) Also(paths []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	refs := make(map[string][sha256.Size]byte, len(paths))
	want := slices.Clone(w.own)
	for _, p := range paths {
		if sum, ok := w.refs[p]; ok {
			refs[p] = sum
		} else {
			refs[p], _ = readSum(p)
		}
		for _, d := range folders(p) {
			if !slices.Contains(want, d) {
				want = append(want, d)
			}
		}
	}
	w.refs = refs
	for _, d := range w.dirs {
		if !slices.Contains(want, d) {
			// Already gone when the kubelet deleted an old revision.
			_ = w.fsw.Remove(d)
		}
	}
	var watched []string
	for _, d := range want {
		if !slices.Contains(w.dirs, d) {
			if err := w.fsw.Add(d); err != nil {
				w.log.Warn("cannot watch the folder of a referenced file", zap.String("folder", d), zap.Error(err))
				continue
			}
		}
		watched = append(watched, d)
	}
	w.dirs = watched
}

// readSum reads a referenced file and returns the SHA-256 of its content.
// ok is false when it cannot be read or is empty: an in-place write read
// between its truncate and its write, or a key the kubelet removed for a
// moment. No valid key file, bundle or secret is empty.
func readSum(path string) (sum [sha256.Size]byte, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return sum, false
	}
	return sha256.Sum256(data), true
}

// refsChanged reads every referenced file and reports whether one of them
// differs from the content last seen, which it records. An unreadable or
// empty file is not a change: the next event retries it.
func (w *Watcher) refsChanged() (changed []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p, last := range w.refs {
		sum, ok := readSum(p)
		if !ok {
			w.log.Warn("referenced file unreadable or empty, keeping previous config", zap.String("file", p))
			continue
		}
		if sum != last {
			w.refs[p] = sum
			changed = append(changed, p)
		}
	}
	slices.Sort(changed)
	return changed
}

// Close releases the watch of a Watcher that Run never ran (Run releases
// it when it returns). Closing twice, or after Run, does nothing.
func (w *Watcher) Close() { _ = w.fsw.Close() }

// Trigger asks Run to re-read the file and call its callback even when the
// content is unchanged (SIGHUP). It never blocks; triggers that arrive while
// one is pending are merged.
func (w *Watcher) Trigger() {
	select {
	case w.force <- struct{}{}:
	default:
	}
}

// Run watches until ctx is done, calling changed with the file's new content
// after each change of it or of a referenced file (and after each
// Trigger). changed runs on Run's
// goroutine, so calls never overlap. A file that cannot be read (e.g.
// between a delete and a create) is logged and skipped, and an empty one is
// skipped: the next event retries. Run releases the watch when it returns.
func (w *Watcher) Run(ctx context.Context, changed func(data []byte)) {
	defer w.fsw.Close()
	// Since Go 1.23, Stop and Reset leave no stale tick in timer.C, so the
	// timer is simply re-armed on every event.
	timer := time.NewTimer(w.debounce)
	timer.Stop()
	defer timer.Stop()
	forced := false
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			timer.Reset(w.debounce)
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			w.log.Warn("watch error", zap.String("config", w.path), zap.Error(err))
		case <-w.force:
			forced = true
			timer.Reset(w.debounce)
		case <-timer.C:
			data, err := os.ReadFile(w.path)
			if err != nil {
				w.log.Warn(w.what+" unreadable, keeping previous config", zap.String("config", w.path), zap.Error(err))
				forced = false
				if w.unreadable != nil {
					w.unreadable(err)
				}
				continue
			}
			if len(data) == 0 {
				// An in-place write (truncate, then write) read between its
				// two steps; its write event re-arms the timer. An empty
				// file is never a valid policy, so nothing is lost.
				w.log.Info(w.what+" empty, keeping previous config", zap.String("config", w.path))
				continue
			}
			sum := sha256.Sum256(data)
			refs := w.refsChanged()
			if sum == w.last && len(refs) == 0 && !forced {
				continue
			}
			if len(refs) > 0 {
				w.log.Info("referenced files changed", zap.String("config", w.path), zap.Strings("files", refs))
			}
			w.last, forced = sum, false
			changed(data)
		}
	}
}
