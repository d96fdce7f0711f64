package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

func TestAdaptiveLimiterConfig(t *testing.T) {
	cases := []struct {
		cfg   resilience.AdaptiveLimiterConfig
		field string
	}{
		{resilience.AdaptiveLimiterConfig{MinLimit: -1}, "MinLimit"},
		{resilience.AdaptiveLimiterConfig{MaxLimit: -1}, "MaxLimit"},
		{resilience.AdaptiveLimiterConfig{MinLimit: 10, MaxLimit: 5}, "MinLimit"},
		{resilience.AdaptiveLimiterConfig{InitialLimit: -3}, "InitialLimit"},
		{resilience.AdaptiveLimiterConfig{MaxLimit: 10, InitialLimit: 11}, "InitialLimit"},
		{resilience.AdaptiveLimiterConfig{MinLimit: 5, InitialLimit: 4}, "InitialLimit"},
		{resilience.AdaptiveLimiterConfig{MaxWait: -time.Second}, "MaxWait"},
		{resilience.AdaptiveLimiterConfig{MaxQueue: -1}, "MaxQueue"},
		{resilience.AdaptiveLimiterConfig{MaxQueue: 2_000_000}, "MaxQueue"},
		{resilience.AdaptiveLimiterConfig{Window: -1}, "Window"},
		{resilience.AdaptiveLimiterConfig{MinSamples: 65}, "MinSamples"},
		{resilience.AdaptiveLimiterConfig{BaselineWindow: -1}, "BaselineWindow"},
		{resilience.AdaptiveLimiterConfig{Window: time.Second, BaselineWindow: 5 * time.Second}, "BaselineWindow"},
		{resilience.AdaptiveLimiterConfig{Shares: map[resilience.Priority]float64{resilience.PriorityDefault: 1.5}}, "Shares[default]"},
		{resilience.AdaptiveLimiterConfig{Shares: map[resilience.Priority]float64{resilience.PriorityDefault: -0.1}}, "Shares[default]"},
		{resilience.AdaptiveLimiterConfig{Shares: map[resilience.Priority]float64{resilience.PrioritySheddable: 0.4, resilience.PriorityDefault: 0.4}}, "Shares"},
		{resilience.AdaptiveLimiterConfig{Shares: map[resilience.Priority]float64{7: 0.1}}, "Shares"},
	}
	for _, c := range cases {
		_, err := resilience.NewAdaptiveLimiter(c.cfg)
		if !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "AdaptiveLimiterConfig."+c.field) {
			t.Errorf("%+v: err = %v, want a ConfigError naming AdaptiveLimiterConfig.%s", c.cfg, err, c.field)
		}
	}
	// Defaults that would contradict the limits the user gave follow them.
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{MaxLimit: 8}))
	if l.Limit() != 8 {
		t.Errorf("MaxLimit 8: initial limit %d, want 8", l.Limit())
	}
	l = must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{MinLimit: 50}))
	if l.Limit() != 50 {
		t.Errorf("MinLimit 50: initial limit %d, want 50", l.Limit())
	}
	if l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{})); l.Limit() != resilience.DefaultInitialLimit {
		t.Errorf("default initial limit %d, want %d", l.Limit(), resilience.DefaultInitialLimit)
	}
}

func TestAdaptiveLimiterRejectsAtTheLimit(t *testing.T) {
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "db", InitialLimit: 3}))
	ctx := context.Background()
	var held []resilience.LimiterPermit
	for range 3 {
		held = append(held, must(l.Acquire(ctx)))
	}
	if l.InFlight() != 3 {
		t.Fatalf("InFlight = %d, want 3", l.InFlight())
	}
	calls := 0
	_, err := resilience.Do(ctx, l, func(context.Context) (int, error) { calls++; return 1, nil })
	var le *resilience.LimitExceededError
	if calls != 0 || !errors.Is(err, resilience.ErrLimitExceeded) || !errors.Is(err, resilience.ErrRejected) || !errors.As(err, &le) {
		t.Fatalf("fourth call: ran %d times, err %v; want no run and a *LimitExceededError", calls, err)
	}
	if le.Name != "db" || le.Limit != 3 || le.Priority != resilience.PriorityDefault || le.RetryAfter() <= 0 {
		t.Errorf("error %+v: want name db, limit 3, default priority, a Retry-After", le)
	}
	held[0].Release()
	held[0].Release() // a second Release does nothing
	if l.InFlight() != 2 {
		t.Fatalf("after one release InFlight = %d, want 2", l.InFlight())
	}
	if v, err := resilience.Do(ctx, l, ok); v != 1 || err != nil {
		t.Fatalf("after a release: %v, %v", v, err)
	}
	for i := 1; i < len(held); i++ {
		held[i].Release()
	}
	func() {
		defer func() { _ = recover() }()
		resilience.Do(ctx, l, func(context.Context) (int, error) { panic("boom") })
	}()
	if l.InFlight() != 0 {
		t.Errorf("InFlight = %d after every call returned, a panic among them; want 0", l.InFlight())
	}
	st := l.Stats()
	if got := st.Calls; got[0].N != 5 || got[1].N != 0 || got[2].N != 1 {
		t.Errorf("Stats().Calls = %v, want 5 admitted, 0 waited, 1 rejected", got)
	}
}

