package authz

import (
	"sync"
	"time"

	"github.com/accessgate/accessgate/policies"
)

// chooseApplication picks the application for a request (contract §3 and
// §10): the gateway's binding when there is one, else the lookup by host
// and path. done is set when the answer is already decided: an unknown
// binding (403 no_application, whatever default_action says), a host the
// bound application does not cover (403 application_mismatch), an unbound
// request under require_application_binding (403 no_application), or no
// application at all (default_action).
func chooseApplication(set *policies.Set, r *Request, host, path string) (app *policies.Application, d Decision, done bool) {
	if r.Bound() && (!r.ApplicationFromFact || set.RequireApplicationBinding) {
		app = set.ApplicationNamed(r.Application)
		if app == nil {
			d = forbidden(r, nil, ReasonNoApplication, "")
			d.unknownBinding = true
			return nil, d, true
		}
		if !app.CoversHost(host) {
			// The route names an application that does not serve this
			// host: a gateway misconfiguration or a Host header that
			// reached a route it should not. No CORS header for a host
			// the application does not cover, but Vary as on every answer
			// of a cors application.
			d = forbidden(r, nil, ReasonApplicationMismatch, "")
			d.Application = app.Name
			if hasCORS(app) {
				d.ResponseHeaders = append(d.ResponseHeaders, Header{Key: hdrVary, Value: varyOrigin, Append: true})
			}
			return app, d, true
		}
		return app, Decision{}, false
	}
	if set.RequireApplicationBinding {
		return nil, forbidden(r, nil, ReasonNoApplication, ""), true
	}
	app = set.Lookup(host, path)
	if app == nil {
		if set.DefaultAllow {
			return nil, forward(r, nil, ReasonNoApplication, "", nil, nil), true
		}
		return nil, forbidden(r, nil, ReasonNoApplication, ""), true
	}
	return app, Decision{}, false
}

// UnknownBinding reports whether d refused r because the gateway bound it
// to an application the policy file does not define: adapters log a
// warning for it (at most once a minute per name, see WarnLimiter), since
// it means the gateway's routes and the policy file disagree.
func UnknownBinding(r *Request, d *Decision) bool {
	return r != nil && d != nil && d.unknownBinding
}

// WarnLimiter lets a warning through at most once per interval for each
// key (an application name, say). It is safe for concurrent use and holds
// at most maxWarnKeys keys: past that, keys not seen within the interval
// are forgotten, and while all are recent a new key is not warned about.
type WarnLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
}

const maxWarnKeys = 1024

// NewWarnLimiter returns a limiter allowing one warning per key every
// interval.
func NewWarnLimiter(every time.Duration) *WarnLimiter {
	return &WarnLimiter{every: every, last: map[string]time.Time{}}
}

// Allow reports whether a warning about key may be logged at now, and if
// so records it.
func (l *WarnLimiter) Allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.every {
		return false
	}
	if _, ok := l.last[key]; !ok && len(l.last) >= maxWarnKeys {
		for k, t := range l.last {
			if now.Sub(t) >= l.every {
				delete(l.last, k)
			}
		}
		if len(l.last) >= maxWarnKeys {
			return false
		}
	}
	l.last[key] = now
	return true
}
