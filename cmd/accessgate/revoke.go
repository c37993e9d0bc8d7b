package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// revoke implements `accessgate revoke` (contract §11):
//
//	accessgate revoke --file FILE (--email ADDR | --sub ID) [--before TIME]
//	accessgate revoke --file FILE --prune --older-than DURATION
//
// Every run holds an exclusive flock on FILE.lock while it reads FILE,
// writes the new version to a temporary file in the same folder and renames
// it over FILE: two runs at once never lose an entry, and a reader (every
// replica's watcher) sees the old file or the new one, never half of one.
// A missing FILE is created (mode 0644); a malformed one is refused and
// left untouched.
func (c *cli) revoke(args []string) int {
	var f revokeFlags
	fs := c.revokeFlagSet(&f)
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	file, email, sub, beforeFlag, prune, olderThan := &f.file, &f.email, &f.sub, &f.before, &f.prune, &f.olderThan
	usage := func(msg string) int {
		fmt.Fprintf(c.stderr, "accessgate revoke: %s\n", msg)
		return exitUsage
	}
	switch {
	case *file == "":
		return usage("--file is required")
	case *prune && (*email != "" || *sub != "" || *beforeFlag != ""):
		return usage("--prune takes only --older-than")
	case *prune && *olderThan <= 0:
		return usage("--prune needs --older-than DURATION (a Go duration above 0, e.g. 720h)")
	case !*prune && *olderThan != 0:
		return usage("--older-than goes with --prune")
	case !*prune && (*email == "") == (*sub == ""):
		return usage("give exactly one of --email and --sub")
	}
	now := time.Now().UTC()
	before := now.Truncate(time.Second) // iat has whole seconds: this one is covered too
	if *beforeFlag != "" {
		t, err := time.Parse(time.RFC3339, *beforeFlag)
		if err != nil {
			return usage(fmt.Sprintf("--before %q: want an RFC 3339 time such as 2026-12-08T10:00:00Z", *beforeFlag))
		}
		before = t
	}

	unlock, err := lockFile(*file + ".lock")
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate revoke: %v\n", err)
		return exitFail
	}
	defer unlock()

	entries, mode, err := readRevocations(*file)
	if err != nil {
		c.printLoadError(err)
		fmt.Fprintf(c.stderr, "accessgate revoke: %s left unchanged\n", *file)
		return exitFail
	}
	var msg string
	if *prune {
		cut := now.Add(-*olderThan)
		kept := entries[:0:0]
		for _, e := range entries {
			if !e.Before.Before(cut) {
				kept = append(kept, e)
			}
		}
		msg = fmt.Sprintf("pruned %s with before earlier than %s; %s left", entriesN(len(entries)-len(kept)), cut.Format(time.RFC3339), entriesN(len(kept)))
		entries = kept
	} else {
		entries = append(entries, policies.Revocation{Email: *email, Sub: *sub, Before: before})
		who := "email " + *email
		if *sub != "" {
			who = "sub " + *sub
		}
		msg = fmt.Sprintf("revoked %s: tokens issued at or before %s; %s in %s", who, before.Format(time.RFC3339), entriesN(len(entries)), *file)
	}
	data, err := policies.FormatRevocations(entries)
	if err == nil {
		// The new file must load: this refuses a non-ASCII or malformed
		// email before anything is written.
		_, err = policies.ParseRevocations(*file, data)
	}
	if err != nil {
		c.printLoadError(err)
		fmt.Fprintf(c.stderr, "accessgate revoke: %s left unchanged\n", *file)
		return exitFail
	}
	if err := replaceFile(*file, data, mode); err != nil {
		fmt.Fprintf(c.stderr, "accessgate revoke: %v\n", err)
		return exitFail
	}
	fmt.Fprintln(c.stdout, msg)
	return exitOK
}

// revokeFlags are revoke's flags.
type revokeFlags struct {
	file, email, sub, before string
	prune                    bool
	olderThan                time.Duration
}

// revokeFlagSet is revoke's flags, filling f.
func (c *cli) revokeFlagSet(f *revokeFlags) *flag.FlagSet {
	fs := c.flagSet("revoke")
	fs.StringVar(&f.file, "file", "", "revocations file (the policy file's revocations_file)")
	fs.StringVar(&f.email, "email", "", "revoke the tokens of this email address (ASCII case-insensitive)")
	fs.StringVar(&f.sub, "sub", "", "revoke the tokens of this subject (the token's sub, exact)")
	fs.StringVar(&f.before, "before", "", "revoke tokens issued at or before this RFC 3339 time (default now)")
	fs.BoolVar(&f.prune, "prune", false, "drop entries whose before is older than --older-than")
	fs.DurationVar(&f.olderThan, "older-than", 0, "with --prune: how old an entry's before must be to go; choose at least the longest session duration plus leeway")
	return fs
}

// readRevocations reads the entries of file and its mode; a missing file
// has no entries and gets mode 0644.
func readRevocations(file string) ([]policies.Revocation, os.FileMode, error) {
	st, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0o644, nil
	}
	if err != nil {
		return nil, 0, err
	}
	r, err := policies.LoadRevocations(file)
	if err != nil {
		return nil, 0, err
	}
	return r.Entries, st.Mode().Perm(), nil
}

// lockFile takes an exclusive flock on path (created if needed) and
// returns its release. It waits for another holder.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// replaceFile writes data to a temporary file next to file and renames it
// over file, so that readers never see a partial file.
func replaceFile(file string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(name, file)
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("write %s: %w", file, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; best effort
		d.Close()
	}
	return nil
}

func entriesN(n int) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}
