package main

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/envoy"
	"github.com/accessgate/accessgate/jwks"
	"github.com/accessgate/accessgate/policies"
)

// BenchmarkAuditCachedAllow measures one ext_authz Check of a cached
// allow (the demo's token, verified once) through the real envoy.Server,
// engine and metrics, with the audit log off and on (writing to a file).
// The difference is what the audit line costs a decision: building it and
// queueing it; the write happens on the writer goroutine.
func BenchmarkAuditCachedAllow(b *testing.B) {
	e, token := demoEngine(b)
	req := envoyRequest(token)
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			m := newMetrics()
			var a *auditLog
			if mode == "on" {
				// As serve wires it: the metrics observer writes the line.
				a = openAudit(filepath.Join(b.TempDir(), "audit.log"), zap.NewNop(), m.session)
				m.audit = a
			}
			s := envoy.NewServer(e, zap.NewNop(), envoy.WithObserver(m.observe))
			ctx := context.Background()
			if resp, _ := s.Check(ctx, req); resp.GetOkResponse() == nil {
				b.Fatalf("not an allow: %v", resp)
			}
			b.ReportAllocs()
			for b.Loop() {
				s.Check(ctx, req)
			}
			if a != nil {
				a.Close()
				b.ReportMetric(testutil.ToFloat64(m.session.auditDropped)/float64(b.N), "dropped/op")
			}
		})
	}
}

// demoEngine is an engine on the demo's policy and keys with the demo
// token, for benchmarks of a cached allow through the envoy server.
func demoEngine(b *testing.B) (*authz.Engine, string) {
	b.Helper()
	d, err := fillDemo(b.TempDir(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	set, err := policies.Load(d.policy)
	if err != nil {
		b.Fatal(err)
	}
	km := jwks.New(zap.NewNop())
	b.Cleanup(km.Close)
	km.Sync(context.Background(), set)
	e := authz.New(km)
	e.Swap(set)
	return e, d.token
}
