package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accessgate/accessgate/test/internal/proc"
)

// Rolling-restart load: restartWorkers goroutines, each sending a request
// every restartPace at most, through Envoy to two accessgate replicas.
const (
	restartWorkers = 8
	restartPace    = 10 * time.Millisecond
	// restartDrain is serve's default --drain-delay, given explicitly
	// because the harness turns it off for the other tests.
	restartDrain = 5 * time.Second
)

// replica is one accessgate process of the two behind Envoy's cluster.
type replica struct {
	name             string
	grpcPort, hPort  int
	p                *proc.Proc
	policy, agBinary string
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	// --log-level info: the harness's debug level would log a line per
	// decision, thousands here.
	r.p = start(t, r.name, r.agBinary, "serve", "--config", r.policy,
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", r.grpcPort),
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", r.hPort),
		"--drain-delay", restartDrain.String(), "--log-level", "info")
	waitFor(t, r.p, fmt.Sprintf("http://127.0.0.1:%d/readyz", r.hPort),
		func(resp *http.Response, _ []byte) bool { return resp.StatusCode == http.StatusOK })
}

// decisions is the sum of the replica's accessgate_decisions_total.
func (r *replica) decisions(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", r.hPort))
	if err != nil {
		t.Fatalf("%s metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "accessgate_decisions_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%s metrics: %q: %v", r.name, line, err)
		}
		sum += v
	}
	return sum
}

// answer is one request of the load: when it started, how long it took,
// and what was wrong with its answer ("" when it was the expected one).
type answer struct {
	start  time.Time
	took   time.Duration
	status int
	wrong  string
}

