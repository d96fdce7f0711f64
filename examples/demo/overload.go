package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// The third epilogue: a server overloaded. The backend is now a service
// with a real capacity (overloadWorkers workers, each request holding one
// for overloadService, the others waiting for one until their caller gives
// up), twice over: once with nothing in front of its handler, once behind
// resilhttp.Shed with a resilience.AdaptiveLimiter. Each is offered
// overloadFactor times its capacity by callers with a deadline of
// overloadDeadline, and the epilogue prints what share of its capacity
// each served in time.

const (
	overloadWorkers  = 4
	overloadService  = 10 * time.Millisecond
	overloadFactor   = 3
	overloadDeadline = 100 * time.Millisecond
)

var overloadPaths = [...]string{"/unlimited", "/limited"}

const (
	unlimited = iota
	limited
)

// workerPool is the service's workers: a request takes one, first come
// first served, or leaves the line when its context ends.
type workerPool struct {
	mu   sync.Mutex
	busy int
	line []chan struct{}
}

func (p *workerPool) take(ctx context.Context) bool {
	p.mu.Lock()
	if p.busy < overloadWorkers && len(p.line) == 0 {
		p.busy++
		p.mu.Unlock()
		return true
	}
	ready := make(chan struct{})
	p.line = append(p.line, ready)
	p.mu.Unlock()
	select {
	case <-ready:
		return true
	case <-ctx.Done():
		p.mu.Lock()
		i := slices.Index(p.line, ready)
		if i >= 0 {
			p.line = slices.Delete(p.line, i, i+1)
		}
		p.mu.Unlock()
		if i < 0 { // given a worker as ctx ended
			p.done()
		}
		return false
	}
}

func (p *workerPool) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.busy--
	if len(p.line) > 0 {
		p.busy++
		close(p.line[0])
		p.line = p.line[1:]
	}
}

// overloadBackend is the backend in the overload phase: a worker pool per
// side, the limited side's behind the limiter.
type overloadBackend struct {
	pools   [len(overloadPaths)]workerPool
	limited http.Handler
	limiter *resilience.AdaptiveLimiter
}

func newOverloadBackend() (*overloadBackend, error) {
	o := &overloadBackend{}
	l, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "backend"})
	if err != nil {
		return nil, err
	}
	shed, err := resilhttp.Shed(l, time.Second)
	if err != nil {
		return nil, err
	}
	o.limiter = l
	o.limited = shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { o.work(&o.pools[limited], w, r) }))
	return o, nil
}

// work serves r on one of p's workers: a request begun runs to its end.
func (o *overloadBackend) work(p *workerPool, w http.ResponseWriter, r *http.Request) {
	if !p.take(r.Context()) {
		return
	}
	time.Sleep(overloadService)
	p.done()
	io.WriteString(w, "ok")
}

func (o *overloadBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == overloadPaths[limited] {
		o.limited.ServeHTTP(w, r)
		return
	}
	o.work(&o.pools[unlimited], w, r)
}

// overloadSide is what the calls to one side saw.
type overloadSide struct {
	Calls, Served, Refused, Late int           // served: 200 within the deadline; refused: 503
	P50, P99                     time.Duration // of the requests served in time
}

// Goodput returns the calls served in time per second, as a share of
// the capacity.
func (s overloadSide) Goodput(phase time.Duration) float64 {
	return float64(s.Served) / phase.Seconds() / overloadCapacity()
}

func overloadCapacity() float64 { return overloadWorkers / overloadService.Seconds() }

// overloadReport is what the epilogue saw, each side's in the order of
// overloadPaths, and the limiter's limit at the end.
type overloadReport struct {
	Sides [len(overloadPaths)]overloadSide
	Phase time.Duration
	Limit int
}

// playOverload runs the epilogue for cfg.Phase against be, served on n,
// and writes its table to out.
func playOverload(ctx context.Context, cfg config, be *backend, n network, logf func(string, ...any), out io.Writer) (*overloadReport, error) {
	base := &http.Transport{DialContext: n.Dial, MaxIdleConnsPerHost: 256}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: base}
	rate := overloadFactor * overloadCapacity()
	fmt.Fprintf(out, "\nan overloaded server: %d workers, %v a request (%.0f requests/s), offered %.0f requests/s for %v, each with a %v deadline:\n",
		overloadWorkers, overloadService, overloadCapacity(), rate, cfg.Phase, overloadDeadline)
	fmt.Fprintf(out, "  once with nothing in front of the handler, once behind resilhttp.Shed with an AdaptiveLimiter (defaults)\n")
	be.phase.Store(overload)
	logf("phase: %s", phaseNames[overload])

	var (
		mu    sync.Mutex
		sides [len(overloadPaths)]overloadSide
		lats  [len(overloadPaths)][]time.Duration
		wg    sync.WaitGroup
	)
	url := "http://" + n.Listener.Addr().String()
	start := time.Now()
	calls := int(rate * cfg.Phase.Seconds())
	for i := 0; i < calls && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
			time.Sleep(d)
		}
		for side := range overloadPaths {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, overloadDeadline)
				defer cancel()
				req, _ := http.NewRequestWithContext(cctx, http.MethodGet, url+overloadPaths[side], nil)
				began := time.Now()
				code := 0
				if resp, err := client.Do(req); err == nil {
					if _, err := io.Copy(io.Discard, resp.Body); err == nil {
						code = resp.StatusCode
					}
					resp.Body.Close()
				}
				took := time.Since(began)
				mu.Lock()
				defer mu.Unlock()
				s := &sides[side]
				s.Calls++
				switch {
				case code == http.StatusOK && took <= overloadDeadline:
					s.Served++
					lats[side] = append(lats[side], took)
				case code == http.StatusServiceUnavailable:
					s.Refused++
				default:
					s.Late++
				}
			})
		}
	}
	wg.Wait()
	time.Sleep(2 * overloadDeadline) // the last requests begun run to their end

	rep := &overloadReport{Phase: cfg.Phase, Limit: be.ov.limiter.Limit()}
	for side := range overloadPaths {
		slices.Sort(lats[side])
		if n := len(lats[side]); n > 0 {
			sides[side].P50, sides[side].P99 = lats[side][n/2], lats[side][min(n-1, n*99/100)]
		}
		rep.Sides[side] = sides[side]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-22s %7s %9s %8s %8s %9s %9s %9s\n", "", "calls", "in time", "refused", "late", "goodput", "p50", "p99")
	for side, name := range [...]string{"nothing in front", "AdaptiveLimiter"} {
		s := rep.Sides[side]
		fmt.Fprintf(&b, "%-22s %7d %9d %8d %8d %8.0f%% %9s %9s\n", name, s.Calls, s.Served, s.Refused, s.Late, 100*s.Goodput(cfg.Phase), round(s.P50), round(s.P99))
	}
	fmt.Fprintf(&b, "\nthe limiter's limit ends at %d (the service has %d workers; it starts at 20, which its first half second spends coming down from: that is its p99); goodput is the requests served within the deadline, as a share of capacity\n", rep.Limit, overloadWorkers)
	b.WriteString(rep.verdict() + "\n")
	io.WriteString(out, b.String())
	return rep, ctx.Err()
}

// verdict says what the table shows.
func (r *overloadReport) verdict() string {
	u, l := r.Sides[unlimited], r.Sides[limited]
	return fmt.Sprintf("with nothing in front the server served %.0f%% of its capacity in time; behind the limiter, %.0f%%, refusing %d requests at once",
		100*u.Goodput(r.Phase), 100*l.Goodput(r.Phase), l.Refused)
}