// TestAdaptiveLimiterWaits checks the line: a call waits up to MaxWait
// for a slot, to the nanosecond, and one whose context ends leaves it
// with the context's error and the limiter as it was.
func TestAdaptiveLimiterWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{InitialLimit: 1, MaxWait: 50 * time.Millisecond}))
		ctx := context.Background()
		p := must(l.Acquire(ctx))
		start := time.Now()
		_, err := l.Acquire(ctx)
		if !errors.Is(err, resilience.ErrLimitExceeded) || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("waited %v for %v; want ErrLimitExceeded after exactly 50ms", time.Since(start), err)
		}
		// A slot that comes free goes to the waiting call.
		done := make(chan error)
		go func() {
			q, err := l.Acquire(ctx)
			q.Release()
			done <- err
		}()
		synctest.Wait()
		if l.Queued() != 1 {
			t.Fatalf("Queued = %d, want 1", l.Queued())
		}
		time.Sleep(10 * time.Millisecond)
		p.Release()
		if err := <-done; err != nil {
			t.Fatalf("the waiting call: %v", err)
		}
		// A caller who gives up leaves the line.
		p = must(l.Acquire(ctx))
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := l.Acquire(cctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("waited %v for %v, want the context's deadline after 20ms", time.Since(start), err)
		}
		if l.Queued() != 0 || l.InFlight() != 1 {
			t.Fatalf("after the caller left: queued %d, in flight %d; want 0 and 1", l.Queued(), l.InFlight())
		}
		p.Release()
		if got := l.Stats().Calls; got[1].N != 1 || got[2].N != 1 {
			t.Errorf("Stats().Calls = %v, want 1 waited and 1 rejected", got)
		}
	})
}

// TestAdaptiveLimiterPriorityOrder checks who gets the slots that come
// free: critical calls first, first come first served within a
// priority, a lower priority its share whatever waits above it, and a
// full line giving the latest sheddable call's place to a critical one.
func TestAdaptiveLimiterPriorityOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{
			InitialLimit: 1, MaxWait: time.Hour, MaxQueue: 100, MinSamples: 64, // no window ends: the limit stays 1
			Shares: map[resilience.Priority]float64{resilience.PriorityDefault: 0.25},
		}))
		ctx := context.Background()
		held := must(l.Acquire(ctx))
		var mu sync.Mutex
		var order []string
		var wg sync.WaitGroup
		wait := func(p resilience.Priority, name string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q, err := l.Acquire(resilience.WithPriority(ctx, p))
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				q.Release()
			}()
			synctest.Wait() // in line in this order
		}
		wait(resilience.PrioritySheddable, "s1")
		for i := range 8 {
			wait(resilience.PriorityDefault, fmt.Sprintf("d%d", i+1))
		}
		for i := range 8 {
			wait(resilience.PriorityCritical, fmt.Sprintf("c%d", i+1))
		}
		held.Release()
		wg.Wait()
		// Default's share of 0.25 gives it every fourth slot while
		// critical calls wait; sheddable has no share and comes last.
		want := "c1 c2 c3 d1 c4 c5 c6 d2 c7 c8 d3 d4 d5 d6 d7 d8 s1"
		if got := strings.Join(order, " "); got != want {
			t.Errorf("order\n got %s\nwant %s", got, want)
		}

		// A full line: a critical newcomer takes the latest sheddable
		// call's place, which is rejected; a sheddable newcomer is.
		l = must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{InitialLimit: 1, MaxWait: time.Hour, MaxQueue: 2}))
		held = must(l.Acquire(ctx))
		errs := make(chan error, 4)
		for range 2 {
			go func() {
				q, err := l.Acquire(resilience.WithPriority(ctx, resilience.PrioritySheddable))
				q.Release()
				errs <- err
			}()
		}
		synctest.Wait()
		if _, err := l.Acquire(resilience.WithPriority(ctx, resilience.PrioritySheddable)); !errors.Is(err, resilience.ErrLimitExceeded) {
			t.Errorf("a sheddable call at a full line of sheddable ones: %v, want ErrLimitExceeded", err)
		}
		go func() {
			q, err := l.Acquire(resilience.WithPriority(ctx, resilience.PriorityCritical))
			q.Release()
			errs <- err
		}()
		synctest.Wait()
		var le *resilience.LimitExceededError
		if err := <-errs; !errors.As(err, &le) || le.Priority != resilience.PrioritySheddable {
			t.Errorf("the sheddable call whose place went: %v, want a *LimitExceededError for a sheddable call", err)
		}
		held.Release()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("a call in line: %v", err)
			}
		}
	})
}

