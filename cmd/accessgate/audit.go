package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/accessgate/accessgate/authz"
)

// Audit log (contract §11): one JSON line per decision, never sampled.
//
// A decision never waits for the audit log and never wakes a goroutine:
// the line is built into a pooled buffer on the deciding goroutine and
// appended, under a short lock, to a bounded batch. One writer goroutine
// swaps the batch out every auditFlush and writes it with one system call.
// When the batch is full (a full or slow disk, a file that cannot be
// opened) lines are dropped and counted. Write errors are counted and
// logged (at most once a minute), and the writer carries on: the next
// batch may succeed once space is freed. SIGUSR1 reopens the file, for log
// rotation.

// auditMaxBatch bounds the lines waiting for the writer, in bytes; at
// auditKick the writer is woken early (once per batch), so a high rate of
// decisions is written in 1 MiB batches instead of being dropped.
const (
	auditMaxBatch = 16 << 20
	auditKick     = 1 << 20
)

// auditFlush is how often the writer writes what is waiting: a line
// reaches the file at most this late.
const auditFlush = 100 * time.Millisecond

// auditRetry is how often a file that could not be opened is tried again
// while lines keep coming.
const auditRetry = 10 * time.Second

type auditLog struct {
	path string // "-" for stdout
	log  *zap.Logger
	m    *sessionMetrics
	now  func() time.Time

	mu    sync.Mutex
	batch []byte // lines waiting for the writer
	n     int    // how many

	// kick wakes the writer early; reopenc asks it to reopen the file;
	// stop ends it.
	kick    chan struct{}
	reopenc chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	// Writer goroutine only.
	out       *os.File // the file, stdout, or nil while it cannot be opened
	spare     []byte   // the other batch buffer
	failedAt  time.Time
	errWarned time.Time
}

var auditBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// openAudit starts the audit log writing to path ("-": stdout). A file that
// cannot be opened is logged and counted, not fatal: lines are dropped
// until a reopen (SIGUSR1, or on its own every auditRetry) succeeds.
func openAudit(path string, log *zap.Logger, m *sessionMetrics) *auditLog {
	a := &auditLog{
		path:    path,
		log:     log.Named("audit"),
		m:       m,
		now:     time.Now,
		batch:   make([]byte, 0, 64<<10),
		spare:   make([]byte, 0, 64<<10),
		kick:    make(chan struct{}, 1),
		reopenc: make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	a.open()
	go a.run()
	return a
}

// Reopen asks the writer to reopen the file (SIGUSR1). It never blocks.
func (a *auditLog) Reopen() {
	select {
	case a.reopenc <- struct{}{}:
	default:
	}
}

// Close writes the lines still waiting and closes the file.
func (a *auditLog) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

// record is the envoy server's Observer: a gRPC decision.
func (a *auditLog) record(r *authz.Request, d *authz.Decision, took time.Duration) {
	a.recordAt(endpointGRPC, r, d, took)
}

// recordAt adds the line of a decision made at endpoint ("grpc",
// "auth/forward", ...) to the batch, or drops and counts it when the batch
// is full. An adapter that passes its endpoint beside the request calls
// this.
func (a *auditLog) recordAt(endpoint string, r *authz.Request, d *authz.Decision, took time.Duration) {
	bp := auditBufs.Get().(*[]byte)
	line := appendAuditLine((*bp)[:0], a.now(), endpoint, r, d, took)
	a.mu.Lock()
	full := len(a.batch)+len(line) > auditMaxBatch
	kick := false
	if !full {
		kick = len(a.batch) < auditKick && len(a.batch)+len(line) >= auditKick
		a.batch = append(a.batch, line...)
		a.n++
	}
	a.mu.Unlock()
	if kick {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
	*bp = line
	auditBufs.Put(bp)
	if full {
		a.m.auditDropped.Inc()
	}
}

func (a *auditLog) run() {
	defer close(a.done)
	tick := time.NewTicker(auditFlush)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			a.writeBatch()
		case <-a.kick:
			a.writeBatch()
		case <-a.reopenc:
			a.writeBatch()
			a.closeFile()
			a.open()
		case <-a.stop:
			a.writeBatch()
			a.closeFile()
			return
		}
	}
}

