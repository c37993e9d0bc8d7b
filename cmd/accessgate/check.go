package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
	"github.com/accessgate/accessgate/policytest"
)

// requestFile is the REQUEST.json of `check --request`.
type requestFile = policytest.Request

// readRequest parses a REQUEST.json (contract section 6): one HTTP request
// as Envoy would describe it. Unknown fields are ignored; defaults are
// policytest.Request's.
func readRequest(data []byte) (*authz.Request, error) {
	var f policytest.Request
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return f.Authz()
}

// decisionJSON is what `check` prints; `test` compares the same fields.
type decisionJSON = policytest.Output

// explain renders d as check's JSON.
func explain(d *authz.Decision) []byte {
	return policytest.Explain(d).JSON()
}

// check implements `accessgate check --config FILE --request REQUEST.json`:
// it decides one request exactly as serve would and prints the decision.
// Keys of jwks_url issuers are fetched first.
func (c *cli) check(ctx context.Context, args []string) int {
	var f checkFlags
	if code, ok := c.parse(c.checkFlagSet(&f), args); !ok {
		return code
	}
	config, request := &f.config, &f.request
	if *config == "" || *request == "" {
		fmt.Fprintln(c.stderr, "accessgate check: --config and --request are required")
		return exitUsage
	}
	set, err := policies.Load(*config)
	if err != nil {
		c.printLoadError(err)
		return exitFail
	}
	var data []byte
	if *request == "-" {
		data, err = io.ReadAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*request)
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate check: read request: %v\n", err)
		return exitFail
	}
	r, err := readRequest(data)
	if err != nil {
		fmt.Fprintf(c.stderr, "accessgate check: %s: %v\n", *request, err)
		return exitFail
	}
	log, _ := newLogger("warn", "console", c.stderr)
	km := jwks.New(log.Named("keys"))
	defer km.Close()
	if missing := syncKeys(ctx, km, set); len(missing) > 0 {
		log.Warn("issuers without usable keys: their tokens cannot be verified", zap.Strings("issuers", missing))
	}
	e := authz.New(km)
	e.Swap(set)
	d := e.Decide(ctx, r)
	c.stdout.Write(explain(&d))
	return exitOK
}

// checkFlags is check's command line.
type checkFlags struct{ config, request string }

// checkFlagSet is check's flags, filling f.
func (c *cli) checkFlagSet(f *checkFlags) *flag.FlagSet {
	fs := c.flagSet("check")
	fs.StringVar(&f.config, "config", "", "policy file")
	fs.StringVar(&f.request, "request", "", "request to decide, as JSON: {method, scheme, host, path, headers, source_ip}; - reads stdin")
	return fs
}

// printLoadError prints a policy file's problems to stderr, one
// FILE:LINE:COL: message per line, or the read error.
func (c *cli) printLoadError(err error) {
	var list policies.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(c.stderr, e.Error())
		}
		return
	}
	fmt.Fprintf(c.stderr, "accessgate: %v\n", err)
}