// simService is a service with a real capacity: workers calls at a time,
// each holding its worker for the service time; the rest queue for a
// worker, first come first served, until their context ends.
type simService struct {
	service atomic.Int64 // ns
	mu      sync.Mutex
	busy    int
	workers int
	line    []chan struct{} // closed when given a worker
}

func newSimService(workers int, service time.Duration) *simService {
	s := &simService{workers: workers}
	s.service.Store(int64(service))
	return s
}

func (s *simService) call(ctx context.Context) (int, error) {
	s.mu.Lock()
	if s.busy < s.workers && len(s.line) == 0 {
		s.busy++
		s.mu.Unlock()
	} else {
		ready := make(chan struct{})
		s.line = append(s.line, ready)
		s.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			s.mu.Lock()
			i := slices.Index(s.line, ready)
			if i >= 0 {
				s.line = slices.Delete(s.line, i, i+1)
			}
			s.mu.Unlock()
			if i < 0 { // given a worker as ctx ended
				s.done()
			}
			return 0, ctx.Err()
		}
	}
	time.Sleep(time.Duration(s.service.Load()))
	s.done()
	return 1, nil
}

func (s *simService) done() {
	s.mu.Lock()
	s.busy--
	s.grantLocked()
	s.mu.Unlock()
}

func (s *simService) grantLocked() {
	for s.busy < s.workers && len(s.line) > 0 {
		s.busy++
		close(s.line[0])
		s.line = s.line[1:]
	}
}

// resize sets how many workers the service has: calls running keep
// theirs.
func (s *simService) resize(workers int) {
	s.mu.Lock()
	s.workers = workers
	s.grantLocked()
	s.mu.Unlock()
}

type loadResult struct {
	offered, served, rejected, late int
	latencies                       []time.Duration // of the calls served in time
	servedAt                        []time.Duration // when each ended, from the start
}

// goodput returns the calls served in time per second over [from, to).
func (r loadResult) goodput(from, to time.Duration) float64 {
	n := 0
	for _, at := range r.servedAt {
		if at >= from && at < to {
			n++
		}
	}
	return float64(n) / (to - from).Seconds()
}

func (r loadResult) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// offer runs an open-loop load for d: a call every 1/rate, each with a
// deadline, through stage s (nil: straight to the service), with the
// priority prio(i) for the i'th call. It returns once every call ended.
func offer(s resilience.Stage, svc *simService, rate float64, d, deadline time.Duration, prio func(int) resilience.Priority) loadResult {
	var mu sync.Mutex
	var r loadResult
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		r.offered++
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if prio != nil {
				ctx = resilience.WithPriority(ctx, prio(i))
			}
			ctx, cancel := context.WithTimeout(ctx, deadline)
			defer cancel()
			t0 := time.Now()
			var err error
			if s == nil {
				_, err = svc.call(ctx)
			} else {
				_, err = resilience.Do(ctx, s, svc.call)
			}
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, resilience.ErrRejected):
				r.rejected++
			case err != nil || took > deadline:
				r.late++
			default:
				r.served++
				r.latencies = append(r.latencies, took)
				r.servedAt = append(r.servedAt, time.Since(start))
			}
		}()
		time.Sleep(interval)
	}
	wg.Wait()
	return r
}