// TestRollingRestartLosesNoRequest: two accessgate replicas behind the
// shipped Envoy bootstrap (one cluster, both endpoints), under a steady
// load of allowed and blocked users. Each replica in turn gets SIGTERM,
// exits, and starts again on the same port, as a rolling update does.
// Every answer must be the expected one: 200 from the origin for the
// allowed user, accessgate's own 403 for the blocked one; no 503 from a
// failed check, no 403 from anything else, no transport error. Both
// replicas must have decided checks after their restart, so the test
// shows traffic moving back, not one replica doing everything.
func TestRollingRestartLosesNoRequest(t *testing.T) {
	envoyPath(t)
	bin := accessgatePath(t)
	e := &env{t: t, keys: newKeys(t), host: appHost}
	_, e.webPort = newWeb(t)
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.yaml")
	write(t, policy, []byte(strings.NewReplacer(
		"{{ISSUER}}", issuerID,
		"{{LOGIN}}", net.JoinHostPort(loginHost, strconv.Itoa(e.webPort)),
		"{{APP}}", appHost,
		"{{AUD}}", audience,
		"{{PAGE}}", e.pageOrigin(),
	).Replace(policyTemplate)))
	write(t, filepath.Join(dir, "jwks.json"), e.keys.jwks)
	e.origin = newOrigin(t)
	e.client = newClient(t)

	reps := []*replica{{name: "accessgate-a"}, {name: "accessgate-b"}}
	for _, r := range reps {
		r.grpcPort, r.hPort, r.policy, r.agBinary = freePort(t), freePort(t), policy, bin
		r.start(t)
	}
	// The shipped bootstrap names one endpoint; the second replica joins
	// the same cluster.
	e.rewrite = func(t *testing.T, cfg []byte) []byte {
		ep := func(port int) string {
			return fmt.Sprintf("        - endpoint:\n            address:\n              socket_address: { address: 127.0.0.1, port_value: %d }\n", port)
		}
		s := string(cfg)
		if strings.Count(s, ep(reps[0].grpcPort)) != 1 {
			t.Fatalf("the accessgate endpoint is not written as expected in the bootstrap:\n%s", s)
		}
		return []byte(strings.Replace(s, ep(reps[0].grpcPort), ep(reps[0].grpcPort)+ep(reps[1].grpcPort), 1))
	}
	e.startEnvoy(t, reps[0].grpcPort)
	waitEnvoyHealthy(t, e, reps...)

	alice := cookie(e.keys.token(t, "alice@example.com", time.Hour))
	bob := cookie(e.keys.token(t, "bob@contractor.example.com", time.Hour))
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: restartWorkers},
		Timeout:   10 * time.Second,
	}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("http://127.0.0.1:%d/restart-load", e.envoyPort)
	ask := func(cookie string, wantStatus int) answer {
		a := answer{start: time.Now()}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			a.wrong = err.Error()
			return a
		}
		req.Host = fmt.Sprintf("%s:%d", appHost, e.envoyPort)
		req.Header.Set("Cookie", cookie)
		req.Header.Set("Accept", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			a.took, a.wrong = time.Since(a.start), err.Error()
			return a
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		a.took, a.status = time.Since(a.start), resp.StatusCode
		switch {
		case err != nil:
			a.wrong = "reading the body: " + err.Error()
		case resp.StatusCode != wantStatus:
			a.wrong = fmt.Sprintf("status %d, want %d: %.200s", resp.StatusCode, wantStatus, body)
		case wantStatus == http.StatusForbidden && !strings.Contains(string(body), `"reason":"blocked"`):
			// A 403 that is not accessgate's decision.
			a.wrong = fmt.Sprintf("403 without accessgate's blocked reason: %.200s", body)
		}
		return a
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answers := make([][]answer, restartWorkers)
	var wg sync.WaitGroup
	for w := range restartWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Even workers are an allowed user, odd ones a blocked one.
			cookie, want := alice, http.StatusOK
			if w%2 == 1 {
				cookie, want = bob, http.StatusForbidden
			}
			tick := time.NewTicker(restartPace)
			defer tick.Stop()
			for {
				answers[w] = append(answers[w], ask(cookie, want))
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}

	// Envoy's view of the replicas, polled while the load runs: logged,
	// so that a failure shows what Envoy thought, and the figures show
	// how long it took to take a stopping replica out.
	watchStart := time.Now()
	healthDone := make(chan []string, 1)
	go func() { healthDone <- watchEnvoyHealth(ctx, e, watchStart, reps) }()

	// A second of steady load, then each replica in turn: SIGTERM, wait
	// for it to exit (drain delay, then in-flight checks), start it
	// again on the same ports and wait until it is ready, as a rolling
	// update waits for the readiness probe. The next replica's restart
	// does not wait for Envoy: its drain delay covers that.
	time.Sleep(time.Second)
	restartFrom := time.Now()
	before := make([]float64, len(reps))
	for i, r := range reps {
		if killed := r.p.Stop(restartDrain + 20*time.Second); killed {
			t.Errorf("%s did not exit after SIGTERM; killed", r.name)
		} else if err := r.p.Err(); err != nil {
			t.Errorf("%s exit after SIGTERM: %v, want 0", r.name, err)
		}
		r.start(t)
		before[i] = r.decisions(t)
	}
	restartTo := time.Now()
	t.Logf("first SIGTERM at %v, restarts done at %v (times since the load started)",
		restartFrom.Sub(watchStart).Round(time.Millisecond), restartTo.Sub(watchStart).Round(time.Millisecond))
	// Load goes on until Envoy has both replicas back and a moment more,
	// so that both are seen deciding again.
	waitEnvoyHealthy(t, e, reps...)
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	t.Logf("Envoy's health flags of the replicas, as they changed:\n%s", strings.Join(<-healthDone, "\n"))

	var all, during []answer
	for _, as := range answers {
		all = append(all, as...)
	}
	wrong := map[string]int{}
	for _, a := range all {
		if a.wrong != "" {
			if wrong[a.wrong] == 0 {
				// When and how slow, to tell a restart's loss from a
				// stalled machine (a check past Envoy's 0.5s timeout).
				t.Logf("first %q: sent %v after the first SIGTERM, answered in %v",
					a.wrong, a.start.Sub(restartFrom).Round(time.Millisecond), a.took.Round(time.Millisecond))
			}
			wrong[a.wrong]++
		}
		if !a.start.Before(restartFrom) && a.start.Before(restartTo) {
			during = append(during, a)
		}
	}
	failed := 0
	for why, n := range wrong {
		failed += n
		t.Errorf("%d requests answered wrongly: %s", n, why)
	}
	if len(during) < restartWorkers {
		t.Fatalf("only %d requests during the restarts: the load did not run", len(during))
	}
	for i, r := range reps {
		if after := r.decisions(t); after <= before[i] {
			t.Errorf("%s decided no check after its restart (%v before, %v after): Envoy never sent it traffic again", r.name, before[i], after)
		}
	}
	t.Logf("rolling restart of 2 replicas (drain delay %v): %d requests (%d during the restarts, %v), %d failed; "+
		"latency p50 %v, p99 %v, max %v overall; during the restarts p99 %v, max %v; Envoy: %s",
		restartDrain, len(all), len(during), restartTo.Sub(restartFrom).Round(100*time.Millisecond), failed,
		quantile(all, 0.50), quantile(all, 0.99), quantile(all, 1), quantile(during, 0.99), quantile(during, 1),
		envoyStats(t, e, "cluster.accessgate.upstream_rq_retry", "cluster.accessgate.upstream_cx_connect_fail",
			"cluster.accessgate.upstream_rq_retry_overflow", "cluster.accessgate.health_check.failure", "cluster.accessgate.upstream_rq_total"))
}

