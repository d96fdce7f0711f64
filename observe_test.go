package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// eventLog collects observer events as strings, safely.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.events
	l.events = nil
	return e
}

func breakerLogger(log *eventLog, tag string) resilience.BreakerObserver {
	return resilience.BreakerObserver{
		Call:        func(s resilience.State, r resilience.CallResult) { log.add("%s%s/%s", tag, s, r) },
		StateChange: func(c resilience.StateChange) { log.add("%s%s->%s", tag, c.From, c.To) },
	}
}

// TestBreakerObserverSeesEveryCall drives a breaker through all its states
// and checks the observer saw each call with the state it arrived in, and
// each transition, in order.
func TestBreakerObserverSeesEveryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log eventLog
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Second, SuccessThreshold: 1})
		b.Observe(breakerLogger(&log, ""))
		ctx := context.Background()
		cancelled, cancel := context.WithCancel(ctx)
		cancel()

		p.Do(ctx, ok)
		p.Do(cancelled, func(ctx context.Context) (int, error) { return 0, ctx.Err() })
		p.Do(ctx, fail)
		p.Do(ctx, fail) // opens
		p.Do(ctx, ok)   // rejected
		time.Sleep(time.Second)
		synctest.Wait()
		p.Do(ctx, ok) // the probe closes it
		want := []string{
			"closed/success", "closed/ignored", "closed/failure", "closed/failure",
			"closed->open", "open/rejected", "open->half-open", "half-open/success", "half-open->closed",
		}
		if diff := testcheck.Diff(want, log.take()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}

		// Allow and Done report too; a panicking call is a failure.
		pm, err := b.Allow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pm.Done(nil)
		func() {
			defer func() { recover() }()
			p.Do(ctx, func(context.Context) (int, error) { panic("boom") })
		}()
		b.ForceOpen()
		if _, err := b.Allow(ctx); err == nil {
			t.Fatal("Allow on a forced-open breaker: no error")
		}
		want = []string{"closed/success", "closed/failure", "closed->open", "open/rejected"}
		if diff := testcheck.Diff(want, log.take()); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
	})
}

// TestObserversAddUp: every observer added is called, in order, along with
// OnStateChange, which comes last.
func TestObserversAddUp(t *testing.T) {
	var log eventLog
	b, p := newBreaker(t, resilience.BreakerConfig{
		FailureThreshold: 1,
		OnStateChange:    func(c resilience.StateChange) { log.add("hook:%s->%s", c.From, c.To) },
	})
	b.Observe(breakerLogger(&log, "a:"))
	b.Observe(resilience.BreakerObserver{Call: func(s resilience.State, r resilience.CallResult) { log.add("b:%s/%s", s, r) }})
	b.Observe(resilience.BreakerObserver{StateChange: func(c resilience.StateChange) { log.add("c:%s->%s", c.From, c.To) }})
	p.Do(context.Background(), fail)
	want := []string{"a:closed/failure", "b:closed/failure", "a:closed->open", "c:closed->open", "hook:closed->open"}
	if diff := testcheck.Diff(want, log.take()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestBreakerObserverHoldsNoLock: an observer may use the breaker.
func TestBreakerObserverHoldsNoLock(t *testing.T) {
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1})
	var states []resilience.State
	b.Observe(resilience.BreakerObserver{
		Call: func(resilience.State, resilience.CallResult) { states = append(states, b.State()) },
		StateChange: func(c resilience.StateChange) {
			if c.To == resilience.Open {
				b.Reset()
			}
		},
	})
	p.Do(context.Background(), fail)
	if b.State() != resilience.Closed || len(states) != 1 {
		t.Errorf("state %v, %d calls observed; want closed again, 1", b.State(), len(states))
	}
}

func TestTimeoutObserver(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprintf("abandon=%v", abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var got []string
				var mu sync.Mutex
				to := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "t", Duration: time.Second, Abandon: abandon}))
				to.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
					mu.Lock()
					got = append(got, r.String())
					mu.Unlock()
				}})
				p := resilience.For[int](to)
				ctx := context.Background()
				p.Do(ctx, ok)
				p.Do(ctx, fail)
				p.Do(ctx, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
				cctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(time.Millisecond, cancel)
				p.Do(cctx, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
				// The helpers have no policy and report nothing.
				resilience.WithTimeoutResult(ctx, time.Second, ok)
				want := []string{"success", "error", "timeout", "canceled"}
				if diff := testcheck.Diff(want, got); diff != "" {
					t.Errorf("results (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestRetryObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type done struct {
			Attempts int
			Err      string
		}
		var got []done
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond}))
		r.Observe(resilience.RetryObserver{Done: func(n int, err error) {
			s := "<nil>"
			if err != nil {
				s = err.Error()
			}
			got = append(got, done{n, s})
		}})
		p := resilience.For[int](r)
		ctx := context.Background()
		p.Do(ctx, ok)
		calls := 0
		p.Do(ctx, func(context.Context) (int, error) {
			if calls++; calls < 3 {
				return 0, errBoom
			}
			return 1, nil
		})
		p.Do(ctx, fail)
		p.Do(ctx, func(context.Context) (int, error) { return 0, resilience.Permanent(errBoom) })
		want := []done{
			{1, "<nil>"},
			{3, "<nil>"},
			{3, (&resilience.RetryError{Attempts: 3, Err: errBoom, Cause: resilience.ErrRetriesExhausted}).Error()},
			{1, "boom"},
		}
		if diff := testcheck.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

func TestBulkheadObserver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rejected atomic.Int64
		for _, wait := range []time.Duration{0, time.Second} {
			bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxWait: wait}))
			bh.Observe(resilience.BulkheadObserver{Rejected: func() { rejected.Add(1) }})
			p := resilience.For[int](bh)
			release := occupy(p)
			start := time.Now()
			if _, err := p.Do(context.Background(), ok); !errors.Is(err, resilience.ErrBulkheadFull) || time.Since(start) != wait {
				t.Errorf("MaxWait %v: err = %v after %v", wait, err, time.Since(start))
			}
			if bh.TryAcquire() {
				t.Error("TryAcquire on a full bulkhead succeeded")
			}
			release()
			synctest.Wait()
		}
		if n := rejected.Load(); n != 2 {
			t.Errorf("%d rejections observed, want 2 (TryAcquire's are not reported)", n)
		}
	})
}

// TestObservedHappyPathAllocatesNothing: an observer that counts costs no
// allocation per call.
func TestObservedHappyPathAllocatesNothing(t *testing.T) {
	var n atomic.Int64
	b := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	b.Observe(resilience.BreakerObserver{Call: func(resilience.State, resilience.CallResult) { n.Add(1) }})
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1}))
	r.Observe(resilience.RetryObserver{Done: func(int, error) { n.Add(1) }})
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	bh.Observe(resilience.BulkheadObserver{Rejected: func() { n.Add(1) }})
	p := resilience.For[int](r, b, bh)
	if a := testing.AllocsPerRun(1000, func() { p.Do(context.Background(), noop) }); a != 0 {
		t.Errorf("%v allocations per call, want 0", a)
	}
	if n.Load() == 0 {
		t.Error("the observers were not called")
	}
}

func TestResultStrings(t *testing.T) {
	got := fmt.Sprint(resilience.CallSucceeded, resilience.CallFailed, resilience.CallIgnored, resilience.CallRejected, resilience.CallResult(9),
		resilience.TimeoutSucceeded, resilience.TimeoutFailed, resilience.TimeoutExpired, resilience.TimeoutCanceled, resilience.TimeoutResult(9))
	want := "success failure ignored rejected CallResult(9) success error timeout canceled TimeoutResult(9)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
