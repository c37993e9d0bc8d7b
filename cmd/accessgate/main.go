// Command accessgate is a Cloudflare-Access-style external authorization
// server for Envoy: it answers Envoy's ext_authz v3 checks from a policy
// file. Run `accessgate help` for its subcommands.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(newCLI(os.Stdout, os.Stderr, os.Getenv).run(context.Background(), os.Args[1:]))
}
