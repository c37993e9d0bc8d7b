// Package policytest runs policy tests (`accessgate test`): requests with
// minted identities or service tokens, decided by the real decision core
// against a policy file, and compared with the expected subset of what
// `accessgate check` prints.
//
// It also holds what `check` and `test` share: the request fields of
// `check --request` and the decision fields `check` prints, so that both
// commands read and show exactly the same things.
package policytest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/accessgate/accessgate/authz"
)

// Request is one request as `check --request` reads it: {"method",
// "scheme", "host", "path", "headers", "source_ip", "application"}.
type Request struct {
	Method   string            `json:"method"`
	Scheme   string            `json:"scheme"`
	Host     string            `json:"host"`
	Path     string            `json:"path"`
	Headers  map[string]string `json:"headers"`
	SourceIP string            `json:"source_ip"`
	// ClientCert is an extension: the client certificate (PEM) the proxy
	// would pass, for valid_certificate and common_name.
	ClientCert string `json:"client_cert,omitempty"`
	// Application is the per-route binding (section 10) as the gateway
	// would send it; present, even "", means bound.
	Application *string `json:"application,omitempty"`
}

// Authz returns r as the decision core's Request. Header names are
// lower-cased, as Envoy sends them; method defaults to GET, scheme to https
// and path to /; a missing host is taken from the :authority or host
// header, as the envoy adapter does.
func (r *Request) Authz() (*authz.Request, error) {
	out := &authz.Request{
		Method:     r.Method,
		Scheme:     r.Scheme,
		Host:       r.Host,
		Path:       r.Path,
		Headers:    make(map[string]string, len(r.Headers)),
		ClientCert: r.ClientCert,
	}
	if r.Application != nil {
		out.Application, out.ApplicationBound = *r.Application, true
	}
	for k, v := range r.Headers {
		out.Headers[strings.ToLower(k)] = v
	}
	if out.Path == "" {
		out.Path = "/"
	}
	if out.Method == "" {
		out.Method = "GET"
	}
	if out.Scheme == "" {
		out.Scheme = "https"
	}
	if out.Host == "" {
		out.Host = out.Headers[":authority"]
	}
	if out.Host == "" {
		out.Host = out.Headers["host"]
	}
	if r.SourceIP != "" {
		a, err := netip.ParseAddr(r.SourceIP)
		if err != nil {
			return nil, fmt.Errorf("source_ip: %w", err)
		}
		out.SourceIP = a.Unmap()
	}
	return out, nil
}

// Output is a decision as `check` prints it and as a test's `expect`
// names its fields.
type Output struct {
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

// Explain converts a decision to its Output. Headers become objects (name
// to value); a name given twice has its values joined with ", ", as HTTP
// allows. Empty lists are [] and {}, never null.
func Explain(d *authz.Decision) Output {
	out := Output{
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
	return out
}

// JSON renders o indented, as `check` prints it.
func (o Output) JSON() []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep & < > readable in URLs and bodies
	enc.SetIndent("", "  ")
	_ = enc.Encode(o) // cannot fail: strings, ints and maps of strings
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
