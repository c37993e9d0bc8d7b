package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
)

// requestFile is the REQUEST.json of `check --request` (contract section
// 6): one HTTP request as Envoy would describe it.
type requestFile struct {
	Method   string            `json:"method"`
	Scheme   string            `json:"scheme"`
	Host     string            `json:"host"`
	Path     string            `json:"path"`
	Headers  map[string]string `json:"headers"`
	SourceIP string            `json:"source_ip"`
	// ClientCert is an extension: the client certificate (PEM) the proxy
	// would pass, for valid_certificate and common_name.
	ClientCert string `json:"client_cert,omitempty"`
	// Application is the per-route binding (contract §10), as the gateway
	// would send it; present (even "") means bound.
	Application *string `json:"application,omitempty"`
}

// readRequest parses a REQUEST.json. Header names are lower-cased, as Envoy
// sends them; method defaults to GET, scheme to https and path to /; a missing host is
// taken from the :authority or host header, as the envoy adapter does.
// Unknown fields are ignored.
func readRequest(data []byte) (*authz.Request, error) {
	var f requestFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	r := &authz.Request{
		Method:     f.Method,
		Scheme:     f.Scheme,
		Host:       f.Host,
		Path:       f.Path,
		Headers:    make(map[string]string, len(f.Headers)),
		ClientCert: f.ClientCert,
	}
	if f.Application != nil {
		r.Application, r.ApplicationBound = *f.Application, true
	}
	for k, v := range f.Headers {
		r.Headers[strings.ToLower(k)] = v
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Scheme == "" {
		r.Scheme = "https"
	}
	if r.Host == "" {
		r.Host = r.Headers[":authority"]
	}
	if r.Host == "" {
		r.Host = r.Headers["host"]
	}
	if f.SourceIP != "" {
		a, err := netip.ParseAddr(f.SourceIP)
		if err != nil {
			return nil, fmt.Errorf("source_ip: %w", err)
		}
		r.SourceIP = a.Unmap()
	}
	return r, nil
}

// decisionJSON is what `check` prints.
type decisionJSON struct {
	Application     string            `json:"application"`
	Policy          string            `json:"policy"`
	Rule            string            `json:"rule"`
	Reason          authz.Reason      `json:"reason"`
	Status          int               `json:"status"`
	Headers         map[string]string `json:"headers"`
	HeadersToRemove []string          `json:"headers_to_remove"`
	ResponseHeaders map[string]string `json:"response_headers"`
	Body            string            `json:"body"`
}

// explain renders d as check's JSON. Headers become objects (name to
// value); a name given twice has its values joined with ", ", as HTTP
// allows. Empty lists are [] and {}, never null.
func explain(d *authz.Decision) []byte {
	out := decisionJSON{
		Application:     d.Application,
		Policy:          d.Policy,
		Rule:            d.Rule,
		Reason:          d.Reason,
		Status:          d.Status,
		Headers:         headerObject(d.Headers),
		HeadersToRemove: d.HeadersToRemove,
		ResponseHeaders: headerObject(d.ResponseHeaders),
		Body:            d.Body,
	}
	if out.HeadersToRemove == nil {
		out.HeadersToRemove = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep & < > readable in URLs and bodies
	enc.SetIndent("", "  ")
	_ = enc.Encode(out) // cannot fail: strings, ints and maps of strings
	return b.Bytes()
}

func headerObject(hs []authz.Header) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		if old, ok := m[h.Key]; ok {
			m[h.Key] = old + ", " + h.Value
			continue
		}
		m[h.Key] = h.Value
	}
	return m
}

// keySyncTimeout bounds the first fetch of every issuer's keys (check and
// serve's start and reloads).
const keySyncTimeout = 10 * time.Second

// check implements `accessgate check --config FILE --request REQUEST.json`:
// it decides one request exactly as serve would and prints the decision.
// Keys of jwks_url issuers are fetched first.
func (c *cli) check(ctx context.Context, args []string) int {
	fs := c.flagSet("check")
	config := fs.String("config", c.env(envConfig, ""), "policy file (env "+envConfig+")")
	request := fs.String("request", "", "request to decide, as JSON: {method, scheme, host, path, headers, source_ip, application}")
	if code, ok := parse(fs, args); !ok {
		return code
	}
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
	syncCtx, cancel := context.WithTimeout(ctx, keySyncTimeout)
	km.Sync(syncCtx, set)
	cancel()
	if missing := km.Ready(set); len(missing) > 0 {
		log.Warn("issuers without usable keys: their tokens cannot be verified", zap.Strings("issuers", missing))
	}
	e := authz.New(km)
	e.Swap(set)
	d := e.Decide(ctx, r)
	c.stdout.Write(explain(&d))
	return exitOK
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
