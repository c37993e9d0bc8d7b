package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// soakBinary is `loadgen soak`: the accessgate binary under sustained
// load, with its policy file replaced every -reload (two valid versions,
// alternating) and a JWKS key rotation midway. The issuer's jwks_url is
// served by this process on loopback: at half time it publishes the old
// and the new key, waits until accessgate has fetched them, switches the
// load's tokens to the new key, and at three quarters drops the old key.
// Every -sample it reads process_resident_memory_bytes and go_goroutines
// from /metrics; it also reports the binary's CPU time per check over the
// whole load (from /proc/PID/stat).
//
// It fails (exit 1) when a check fails or is not a forward, when the
// rotation or the reloads did not happen, or when the median RSS or
// goroutine count of the second half of the samples differs by more than
// -flat from that of the first half (a trend, not one sample's noise).
func soakBinary(args []string) error {
	o, err := soakFlags(args)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "accessgate-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin, err = accessgateBinary(o.bin, dir); err != nil {
		return err
	}
	r, err := newSoakRig(o, dir)
	if err != nil {
		return err
	}
	defer r.close()
	idleBefore, err := r.metrics.sample()
	if err != nil {
		return err
	}
	fmt.Printf("soak: %s at concurrency %d over %d connections, reload every %s, key rotation at %s; accessgate %s\n",
		o.duration, o.conc, o.conns, o.reload, o.duration/2, o.bin)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+time.Minute)
	defer cancel()
	res := r.run(ctx, o)
	oldRefused, err := r.oldKeyRefused(ctx)
	if err != nil {
		return err
	}
	idleAfter, err := r.settle(idleBefore, res.written)
	if err != nil {
		return err
	}
	return res.report(o, idleBefore, idleAfter, oldRefused)
}

// soakOptions is `loadgen soak`'s command line.
type soakOptions struct {
	bin                      string
	duration, reload, sample time.Duration
	conc, conns              int
	flat                     float64
}

func soakFlags(args []string) (*soakOptions, error) {
	o := &soakOptions{}
	fs := flag.NewFlagSet("loadgen soak", flag.ContinueOnError)
	fs.StringVar(&o.bin, "bin", "", "the accessgate binary; empty builds ./cmd/accessgate")
	fs.DurationVar(&o.duration, "duration", 10*time.Minute, "length of the soak")
	fs.IntVar(&o.conc, "concurrency", 50, "concurrent checks")
	fs.IntVar(&o.conns, "conns", 2, "gRPC connections (Envoy opens one per worker)")
	fs.DurationVar(&o.reload, "reload", 10*time.Second, "policy file replacement interval")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "RSS and goroutine sampling interval")
	fs.Float64Var(&o.flat, "flat", 0.10, "allowed change of the median RSS and goroutine count from the first half of the samples to the second")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.duration < 4*o.sample {
		return nil, fmt.Errorf("-duration %s: want at least 4 samples (-sample %s)", o.duration, o.sample)
	}
	return o, nil
}

// soakRig is the soak's world: the JWKS endpoint, the two policy versions,
// the running binary, its metrics and the load's connections and requests.
type soakRig struct {
	fx       *fixture
	next     jwk.Key // the key rotated to
	jwks     *jwksServer
	jwksSrv  *http.Server
	policy   string    // the file accessgate serves
	versions [2]string // what the reloads write, alternating
	gate     *server
	metrics  *scraper
	load     *grpcLoad
	// oldReqs and newReqs: 100 users per key; the load cycles through the
	// current ones.
	oldReqs, newReqs []*authv3.CheckRequest
	current          atomic.Pointer[[]*authv3.CheckRequest]
}

