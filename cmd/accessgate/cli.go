package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // invalid config, unreadable input, failure to serve
	exitUsage = 2 // bad command line
)

// Environment variables that supply a flag's value when the flag is not
// given (a flag always wins).
const (
	envConfig    = "ACCESSGATE_CONFIG"
	envGRPCAddr  = "ACCESSGATE_GRPC_ADDR"
	envHTTPAddr  = "ACCESSGATE_HTTP_ADDR"
	envLogLevel  = "ACCESSGATE_LOG_LEVEL"
	envLogFormat = "ACCESSGATE_LOG_FORMAT"

	envTLSCert          = "ACCESSGATE_TLS_CERT"
	envTLSKey           = "ACCESSGATE_TLS_KEY"
	envClientCA         = "ACCESSGATE_CLIENT_CA"
	envHTTPTLSCert      = "ACCESSGATE_HTTP_TLS_CERT"
	envHTTPTLSKey       = "ACCESSGATE_HTTP_TLS_KEY"
	envTokenCacheSize   = "ACCESSGATE_TOKEN_CACHE_SIZE"
	envDecisionLogLevel = "ACCESSGATE_DECISION_LOG_LEVEL"
)

// Defaults (contract section 1).
const (
	defaultGRPCAddr        = "127.0.0.1:9001"
	defaultHTTPAddr        = "127.0.0.1:9090"
	defaultShutdownTimeout = 15 * time.Second
)

const usage = `accessgate: a Cloudflare-Access-style ext_authz gate for Envoy

Usage:
  accessgate serve    [--config FILE] [--grpc-addr ADDR] [--http-addr ADDR]
                      [--login-addr ADDR]
                      [--tls-cert FILE --tls-key FILE [--client-ca FILE]]
                      [--http-tls-cert FILE --http-tls-key FILE]
                      [--log-level LEVEL] [--log-format json|console]
                      [--decision-log-level debug|info] [--token-cache-size N]
  accessgate validate --config FILE
  accessgate check    --config FILE --request REQUEST.json
  accessgate keygen   [--alg ES256|RS256] --out FILE
  accessgate version

serve without --config runs the built-in demo (not for production).
--tls-cert and --tls-key serve the gRPC listener over TLS; --client-ca
also requires client certificates signed by that CA (mutual TLS).
Certificate and CA files are re-read when they change.
Flags may also come from the environment: ACCESSGATE_CONFIG,
ACCESSGATE_GRPC_ADDR, ACCESSGATE_HTTP_ADDR, ACCESSGATE_TLS_CERT,
ACCESSGATE_TLS_KEY, ACCESSGATE_CLIENT_CA, ACCESSGATE_HTTP_TLS_CERT,
ACCESSGATE_HTTP_TLS_KEY, ACCESSGATE_LOG_LEVEL, ACCESSGATE_LOG_FORMAT,
ACCESSGATE_DECISION_LOG_LEVEL, ACCESSGATE_TOKEN_CACHE_SIZE,
ACCESSGATE_LOGIN_ADDR.
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
	// started, when set, is called once serve listens, with its addresses.
	started func(grpcAddr, httpAddr string)
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
	case "keygen":
		return c.keygen(rest)
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
	return fs
}

// parse parses args; ok is false when the command should stop with code.
func parse(fs *flag.FlagSet, args []string) (code int, ok bool) {
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
	return exitOK, true
}

// env returns the environment variable key, or def when it is unset or
// empty.
func (c *cli) env(key, def string) string {
	if v := c.getenv(key); v != "" {
		return v
	}
	return def
}

// envInt returns the environment variable key as an integer, or def when it
// is unset or empty.
func (c *cli) envInt(key string, def int) (int, error) {
	v := c.getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q: want an integer", key, v)
	}
	return n, nil
}