// TestAdaptiveLimiterUnderOverload drives a simulated service of 4
// workers and 10ms a call (a capacity of 400 calls a second) at 2× and
// 4× its capacity: with the limiter in front, it serves at least 90% of
// its capacity within the deadline, with the calls it serves at most 3×
// the unloaded latency; with nothing in front, its queue eats the
// deadline and goodput collapses. At half its capacity the limiter
// rejects nothing.
func TestAdaptiveLimiterUnderOverload(t *testing.T) {
	const (
		workers  = 4
		service  = 10 * time.Millisecond
		capacity = workers * float64(time.Second/service)
		deadline = 100 * time.Millisecond
		run      = 10 * time.Second
	)
	for _, load := range []float64{0.5, 2, 4} {
		t.Run(fmt.Sprintf("%gx", load), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				svc := newSimService(workers, service)
				l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
				offer(l, svc, load*capacity, 2*time.Second, deadline, nil) // warm up
				r := offer(l, svc, load*capacity, run, deadline, nil)
				goodput := float64(r.served) / run.Seconds() / capacity
				t.Logf("limit %d, baseline %v: goodput %.1f%% of capacity, rejected %d, late %d, p50 %v, p99 %v",
					l.Limit(), l.Baseline(), 100*goodput, r.rejected, r.late, r.quantile(0.5), r.quantile(0.99))
				if load < 1 {
					if r.rejected != 0 || r.late != 0 {
						t.Errorf("at %gx: %d rejected, %d late; want none", load, r.rejected, r.late)
					}
					return
				}
				if goodput < 0.9 {
					t.Errorf("goodput %.1f%% of capacity, want at least 90%%", 100*goodput)
				}
				if p99 := r.quantile(0.99); p99 > 3*service {
					t.Errorf("p99 of served calls %v, want at most 3× the unloaded %v", p99, service)
				}
				if b := l.Baseline(); b != service {
					t.Errorf("baseline %v, want %v", b, service)
				}
				// Without the limiter, the same load.
				none := offer(nil, newSimService(workers, service), load*capacity, run, deadline, nil)
				g := float64(none.served) / run.Seconds() / capacity
				t.Logf("no limiter: goodput %.1f%%, p50 %v, p99 %v", 100*g, none.quantile(0.5), none.quantile(0.99))
				if g >= goodput {
					t.Errorf("with no limiter goodput %.1f%%, not below the limiter's %.1f%%", 100*g, 100*goodput)
				}
			})
		})
	}
}

// limitTrace samples l's limit and baseline every step until stop is
// closed.
type limitTrace struct {
	at       []time.Duration
	limit    []int
	baseline []time.Duration
}

func traceLimit(l *resilience.AdaptiveLimiter, step time.Duration, stop <-chan struct{}) *limitTrace {
	tr := &limitTrace{}
	start := time.Now()
	for {
		select {
		case <-stop:
			return tr
		case <-time.After(step):
		}
		tr.at = append(tr.at, time.Since(start))
		tr.limit = append(tr.limit, l.Limit())
		tr.baseline = append(tr.baseline, l.Baseline())
	}
}

// around returns the samples of tr in [from, to).
func (tr *limitTrace) around(from, to time.Duration) (limits []int, baselines []time.Duration) {
	for i, at := range tr.at {
		if at >= from && at < to {
			limits = append(limits, tr.limit[i])
			baselines = append(baselines, tr.baseline[i])
		}
	}
	return limits, baselines
}

