package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The documents whose command lines must match the program's own help.
var docFiles = func() []string {
	files, _ := filepath.Glob("../../docs/*.md")
	return append([]string{"../../README.md"}, files...)
}()

// foreignFlags are flags the documents name that belong to other programs.
var foreignFlags = map[string]string{
	"host-resolver-rules":    "chromium",
	"build":                  "docker compose up",
	"skip-schema-validation": "helm template",
	"bridge":                 "dockerd",
	"iptables":               "dockerd",
}

// helpFlags returns the flags that `accessgate cmd -h` lists, or nil when
// the command takes none.
func helpFlags(t *testing.T, cmd string) []string {
	t.Helper()
	_, _, errOut := runCLI(t, nil, cmd, "-h")
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(errOut, -1) {
		names = append(names, m[1])
	}
	return names
}

// docSnippet is a piece of a document that is code: a code span or a line
// of a fenced block.
type docSnippet struct {
	where string // FILE:LINE
	text  string
	fence bool
}

var (
	spanRE  = regexp.MustCompile("`([^`]+)`")
	cmdRE   = regexp.MustCompile(`(?:^|[\s$(])(?:[\w./-]*/)?accessgate\s+([a-z][a-z-]*)(?:\s|$)`)
	flagRE  = regexp.MustCompile(`(?:^|[\s\[(/|])--([a-z][a-z0-9-]*)`)
	fenceRE = regexp.MustCompile("^\\s*```")
)

// snippets cuts a document into its code: fenced lines (with a line of
// `[--flag ...]` continuing the command of the line before it) and code
// spans of the prose, which may wrap.
func snippets(t *testing.T, file string) []docSnippet {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []docSnippet
	var prose strings.Builder
	proseStart, inFence, lastCmd := 0, false, ""
	flush := func() {
		for _, m := range spanRE.FindAllStringSubmatch(prose.String(), -1) {
			out = append(out, docSnippet{where: file + ":" + strconv.Itoa(proseStart), text: strings.Join(strings.Fields(m[1]), " ")})
		}
		prose.Reset()
	}
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		if fenceRE.MatchString(line) {
			flush()
			inFence, lastCmd = !inFence, ""
			continue
		}
		if !inFence {
			if strings.TrimSpace(line) == "" {
				flush()
			}
			if prose.Len() == 0 {
				proseStart = n
			}
			prose.WriteString(line + "\n")
			continue
		}
		code, _, _ := strings.Cut(line, " #") // a shell comment is prose
		if strings.HasPrefix(strings.TrimSpace(code), "[") && lastCmd != "" {
			code = lastCmd + " " + code
		} else if m := cmdRE.FindStringSubmatch(code); m != nil {
			lastCmd = "accessgate " + m[1]
		} else {
			lastCmd = ""
		}
		out = append(out, docSnippet{where: file + ":" + strconv.Itoa(n), text: code, fence: true})
	}
	flush()
	return out
}

// TestDocsMatchTheCLI: every `accessgate COMMAND --flag` in README.md and
// docs/*.md names a command of the usage text and flags that the command's
// own -h lists; every code span that is a flag names a flag of some
// command (or of a program listed in foreignFlags).
func TestDocsMatchTheCLI(t *testing.T) {
	commands := usageCommands(t)
	flags := map[string][]string{}
	var all []string
	for _, c := range commands {
		flags[c] = helpFlags(t, c)
		all = append(all, flags[c]...)
	}
	checked := 0
	for _, file := range docFiles {
		for _, s := range snippets(t, file) {
			if m := cmdRE.FindStringSubmatchIndex(s.text); m != nil {
				cmd := s.text[m[2]:m[3]]
				if !slices.Contains(commands, cmd) {
					t.Errorf("%s: %q names command %q, which the usage text lacks", s.where, s.text, cmd)
					continue
				}
				rest := s.text[m[1]:]
				if i := strings.IndexAny(rest, "|;&>"); i >= 0 {
					rest = rest[:i] // the next command of a pipeline
				}
				for _, f := range flagRE.FindAllStringSubmatch(rest, -1) {
					checked++
					if !slices.Contains(flags[cmd], f[1]) {
						t.Errorf("%s: %q: accessgate %s has no flag --%s (its -h lists %v)", s.where, s.text, cmd, f[1], flags[cmd])
					}
				}
				continue
			}
			if s.fence || !strings.HasPrefix(s.text, "--") {
				continue
			}
			for _, f := range flagRE.FindAllStringSubmatch(s.text, -1) {
				checked++
				if !slices.Contains(all, f[1]) && foreignFlags[f[1]] == "" {
					t.Errorf("%s: `%s`: no command has a flag --%s", s.where, s.text, f[1])
				}
			}
		}
	}
	if checked < 20 {
		t.Errorf("only %d flag mentions checked: is the parsing broken?", checked)
	}
}

// TestServeFlagTable: the README's flag table lists every serve flag once,
// with its environment variable and its default.
func TestServeFlagTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fs := newCLI(io.Discard, io.Discard, func(string) string { return "" }).serveFlagSet(&serveConfig{})
	row := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)` \\| ([^|]*) \\| ([^|]*) \\|")
	seen := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		name, env, def := m[1], strings.TrimSpace(m[2]), strings.TrimSpace(m[3])
		f := fs.Lookup(name)
		if f == nil {
			t.Errorf("README table: --%s is not a serve flag", name)
			continue
		}
		if seen[name] {
			t.Errorf("README table: --%s listed twice", name)
		}
		seen[name] = true
		if want := "`" + envName(name) + "`"; env != want {
			t.Errorf("README table: --%s environment %q, want %s", name, env, want)
		}
		if got, ok := strings.CutPrefix(def, "`"); ok {
			got, _, _ = strings.Cut(got, "`")
			if got != f.DefValue {
				t.Errorf("README table: --%s default %q, want %q", name, got, f.DefValue)
			}
		} else if f.DefValue != "" {
			t.Errorf("README table: --%s default %q, want `%s`", name, def, f.DefValue)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !seen[f.Name] {
			t.Errorf("README table lacks serve flag --%s", f.Name)
		}
	})
}

// TestDocsStayInTheRepository: no link in the documents leaves the
// repository through a relative path; the documents describe the project
// on their own.
func TestDocsStayInTheRepository(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#]+)`)
	for _, file := range docFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			path := filepath.Join(filepath.Dir(file), target)
			if rel, err := filepath.Rel("../..", path); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s links to %s, outside the repository", file, target)
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s: %v", file, target, err)
			}
		}
		if strings.Contains(string(data), "CONTRACT.md") {
			t.Errorf("%s names CONTRACT.md, which is not in the repository", file)
		}
	}
}
