package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/accessgate/accessgate/cfimport"
)

// importFlags are the flags of `import cloudflare`.
type importFlags struct {
	apps, team, groups, policies, tokens, clientCA string
}

// importFlagSet is import cloudflare's flags, filling f.
func (c *cli) importFlagSet(f *importFlags) *flag.FlagSet {
	fs := c.flagSet("import cloudflare")
	fs.StringVar(&f.apps, "apps", "", "Access applications, as the API returns them (required)")
	fs.StringVar(&f.team, "team-domain", "", "team domain URL, e.g. https://TEAM.cloudflareaccess.com (required)")
	fs.StringVar(&f.groups, "groups", "", "Access groups the policies name")
	fs.StringVar(&f.policies, "policies", "", "reusable Access policies the applications name")
	fs.StringVar(&f.tokens, "service-tokens", "", "service tokens the policies name (id, name, client_id)")
	fs.StringVar(&f.clientCA, "client-ca", "", "PEM bundle of client certificate authorities (certificate and common_name rules map only with it)")
	return fs
}

// importCmd implements `accessgate import cloudflare --apps FILE
// --team-domain URL [--groups FILE] [--policies FILE] [--service-tokens
// FILE] [--client-ca PEM]` (contract section 9): the policy file on stdout,
// the report on stderr, exit 1 when the import would widen access or its
// input cannot be read.
func (c *cli) importCmd(args []string) int {
	var f importFlags
	fs := c.importFlagSet(&f)
	if len(args) == 0 || args[0] != "cloudflare" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return exitOK
		}
		fmt.Fprintln(c.stderr, "accessgate import: want `accessgate import cloudflare --apps FILE --team-domain URL ...`")
		fs.Usage()
		return exitUsage
	}
	if code, ok := c.parse(fs, args[1:]); !ok {
		return code
	}
	apps, team, groups, pols, tokens, clientCA := &f.apps, &f.team, &f.groups, &f.policies, &f.tokens, &f.clientCA
	if *apps == "" || *team == "" {
		fmt.Fprintln(c.stderr, "accessgate import cloudflare: --apps and --team-domain are required")
		return exitUsage
	}
	opts := cfimport.Options{TeamDomain: *team, ClientCA: *clientCA}
	for _, in := range []struct {
		path string
		dst  *[]byte
	}{{*apps, &opts.Apps}, {*groups, &opts.Groups}, {*pols, &opts.Policies}, {*tokens, &opts.ServiceTokens}} {
		if in.path == "" {
			continue
		}
		data, err := os.ReadFile(in.path)
		if err != nil {
			fmt.Fprintf(c.stderr, "accessgate import cloudflare: %v\n", err)
			return exitFail
		}
		*in.dst = data
	}
	res, err := cfimport.Import(opts)
	var ie *cfimport.Error
	if errors.As(err, &ie) {
		for _, line := range ie.Report {
			fmt.Fprintln(c.stderr, line)
		}
		for _, p := range ie.Problems {
			fmt.Fprintf(c.stderr, "accessgate import cloudflare: %s\n", p)
		}
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate import cloudflare: %v\n", err)
		return exitFail
	}
	c.stdout.Write(res.YAML)
	for _, line := range res.Report {
		fmt.Fprintln(c.stderr, line)
	}
	return exitOK
}
