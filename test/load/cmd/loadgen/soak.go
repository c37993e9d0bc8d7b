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

// soakBinary is `loadgen soak`: the real accessgate binary under
// sustained load (issue 6), with its policy file replaced every -reload
// (two valid versions, alternating) and a JWKS key rotation midway. The
// issuer's jwks_url is served by this process on loopback: at half time
// it publishes the old and the new key, waits until accessgate has
// fetched them, switches the load's tokens to the new key, and at three
// quarters drops the old key. Every -sample it reads
// process_resident_memory_bytes and go_goroutines from /metrics.
//
// It fails (exit 1) when a check fails or is not a forward, when the
// rotation or the reloads did not happen, or when RSS or goroutines did not
// stay within -flat of their first sample under load.
func soakBinary(args []string) error {
	fs := flag.NewFlagSet("loadgen soak", flag.ContinueOnError)
	bin := fs.String("bin", "bin/accessgate", "the accessgate binary")
	duration := fs.Duration("duration", 10*time.Minute, "length of the soak")
	conc := fs.Int("concurrency", 50, "concurrent checks")
	conns := fs.Int("conns", 2, "gRPC connections (Envoy opens one per worker)")
	reload := fs.Duration("reload", 10*time.Second, "policy file replacement interval")
	sample := fs.Duration("sample", 10*time.Second, "RSS and goroutine sampling interval")
	flat := fs.Float64("flat", 0.10, "allowed deviation of RSS and goroutines from their first sample under load")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *duration < 4**sample {
		return fmt.Errorf("-duration %s: want at least 4 samples (-sample %s)", *duration, *sample)
	}
	dir, err := os.MkdirTemp("", "accessgate-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fx, err := newFixture(dir, 0)
	if err != nil {
		return err
	}
	next, err := newSigningKey("soak-key-2")
	if err != nil {
		return err
	}

	// The JWKS endpoint, starting with the fixture's key only.
	j := &jwksServer{}
	if err := j.publish(fx.priv); err != nil {
		return err
	}
	jl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	jsrv := &http.Server{Handler: j, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = jsrv.Serve(jl) }()
	defer jsrv.Close()

	// Two valid policy versions: the fixture's small policy with the key
	// set at the URL, and the same with one more application.
	small, err := os.ReadFile(fx.small)
	if err != nil {
		return err
	}
	a := strings.Replace(string(small), "jwks_file: jwks.json",
		"jwks_url: http://"+jl.Addr().String()+"/cdn-cgi/access/certs\n    jwks_refresh: 10s", 1)
	if a == string(small) {
		return errors.New("the fixture's policy has no jwks_file line to replace")
	}
	b := a + "  - name: soak-extra\n    domains: [extra.example.com]\n    issuer: team\n    audience: " + audience +
		"\n    policies:\n      - name: staff\n        action: allow\n        include: [{email_domain: [example.com]}]\n"
	versions := []string{a, b}
	policy := filepath.Join(dir, "soak.yaml")
	if err := replaceFile(policy, a); err != nil {
		return err
	}

	gate, err := startBinary(*bin, policy)
	if err != nil {
		return err
	}
	defer gate.stop()
	// No keep-alive: an idle connection would hold goroutines in accessgate
	// and blur its goroutine count.
	m := &scraper{url: "http://" + gate.httpAddr + "/metrics", client: &http.Client{
		Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	load, err := dial(gate.grpcAddr, *conns)
	if err != nil {
		return err
	}
	defer load.close()

	// 100 users per key; the load cycles through them.
	tokens := func(priv jwk.Key) ([]*authv3.CheckRequest, error) {
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
	oldReqs, err := tokens(fx.priv)
	if err != nil {
		return err
	}
	newReqs, err := tokens(next)
	if err != nil {
		return err
	}
	var current atomic.Pointer[[]*authv3.CheckRequest]
	current.Store(&oldReqs)
	// One check on each connection, so that they all exist (each holds a
	// few goroutines in accessgate) before the idle goroutine count.
	for _, c := range load.clients {
		if resp, err := c.Check(context.Background(), oldReqs[0]); err != nil || !isOK(resp) {
			return fmt.Errorf("accessgate does not forward the soak request: %v %v", err, resp.GetStatus())
		}
	}

	idleBefore, err := m.sample()
	if err != nil {
		return err
	}
	fmt.Printf("soak: %s at concurrency %d over %d connections, reload every %s, key rotation at %s; accessgate %s\n",
		*duration, *conc, *conns, *reload, *duration/2, *bin)

	ctx, cancel := context.WithTimeout(context.Background(), *duration+time.Minute)
	defer cancel()
	var (
		wg        sync.WaitGroup
		firstErr  atomic.Pointer[string]
		events    = make(chan string, 16)
		samples   []sampleAt
		sampleErr error
		written   int
		rotation  = &rotationLog{}
	)
	start := time.Now()
	stopBackground := make(chan struct{})

	// Sampler.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(*sample)
		defer t.Stop()
		for {
			select {
			case <-stopBackground:
				return
			case <-t.C:
				s, err := m.floor(10, 50*time.Millisecond)
				if err != nil {
					sampleErr = err
					continue
				}
				s.at = time.Since(start)
				samples = append(samples, s)
				fmt.Printf("  %6s  checks %9d  rss %s  goroutines %d\n", s.at.Round(time.Second), s.checks, mib(s.rss), s.goroutines)
			}
		}
	}()
	// Reloader.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(*reload)
		defer t.Stop()
		for {
			select {
			case <-stopBackground:
				return
			case <-t.C:
				written++
				if err := replaceFile(policy, versions[written%2]); err != nil {
					select {
					case events <- "reload: " + err.Error():
					default: // enough reported
					}
				}
			}
		}
	}()
	// Key rotation: publish old+new at half time, switch the tokens once
	// accessgate has fetched the new key, drop the old key at three
	// quarters.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rotation.err = rotate(ctx, stopBackground, start, *duration, j, fx.priv, next, m, func() {
			current.Store(&newReqs)
		}, rotation)
	}()

	res := run(*conc, *duration, func(w, i int) bool {
		reqs := *current.Load()
		resp, err := load.clients[w%len(load.clients)].Check(ctx, reqs[i%len(reqs)])
		if err == nil && isOK(resp) {
			return true
		}
		msg := fmt.Sprintf("check %d: %v %v", i, err, resp.GetStatus())
		firstErr.CompareAndSwap(nil, &msg)
		return false
	})
	close(stopBackground)
	wg.Wait()
	close(events)
	for e := range events {
		fmt.Println(e)
	}

	// After the load: the old key is gone, the reloads were counted, and
	// goroutines are back to idle.
	oldRefused := false
	if resp, err := load.clients[0].Check(ctx, oldReqs[0]); err == nil && !isOK(resp) {
		oldRefused = true
	}
	// The last file written may still be in its debounce, and the last
	// checks' streams may still be ending: poll (to a deadline) until the
	// reloads are counted and the goroutines are down to their idle count.
	var idleAfter sampleAt
	settle := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	for {
		if idleAfter, err = m.sample(); err != nil {
			return err
		}
		if (idleAfter.reloads-idleBefore.reloads >= float64(written) && idleAfter.goroutines <= idleBefore.goroutines) ||
			time.Now().After(settle) {
			break
		}
		<-tick.C
	}
	tick.Stop()
	loaded := idleAfter.reloads - idleBefore.reloads

	var fails []string
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nsoak\tmeasured\tgoal\tresult")
	fmt.Fprintf(w, "checks\t%d in %s (%.0f/s)\t-\t-\n", res.n, res.took.Round(time.Second), res.rps())
	ok := res.errs == 0
	fmt.Fprintf(w, "errors\t%d\t0\t%s\n", res.errs, verdict(ok))
	if !ok {
		fails = append(fails, "errors")
	}
	fmt.Fprintf(w, "latency p50 / p99 / p99.9\t%s / %s / %s\t-\t-\n", us(res.pct(0.5)), us(res.pct(0.99)), us(res.pct(0.999)))
	ok = written > 0 && loaded >= float64(written)
	fmt.Fprintf(w, "reloads\t%d written, %.0f loaded\tall loaded\t%s\n", written, loaded, verdict(ok))
	if !ok {
		fails = append(fails, "reloads")
	}
	ok = rotation.err == nil && oldRefused
	fmt.Fprintf(w, "key rotation\t%s; old key's token refused after: %t\tno refusal\t%s\n", rotation, oldRefused, verdict(ok))
	if !ok {
		fails = append(fails, "rotation")
	}
	if sampleErr != nil || len(samples) < 2 {
		return fmt.Errorf("%d samples (%v)", len(samples), sampleErr)
	}
	for _, c := range []struct {
		name string
		f    func(sampleAt) float64
		unit func(float64) string
	}{
		{"RSS", func(s sampleAt) float64 { return float64(s.rss) }, func(v float64) string { return mib(uint64(v)) }},
		{"goroutines (floor)", func(s sampleAt) float64 { return float64(s.goroutines) }, func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	} {
		first, second, lo, hi := halves(samples, c.f)
		change := (second - first) / first
		ok = abs(change) <= *flat
		fmt.Fprintf(w, "%s under load\tmedian %s first half, %s second half (%+.1f %%); min %s, max %s\twithin %.0f %%\t%s\n",
			c.name, c.unit(first), c.unit(second), 100*change, c.unit(lo), c.unit(hi), 100**flat, verdict(ok))
		if !ok {
			fails = append(fails, c.name)
		}
	}
	ok = idleAfter.goroutines <= idleBefore.goroutines
	fmt.Fprintf(w, "goroutines idle\t%d before, %d after\tno growth\t%s\n", idleBefore.goroutines, idleAfter.goroutines, verdict(ok))
	if !ok {
		fails = append(fails, "idle goroutines")
	}
	w.Flush()
	fmt.Printf("\nsamples (every %s): rss MiB, goroutines\n", *sample)
	for _, s := range samples {
		fmt.Printf("  %s\t%.1f\t%d\n", s.at.Round(time.Second), float64(s.rss)/(1<<20), s.goroutines)
	}
	if p := firstErr.Load(); p != nil {
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
