package main

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/httpauth"
	"github.com/accessgate/accessgate/policies"
)

// Metric label values for results.
const (
	resultSuccess = "success"
	resultFailure = "failure"
)

// metrics are the Prometheus metrics of a serving process, in a registry of
// their own (no global state, so tests can run several).
type metrics struct {
	reg        *prometheus.Registry
	decisions  *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	jwks       *prometheus.CounterVec
	lastReload prometheus.Gauge
	// jwksStale and jwksLastOK tell an outage of a JWKS URL after keys
	// were loaded: the last good keys keep serving, and these say so.
	jwksStale  *prometheus.GaugeVec
	jwksLastOK *prometheus.GaugeVec
	jwksMu     sync.Mutex      // serializes jwksFetched and issuers
	jwksOK     map[string]bool // issuers of the live file with a successful fetch
	jwksLive   map[string]bool // issuers of the live file

	// counters caches the decisions counter of each reason and application:
	// CounterVec.WithLabelValues hashes and allocates on every call, a
	// lookup in this map does neither. It is read-locked rather than
	// copied on write: with 10,000 applications a copy per new pair would
	// make filling it quadratic.
	counters map[decisionKey]prometheus.Counter
	mu       sync.RWMutex
	// latencies holds latency's observer of each endpoint, made once.
	latencies map[string]prometheus.Observer

	// session holds the audit log and revocation metrics.
	session *sessionMetrics
	// audit, when set (--audit-log), gets one line per decision. It is set
	// before any listener serves and never changed after.
	audit *auditLog
}

type decisionKey struct {
	reason   authz.Reason
	app      string
	endpoint string
}

// endpointGRPC is the `endpoint` label of gRPC ext_authz decisions; the
// HTTP endpoints of contract section 7 are labelled with their paths
// ("auth/forward", ...).
const endpointGRPC = "grpc"

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessgate_decisions_total",
			Help: "Decisions made, by reason code, application (\"\" when no application matched) and endpoint (grpc, auth/envoy, auth/forward, auth/nginx, auth/nginx/render, auth/answer).",
		}, []string{"reason", "application", "endpoint"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "accessgate_check_duration_seconds",
			Help: "Time to decide one check, from the request in to the answer out, by endpoint.",
			Buckets: []float64{
				0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
				0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
			},
		}, []string{"endpoint"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessgate_config_reloads_total",
			Help: "Policy file loads (at start and on change), by result (success, failure).",
		}, []string{"result"}),
		jwks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessgate_jwks_fetches_total",
			Help: "JWKS fetches, by issuer name and result (success, failure).",
		}, []string{"issuer", "result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accessgate_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful policy file load.",
		}),
		jwksStale: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "accessgate_jwks_keys_stale",
			Help: "1 while the last JWKS fetch of an issuer failed and its last good keys are served; 0 after a success.",
		}, []string{"issuer"}),
		jwksLastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "accessgate_jwks_last_success_timestamp_seconds",
			Help: "Unix time of the last successful JWKS fetch of an issuer.",
		}, []string{"issuer"}),
		jwksOK:   map[string]bool{},
		jwksLive: map[string]bool{},
	}
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "accessgate_build_info",
		Help: "Always 1; the version label says which build runs.",
	}, []string{"version"})
	info.WithLabelValues(buildVersion()).Set(1)
	m.reloads.WithLabelValues(resultSuccess)
	m.reloads.WithLabelValues(resultFailure)
	m.reg.MustRegister(m.decisions, m.latency, m.reloads, m.jwks, m.lastReload, m.jwksStale, m.jwksLastOK, info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.counters = map[decisionKey]prometheus.Counter{}
	m.latencies = map[string]prometheus.Observer{endpointGRPC: m.latency.WithLabelValues(endpointGRPC)}
	for _, ep := range httpauth.Endpoints {
		m.latencies[ep.String()] = m.latency.WithLabelValues(ep.String())
	}
	m.session = newSessionMetrics(m.reg)
	return m
}

// observe counts one gRPC decision; it is the envoy server's Observer.
func (m *metrics) observe(r *authz.Request, d *authz.Decision, took time.Duration) {
	m.record(endpointGRPC, r, d, took)
}

