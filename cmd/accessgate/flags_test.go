package main

import (
	"flag"
	"io"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// commandFlags builds each command's flag set, as the command does, with
// c's environment. Every command of the usage text that takes flags is
// here (TestCommandFlagsCoverUsage).
var commandFlags = map[string]func(c *cli) *flag.FlagSet{
	"serve":    func(c *cli) *flag.FlagSet { return c.serveFlagSet(&serveConfig{}) },
	"validate": func(c *cli) *flag.FlagSet { var s string; return c.validateFlagSet(&s) },
	"check":    func(c *cli) *flag.FlagSet { return c.checkFlagSet(&checkFlags{}) },
	"keygen":   func(c *cli) *flag.FlagSet { var a, o string; return c.keygenFlagSet(&a, &o) },
	"test":     func(c *cli) *flag.FlagSet { var s string; return c.testFlagSet(&s) },
	"import":   func(c *cli) *flag.FlagSet { return c.importFlagSet(&importFlags{}) },
	"revoke":   func(c *cli) *flag.FlagSet { return c.revokeFlagSet(&revokeFlags{}) },
}

// flagValues are two valid values for a flag of the type of def (its
// default), both different from def.
func flagValues(t *testing.T, name string, def any) (fromEnv, fromFlag string) {
	t.Helper()
	switch def.(type) {
	case string:
		return "from-env", "from-flag"
	case int:
		return "7", "8"
	case time.Duration:
		return "7s", "8s"
	case bool:
		// Both differ from each other, so "flag beats variable" means
		// something; the default is false.
		return "true", "false"
	}
	t.Fatalf("--%s: no test values for %T", name, def)
	return "", ""
}

// TestEveryFlagHasItsVariable: for every flag of every command, its
// ACCESSGATE_* variable (envName) sets it when the flag is absent, and the
// flag beats the variable when both are given.
func TestEveryFlagHasItsVariable(t *testing.T) {
	for cmd, build := range commandFlags {
		build(newCLI(io.Discard, io.Discard, func(string) string { return "" })).VisitAll(func(f *flag.Flag) {
			t.Run(cmd+"/"+f.Name, func(t *testing.T) {
				fromEnv, fromFlag := flagValues(t, f.Name, f.Value.(flag.Getter).Get())
				env := map[string]string{envName(f.Name): fromEnv}
				tests := []struct {
					name string
					env  map[string]string
					args []string
					want string
				}{
					{"neither", nil, nil, f.DefValue},
					{"variable only", env, nil, fromEnv},
					{"flag only", nil, []string{"--" + f.Name + "=" + fromFlag}, fromFlag},
					{"flag beats variable", env, []string{"--" + f.Name + "=" + fromFlag}, fromFlag},
				}
				for _, tt := range tests {
					c := newCLI(io.Discard, io.Discard, func(k string) string { return tt.env[k] })
					fs := build(c)
					if _, ok := c.parse(fs, tt.args); !ok {
						t.Fatalf("%s: parse(%q) failed", tt.name, tt.args)
					}
					if got := fs.Lookup(f.Name).Value.String(); got != normalize(tt.want, f) {
						t.Errorf("%s: --%s = %q, want %q", tt.name, f.Name, got, tt.want)
					}
				}
			})
		})
	}
}

// normalize is v as the flag prints it (7s is "7s", a Duration's String).
func normalize(v string, f *flag.Flag) string {
	if _, ok := f.Value.(flag.Getter).Get().(time.Duration); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d.String()
		}
	}
	return v
}

// TestBadVariable: a variable that does not parse as its flag's type is a
// usage error naming the variable.
func TestBadVariable(t *testing.T) {
	tests := []struct{ key, value string }{
		{envName("drain-delay"), "soon"},
		{envName("shutdown-timeout"), "15"},
		{envName("token-cache-size"), "many"},
	}
	for _, tt := range tests {
		code, _, errOut := runCLI(t, map[string]string{tt.key: tt.value}, "serve")
		if code != exitUsage || !strings.Contains(errOut, tt.key) {
			t.Errorf("serve with %s=%q: exit %d, stderr %q; want %d naming the variable", tt.key, tt.value, code, errOut, exitUsage)
		}
	}
}

// usageCommands are the commands the usage text lists (accessgate NAME).
func usageCommands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  accessgate ([a-z]+)`).FindAllStringSubmatch(usage, -1) {
		if !slices.Contains(cmds, m[1]) {
			cmds = append(cmds, m[1])
		}
	}
	if len(cmds) == 0 {
		t.Fatal("no commands in the usage text")
	}
	return cmds
}

// TestCommandFlagsCoverUsage: every command in the usage text runs, and
// those with flags are in commandFlags, so TestEveryFlagHasItsVariable
// sees them.
func TestCommandFlagsCoverUsage(t *testing.T) {
	for _, cmd := range usageCommands(t) {
		code, _, errOut := runCLI(t, nil, cmd, "-h")
		if strings.Contains(errOut, "unknown command") {
			t.Errorf("usage lists %q, which is not a command", cmd)
			continue
		}
		if code == exitOK && strings.Contains(errOut, "  -") {
			if _, ok := commandFlags[cmd]; !ok {
				t.Errorf("command %q has flags but no commandFlags entry", cmd)
			}
		}
	}
}
