package policies

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/accessgate/accessgate/internal/yamlnode"
)

// Revocation is one entry of a revocations file: tokens of Email (ASCII
// case-insensitive) or of Sub, issued at or before Before, are refused.
// Exactly one of Email and Sub is set.
type Revocation struct {
	Email  string
	Sub    string
	Before time.Time
}

// Revocations is a compiled revocations file. Like a Set it is never
// modified once built, so the decision core reads it without locks.
type Revocations struct {
	// File is the path it was read from.
	File string
	// Entries in file order, as written (emails not folded).
	Entries []Revocation

	emails map[string]time.Time // lower-cased email → latest before
	subs   map[string]time.Time
	seq    uint64 // load order, see Newer
}

// revocationSeq numbers loads, so that of two Revocations read from the
// same file the later read can be told apart (see Newer).
var revocationSeq atomic.Uint64

// maxRevocationsFile bounds the file read: a million entries fit.
const maxRevocationsFile = 64 << 20

// Len is the number of entries.
func (r *Revocations) Len() int {
	if r == nil {
		return 0
	}
	return len(r.Entries)
}

// Newer reports whether r was read after old (a nil old is older than
// anything). Two goroutines may read the file (a policy reload and the
// revocations watcher); the later read must win.
func (r *Revocations) Newer(old *Revocations) bool {
	return old == nil || (r != nil && r.seq > old.seq)
}

// Revoked reports whether a token is revoked: an entry names its email
// (already lower-cased with LowerASCII by the caller) or its sub, and its
// iat is at or before the entry's before. A token without iat (zero)
// counts as issued before everything. No leeway applies.
func (r *Revocations) Revoked(emailLower, sub string, iat time.Time) bool {
	if r == nil {
		return false
	}
	if emailLower != "" && len(r.emails) > 0 {
		if before, ok := r.emails[emailLower]; ok && (iat.IsZero() || !iat.After(before)) {
			return true
		}
	}
	if sub != "" && len(r.subs) > 0 {
		if before, ok := r.subs[sub]; ok && (iat.IsZero() || !iat.After(before)) {
			return true
		}
	}
	return false
}

// revocationsFile reads `revocations_file` (relative to the policy file's
// folder) at load: a missing or broken file makes the policy file invalid,
// with the problem positioned in the revocations file.
func (p *parser) revocationsFile(v *yaml.Node, s *Set) {
	name, ok := p.nonEmpty(v, "revocations_file")
	if !ok {
		return
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(p.dir, path)
	}
	s.RevocationsFile = path
	r, err := LoadRevocations(path)
	if err != nil {
		var list ErrorList
		if errors.As(err, &list) {
			p.otherErrs = append(p.otherErrs, list...)
		} else {
			p.otherErrs = append(p.otherErrs, &Error{File: path, Msg: err.Error()})
		}
		return
	}
	s.Revocations = r
}

// LoadRevocations reads and compiles a revocations file. A file that
// cannot be read is one Error without position (FILE: message); problems
// inside it are FILE:LINE:COL errors, every one of them.
func LoadRevocations(path string) (*Revocations, error) {
	data, err := readSmallFile(path, maxRevocationsFile)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error() // the path is already the FILE
		}
		return nil, ErrorList{{File: path, Msg: "cannot read revocations file: " + msg}}
	}
	return ParseRevocations(path, data)
}

