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
package watch

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is how long the folder must be quiet before the file is
// re-read: long enough to see an editor's write-and-rename or a ConfigMap
// swap as one change, short enough to feel immediate.
const DefaultDebounce = 100 * time.Millisecond

// Watcher watches one file. Create it with New, run it with Run.
type Watcher struct {
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
	dirs := []string{filepath.Dir(path)}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		// A symlink into another folder (not Kubernetes' ..data, which
		// lives in the same one): a change there is a change too.
		if d := filepath.Dir(real); d != dirs[0] {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if err := fsw.Add(d); err != nil {
			fsw.Close()
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	return &Watcher{
		path:     path,
		debounce: debounce,
		log:      log,
		fsw:      fsw,
		force:    make(chan struct{}, 1),
		last:     sha256.Sum256(current),
		what:     "policy file",
	}, nil
}

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
// after each change (and after each Trigger). changed runs on Run's
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
			if sum == w.last && !forced {
				continue
			}
			w.last, forced = sum, false
			changed(data)
		}
	}
}