func newSoakRig(o *soakOptions, dir string) (r *soakRig, err error) {
	r = &soakRig{jwks: &jwksServer{}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if r.fx, err = newFixture(dir, 0); err != nil {
		return nil, err
	}
	if r.next, err = newSigningKey("soak-key-2"); err != nil {
		return nil, err
	}
	// The JWKS endpoint, starting with the fixture's key only.
	if err := r.jwks.publish(r.fx.priv); err != nil {
		return nil, err
	}
	jl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.jwksSrv = &http.Server{Handler: r.jwks, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.jwksSrv.Serve(jl) }()
	if err := r.writePolicies(dir, jl.Addr().String()); err != nil {
		return nil, err
	}
	if r.gate, err = startAccessgate("accessgate", o.bin, r.policy); err != nil {
		return nil, err
	}
	// No keep-alive: an idle connection would hold goroutines in accessgate
	// and blur its goroutine count.
	r.metrics = &scraper{url: "http://" + r.gate.httpAddr + "/metrics", client: &http.Client{
		Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if r.load, err = dial(r.gate.grpcAddr, o.conns); err != nil {
		return nil, err
	}
	if r.oldReqs, err = soakRequests(r.fx.priv); err != nil {
		return nil, err
	}
	if r.newReqs, err = soakRequests(r.next); err != nil {
		return nil, err
	}
	r.current.Store(&r.oldReqs)
	// One check on each connection, so that they all exist (each holds a
	// few goroutines in accessgate) before the idle goroutine count.
	for _, c := range r.load.clients {
		if resp, err := c.Check(context.Background(), r.oldReqs[0]); err != nil || !isOK(resp) {
			return nil, fmt.Errorf("accessgate does not forward the soak request: %v %v", err, resp.GetStatus())
		}
	}
	return r, nil
}

// writePolicies writes the first of two valid policy versions: the
// fixture's small policy with the key set at the JWKS endpoint jwksAddr,
// and the same with one more application.
func (r *soakRig) writePolicies(dir, jwksAddr string) error {
	small, err := os.ReadFile(r.fx.small)
	if err != nil {
		return err
	}
	a := strings.Replace(string(small), "jwks_file: jwks.json",
		"jwks_url: http://"+jwksAddr+"/cdn-cgi/access/certs\n    jwks_refresh: 10s", 1)
	if a == string(small) {
		return errors.New("the fixture's policy has no jwks_file line to replace")
	}
	b := a + "  - name: soak-extra\n    domains: [extra.example.com]\n    issuer: team\n    audience: " + audience +
		"\n    policies:\n      - name: staff\n        action: allow\n        include: [{email_domain: [example.com]}]\n"
	r.versions = [2]string{a, b}
	r.policy = filepath.Join(dir, "soak.yaml")
	return replaceFile(r.policy, a)
}

// soakRequests are 100 users' check requests with tokens signed by priv.
func soakRequests(priv jwk.Key) ([]*authv3.CheckRequest, error) {
	reqs := make([]*authv3.CheckRequest, 100)
	for i := range reqs {
		t, err := mint(priv, i)
		if err != nil {
			return nil, err
		}
		reqs[i] = checkRequest(appHost, appPath, t)
	}
	return reqs, nil
}

func (r *soakRig) close() {
	if r.load != nil {
		r.load.close()
	}
	if r.gate != nil {
		r.gate.stop()
	}
	if r.jwksSrv != nil {
		r.jwksSrv.Close()
	}
}

// soakRun is what happened during the load.
type soakRun struct {
	res         result
	cpuPerCheck time.Duration
	cpuErr      error
	firstErr    atomic.Pointer[string]
	samples     []sampleAt
	sampleErr   error
	written     int // policy files written
	rotation    rotationLog
}

// run loads the binary for o.duration while sampling its metrics,
// replacing its policy file and rotating its key in the background.
func (r *soakRig) run(ctx context.Context, o *soakOptions) *soakRun {
	out := &soakRun{}
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	background := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	background(func() { out.samples, out.sampleErr = r.sampleEvery(o.sample, start, stop) })
	background(func() { out.written = r.reloadEvery(o.reload, stop) })
	// Key rotation: publish old+new at half time, switch the tokens once
	// accessgate has fetched the new key, drop the old key at three
	// quarters.
	background(func() {
		out.rotation.err = rotate(ctx, stop, start, o.duration, r.jwks, r.fx.priv, r.next, r.metrics, func() {
			r.current.Store(&r.newReqs)
		}, &out.rotation)
	})
	cpu := startCPU(r.gate)
	out.res = run(o.conc, o.duration, func(w, i int) bool {
		reqs := *r.current.Load()
		resp, err := r.load.clients[w%len(r.load.clients)].Check(ctx, reqs[i%len(reqs)])
		if err == nil && isOK(resp) {
			return true
		}
		msg := fmt.Sprintf("check %d: %v %v", i, err, resp.GetStatus())
		out.firstErr.CompareAndSwap(nil, &msg)
		return false
	})
	out.cpuPerCheck, out.cpuErr = cpu.perRequest(out.res.n)
	close(stop)
	wg.Wait()
	return out
}

// sampleEvery samples the metrics every interval until stop; each sample
// is the floor of 10 readings (see floor).
func (r *soakRig) sampleEvery(every time.Duration, start time.Time, stop <-chan struct{}) (samples []sampleAt, lastErr error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return samples, lastErr
		case <-t.C:
			s, err := r.metrics.floor(10, 50*time.Millisecond)
			if err != nil {
				lastErr = err
				continue
			}
			s.at = time.Since(start)
			samples = append(samples, s)
			fmt.Printf("  %6s  checks %9d  rss %s  goroutines %d\n", s.at.Round(time.Second), s.checks, mib(s.rss), s.goroutines)
		}
	}
}

// reloadEvery replaces the policy file by the other version every
// interval until stop, and returns how many files it wrote.
func (r *soakRig) reloadEvery(every time.Duration, stop <-chan struct{}) (written int) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return written
		case <-t.C:
			if err := replaceFile(r.policy, r.versions[(written+1)%2]); err != nil {
				fmt.Println("reload:", err)
				continue
			}
			written++
		}
	}
}