// TestAdaptiveLimiterBaselineDoesNotDrift runs a long incident: a
// dependency 5× slower for 60s of a 2× overload. The baseline follows the
// slower dependency (within a BaselineWindow) rather than keep the limit
// at its floor, and once the incident ends it is back at the faster
// calls' latency at once, and the limit at its value before the incident
// within two seconds.
func TestAdaptiveLimiterBaselineDoesNotDrift(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			workers = 4
			fast    = 10 * time.Millisecond
			slow    = 50 * time.Millisecond
		)
		svc := newSimService(workers, fast)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
		stop := make(chan struct{})
		trc := make(chan *limitTrace)
		go func() { trc <- traceLimit(l, 100*time.Millisecond, stop) }()
		go func() {
			time.Sleep(20 * time.Second)
			svc.service.Store(int64(slow))
			time.Sleep(60 * time.Second)
			svc.service.Store(int64(fast))
		}()
		offer(l, svc, 2*workers*float64(time.Second/fast), 100*time.Second, 100*time.Millisecond, nil)
		close(stop)
		tr := <-trc

		before, baseBefore := tr.around(10*time.Second, 20*time.Second)
		during, baseDuring := tr.around(70*time.Second, 80*time.Second)
		after, baseAfter := tr.around(82*time.Second, 100*time.Second)
		t.Logf("limit before %v\nduring %v\nafter %v", before, during, after)
		if slices.Max(baseBefore) != fast || slices.Min(baseBefore) != fast {
			t.Errorf("baseline before the incident %v, want %v", baseBefore, fast)
		}
		if slices.Min(baseDuring) != slow {
			t.Errorf("baseline at the end of the incident %v, want the slower dependency's %v", baseDuring, slow)
		}
		if slices.Max(baseAfter) != fast {
			t.Errorf("baseline after the incident %v, want %v", baseAfter, fast)
		}
		// The limit as before, give or take one; the probes (half the
		// limit for a window, every 15s while every call queues) fall
		// where they fall, before and after.
		if mb, ma := median(before), median(after); ma < mb-1 || ma > mb+1 || slices.Max(after) > slices.Max(before)+1 {
			t.Errorf("limit from 2s after the incident %v (median %d), want the median within one of %d and no higher than %d as before", after, ma, mb, slices.Max(before))
		}
		if m := median(during); m < workers {
			t.Errorf("limit late in the incident %v (median %d): below the %d workers the slower dependency still has", during, m, workers)
		}
	})
}

// TestAdaptiveLimiterProbeOfAStaleBaseline makes the dependency 12%
// faster while every call queues: the next probe (half the limit, once no
// call has gone unqueued for BaselineWindow/2) measures the faster calls
// and the baseline falls to them, without a second probe at a quarter of
// the limit, which would leave half the workers idle for a Window (a
// probe probes again only when the calls it measured were faster by a
// fifth or more, as halving a queue-bound limit makes them).
func TestAdaptiveLimiterProbeOfAStaleBaseline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			workers = 4
			service = 10 * time.Millisecond
			faster  = 8800 * time.Microsecond
		)
		svc := newSimService(workers, service)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
		stop := make(chan struct{})
		trc := make(chan *limitTrace)
		go func() { trc <- traceLimit(l, 10*time.Millisecond, stop) }()
		go func() {
			time.Sleep(20 * time.Second) // past the probe at 15s
			svc.service.Store(int64(faster))
		}()
		offer(l, svc, 4*workers*float64(time.Second/service), 50*time.Second, 100*time.Millisecond, nil)
		close(stop)
		tr := <-trc
		before, _ := tr.around(16*time.Second, 20*time.Second)
		after, bases := tr.around(20*time.Second, 50*time.Second)
		t.Logf("limit before %d..%d, after %d..%d, baseline at the end %v", slices.Min(before), slices.Max(before), slices.Min(after), slices.Max(after), bases[len(bases)-1])
		if got := bases[len(bases)-1]; got != faster {
			t.Errorf("baseline at the end %v, want the faster dependency's %v", got, faster)
		}
		if lo := slices.Min(after); lo < (slices.Min(before)+1)/2 {
			t.Errorf("limit fell to %d after the dependency got faster, below half the lowest before (%d): a probe probed again", lo, slices.Min(before))
		}
	})
}

// TestAdaptiveLimiterLongOverload holds a 4× overload for 5 minutes: the
// baseline stays at the latency of a call that does not queue (the
// limiter's probes keep measuring it), and the limit does not creep up.
func TestAdaptiveLimiterLongOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			workers = 4
			service = 10 * time.Millisecond
		)
		svc := newSimService(workers, service)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
		stop := make(chan struct{})
		trc := make(chan *limitTrace)
		go func() { trc <- traceLimit(l, 100*time.Millisecond, stop) }()
		r := offer(l, svc, 4*workers*float64(time.Second/service), 300*time.Second, 100*time.Millisecond, nil)
		close(stop)
		tr := <-trc
		early, _ := tr.around(5*time.Second, 30*time.Second)
		late, bases := tr.around(270*time.Second, 300*time.Second)
		t.Logf("limit early %d..%d, late %d..%d", slices.Min(early), slices.Max(early), slices.Min(late), slices.Max(late))
		if slices.Max(bases) != service || slices.Min(bases) != service {
			t.Errorf("baseline over the last 30s of the overload %v..%v, want %v", slices.Min(bases), slices.Max(bases), service)
		}
		if slices.Max(late) > slices.Max(early) {
			t.Errorf("limit crept up: %d late in the overload, %d early", slices.Max(late), slices.Max(early))
		}
		if g := r.goodput(270*time.Second, 300*time.Second) / (workers * float64(time.Second/service)); g < 0.9 {
			t.Errorf("goodput late in the overload %.1f%% of capacity, want at least 90%%", 100*g)
		}
	})
}

