// Package otlpreceiver is a real OTLP trace receiver for tests: the
// collector's TraceService over gRPC and its /v1/traces endpoint over HTTP
// (http/protobuf), both on loopback, keeping every span it receives.
package otlpreceiver

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened for assertions.
type Span struct {
	Name         string
	TraceID      string // hex
	SpanID       string // hex
	ParentSpanID string // hex, "" for a root
	Kind         tracepb.Span_SpanKind
	Attrs        map[string]*commonpb.AnyValue
	Resource     map[string]*commonpb.AnyValue
	Scope        string
	Raw          *tracepb.Span
}

// Str is the string value of attribute k ("" when absent).
func (s Span) Str(k string) string { return s.Attrs[k].GetStringValue() }

// Has reports whether the span has attribute k.
func (s Span) Has(k string) bool { _, ok := s.Attrs[k]; return ok }

// Receiver keeps the spans of every export it is sent.
type Receiver struct {
	coltracepb.UnimplementedTraceServiceServer

	// Discard, set before serving, keeps no span, only counts them
	// (Received): for benchmarks.
	Discard bool

	mu       sync.Mutex
	received int
	spans    []Span
	exports  int
	changed  chan struct{} // closed and replaced on every export
}

// New returns a receiver that serves nothing yet.
func New() *Receiver { return &Receiver{changed: make(chan struct{})} }

// StartGRPC serves the TraceService on 127.0.0.1:0 until the test ends
// and returns its address.
func (r *Receiver) StartGRPC(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	go gs.Serve(l) //nolint:errcheck // ends with Stop
	t.Cleanup(gs.Stop)
	return l.Addr().String()
}

// StartHTTP serves POST /v1/traces (http/protobuf) on 127.0.0.1:0 until
// the test ends and returns its base URL.
func (r *Receiver) StartHTTP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l) //nolint:errcheck // ends with Close
	t.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String()
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, hr *http.Request) {
	if hr.Method != http.MethodPost || hr.URL.Path != "/v1/traces" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(hr.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// Export is the TraceService's one method.
func (r *Receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) add(req *coltracepb.ExportTraceServiceRequest) {
	if r.Discard {
		n := 0
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				n += len(ss.GetSpans())
			}
		}
		r.mu.Lock()
		r.received += n
		r.mu.Unlock()
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{
					Name:     s.GetName(),
					TraceID:  hex.EncodeToString(s.GetTraceId()),
					SpanID:   hex.EncodeToString(s.GetSpanId()),
					Kind:     s.GetKind(),
					Attrs:    attrMap(s.GetAttributes()),
					Resource: res,
					Scope:    ss.GetScope().GetName(),
					Raw:      s,
				}
				if p := s.GetParentSpanId(); len(p) > 0 {
					sp.ParentSpanID = hex.EncodeToString(p)
				}
				got = append(got, sp)
			}
		}
	}
	r.mu.Lock()
	r.spans = append(r.spans, got...)
	r.received += len(got)
	r.exports++
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := make(map[string]*commonpb.AnyValue, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// Received is how many spans arrived.
func (r *Receiver) Received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received
}

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// WaitFor waits, at most timeout, until n spans satisfy match, and
// returns them (in arrival order). It fails the test on timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, n int, match func(Span) bool) []Span {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		var found []Span
		for _, s := range r.spans {
			if match(s) {
				found = append(found, s)
			}
		}
		changed := r.changed
		total := len(r.spans)
		r.mu.Unlock()
		if len(found) >= n {
			return found
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("after %v: %d of %d spans wanted (%d received in all: %s)", timeout, len(found), n, total, names(r.Spans()))
			return nil
		}
	}
}

func names(spans []Span) string {
	s := ""
	for i, sp := range spans {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s(%s)", sp.Name, sp.Scope)
	}
	return s
}

// Named matches spans called name.
func Named(name string) func(Span) bool { return func(s Span) bool { return s.Name == name } }

// Text is everything a span says, for scans for secrets: its name, its
// attributes, its events (names and attributes), its links' attributes,
// its status message and its resource's attributes. Ids and times are
// left out: as bytes they could spell any character.
func (s Span) Text() string {
	var b strings.Builder
	kvs := func(kvs []*commonpb.KeyValue) {
		for _, kv := range kvs {
			b.WriteString(kv.GetKey())
			b.WriteByte('=')
			b.WriteString(prototext.Format(kv.GetValue()))
			b.WriteByte('\n')
		}
	}
	b.WriteString(s.Name)
	b.WriteByte('\n')
	b.WriteString(s.Raw.GetTraceState())
	b.WriteByte('\n')
	kvs(s.Raw.GetAttributes())
	for _, ev := range s.Raw.GetEvents() {
		b.WriteString(ev.GetName())
		b.WriteByte('\n')
		kvs(ev.GetAttributes())
	}
	for _, l := range s.Raw.GetLinks() {
		b.WriteString(l.GetTraceState())
		kvs(l.GetAttributes())
	}
	b.WriteString(s.Raw.GetStatus().GetMessage())
	b.WriteByte('\n')
	for k, v := range s.Resource {
		b.WriteString(k + "=" + prototext.Format(v) + "\n")
	}
	return b.String()
}
