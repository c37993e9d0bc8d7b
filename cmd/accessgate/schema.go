package main

import "github.com/accessgate/accessgate/policies"

// schema implements `accessgate schema`: the policy file's JSON Schema
// (draft 2020-12) on stdout, for editors (contract section 9).
func (c *cli) schema(args []string) int {
	fs := c.flagSet("schema")
	if code, ok := c.parse(fs, args); !ok {
		return code
	}
	c.stdout.Write(policies.Schema())
	return exitOK
}
