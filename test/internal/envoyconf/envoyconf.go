// Package envoyconf loads and checks the shipped Envoy bootstraps
// (envoy/envoy.yaml, envoy/envoy-mtls.yaml) without Envoy, and rewrites
// their well-known socket addresses and TLS folder for tests.
//
// Load follows docs research §4: YAML → JSON → protojson into
// bootstrapv3.Bootstrap with unknown fields refused, then ValidateAll on the
// bootstrap and on every message packed in an Any, which ValidateAll alone
// never descends into.
package envoyconf

import (
	"errors"
	"fmt"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every type named by an "@type" in envoy/envoy.yaml must be linked in,
	// or protojson cannot resolve the Any. There is no "import all" package:
	// a new extension in envoy.yaml needs its import here.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Parse decodes an Envoy bootstrap in YAML, refusing unknown fields.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml to json: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &b, nil
}

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate runs the generated validation on m and, recursively, on every
// message packed in an Any inside it. The error names the Any's type.
func Validate(m proto.Message) error {
	var errs []error
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, err)
		}
	}
	walk(m.ProtoReflect(), &errs)
	return errors.Join(errs...)
}

func walk(m protoreflect.Message, errs *[]error) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), errs)
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message(), errs)
					return true
				})
			}
		default:
			visit(v.Message(), errs)
		}
		return true
	})
}

func visit(m protoreflect.Message, errs *[]error) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %w", a.GetTypeUrl(), err))
			return
		}
		if v, ok := inner.(validator); ok {
			if err := v.ValidateAll(); err != nil {
				*errs = append(*errs, fmt.Errorf("%s: %w", a.GetTypeUrl(), err))
			}
		}
		walk(inner.ProtoReflect(), errs)
		return
	}
	walk(m, errs)
}

// Addr is a host and port as written in a socket_address.
type Addr struct {
	Host string
	Port int
}

// The four socket addresses of envoy/envoy.yaml that deployments and tests
// replace; each is written on a single line in the file.
var (
	DefaultListener   = Addr{"0.0.0.0", 8080}
	DefaultAdmin      = Addr{"127.0.0.1", 9901}
	DefaultAccessgate = Addr{"accessgate", 9001}
	DefaultOrigin     = Addr{"origin", 8000}
)

// Addrs are the replacements for the four default addresses (and, in
// envoy/envoy-http.yaml only, the sign-in listener's: Login).
type Addrs struct {
	Listener, Admin, Accessgate, Origin Addr
	Login                               Addr
}

func line(a Addr) string {
	return fmt.Sprintf("socket_address: { address: %s, port_value: %d }", a.Host, a.Port)
}

// Substitute replaces the four default socket addresses in the YAML text of
// envoy/envoy.yaml and nothing else. Each must appear exactly once.
func Substitute(data []byte, to Addrs) ([]byte, error) {
	return substitute(data, []swap{
		{DefaultListener, to.Listener},
		{DefaultAdmin, to.Admin},
		{DefaultAccessgate, to.Accessgate},
		{DefaultOrigin, to.Origin},
	})
}

// swap is one address to replace in a bootstrap.
type swap struct{ from, to Addr }

// substitute replaces each swap's address line, which must appear exactly
// once, so that a bootstrap edit that duplicates or drops one fails.
func substitute(data []byte, swaps []swap) ([]byte, error) {
	s := string(data)
	for _, r := range swaps {
		old := line(r.from)
		if n := strings.Count(s, old); n != 1 {
			return nil, fmt.Errorf("%q appears %d times in the bootstrap, want exactly once", old, n)
		}
		s = strings.Replace(s, old, line(r.to), 1)
	}
	return []byte(s), nil
}

// DefaultTLSDir is the folder of the TLS files that envoy/envoy-mtls.yaml
// names (ca.crt, client.crt, client.key).
const DefaultTLSDir = "/etc/accessgate-tls"

// tlsFiles is how many files envoy/envoy-mtls.yaml reads from DefaultTLSDir.
const tlsFiles = 3

// SubstituteTLSDir replaces the folder DefaultTLSDir in the `filename:`
// fields of the YAML text of envoy/envoy-mtls.yaml with dir, and nothing
// else (comments naming the folder stay). It must appear in exactly three.
func SubstituteTLSDir(data []byte, dir string) ([]byte, error) {
	old := "filename: " + DefaultTLSDir + "/"
	s := string(data)
	if n := strings.Count(s, old); n != tlsFiles {
		return nil, fmt.Errorf("%q appears %d times in the bootstrap, want %d", old, n, tlsFiles)
	}
	return []byte(strings.ReplaceAll(s, old, "filename: "+strings.TrimSuffix(dir, "/")+"/")), nil
}
