package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sessionMetrics are the metrics of the audit log and the revocations
// file (contract §11).
type sessionMetrics struct {
	auditLines    prometheus.Counter
	auditDropped  prometheus.Counter
	auditErrors   prometheus.Counter
	revEntries    prometheus.Gauge
	revLastLoad   prometheus.Gauge
	revReloads    *prometheus.CounterVec
	revReloadsOK  prometheus.Counter
	revReloadsBad prometheus.Counter
}

func newSessionMetrics(reg prometheus.Registerer) *sessionMetrics {
	m := &sessionMetrics{
		auditLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessgate_audit_lines_total",
			Help: "Audit log lines written.",
		}),
		auditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessgate_audit_lines_dropped_total",
			Help: "Audit log lines dropped because the writer fell behind (full disk, slow storage): a decision never waits for the audit log.",
		}),
		auditErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "accessgate_audit_write_errors_total",
			Help: "Failed writes, flushes or reopens of the audit log file; the lines of a failed write are lost.",
		}),
		revEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accessgate_revocations_entries",
			Help: "Entries of the revocations file in force.",
		}),
		revLastLoad: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "accessgate_revocations_last_load_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the revocations file.",
		}),
		revReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "accessgate_revocations_reloads_total",
			Help: "Revocations file loads (at start, on change and on SIGHUP), by result (success, failure).",
		}, []string{"result"}),
	}
	m.revReloadsOK = m.revReloads.WithLabelValues(resultSuccess)
	m.revReloadsBad = m.revReloads.WithLabelValues(resultFailure)
	reg.MustRegister(m.auditLines, m.auditDropped, m.auditErrors, m.revEntries, m.revLastLoad, m.revReloads)
	return m
}

// revocationsLoaded records a load of the revocations file.
func (m *sessionMetrics) revocationsLoaded(ok bool, entries int, now time.Time) {
	if !ok {
		m.revReloadsBad.Inc()
		return
	}
	m.revReloadsOK.Inc()
	m.revEntries.Set(float64(entries))
	m.revLastLoad.Set(float64(now.UnixNano()) / 1e9)
}
