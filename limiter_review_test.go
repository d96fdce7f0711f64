package resilience_test

// Tests from an independent review of the AdaptiveLimiter, each of which
// failed before the fix it came with.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// mixedLoad offers critical calls at critRate and calls of priority low at
// lowRate, for d, through l to svc; it returns how many low calls were
// offered, served, rejected at once (no wait) and rejected after waiting.
func mixedLoad(l *resilience.AdaptiveLimiter, svc *simService, critRate, lowRate float64, low resilience.Priority, d time.Duration) (offered, served, rejectedAtOnce, rejectedLater int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	gen := func(rate float64, p resilience.Priority, count bool) {
		defer wg.Done()
		interval := time.Duration(float64(time.Second) / rate)
		start := time.Now()
		for time.Since(start) < d {
			if count {
				mu.Lock()
				offered++
				mu.Unlock()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(resilience.WithPriority(context.Background(), p), time.Second)
				defer cancel()
				t0 := time.Now()
				_, err := resilience.Do(ctx, l, svc.call)
				if !count {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					served++
				case errors.Is(err, resilience.ErrRejected) && time.Since(t0) == 0:
					rejectedAtOnce++
				default:
					rejectedLater++
				}
			}()
			time.Sleep(interval)
		}
	}
	wg.Add(2)
	go gen(critRate, resilience.PriorityCritical, false)
	go gen(lowRate, low, true)
	wg.Wait()
	return
}

// A sheddable stream asking for 1.25% of the throughput (its share is
// 5%) under a critical overload, MaxQueue large enough that no place is
// taken from it. Its credit was reset whenever none of it waited, and a
// sheddable waiter left at MaxWait before it had seen the 20 grants it
// needed for a whole slot: 1 of 50 served. Banked up to one slot while
// nothing of it waits, its calls are served.
func TestAdaptiveLimiterShareBankedWhileNothingWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const workers, service = 4, 10 * time.Millisecond // 400 calls/s
		svc := newSimService(workers, service)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{
			MinLimit: workers, MaxLimit: workers, // the limit is the capacity: nothing to learn
			MaxWait: 3 * service, MaxQueue: 10000,
		}))
		offered, served, now, later := mixedLoad(l, svc, 800, 5, resilience.PrioritySheddable, 10*time.Second)
		t.Logf("sheddable: offered %d, served %d, rejected at once %d, rejected after waiting %d", offered, served, now, later)
		if served < offered*9/10 {
			t.Errorf("sheddable within its share (5/s of 400/s, share 5%%) served %d of %d: starved", served, offered)
		}
	})
}

// A default stream asking for 2.5% of the throughput (its share is 10%)
// under a critical overload with the default MaxQueue (the limit): the
// line was full of critical calls, so a default call was rejected at
// once, and one that got in was evicted by the next critical newcomer: 1
// of 100 served. A priority with a share now holds its share of the
// line's places against newcomers of any priority.
func TestAdaptiveLimiterShareInALineFullOfCriticalCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const workers, service = 4, 10 * time.Millisecond // 400 calls/s
		svc := newSimService(workers, service)
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{
			MinLimit: workers, MaxLimit: workers,
			MaxWait: 500 * time.Millisecond, // long enough to collect 10 grants many times over
		}))
		offered, served, now, later := mixedLoad(l, svc, 800, 10, resilience.PriorityDefault, 10*time.Second)
		t.Logf("default: offered %d, served %d, rejected at once %d, evicted/rejected after waiting %d", offered, served, now, later)
		if served < offered*9/10 {
			t.Errorf("default within its share (10/s of 400/s, share 10%%) served %d of %d: starved", served, offered)
		}
	})
}

// errCtx is a context whose Err asks the limiter for a slot (any user code
// that touches the limiter from a context method would do).
type errCtx struct {
	context.Context
	l *resilience.AdaptiveLimiter
}

func (c errCtx) Err() error {
	if p, err := c.l.Acquire(context.Background()); err == nil {
		p.Release()
	}
	return c.Context.Err()
}

// A context is the caller's code: the limiter asks it for Err before it
// takes its lock (it used to ask under it, and a context that called the
// limiter deadlocked).
func TestAdaptiveLimiterReadsTheContextOutsideItsLock(t *testing.T) {
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{InitialLimit: 1, MaxWait: 10 * time.Millisecond}))
	held := must(l.Acquire(context.Background()))
	_ = held // not released: the lock is held for ever once it deadlocks
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Acquire(errCtx{context.Background(), l})
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Acquire deadlocked: the context's Err ran under the limiter's mutex")
	}
}

