package main

import (
	"flag"
	"fmt"

	"github.com/accessgate/accessgate/policies"
)

// validate implements `accessgate validate --config FILE`: "ok" on stdout
// and exit 0 for a valid file, else every problem as FILE:LINE:COL: message
// on stderr and exit 1. It reads jwks_file key sets (they are part of the
// file's validity) but fetches nothing.
func (c *cli) validate(args []string) int {
	var config string
	if code, ok := c.parse(c.validateFlagSet(&config), args); !ok {
		return code
	}
	if config == "" {
		fmt.Fprintln(c.stderr, "accessgate validate: --config is required")
		return exitUsage
	}
	if _, err := policies.Load(config); err != nil {
		c.printLoadError(err)
		return exitFail
	}
	fmt.Fprintln(c.stdout, "ok")
	return exitOK
}

// validateFlagSet is validate's flags.
func (c *cli) validateFlagSet(config *string) *flag.FlagSet {
	fs := c.flagSet("validate")
	fs.StringVar(config, "config", "", "policy file")
	return fs
}
