package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/policytest"
)

// testFlagSet is test's flags, filling config.
func (c *cli) testFlagSet(config *string) *flag.FlagSet {
	fs := c.flagSet("test")
	fs.StringVar(config, "config", "", "policy file")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: accessgate test --config FILE TESTFILE...")
		fs.PrintDefaults()
	}
	return fs
}

// test implements `accessgate test --config FILE TESTFILE...` (contract
// section 9): every test of every file, one `ok NAME` or `FAIL NAME` line
// each (a failure followed by its differing fields), then `N passed, M
// failed`. Exit 1 when a test fails or a file is invalid; an invalid file's
// problems go to stderr as FILE:LINE:COL: message and its tests do not run.
func (c *cli) test(ctx context.Context, args []string) int {
	config := new(string)
	fs := c.testFlagSet(config)
	// The test files follow the flags: flag.Parse stops at the first, and
	// the flags before it are parsed again with their variables.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	files := fs.Args()
	if code, ok := c.parse(c.testFlagSet(config), args[:len(args)-len(files)]); !ok {
		return code
	}
	if *config == "" || len(files) == 0 {
		fmt.Fprintln(c.stderr, "accessgate test: --config and at least one test file are required")
		return exitUsage
	}
	set, err := policies.Load(*config)
	if err != nil {
		c.printLoadError(err)
		return exitFail
	}
	runner, err := policytest.New(set)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate test: %v\n", err)
		return exitFail
	}
	passed, failed, invalid := 0, 0, false
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintf(c.stderr, "accessgate test: %v\n", err)
			invalid = true
			continue
		}
		file, err := policytest.Parse(path, data, set)
		if err != nil {
			c.printLoadError(err)
			invalid = true
			continue
		}
		for _, t := range file.Tests {
			res, err := runner.Run(ctx, t)
			if err != nil {
				res.Diffs = append(res.Diffs, "error: "+err.Error())
			}
			if res.Passed() {
				passed++
				fmt.Fprintf(c.stdout, "ok %s\n", t.Name)
				continue
			}
			failed++
			fmt.Fprintf(c.stdout, "FAIL %s\n", t.Name)
			for _, d := range res.Diffs {
				fmt.Fprintln(c.stdout, d)
			}
		}
	}
	fmt.Fprintf(c.stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 || invalid {
		return exitFail
	}
	return exitOK
}
