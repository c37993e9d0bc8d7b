package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // invalid config, unreadable input, failure to serve
	exitUsage = 2 // bad command line
)

// Defaults (contract section 1).
const (
	defaultGRPCAddr        = "127.0.0.1:9001"
	defaultHTTPAddr        = "127.0.0.1:9090"
	defaultDrainDelay      = 5 * time.Second
	defaultShutdownTimeout = 15 * time.Second
)

const usage = `accessgate: a Cloudflare-Access-style ext_authz gate for Envoy

Usage:
  accessgate serve    [--config FILE] [--grpc-addr ADDR] [--http-addr ADDR]
                      [--auth-addr ADDR] [--login-addr ADDR]
                      [--tls-cert FILE --tls-key FILE [--client-ca FILE]]
                      [--http-tls-cert FILE --http-tls-key FILE]
                      [--log-level LEVEL] [--log-format json|console]
                      [--decision-log-level debug|info] [--token-cache-size N]
                      [--drain-delay DURATION] [--shutdown-timeout DURATION]
                      [--audit-log FILE|-]
  accessgate validate --config FILE
  accessgate check    --config FILE --request REQUEST.json
  accessgate test     --config FILE TESTFILE...
  accessgate schema
  accessgate import   cloudflare --apps FILE --team-domain URL [--groups FILE]
                      [--policies FILE] [--service-tokens FILE] [--client-ca PEM]
  accessgate keygen   [--alg ES256|RS256] --out FILE
  accessgate revoke   --file FILE (--email ADDR | --sub ID) [--before TIME]
  accessgate revoke   --file FILE --prune --older-than DURATION
  accessgate version

serve without --config runs the built-in demo (not for production).
--tls-cert and --tls-key serve the gRPC listener over TLS; --client-ca
also requires client certificates signed by that CA (mutual TLS).
Certificate and CA files are re-read when they change.
--auth-addr serves the HTTP authorization endpoints (/auth/envoy/,
/auth/forward, /auth/nginx, /auth/nginx/render, /auth/answer/) for
proxies without ext_authz gRPC; the TLS flags apply to it too.
On SIGTERM or SIGINT, serve reports not ready (gRPC health NOT_SERVING,
/readyz 503) and keeps answering for --drain-delay, then stops accepting
and finishes in-flight checks within --shutdown-timeout.
Every flag may also come from the environment variable ACCESSGATE_ and
its name in capitals with - as _ (--grpc-addr: ACCESSGATE_GRPC_ADDR).
A flag beats its variable.
Run 'accessgate COMMAND -h' for a command's flags.
`

// cli is the program with its outside world injected, so that tests run
// the real commands in-process.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	// signals, when set, replaces the process's SIGHUP/SIGINT/SIGTERM
	// (tests send on it).
	signals chan os.Signal
	// started, when set, is called once serve listens, with the address
	// of each listener by name ("grpc", "http").
	started func(addrs map[string]string)
}

func newCLI(stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{stdout: stdout, stderr: stderr, getenv: getenv}
}

// run runs the command line args (without the program name) and returns the
// exit code.
func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		return c.serve(ctx, rest)
	case "validate":
		return c.validate(rest)
	case "check":
		return c.check(ctx, rest)
	case "test":
		return c.test(ctx, rest)
	case "schema":
		return c.schema(rest)
	case "import":
		return c.importCmd(rest)
	case "keygen":
		return c.keygen(rest)
	case "revoke":
		return c.revoke(rest)
	case "version", "--version", "-version":
		fmt.Fprintln(c.stdout, versionString())
		return exitOK
	case "help", "-h", "--help", "-help":
		fmt.Fprint(c.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(c.stderr, "accessgate: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// flagSet returns a FlagSet for a subcommand that reports to stderr.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("accessgate "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "Every flag may also be set as ACCESSGATE_<FLAG> (--config: ACCESSGATE_CONFIG); a flag beats its variable.")
	}
	return fs
}

// parse parses args; ok is false when the command should stop with code.
// A flag not given on the command line takes its environment variable
// (envName), when that is set and not empty: a flag beats its variable.
func (c *cli) parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitUsage, false
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		key := envName(f.Name)
		v := c.getenv(key)
		if given[f.Name] || v == "" || bad != nil {
			return
		}
		if err := f.Value.Set(v); err != nil {
			bad = fmt.Errorf("%s=%q: invalid value for --%s: %w", key, v, f.Name, err)
		}
	})
	if bad != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), bad)
		return exitUsage, false
	}
	return exitOK, true
}

// envName is the environment variable of a flag: ACCESSGATE_ and the
// flag's name in capitals with - as _ (grpc-addr: ACCESSGATE_GRPC_ADDR).
func envName(flagName string) string {
	return "ACCESSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
