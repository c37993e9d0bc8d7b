package jwks

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestOutageLogIsRateLimited: a JWKS URL that goes down after its keys
// were loaded keeps those keys in force, and the retries (with backoff)
// write one "jwks fetch failed" line per failure log interval, the next
// one counting the lines suppressed; recovery is logged, and a later
// outage is logged at once.
func TestOutageLogIsRateLimited(t *testing.T) {
	ctx := context.Background()
	srv := newJWKSServer(t, certsDoc(t, kidKey{"a", rsaA()}))
	core, logs := observer.New(zapcore.InfoLevel)
	fetched := make(fetchLog, 1)
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	m := New(zap.New(core), WithFetchHook(fetched.hook), WithClock(clk.now),
		WithBackoff(time.Millisecond, 2*time.Millisecond))
	t.Cleanup(m.Close)
	iss := issuerFor(srv.URL)
	m.Sync(ctx, setOfIssuers(iss))
	if err := fetched.next(t); err != nil {
		t.Fatalf("first fetch: %v", err)
	}
	good, err := m.Key(ctx, iss, "a")
	if err != nil {
		t.Fatal(err)
	}

	failedLines := func() []observer.LoggedEntry { return logs.FilterMessage("jwks fetch failed").AllUntimed() }
	// waitFor polls cond to a deadline.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; logs: %v", what, logs.AllUntimed())
			}
			<-tick.C
		}
	}

	// The URL goes down; an unknown kid triggers a refresh, whose failure
	// is then retried every few milliseconds.
	srv.set(http.StatusServiceUnavailable, []byte("down"))
	if _, err := m.Key(ctx, iss, "b"); err == nil {
		t.Fatal("Key(b) found a key the set never had")
	}
	for range 20 {
		if err := fetched.next(t); err == nil {
			t.Fatal("a fetch succeeded while the URL is down")
		}
	}
	if n := len(failedLines()); n != 1 {
		t.Fatalf("%d failure lines after 20 failures within one interval, want 1", n)
	}
	first := failedLines()[0].ContextMap()
	if first["keeping_previous_keys"] != true || first["consecutive_failures"] != int64(1) || first["suppressed"] != int64(0) {
		t.Errorf("first failure line = %v, want keeping_previous_keys, consecutive_failures 1, suppressed 0", first)
	}
	if k, err := m.Key(ctx, iss, "a"); err != nil || k != good {
		t.Fatalf("Key(a) during the outage = %v, %v; want the last good key", k, err)
	}

	// A minute later the next failure is logged with the count.
	clk.add(failureLogInterval)
	waitFor("a second failure line", func() bool { return len(failedLines()) == 2 })
	second := failedLines()[1].ContextMap()
	if s, _ := second["suppressed"].(int64); s < 19 {
		t.Errorf("second failure line suppressed = %v, want >= 19", second["suppressed"])
	}
	if c, _ := second["consecutive_failures"].(int64); c < 21 {
		t.Errorf("second failure line consecutive_failures = %v, want >= 21", second["consecutive_failures"])
	}

	// Recovery is logged once, with the failure count.
	srv.set(http.StatusOK, certsDoc(t, kidKey{"a", rsaA()}))
	waitFor("the recovery line", func() bool { return logs.FilterMessage("jwks fetch recovered").Len() == 1 })
	if f, _ := logs.FilterMessage("jwks fetch recovered").AllUntimed()[0].ContextMap()["failures"].(int64); f < 21 {
		t.Errorf("recovery line failures = %d, want >= 21", f)
	}

	// A new outage, within a minute of the last line, is logged at once.
	srv.set(http.StatusServiceUnavailable, []byte("down"))
	clk.add(DefaultMinRefreshGap) // let the unknown-kid refresh through
	if _, err := m.Key(ctx, iss, "c"); err == nil {
		t.Fatal("Key(c) found a key the set never had")
	}
	waitFor("the new outage's line", func() bool { return len(failedLines()) == 3 })
	if c := failedLines()[2].ContextMap()["consecutive_failures"]; c != int64(1) {
		t.Errorf("new outage's line consecutive_failures = %v, want 1", c)
	}
}