// oldKeyRefused reports whether a token of the old key is refused after
// the load. accessgate drops the old key at its first refresh after the
// drop (jwks_refresh, 10 s), which a short soak may end before: it polls
// up to 15 s for the refusal.
func (r *soakRig) oldKeyRefused(ctx context.Context) (bool, error) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := r.load.clients[0].Check(ctx, r.oldReqs[0]); err == nil && !isOK(resp) {
			return true, nil
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return false, nil
}

// settle waits (up to 10 s) until every written file is loaded and the
// goroutines are down to their idle count: the last file may still be in
// its debounce, and the last checks' streams may still be ending. It
// returns the last sample.
func (r *soakRig) settle(idleBefore sampleAt, written int) (sampleAt, error) {
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := r.metrics.sample()
		if err != nil {
			return s, err
		}
		if (s.reloads-idleBefore.reloads >= float64(written) && s.goroutines <= idleBefore.goroutines) ||
			time.Now().After(deadline) {
			return s, nil
		}
		<-tick.C
	}
}

// report prints the soak's table and returns an error naming what missed.
func (run *soakRun) report(o *soakOptions, idleBefore, idleAfter sampleAt, oldRefused bool) error {
	res := run.res
	loaded := idleAfter.reloads - idleBefore.reloads
	var fails []string
	check := func(ok bool, name string) string {
		if !ok {
			fails = append(fails, name)
		}
		return verdict(ok)
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nsoak\tmeasured\tgoal\tresult")
	fmt.Fprintf(w, "checks\t%d in %s (%.0f/s)\t-\t-\n", res.n, res.took.Round(time.Second), res.rps())
	if run.cpuErr != nil {
		return fmt.Errorf("CPU time: %w", run.cpuErr)
	}
	fmt.Fprintf(w, "CPU per check\t%.1f µs (utime+stime over the load)\t-\t-\n", float64(run.cpuPerCheck)/float64(time.Microsecond))
	fmt.Fprintf(w, "errors\t%d\t0\t%s\n", res.errs, check(res.errs == 0, "errors"))
	fmt.Fprintf(w, "latency p50 / p99 / p99.9\t%s / %s / %s\t-\t-\n", us(res.pct(0.5)), us(res.pct(0.99)), us(res.pct(0.999)))
	fmt.Fprintf(w, "reloads\t%d written, %.0f loaded\tall loaded\t%s\n", run.written, loaded,
		check(run.written > 0 && loaded >= float64(run.written), "reloads"))
	fmt.Fprintf(w, "key rotation\t%s; old key's token refused after: %t\tno refusal\t%s\n", &run.rotation, oldRefused,
		check(run.rotation.err == nil && oldRefused, "rotation"))
	if run.sampleErr != nil || len(run.samples) < 2 {
		return fmt.Errorf("%d samples (%v)", len(run.samples), run.sampleErr)
	}
	for _, c := range []struct {
		name string
		f    func(sampleAt) float64
		unit func(float64) string
	}{
		{"RSS", func(s sampleAt) float64 { return float64(s.rss) }, func(v float64) string { return mib(uint64(v)) }},
		{"goroutines (floor)", func(s sampleAt) float64 { return float64(s.goroutines) }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	} {
		first, second, lo, hi := halves(run.samples, c.f)
		change := (second - first) / first
		fmt.Fprintf(w, "%s under load\tmedian %s first half, %s second half (%+.1f %%); min %s, max %s\twithin %.0f %%\t%s\n",
			c.name, c.unit(first), c.unit(second), 100*change, c.unit(lo), c.unit(hi), 100*o.flat, check(abs(change) <= o.flat, c.name))
	}
	fmt.Fprintf(w, "goroutines idle\t%d before, %d after\tno growth\t%s\n", idleBefore.goroutines, idleAfter.goroutines,
		check(idleAfter.goroutines <= idleBefore.goroutines, "idle goroutines"))
	w.Flush()
	fmt.Printf("\nsamples (every %s): rss MiB, goroutines\n", o.sample)
	for _, s := range run.samples {
		fmt.Printf("  %s\t%.1f\t%d\n", s.at.Round(time.Second), float64(s.rss)/(1<<20), s.goroutines)
	}
	if p := run.firstErr.Load(); p != nil {
		fmt.Println("first error:", *p)
	}
	if len(fails) > 0 {
		return fmt.Errorf("missed: %s", strings.Join(fails, ", "))
	}
	return nil
}

// halves returns the medians of f over the first and the second half of
// samples (a trend, not one sample's noise, is what a leak looks like: a
// burst of checks in flight during one sample must not decide), and f's
// minimum and maximum.
func halves(samples []sampleAt, f func(sampleAt) float64) (first, second, lo, hi float64) {
	vs := make([]float64, len(samples))
	for i, s := range samples {
		vs[i] = f(s)
	}
	n := len(vs) / 2
	return median(vs[:n]), median(vs[n:]), slices.Min(vs), slices.Max(vs)
}

func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// rotationLog records when each rotation step happened.
type rotationLog struct {
	published, switched, dropped time.Duration
	err                          error
}

func (r *rotationLog) String() string {
	if r.err != nil {
		return "failed: " + r.err.Error()
	}
	return fmt.Sprintf("old+new published at %s, tokens switched at %s, old dropped at %s",
		r.published.Round(time.Second), r.switched.Round(time.Second), r.dropped.Round(time.Second))
}

// rotate runs the key rotation (see soakBinary) and records it in log.
func rotate(ctx context.Context, stop <-chan struct{}, start time.Time, d time.Duration, j *jwksServer,
	old, next jwk.Key, m *scraper, switchTokens func(), log *rotationLog) error {
	wait := func(until time.Duration) error {
		t := time.NewTimer(time.Until(start.Add(until)))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-stop:
			return errors.New("load ended first")
		}
	}
	if err := wait(d / 2); err != nil {
		return err
	}
	before, err := m.sample()
	if err != nil {
		return err
	}
	if err := j.publish(old, next); err != nil {
		return err
	}
	log.published = time.Since(start)
	// accessgate refetches every jwks_refresh (10 s): wait for a
	// successful fetch after the publication, polling to a deadline.
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := m.sample()
		if err == nil && s.jwksOK > before.jwksOK && j.servedCurrent() {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("accessgate did not fetch the new key set within a minute")
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	switchTokens()
	log.switched = time.Since(start)
	if err := wait(3 * d / 4); err != nil {
		return err
	}
	if err := j.publish(next); err != nil {
		return err
	}
	log.dropped = time.Since(start)
	return nil
}

// newSigningKey is an ES256 key with kid.
func newSigningKey(kid string) (jwk.Key, error) {
	raw, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	k, err := jwk.FromRaw(raw)
	if err != nil {
		return nil, err
	}
	_ = k.Set(jwk.KeyIDKey, kid)
	_ = k.Set(jwk.AlgorithmKey, jwa.ES256)
	return k, nil
}

// jwksServer serves the current key set document.
type jwksServer struct {
	doc    atomic.Pointer[[]byte]
	served atomic.Pointer[[]byte] // the last document written out in full
}

// publish makes the document publish the public halves of keys.
func (j *jwksServer) publish(keys ...jwk.Key) error {
	set := jwk.NewSet()
	for _, k := range keys {
		pub, err := k.PublicKey()
		if err != nil {
			return err
		}
		if err := set.AddKey(pub); err != nil {
			return err
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return err
	}
	j.doc.Store(&b)
	return nil
}

func (j *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	d := j.doc.Load()
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(*d); err == nil {
		j.served.Store(d)
	}
}

// servedCurrent reports whether the current document has been served.
func (j *jwksServer) servedCurrent() bool { return j.served.Load() == j.doc.Load() }

// replaceFile writes content to path the way editors save: a new file,
// renamed over the old one.
func replaceFile(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// scraper reads accessgate's /metrics.
type scraper struct {
	url    string
	client *http.Client
}

// sampleAt is one reading of /metrics.
type sampleAt struct {
	at         time.Duration
	rss        uint64
	goroutines int
	checks     int64
	reloads    float64
	jwksOK     float64
}

// floor takes n readings, every gap, and keeps the last one with the
// fewest goroutines: under load go_goroutines counts one goroutine per
// check in flight (0 to -concurrency), which would otherwise drown a leak in
// noise. RSS is read with it.
func (m *scraper) floor(n int, gap time.Duration) (sampleAt, error) {
	best, err := m.sample()
	if err != nil {
		return best, err
	}
	t := time.NewTicker(gap)
	defer t.Stop()
	for range n - 1 {
		<-t.C
		s, err := m.sample()
		if err != nil {
			return s, err
		}
		if s.goroutines <= best.goroutines {
			best.goroutines = s.goroutines
		}
		best.rss, best.checks, best.reloads, best.jwksOK = s.rss, s.checks, s.reloads, s.jwksOK
	}
	return best, nil
}

func (m *scraper) sample() (sampleAt, error) {
	var s sampleAt
	resp, err := m.client.Get(m.url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			s.rss = uint64(f)
		case name == "go_goroutines":
			s.goroutines = int(f)
		case name == `accessgate_config_reloads_total{result="success"}`:
			s.reloads = f
		case strings.HasPrefix(name, "accessgate_check_duration_seconds_count"):
			// One series per endpoint (grpc, auth/...): sum them.
			s.checks += int64(f)
		case strings.HasPrefix(name, "accessgate_jwks_fetches_total{") && strings.Contains(name, `result="success"`):
			s.jwksOK += f
		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	if s.rss == 0 || s.goroutines == 0 {
		return s, errors.New("/metrics lacks process_resident_memory_bytes or go_goroutines")
	}
	return s, nil
}