// ParseRevocations compiles data as the revocations file at file:
//
//	revoked:
//	  - {email: alice@example.com, before: 2026-12-08T10:00:00Z}
//	  - {sub: 7335d417-61da-459d-899c-0a01c76a6d0c, before: 2026-12-08T10:00:00Z}
func ParseRevocations(file string, data []byte) (*Revocations, error) {
	p := &parser{file: file, dir: filepath.Dir(file)}
	doc, ok := p.document(data)
	if !ok {
		// document's "empty policy file" is about the other file.
		for _, e := range p.errs {
			if e.Msg == "empty policy file" {
				e.Msg = "empty revocations file (write `revoked: []` for none)"
			}
		}
		return nil, p.errs.within(yamlnode.Lines(data))
	}
	r := &Revocations{File: file, emails: map[string]time.Time{}, subs: map[string]time.Time{}}
	f, ok := p.mapping(doc, "revocations file", "revoked")
	if ok {
		p.require(doc, f, "revocations file", "revoked")
		if v, ok := f["revoked"]; ok {
			items, _ := p.seq(v.val, "revoked")
			r.Entries = make([]Revocation, 0, len(items))
			for _, it := range items {
				if e, ok := p.revocation(it); ok {
					r.Entries = append(r.Entries, e)
				}
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs.sorted().within(yamlnode.Lines(data))
	}
	for _, e := range r.Entries {
		m, k := r.subs, e.Sub
		if e.Email != "" {
			m, k = r.emails, LowerASCII(e.Email)
		}
		if old, ok := m[k]; !ok || e.Before.After(old) {
			m[k] = e.Before
		}
	}
	r.seq = revocationSeq.Add(1)
	return r, nil
}

// revocation parses one {email|sub, before} entry.
func (p *parser) revocation(n *yaml.Node) (Revocation, bool) {
	const what = "revocation"
	var e Revocation
	f, ok := p.mapping(n, what, "email", "sub", "before")
	if !ok {
		return e, false
	}
	p.require(n, f, what, "before")
	email, hasEmail := f["email"]
	sub, hasSub := f["sub"]
	switch {
	case hasEmail && hasSub:
		p.errorf(sub.key, "set only one of email and sub (email at %s)", p.pos(email.key))
		return e, false
	case !hasEmail && !hasSub:
		p.errorf(p.deref(n), "missing email or sub in revocation")
		return e, false
	}
	good := true
	if hasEmail {
		s, ok := p.nonEmpty(email.val, "email")
		switch {
		case !ok:
			good = false
		case hasNonASCII(s):
			// Only A-Z fold: a non-ASCII address could silently miss the
			// token's spelling and leave the session alive.
			r, _ := firstNonASCII(s)
			p.errorf(email.val, "email %+q has a non-ASCII character (%U): only A-Z fold, so the revocation could silently miss the token's spelling", s, r)
			good = false
		case strings.Count(s, "@") != 1 || strings.HasPrefix(s, "@") || strings.HasSuffix(s, "@"):
			p.errorf(email.val, "malformed email %q: want name@domain", s)
			good = false
		default:
			e.Email = s
		}
	}
	if hasSub {
		if s, ok := p.nonEmpty(sub.val, "sub"); ok {
			e.Sub = s
		} else {
			good = false
		}
	}
	if v, ok := f["before"]; ok {
		s, ok := p.nonEmpty(v.val, "before")
		if !ok {
			return e, false
		}
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			p.errorf(v.val, "malformed before %q: want an RFC 3339 time such as 2026-12-08T10:00:00Z", s)
			return e, false
		}
		e.Before = t
	} else {
		good = false
	}
	return e, good
}

func hasNonASCII(s string) bool {
	_, ok := firstNonASCII(s)
	return ok
}

// revocationYAML is one entry as FormatRevocations writes it.
type revocationYAML struct {
	Email  string `yaml:"email,omitempty"`
	Sub    string `yaml:"sub,omitempty"`
	Before string `yaml:"before"`
}

// FormatRevocations writes entries as a revocations file that
// ParseRevocations reads back to the same entries (times in UTC, RFC 3339).
func FormatRevocations(entries []Revocation) ([]byte, error) {
	doc := struct {
		Revoked []revocationYAML `yaml:"revoked"`
	}{Revoked: make([]revocationYAML, 0, len(entries))}
	for _, e := range entries {
		doc.Revoked = append(doc.Revoked, revocationYAML{Email: e.Email, Sub: e.Sub, Before: e.Before.UTC().Format(time.RFC3339Nano)})
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("format revocations: %w", err)
	}
	const head = "# Revoked sessions: a token of this email or sub issued at or before\n" +
		"# `before` is refused (token_revoked). Written by `accessgate revoke`.\n"
	return append([]byte(head), body...), nil
}
