package main

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/httpauth"
)

// TestMetricsObserveConcurrent counts decisions from many goroutines into
// the counter cache; every one must be counted once.
func TestMetricsObserveConcurrent(t *testing.T) {
	m := newMetrics()
	apps := []string{"", "a", "b"}
	reasons := []authz.Reason{authz.ReasonAllowed, authz.ReasonBlocked}
	const perG = 200
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				d := authz.Decision{Reason: reasons[(g+i)%2], Application: apps[i%3]}
				m.observe(nil, &d, time.Microsecond)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, a := range apps {
		for _, r := range reasons {
			total += testutil.ToFloat64(m.decisions.WithLabelValues(string(r), a, endpointGRPC))
		}
	}
	if total != 8*perG {
		t.Errorf("decisions counted = %v, want %d", total, 8*perG)
	}
	// One series per endpoint, made at start so that each shows from the
	// first scrape.
	if got := testutil.CollectAndCount(m.latency); got != 1+len(httpauth.Endpoints) {
		t.Errorf("latency histogram series = %d, want %d", got, 1+len(httpauth.Endpoints))
	}
}

func TestMetricsReloadAndJWKS(t *testing.T) {
	m := newMetrics()
	now := time.Unix(1700000000, 0)
	m.reloaded(true, now)
	m.reloaded(false, now.Add(time.Hour))
	m.jwksFetched("team", nil)
	m.jwksFetched("team", errTest)
	if v := testutil.ToFloat64(m.lastReload); v != 1700000000 {
		t.Errorf("last reload = %v, want the successful one's time", v)
	}
	for _, tt := range []struct {
		labels []string
		want   float64
	}{{[]string{resultSuccess}, 1}, {[]string{resultFailure}, 1}} {
		if v := testutil.ToFloat64(m.reloads.WithLabelValues(tt.labels...)); v != tt.want {
			t.Errorf("reloads%v = %v, want %v", tt.labels, v, tt.want)
		}
	}
	if v := testutil.ToFloat64(m.jwks.WithLabelValues("team", resultFailure)); v != 1 {
		t.Errorf("jwks failures = %v, want 1", v)
	}
}

var errTest = errors.New("connection refused")

// TestMetricsEndpointLabel counts decisions of the gRPC and HTTP endpoints
// apart.
func TestMetricsEndpointLabel(t *testing.T) {
	m := newMetrics()
	d := authz.Decision{Reason: authz.ReasonAllowed, Application: "a"}
	m.observe(nil, &d, time.Microsecond)
	m.observeHTTP(httpauth.Forward, nil, &d, time.Microsecond)
	m.observeHTTP(httpauth.Forward, nil, &d, time.Microsecond)
	for _, tt := range []struct {
		endpoint string
		want     float64
	}{{"grpc", 1}, {"auth/forward", 2}, {"auth/nginx", 0}} {
		if got := testutil.ToFloat64(m.decisions.WithLabelValues("allowed", "a", tt.endpoint)); got != tt.want {
			t.Errorf("decisions{endpoint=%q} = %v, want %v", tt.endpoint, got, tt.want)
		}
	}
}