// observeHTTP counts one decision of an HTTP endpoint; it is the httpauth
// server's Observer.
func (m *metrics) observeHTTP(ep httpauth.Endpoint, r *authz.Request, d *authz.Decision, took time.Duration) {
	m.record(ep.String(), r, d, took)
}

// record counts one decision made at endpoint, and writes its audit line
// when the audit log is on.
func (m *metrics) record(endpoint string, r *authz.Request, d *authz.Decision, took time.Duration) {
	if m.audit != nil {
		m.audit.recordAt(endpoint, r, d, took)
	}
	if o, ok := m.latencies[endpoint]; ok {
		o.Observe(took.Seconds())
	}
	k := decisionKey{d.Reason, d.Application, endpoint}
	m.mu.RLock()
	c, ok := m.counters[k]
	m.mu.RUnlock()
	if !ok {
		c = m.counter(k)
	}
	c.Inc()
}

// counter returns k's counter, adding it to the cache.
func (m *metrics) counter(k decisionKey) prometheus.Counter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.counters[k]; ok {
		return c
	}
	c := m.decisions.WithLabelValues(string(k.reason), k.app, k.endpoint)
	m.counters[k] = c
	return c
}

// reloaded counts a policy file load.
func (m *metrics) reloaded(ok bool, now time.Time) {
	if !ok {
		m.reloads.WithLabelValues(resultFailure).Inc()
		return
	}
	m.reloads.WithLabelValues(resultSuccess).Inc()
	m.lastReload.Set(float64(now.UnixNano()) / 1e9)
}

// issuers follows the issuers of set, the file about to go live: the JWKS
// series of an issuer that left the file are deleted (a stale gauge would
// otherwise alert forever on an issuer nobody uses), and fetches still
// reported for it are ignored.
func (m *metrics) issuers(set *policies.Set) {
	m.jwksMu.Lock()
	defer m.jwksMu.Unlock()
	live := make(map[string]bool, len(set.Issuers))
	for _, iss := range set.Issuers {
		live[iss.Name] = true
	}
	for name := range m.jwksLive {
		if live[name] {
			continue
		}
		delete(m.jwksOK, name)
		m.jwks.DeletePartialMatch(prometheus.Labels{"issuer": name})
		m.jwksStale.DeleteLabelValues(name)
		m.jwksLastOK.DeleteLabelValues(name)
	}
	m.jwksLive = live
}

// applications follows the applications of set, the file now live: the
// decision counters of an application that left the file are deleted, from
// the registry and from the cache, so that neither grows with every
// application ever loaded. A decision still in flight on the previous file
// may bring one back; the next reload deletes it again.
func (m *metrics) applications(set *policies.Set) {
	live := make(map[string]bool, len(set.Applications))
	for _, a := range set.Applications {
		live[a.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.counters {
		if k.app != "" && !live[k.app] {
			delete(m.counters, k)
			m.decisions.DeleteLabelValues(string(k.reason), k.app, k.endpoint)
		}
	}
}

// jwksFetched counts a JWKS fetch; it is the key manager's fetch hook.
// A failure after a success marks the issuer's keys stale: the manager
// keeps serving the last good keys (it never drops them on a failure), so
// the gauge says an outage is being ridden out. A failure before any
// success leaves it at 0: the issuer has no keys, which /readyz reports.
func (m *metrics) jwksFetched(issuer string, err error) {
	m.jwksMu.Lock()
	defer m.jwksMu.Unlock()
	if !m.jwksLive[issuer] {
		return // a fetch finishing for an issuer that has left the file
	}
	if err != nil {
		m.jwks.WithLabelValues(issuer, resultFailure).Inc()
		if m.jwksOK[issuer] {
			m.jwksStale.WithLabelValues(issuer).Set(1)
		}
		return
	}
	m.jwks.WithLabelValues(issuer, resultSuccess).Inc()
	m.jwksOK[issuer] = true
	m.jwksStale.WithLabelValues(issuer).Set(0)
	m.jwksLastOK.WithLabelValues(issuer).Set(float64(time.Now().UnixNano()) / 1e9)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
