package main

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/httpauth"
	"github.com/accessgate/accessgate/policies"
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
	m.issuers(setOf([]string{"team"}, nil))
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

// setOf is a policy set with issuers and applications of these names.
func setOf(issuers, apps []string) *policies.Set {
	set := &policies.Set{}
	for _, n := range issuers {
		set.Issuers = append(set.Issuers, &policies.Issuer{Name: n})
	}
	for _, n := range apps {
		set.Applications = append(set.Applications, &policies.Application{Name: n})
	}
	return set
}

// TestMetricsIssuerLeaves: the JWKS series of an issuer that leaves the
// file are deleted, stale gauge included, and a fetch reported for it
// afterwards (one in flight during the reload) brings none back; the
// issuer that stays keeps its series.
func TestMetricsIssuerLeaves(t *testing.T) {
	m := newMetrics()
	m.issuers(setOf([]string{"gone", "kept"}, nil))
	for _, iss := range []string{"gone", "kept"} {
		m.jwksFetched(iss, nil)
		m.jwksFetched(iss, errTest) // an outage after a success: stale
	}
	if v := testutil.ToFloat64(m.jwksStale.WithLabelValues("gone")); v != 1 {
		t.Fatalf("stale gauge of gone = %v before the reload, want 1", v)
	}
	m.issuers(setOf([]string{"kept"}, nil))
	m.jwksFetched("gone", errTest)
	tests := []struct {
		name string
		c    prometheus.Collector
		want int
	}{
		{"accessgate_jwks_keys_stale", m.jwksStale, 1},
		{"accessgate_jwks_last_success_timestamp_seconds", m.jwksLastOK, 1},
		{"accessgate_jwks_fetches_total", m.jwks, 2}, // kept's success and failure
	}
	for _, tt := range tests {
		if got := testutil.CollectAndCount(tt.c); got != tt.want {
			t.Errorf("%s series = %d after gone left, want %d (kept's only)", tt.name, got, tt.want)
		}
	}
	if v := testutil.ToFloat64(m.jwksStale.WithLabelValues("kept")); v != 1 {
		t.Errorf("stale gauge of kept = %v, want 1", v)
	}
}

// TestMetricsApplicationsPruned: a reload drops the decision counters of
// applications no longer in the file, from the cache and the registry;
// the others, and "" (no application), keep counting from where they were.
func TestMetricsApplicationsPruned(t *testing.T) {
	m := newMetrics()
	for _, app := range []string{"a", "b", ""} {
		d := authz.Decision{Reason: authz.ReasonAllowed, Application: app}
		m.observe(nil, &d, time.Microsecond)
	}
	m.applications(setOf(nil, []string{"a"}))
	if len(m.counters) != 2 {
		t.Errorf("counter cache holds %d entries after the reload, want 2 (a and no application)", len(m.counters))
	}
	if got := testutil.CollectAndCount(m.decisions); got != 2 {
		t.Errorf("decision series = %d after b left, want 2", got)
	}
	d := authz.Decision{Reason: authz.ReasonAllowed, Application: "a"}
	m.observe(nil, &d, time.Microsecond)
	if v := testutil.ToFloat64(m.decisions.WithLabelValues(string(authz.ReasonAllowed), "a", "grpc")); v != 2 {
		t.Errorf("decisions of a = %v, want 2 (kept across the reload)", v)
	}
}

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
