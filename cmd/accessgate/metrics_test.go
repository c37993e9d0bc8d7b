package main

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessgate/accessgate/authz"
)

// TestMetricsObserveConcurrent counts decisions from many goroutines into
// the counter cache; every one must be counted once.
func TestMetricsObserveConcurrent(t *testing.T) {
	m := newMetrics()
	apps := []string{"", "a", "b"}
	endpoints := []string{"grpc", "auth/forward"}
	reasons := []authz.Reason{authz.ReasonAllowed, authz.ReasonBlocked}
	const perG = 200
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perG {
				d := authz.Decision{Reason: reasons[(g+i)%2], Application: apps[i%3]}
				m.observeAt(endpoints[i%2], nil, &d, time.Microsecond)
			}
		}()
	}
	wg.Wait()
	total := 0.0
	for _, a := range apps {
		for _, r := range reasons {
			for _, ep := range endpoints {
				total += testutil.ToFloat64(m.decisions.WithLabelValues(string(r), a, ep))
			}
		}
	}
	if total != 8*perG {
		t.Errorf("decisions counted = %v, want %d", total, 8*perG)
	}
	if got := testutil.CollectAndCount(m.latency); got != len(endpoints) {
		t.Errorf("latency histogram series = %d, want one per endpoint (%d)", got, len(endpoints))
	}
	// Each endpoint counted apart: i%2 picks the endpoint, and each
	// goroutine's perG decisions split evenly between the two.
	for _, ep := range endpoints {
		n := 0.0
		for _, a := range apps {
			for _, r := range reasons {
				n += testutil.ToFloat64(m.decisions.WithLabelValues(string(r), a, ep))
			}
		}
		if n != 8*perG/2 {
			t.Errorf("decisions at endpoint %s = %v, want %d", ep, n, 8*perG/2)
		}
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