// After a busy spell the limiter times one call in mask+1; the mask is
// recomputed only when a window ends, and a window ends only once
// MinSamples calls were timed in it. When calls resumed at a lower rate
// after an idle gap, against a dependency that now queues, no window
// ended for minutes, and the limit stayed where the busy spell left it
// (513 after 60s). Now a window overdue without its samples times every
// call, and the next sample is chosen from the rate of calls rather than
// their number.
func TestAdaptiveLimiterSampleAfterALull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{InitialLimit: 500, MaxLimit: 1000}))
		// Busy: 400 clients, 1ms calls that never queue (~400k calls/s).
		fast := newSimService(100000, time.Millisecond)
		stop := make(chan struct{})
		done := make(chan struct{})
		loop := func(svc *simService) {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := resilience.Do(context.Background(), l, svc.call); err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}
		for range 400 {
			go loop(fast)
		}
		time.Sleep(500 * time.Millisecond)
		close(stop)
		for range 400 {
			<-done
		}
		before := l.Limit()
		time.Sleep(10 * time.Second) // idle

		// Resume: 40 clients against 2 workers of 50ms (40 calls/s, each
		// queued ~1s). A fresh limiter takes the limit down to a few
		// within seconds.
		slow := newSimService(2, 50*time.Millisecond)
		stop = make(chan struct{})
		for range 40 {
			go loop(slow)
		}
		time.Sleep(60 * time.Second)
		after := l.Limit()
		close(stop)
		for range 40 {
			<-done
		}
		t.Logf("limit after the busy spell %d, after 60s of the queued load %d", before, after)
		// Windows end again: the limit comes down by half or more. (How far
		// it comes down depends on when: once the busy spell's baseline
		// has left the BaselineWindow, a limit still far above the two
		// workers reads their queued latency as the baseline, since 40
		// callers never bring it to half the limit; see DECISIONS.)
		if after > before/2 {
			t.Errorf("limit %d after 60s against 2 workers with 40 calls queued, %d before: no window ended", after, before)
		}
	})
}

// closedLoop runs clients that call through l into svc back to back for d,
// and samples the limit and baseline every 100ms.
func closedLoop(l *resilience.AdaptiveLimiter, svc *simService, clients int, d time.Duration) (limits []int, bases []time.Duration) {
	stop := make(chan struct{})
	done := make(chan struct{})
	for range clients {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := resilience.Do(context.Background(), l, svc.call); err != nil {
					time.Sleep(10 * time.Millisecond) // rejected: back off
				}
			}
		}()
	}
	for t := time.Duration(0); t < d; t += 100 * time.Millisecond {
		time.Sleep(100 * time.Millisecond)
		limits = append(limits, l.Limit())
		bases = append(bases, l.Baseline())
	}
	close(stop)
	for range clients {
		<-done
	}
	return limits, bases
}

// With MinSamples below 4 (allowed: from 1 to 64), no window had the 4
// unqueued calls the baseline needed: after BaselineWindow/2 every window
// started a probe and the limit stopped following the service. Now a
// window needs min(4, MinSamples) of them.
func TestAdaptiveLimiterFewMinSamples(t *testing.T) {
	for _, ms := range []int{1, 4} {
		t.Run(fmt.Sprint("MinSamples=", ms), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const workers, service = 2, 500 * time.Millisecond // 4 calls/s
				svc := newSimService(workers, service)
				l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{MinSamples: ms, Window: 100 * time.Millisecond}))
				go func() { time.Sleep(30 * time.Second); svc.resize(4 * workers) }()
				limits, bases := closedLoop(l, svc, 40, 120*time.Second)
				late, lb := limits[len(limits)-100:], bases[len(bases)-1]
				_ = lb
				t.Logf("limit over the last 10s %v; baseline %v", late, lb)
				if m := median(late); m < 4*workers {
					t.Errorf("MinSamples %d: median limit %d over the last 10s for a service that has had %d workers since 30s: the limit did not follow", ms, m, 4*workers)
				}
			})
		})
	}
}

// A refusal's RetryAfter is at least a millisecond: for calls of 10µs at
// a limit of 1,000 the estimate was 10ns, which a caller reads as "now"
// (the review found it could be 0 for faster calls still).
func TestAdaptiveLimiterRetryAfterOfFastCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{MinLimit: 1000, MaxLimit: 1000, Window: time.Millisecond, BaselineWindow: 10 * time.Millisecond}))
		ctx := context.Background()
		for range 1000 { // 10ms of calls of 10µs, one at a time: windows end, the recent latency is 10µs
			if _, err := resilience.Do(ctx, l, func(context.Context) (int, error) { time.Sleep(10 * time.Microsecond); return 0, nil }); err != nil {
				t.Fatal(err)
			}
		}
		held := make([]resilience.LimiterPermit, 0, 1000)
		for range 1000 {
			held = append(held, must(l.Acquire(ctx)))
		}
		_, err := l.Acquire(ctx)
		var le *resilience.LimitExceededError
		if !errors.As(err, &le) {
			t.Fatalf("at the limit: %v, want a *LimitExceededError", err)
		}
		if le.RetryAfter() < time.Millisecond {
			t.Errorf("RetryAfter %v, want at least 1ms", le.RetryAfter())
		}
		for _, p := range held {
			p.Release()
		}
	})
}
