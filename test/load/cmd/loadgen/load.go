package main

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// maxSamples bounds the latencies kept per run (8 bytes each); requests
// beyond it are counted but not timed.
const maxSamples = 4 << 20

// result is one measured run.
type result struct {
	n, errs int64
	took    time.Duration
	lat     []time.Duration // sorted
}

func (r result) rps() float64 { return float64(r.n) / r.took.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(p * float64(len(r.lat)-1))
	return r.lat[i]
}

// run calls do from conc workers for d, each worker doing request i, i+conc,
// ... (mod the request count). do reports whether the answer was the
// expected one; others count as errors.
func run(conc int, d time.Duration, do func(worker, i int) bool) result {
	var n, errs atomic.Int64
	perWorker := maxSamples / conc
	lats := make([][]time.Duration, conc)
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, min(perWorker, 1<<16))
			for i := w; ; i += conc {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				ok := do(w, i)
				if len(lat) < perWorker {
					lat = append(lat, time.Since(t0))
				}
				n.Add(1)
				if !ok {
					errs.Add(1)
				}
			}
			lats[w] = lat
		}()
	}
	wg.Wait()
	r := result{n: n.Load(), errs: errs.Load(), took: time.Since(start)}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	return r
}

// grpcLoad sends CheckRequests to addr over conns HTTP/2 connections (Envoy
// opens one per worker thread), round robin over reqs; want says whether an
// answer is the expected one.
type grpcLoad struct {
	conns   []*grpc.ClientConn
	clients []authv3.AuthorizationClient
}

func dial(addr string, n int) (*grpcLoad, error) {
	g := &grpcLoad{}
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			g.close()
			return nil, err
		}
		g.conns = append(g.conns, c)
		g.clients = append(g.clients, authv3.NewAuthorizationClient(c))
	}
	return g, nil
}

func (g *grpcLoad) close() {
	for _, c := range g.conns {
		c.Close()
	}
}

// check runs one load: conc workers for d, requests reqs in turn.
func (g *grpcLoad) check(conc int, d time.Duration, reqs []*authv3.CheckRequest, want func(*authv3.CheckResponse) bool) result {
	ctx := context.Background()
	return run(conc, d, func(w, i int) bool {
		resp, err := g.clients[w%len(g.clients)].Check(ctx, reqs[i%len(reqs)])
		return err == nil && want(resp)
	})
}

// isOK reports an OK answer (a forward).
func isOK(r *authv3.CheckResponse) bool {
	return r.GetStatus().GetCode() == 0 && r.GetOkResponse() != nil
}

// each sends every request of reqs once, from conc workers, stopping early
// after d; it returns how many answers were not the expected one (or not
// sent in time).
func (g *grpcLoad) each(conc int, d time.Duration, reqs []*authv3.CheckRequest, want func(*authv3.CheckResponse) bool) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var next, bad atomic.Int64
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(reqs) {
					return
				}
				resp, err := g.clients[w%len(g.clients)].Check(ctx, reqs[i])
				if err != nil || !want(resp) {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return bad.Load()
}