// TestAdaptiveLimiterFollowsCapacity halves the service's workers in the
// middle of a 2× overload and restores them: within 5 seconds of each
// change, goodput is back above 90% of the capacity the service has.
func TestAdaptiveLimiterFollowsCapacity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const service = 10 * time.Millisecond
		svc := newSimService(8, service)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
		stop := make(chan struct{})
		trc := make(chan *limitTrace)
		go func() { trc <- traceLimit(l, 500*time.Millisecond, stop) }()
		go func() {
			time.Sleep(10 * time.Second)
			svc.resize(4)
			time.Sleep(10 * time.Second)
			svc.resize(8)
		}()
		perWorker := float64(time.Second / service)
		r := offer(l, svc, 2*8*perWorker, 30*time.Second, 100*time.Millisecond, nil)
		close(stop)
		tr := <-trc
		var b strings.Builder
		for i, at := range tr.at {
			fmt.Fprintf(&b, " %v:%d", at, tr.limit[i])
		}
		t.Logf("limit over time:%s", b.String())
		for _, c := range []struct {
			from, to time.Duration
			workers  float64
		}{{5 * time.Second, 10 * time.Second, 8}, {15 * time.Second, 20 * time.Second, 4}, {25 * time.Second, 30 * time.Second, 8}} {
			for s := c.from; s < c.to; s += time.Second {
				if g := r.goodput(s, s+time.Second) / (c.workers * perWorker); g < 0.9 {
					t.Errorf("goodput in second %v with %g workers: %.1f%% of capacity, want at least 90%%", s, c.workers, 100*g)
				}
			}
		}
	})
}

func median(s []int) int {
	s = slices.Clone(s)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestAdaptiveLimiterConcurrent runs many goroutines through a limiter
// with a line and priorities: every call is counted once, and every slot
// and place in line is given back.
func TestAdaptiveLimiterConcurrent(t *testing.T) {
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{InitialLimit: 4, MaxWait: time.Millisecond, MaxQueue: 3, Window: time.Millisecond, MinSamples: 2}))
	var calls, ran atomic.Int64
	var over atomic.Bool
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := resilience.WithPriority(context.Background(), resilience.Priority(g%3-1))
			for i := range 300 {
				calls.Add(1)
				cctx, cancel := context.WithCancel(ctx)
				if i%17 == 0 {
					cancel()
				}
				resilience.Do(cctx, l, func(context.Context) (int, error) {
					ran.Add(1)
					if l.InFlight() > resilience.DefaultMaxLimit {
						over.Store(true)
					}
					time.Sleep(time.Duration(i%3) * 100 * time.Microsecond)
					return 1, nil
				})
				cancel()
			}
		}()
	}
	wg.Wait()
	st := l.Stats().Calls
	if l.InFlight() != 0 || l.Queued() != 0 {
		t.Errorf("after every call: %d in flight, %d queued; want 0 and 0", l.InFlight(), l.Queued())
	}
	if got := int64(st[0].N + st[1].N); got != ran.Load() {
		t.Errorf("admitted %d + waited %d = %d, but %d calls ran", st[0].N, st[1].N, got, ran.Load())
	}
	if got := int64(st[0].N + st[1].N + st[2].N); got > calls.Load() || ran.Load() == 0 || st[2].N == 0 {
		t.Errorf("counts %v for %d calls: want some run, some rejected, none counted twice", st, calls.Load())
	}
	if over.Load() {
		t.Error("more calls in flight than MaxLimit")
	}
}

func TestAdaptiveLimiterAllocatesNothing(t *testing.T) {
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{}))
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, l, ok) }); n != 0 {
		t.Errorf("an admitted call allocates %v times, want 0", n)
	}
	p := resilience.For[int](l)
	if n := testing.AllocsPerRun(1000, func() { p.Do(ctx, ok) }); n != 0 {
		t.Errorf("an admitted call through For allocates %v times, want 0", n)
	}
}