// writeBatch swaps the waiting lines out and writes them in one call.
func (a *auditLog) writeBatch() {
	a.mu.Lock()
	buf, n := a.batch, a.n
	a.batch, a.n = a.spare[:0], 0
	a.mu.Unlock()
	a.spare = buf
	if n == 0 {
		return
	}
	if a.out == nil && !a.failedAt.IsZero() && a.now().Sub(a.failedAt) >= auditRetry {
		a.open()
	}
	if a.out == nil {
		a.m.auditDropped.Add(float64(n))
		return
	}
	if _, err := a.out.Write(buf); err != nil {
		// Part of the batch may have been written; counting all of it
		// as lost errs on the safe side.
		a.fail("write audit log", err)
		a.m.auditDropped.Add(float64(n))
		return
	}
	a.m.auditLines.Add(float64(n))
}

// open opens the file for appending (creating it, mode 0640: it names
// users), or takes stdout.
func (a *auditLog) open() {
	if a.path == "-" {
		a.out = os.Stdout
		return
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		a.failedAt = a.now()
		a.fail("open audit log", err)
		return
	}
	a.out, a.failedAt = f, time.Time{}
}

func (a *auditLog) closeFile() {
	if a.out != nil && a.out != os.Stdout {
		if err := a.out.Close(); err != nil {
			a.fail("close audit log", err)
		}
	}
	a.out = nil
}

// fail counts an error and logs it at most once a minute.
func (a *auditLog) fail(what string, err error) {
	a.m.auditErrors.Inc()
	if now := a.now(); now.Sub(a.errWarned) >= time.Minute {
		a.errWarned = now
		a.log.Error(what+"; audit lines are being lost", zap.String("audit_log", a.path), zap.Error(err))
	}
}

// appendAuditLine appends one JSON line, fields in the contract's order:
// time, request_id, trace_id, endpoint, method, host, path, source_ip,
// application, policy, rule, reason, status, email, sub, service_token,
// took_us. The path loses its query; no header but x-request-id and
// traceparent is read, so no token, cookie or secret can reach the line.
func appendAuditLine(b []byte, now time.Time, endpoint string, r *authz.Request, d *authz.Decision, took time.Duration) []byte {
	if r == nil {
		r = &authz.Request{}
	}
	path, _, _ := strings.Cut(r.Path, "?")
	var email, sub string
	if d.Identity != nil {
		email, sub = d.Identity.Email, d.Identity.Sub
	}
	b = append(b, `{"time":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","request_id":`...)
	b = appendJSONString(b, r.Headers["x-request-id"])
	b = append(b, `,"trace_id":"`...)
	b = append(b, traceID(r.Headers["traceparent"])...)
	b = append(b, `","endpoint":`...)
	b = appendJSONString(b, endpoint)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, r.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, r.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, path)
	b = append(b, `,"source_ip":"`...)
	if r.SourceIP.IsValid() {
		b = r.SourceIP.AppendTo(b)
	}
	b = append(b, `","application":`...)
	b = appendJSONString(b, d.Application)
	b = append(b, `,"policy":`...)
	b = appendJSONString(b, d.Policy)
	b = append(b, `,"rule":`...)
	b = appendJSONString(b, d.Rule)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, string(d.Reason))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(d.Status), 10)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, email)
	b = append(b, `,"sub":`...)
	b = appendJSONString(b, sub)
	b = append(b, `,"service_token":`...)
	b = appendJSONString(b, d.ServiceToken)
	b = append(b, `,"took_us":`...)
	b = strconv.AppendInt(b, took.Microseconds(), 10)
	return append(b, "}\n"...)
}

// traceID is the trace id of a W3C traceparent
// (version-traceid-parentid-flags), or "" when there is none or it is
// malformed; all zeros is invalid.
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	zero := true
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
		zero = zero && c == '0'
	}
	if zero || !isHex(tp[:2]) || tp[:2] == "ff" {
		return ""
	}
	return id
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