// quantile is the q-quantile (0..1, nearest rank) of the answers' times.
func quantile(as []answer, q float64) time.Duration {
	if len(as) == 0 {
		return 0
	}
	d := make([]time.Duration, len(as))
	for i, a := range as {
		d[i] = a.took
	}
	slices.Sort(d)
	i := int(q*float64(len(d))+0.5) - 1
	return d[min(max(i, 0), len(d)-1)].Round(10 * time.Microsecond)
}

// waitEnvoyHealthy waits until Envoy's admin API reports every replica's
// endpoint healthy in the accessgate cluster.
func waitEnvoyHealthy(t *testing.T, e *env, reps ...*replica) {
	t.Helper()
	waitFor(t, e.envoy, fmt.Sprintf("http://127.0.0.1:%d/clusters", e.adminPort), func(_ *http.Response, b []byte) bool {
		for _, r := range reps {
			if !strings.Contains(string(b), fmt.Sprintf("accessgate::127.0.0.1:%d::health_flags::healthy\n", r.grpcPort)) {
				return false
			}
		}
		return true
	})
}

// watchEnvoyHealth polls Envoy's admin API every 50 ms until ctx ends and
// returns each change of a replica's health flags, timed from start.
func watchEnvoyHealth(ctx context.Context, e *env, start time.Time, reps []*replica) []string {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	last := map[string]string{}
	var changes []string
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/clusters", e.adminPort)); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, r := range reps {
				prefix := fmt.Sprintf("accessgate::127.0.0.1:%d::health_flags::", r.grpcPort)
				for _, line := range strings.Split(string(b), "\n") {
					if flags, ok := strings.CutPrefix(line, prefix); ok && flags != last[r.name] {
						last[r.name] = flags
						changes = append(changes, fmt.Sprintf("  %8v %s %s", time.Since(start).Round(time.Millisecond), r.name, flags))
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return changes
		case <-tick.C:
		}
	}
}

// envoyStats returns the named counters from Envoy's admin API, as
// "name=value" joined by spaces.
func envoyStats(t *testing.T, e *env, names ...string) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?usedonly", e.adminPort))
	if err != nil {
		return "stats unavailable: " + err.Error()
	}
	defer resp.Body.Close()
	got := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
			got[k] = v
		}
	}
	var out []string
	for _, n := range names {
		v := got[n]
		if v == "" {
			v = "0"
		}
		out = append(out, strings.TrimPrefix(n, "cluster.accessgate.")+"="+v)
	}
	return strings.Join(out, " ")
}
