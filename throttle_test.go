package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// answering returns a call that returns err.
func answering(err error) resilience.Func[int] {
	return func(context.Context) (int, error) { return 0, err }
}

var errOverloaded = resilience.Overloaded(errors.New("503 Service Unavailable"))

// formula is the SRE book's rejection probability.
func formula(k, requests, accepts float64) float64 {
	return max(0, (requests-k*accepts)/(requests+1))
}

// throttlerStats returns what t's Stats reports.
func throttlerStats(t *testing.T, th *resilience.Throttler) (admitted, rejected uint64, p float64) {
	t.Helper()
	st := th.Stats()
	if len(st.Calls) != 2 || st.Calls[0].Result != "admitted" || st.Calls[1].Result != "rejected" ||
		len(st.Gauges) != 1 || st.Gauges[0].Name != "reject_probability" || st.Gauges[0].Help == "" {
		t.Fatalf("Stats = %+v, want admitted and rejected calls, and a reject_probability gauge with a help line", st)
	}
	return st.Calls[0].N, st.Calls[1].N, st.Gauges[0].Value
}

// TestThrottlerFollowsTheFormula: for a scripted sequence of calls, the
// probability is exactly max(0, (requests − K × accepts) / (requests + 1)),
// whether each call that fails was run or rejected (both count as a
// request not accepted), and the counts leave the window exactly a
// Window later.
func TestThrottlerFollowsTheFormula(t *testing.T) {
	for _, k := range []float64{1, 1.5, 2, 3} {
		t.Run(fmt.Sprint("K=", k), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "users", K: k}))
				var requests, accepts float64
				check := func(when string) {
					t.Helper()
					want := formula(k, requests, accepts)
					if got := th.RejectProbability(); got != want {
						t.Fatalf("%s (%v requests, %v accepts): probability %v, want %v", when, requests, accepts, got, want)
					}
				}
				check("new")
				// Accepts, and calls that count for nothing, while the
				// probability is 0: all of them run.
				cancelled, cancel := context.WithCancel(ctx)
				cancel()
				for i, err := range []error{nil, resilience.Answer(errBoom), errBoom, nil, resilience.ErrRejected, context.Canceled} {
					c := ctx
					if err == context.Canceled {
						c = cancelled
					}
					ran := false
					if _, got := resilience.Do(c, th, func(context.Context) (int, error) { ran = true; return 0, err }); got != err || !ran {
						t.Fatalf("call %d: ran %v, err %v; want it run, and %v", i, ran, got, err)
					}
					if err != resilience.ErrRejected && err != context.Canceled {
						requests++
						accepts++
					}
					check(fmt.Sprintf("after call %d", i))
				}
				// Overloads: each a request, whether the throttler lets
				// it run or rejects it.
				rejected := 0
				for i := range 40 {
					_, err := resilience.Do(ctx, th, answering(errOverloaded))
					switch {
					case errors.Is(err, resilience.ErrThrottled):
						rejected++
					case err != errOverloaded:
						t.Fatalf("overload %d: err %v", i, err)
					}
					requests++
					check(fmt.Sprintf("after overload %d", i))
				}
				admitted, rej, p := throttlerStats(t, th)
				if admitted != 6+40-uint64(rejected) || rej != uint64(rejected) || p != formula(k, requests, accepts) {
					t.Errorf("Stats: %d admitted, %d rejected, probability %v; want %d, %d, %v", admitted, rej, p, 46-rejected, rejected, formula(k, requests, accepts))
				}
				// Everything was counted at time 0, in the first bucket of
				// 2s: it leaves the window at 2 minutes, not before.
				time.Sleep(resilience.DefaultThrottlerWindow - 1)
				check("just before the window has passed")
				time.Sleep(time.Nanosecond)
				requests, accepts = 0, 0
				check("once the window has passed")
				if _, err := resilience.Do(ctx, th, ok); err != nil {
					t.Errorf("after the window: %v", err)
				}
				if _, _, p := throttlerStats(t, th); p != 0 {
					t.Errorf("Stats: probability %v after the window, want 0", p)
				}
			})
		})
	}
}

// capacity is a dependency that can accept a share of the calls offered
// to its clients, and answers the rest with an overload: it earns share
// of a call's worth of capacity for every call offered, keeping up to two
// calls' worth.
type capacity struct {
	share, credit     float64
	reached, accepted int
}

func (c *capacity) offer() { c.credit = min(c.credit+c.share, 2) }

func (c *capacity) call(context.Context) (int, error) {
	c.reached++
	if c.credit < 1 {
		return 0, errOverloaded
	}
	c.credit--
	c.accepted++
	return 1, nil
}

// TestThrottlerBoundsRequestsToKTimesAccepts: a dependency that has been
// accepting every call becomes able to accept only a quarter of the calls
// offered; once a Window has passed, the requests that reach it stay at K
// times the accepts, within 5%, and the dependency still accepts nearly
// all it can. When it recovers, the throttler admits every call again
// within one Window.
func TestThrottlerBoundsRequestsToKTimesAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			every  = 100 * time.Millisecond // 10 calls a second
			window = resilience.DefaultThrottlerWindow
			k      = resilience.DefaultThrottlerK
		)
		ctx := context.Background()
		th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "backend"}))
		dep := &capacity{share: 1}
		run := func(d time.Duration) (calls, rejected int) {
			for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(every) {
				dep.offer()
				calls++
				if _, err := resilience.Do(ctx, th, dep.call); errors.Is(err, resilience.ErrThrottled) {
					rejected++
				}
			}
			return calls, rejected
		}
		if calls, rejected := run(window); rejected != 0 || dep.accepted != calls {
			t.Fatalf("healthy: %d of %d calls rejected, %d accepted", rejected, calls, dep.accepted)
		}
		dep.share = 0.25
		run(window) // the overload fills the window
		dep.reached, dep.accepted = 0, 0
		calls, _ := run(8 * window)
		ratio := float64(dep.reached) / float64(dep.accepted)
		t.Logf("%d calls offered; %d reached the dependency, %d accepted: %.3f requests per accept", calls, dep.reached, dep.accepted, ratio)
		if ratio > 1.05*k || ratio < 0.95*k {
			t.Errorf("%d requests reached the dependency for %d accepts: %.3f per accept, want %v within 5%%", dep.reached, dep.accepted, ratio, k)
		}
		if can := 0.25 * float64(calls); float64(dep.accepted) < 0.95*can {
			t.Errorf("the dependency accepted %d calls of the %.0f it could: the throttler starves it", dep.accepted, can)
		}
		if p := th.RejectProbability(); math.Abs(p-0.5) > 0.05 {
			t.Errorf("reject probability %v, want about 1 - 1/K = 0.5", p)
		}

		// The dependency recovers.
		dep.share = 1
		if _, rejected := run(window); rejected == 0 {
			t.Error("no call rejected in the window after the recovery: the throttler forgot the overload at once")
		}
		if p := th.RejectProbability(); p != 0 {
			t.Errorf("a Window after the recovery, reject probability %v, want 0", p)
		}
		if calls, rejected := run(window); rejected != 0 {
			t.Errorf("%d of %d calls rejected more than a Window after the recovery, want none", rejected, calls)
		}
		if _, _, p := throttlerStats(t, th); p != 0 {
			t.Errorf("Stats: probability %v, want 0", p)
		}
	})
}

// TestThrottlerSpreadsCleanCalls: the accepts counted while the window is
// clean, without the clock, are spread evenly over the time since the
// throttler last looked at it; the part older than the window is dropped.
func TestThrottlerSpreadsCleanCalls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		calls    int           // accepted calls, one every 100ms from time 0
		quiet    time.Duration // then nothing for this long
		inWindow float64       // the accepts spread into the window
	}{
		// 200 calls over 20s: the window of ten 1s buckets at 20s holds
		// the buckets from 11s to 20s; the 90 calls from 11s to 19.9s,
		// exactly as if each had been counted in its bucket.
		{"steady", 200, 0, 90},
		// 100 calls over 10s, then 10s of quiet: taken to have come at
		// an even rate over the 20s, so that 9s of them (45) fall in the
		// window, where calls counted in their buckets would have left it.
		{"burst then quiet", 100, 10 * time.Second, 45},
		// 100 calls over 10s: all but the bucket at 0s.
		{"shorter than the window", 100, 0, 90},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "spread", K: 1, Window: 10 * time.Second, Buckets: 10}))
				for range tc.calls {
					resilience.Do(ctx, th, ok)
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(tc.quiet)
				if p := th.RejectProbability(); p != 0 {
					t.Fatalf("clean window: probability %v, want 0", p)
				}
				// With K = 1, each failure is seen against the accepts.
				for f := 1.0; f <= 20; f++ {
					resilience.Do(ctx, th, answering(errOverloaded))
					if got, want := th.RejectProbability(), formula(1, tc.inWindow+f, tc.inWindow); got != want {
						t.Fatalf("after %v overloads: probability %v, want %v for %v accepts", f, got, want, tc.inWindow)
					}
				}
			})
		})
	}
}

// TestThrottlerRejection: the throttler's rejection matches ErrRejected
// and ErrThrottled, names the stage and the probability, does not run
// the call, and is not retried by a Retry around it.
func TestThrottlerRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "users", K: 1}))
		for range 1000 { // 1000 requests, no accept: p = 1000/1001
			resilience.Do(ctx, th, answering(errOverloaded))
		}
		var retriedRejections int
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5, NoBackoff: true, OnRetry: func(e resilience.RetryEvent) {
			if errors.Is(e.Err, resilience.ErrRejected) {
				retriedRejections++
			}
		}}))
		p := resilience.For[int](retry, th)
		throttled := 0
		for range 20 {
			ran := 0
			_, err := p.Do(ctx, func(context.Context) (int, error) { ran++; return 0, errOverloaded })
			var te *resilience.ThrottledError
			if !errors.As(err, &te) {
				continue // one in a thousand attempts runs
			}
			throttled++
			if !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrThrottled) {
				t.Errorf("rejection %v: want a match for ErrRejected and ErrThrottled", err)
			}
			if te.Name != "users" || te.Probability < 0.99 || te.Probability >= 1 {
				t.Errorf("ThrottledError %+v, want the stage's name and its probability", te)
			}
			if msg := err.Error(); !strings.Contains(msg, `"users"`) || !strings.Contains(msg, "0.99") {
				t.Errorf("message %q names neither the throttler nor the probability", msg)
			}
			if ran > 1 {
				t.Errorf("%d attempts ran before the rejection", ran)
			}
		}
		if throttled == 0 {
			t.Fatal("no call rejected at probability 0.999")
		}
		if retriedRejections != 0 {
			t.Errorf("%d rejections retried, want none", retriedRejections)
		}
	})
}

// timeoutErr is an error with net.Error's Timeout method.
type timeoutErr struct{ timeout bool }

func (e timeoutErr) Error() string   { return "i/o timeout" }
func (e timeoutErr) Timeout() bool   { return e.timeout }
func (e timeoutErr) Temporary() bool { return e.timeout }

// TestThrottlerAccepted: which ends of a call are accepts, requests not
// accepted, or not counted at all, by DefaultAccepted and in the window.
func TestThrottlerAccepted(t *testing.T) {
	const (
		accept = iota
		notAccepted
		uncounted
	)
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	expired, cancelExpired := context.WithDeadline(live, time.Unix(0, 0))
	defer cancelExpired()
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "bh", MaxConcurrent: 1}))
	bulkhead.TryAcquire()
	_, full := resilience.Do(live, bulkhead, ok)
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	breaker.ForceOpen()
	_, open := resilience.Do(live, breaker, ok)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"no error", live, nil, accept},
		{"a plain error: the dependency answered", live, errBoom, accept},
		{"an answer", live, resilience.Answer(errBoom), accept},
		{"a permanent failure", live, resilience.Permanent(errBoom), accept},
		{"context.Canceled while ctx is live: the dependency's", live, context.Canceled, accept},
		{"a net.Error that is not a time-out", live, timeoutErr{false}, accept},
		{"overloaded", live, errOverloaded, notAccepted},
		{"overloaded, wrapped", live, fmt.Errorf("get user: %w", errOverloaded), notAccepted},
		{"overloaded, though marked an answer", live, resilience.Answer(errOverloaded), notAccepted},
		{"overloaded, retries exhausted", live, &resilience.RetryError{Attempts: 3, Err: errOverloaded, Cause: resilience.ErrRetriesExhausted}, notAccepted},
		{"context.DeadlineExceeded", live, context.DeadlineExceeded, notAccepted},
		{"context.DeadlineExceeded of the caller's ctx", expired, context.DeadlineExceeded, notAccepted},
		{"a Timeout's error", live, &resilience.TimeoutError{Limit: time.Second, Err: context.DeadlineExceeded}, notAccepted},
		{"os.ErrDeadlineExceeded", live, fmt.Errorf("read: %w", os.ErrDeadlineExceeded), notAccepted},
		{"a net.Error time-out", live, timeoutErr{true}, notAccepted},
		{"a time-out marked an answer", live, resilience.Answer(context.DeadlineExceeded), accept},
		{"ErrRejected", live, resilience.ErrRejected, uncounted},
		{"a full bulkhead", live, full, uncounted},
		{"an open breaker", live, open, uncounted},
		{"another throttler's rejection", live, &resilience.ThrottledError{Name: "inner", Probability: 0.5}, uncounted},
		{"the caller's cancellation", done, context.Canceled, uncounted},
		{"the caller's cancellation, wrapped", done, fmt.Errorf("get: %w", context.Canceled), uncounted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resilience.DefaultAccepted(tc.ctx, tc.err); got != (tc.want == accept) {
				t.Errorf("DefaultAccepted = %v, want %v", got, tc.want == accept)
			}
			// K = 1: one request not accepted makes the probability 1/2,
			// one accepted leaves it 0, and Stats counts the call admitted
			// either way.
			th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t", K: 1}))
			asked := 0
			custom := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "c", K: 1, Accepted: func(ctx context.Context, err error) bool {
				asked++
				return resilience.DefaultAccepted(ctx, err)
			}}))
			for _, th := range []*resilience.Throttler{th, custom} {
				if _, err := resilience.Do(tc.ctx, th, answering(tc.err)); err != tc.err {
					t.Fatalf("Do returned %v, want the call's error", err)
				}
				want := map[int]float64{accept: 0, notAccepted: 0.5, uncounted: 0}[tc.want]
				if p := th.RejectProbability(); p != want {
					t.Errorf("%s: probability %v after the call, want %v", th.Name(), p, want)
				}
				if admitted, _, _ := throttlerStats(t, th); admitted != 1 {
					t.Errorf("%s: %d calls admitted, want 1", th.Name(), admitted)
				}
			}
			// Accepted is asked about errors the throttler may count, not
			// about no error or the calls it does not count.
			if wantAsked := tc.err != nil && tc.want != uncounted; (asked == 1) != wantAsked || asked > 1 {
				t.Errorf("Accepted asked %d times, want %v", asked, wantAsked)
			}
		})
	}
}

// TestThrottlerConfigErrors: each invalid field is reported by name, all
// of them at once.
func TestThrottlerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   resilience.ThrottlerConfig
		field string
	}{
		{"K below 1", resilience.ThrottlerConfig{K: 0.5}, "ThrottlerConfig.K"},
		{"negative K", resilience.ThrottlerConfig{K: -2}, "ThrottlerConfig.K"},
		{"NaN K", resilience.ThrottlerConfig{K: math.NaN()}, "ThrottlerConfig.K"},
		{"infinite K", resilience.ThrottlerConfig{K: math.Inf(1)}, "ThrottlerConfig.K"},
		{"negative infinite K", resilience.ThrottlerConfig{K: math.Inf(-1)}, "ThrottlerConfig.K"},
		{"negative window", resilience.ThrottlerConfig{Window: -time.Second}, "ThrottlerConfig.Window"},
		{"negative buckets", resilience.ThrottlerConfig{Buckets: -1}, "ThrottlerConfig.Buckets"},
		{"too many buckets", resilience.ThrottlerConfig{Buckets: 1001}, "ThrottlerConfig.Buckets"},
		{"window shorter than its buckets", resilience.ThrottlerConfig{Window: 9, Buckets: 10}, "ThrottlerConfig.Window"},
		{"window shorter than the default buckets", resilience.ThrottlerConfig{Window: 59}, "ThrottlerConfig.Window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resilience.NewThrottler(tc.cfg)
			var ce *resilience.ConfigError
			if !errors.Is(err, resilience.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v, want a *ConfigError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "resilience: ") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
	_, err := resilience.NewThrottler(resilience.ThrottlerConfig{K: math.NaN(), Window: -1, Buckets: -1})
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fields = append(fields, e.(*resilience.ConfigError).Field)
	}
	if want := "ThrottlerConfig.K ThrottlerConfig.Window ThrottlerConfig.Buckets"; strings.Join(fields, " ") != want {
		t.Errorf("fields reported: %v, want %s", fields, want)
	}
	for _, cfg := range []resilience.ThrottlerConfig{
		{}, {K: 1}, {K: 1e6}, {Buckets: 1}, {Buckets: 1000}, {Window: 1000, Buckets: 1000}, {Window: time.Nanosecond, Buckets: 1},
	} {
		if _, err := resilience.NewThrottler(cfg); err != nil {
			t.Errorf("NewThrottler(%+v): %v", cfg, err)
		}
	}
}

// TestThrottlerAllocatesNothing: an admitted call allocates nothing, with
// the window clean or dirty.
func TestThrottlerAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t"}))
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, th, noop) }); n != 0 {
		t.Errorf("Do, clean window: %v allocations per call, want 0", n)
	}
	resilience.Do(ctx, th, answering(errOverloaded)) // dirty, at probability 0
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, th, noop) }); n != 0 {
		t.Errorf("Do, dirty window: %v allocations per call, want 0", n)
	}
	if p := th.RejectProbability(); p != 0 {
		t.Errorf("probability %v, want 0", p)
	}
	if p := resilience.For[int](th); testing.AllocsPerRun(1000, func() { p.Do(ctx, noop) }) != 0 {
		t.Error("For: allocations per call, want 0")
	}
}

// TestThrottlerPanic: a panic in the call goes on up the stack, with the
// window clean or dirty, and leaves the window as it was; the call counts
// as admitted.
func TestThrottlerPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t"}))
		panicking := func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the call's panic", r)
				}
			}()
			resilience.Do(ctx, th, func(context.Context) (int, error) { panic("boom") })
			t.Error("the panic did not reach the caller")
		}
		panicking() // clean
		resilience.Do(ctx, th, ok)
		// 2 requests, 1 accept: dirty, at probability 0 (K = 2), so the
		// next call runs; one more request not accepted would make it 1/4.
		resilience.Do(ctx, th, answering(errOverloaded))
		panicking()
		if p := th.RejectProbability(); p != 0 {
			t.Errorf("after the panics: probability %v, want 0 as before", p)
		}
		admitted, rejected, _ := throttlerStats(t, th)
		if admitted != 4 || rejected != 0 {
			t.Errorf("%d calls admitted, %d rejected; want 4, the panicking ones among them, and none", admitted, rejected)
		}
		resilience.Do(ctx, th, answering(errOverloaded))
		if p := th.RejectProbability(); p != 0.25 {
			t.Errorf("probability %v after a third request, want 1/4: the window lost count", p)
		}
	})
}

// TestThrottlerNil: a nil call, a nil or zero throttler are errors, not
// panics.
func TestThrottlerNil(t *testing.T) {
	ctx := context.Background()
	th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t"}))
	if _, err := resilience.Do[int](ctx, th, nil); err == nil {
		t.Error("Do with a nil func: no error")
	}
	if err := th.Run(ctx, nil); err == nil {
		t.Error("Run with a nil call: no error")
	}
	if err := th.Run(ctx, func(context.Context) error { return nil }); err != nil {
		t.Errorf("Run: %v", err)
	}
	var nilThrottler *resilience.Throttler
	if _, err := resilience.Do(ctx, nilThrottler, ok); err == nil {
		t.Error("Do with a nil *Throttler: no error")
	}
	ran := false
	if _, err := resilience.Do(ctx, &resilience.Throttler{}, func(context.Context) (int, error) { ran = true; return 1, nil }); !errors.Is(err, resilience.ErrInvalidConfig) || ran {
		t.Errorf("zero Throttler: err %v, ran %v; want ErrInvalidConfig, not run", err, ran)
	}
	if th.Kind() != resilience.KindThrottle || th.Kind() != "throttle" || th.Name() != "t" {
		t.Errorf("Kind %q, Name %q", th.Kind(), th.Name())
	}
	var _ resilience.Observable = th
}

// TestThrottlerConcurrent: calls from many goroutines, accepted, not
// accepted, rejected and panicking, are each counted once.
func TestThrottlerConcurrent(t *testing.T) {
	ctx := context.Background()
	th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t", Window: time.Second, Buckets: 10}))
	const goroutines, calls = 16, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				func() {
					defer func() {
						if r := recover(); r != nil && r != "boom" {
							panic(r)
						}
					}()
					resilience.Do(ctx, th, func(context.Context) (int, error) {
						switch (g + i) % 7 {
						case 0, 1, 2:
							return 0, errOverloaded
						case 3:
							panic("boom")
						}
						return 1, nil
					})
				}()
			}
		})
	}
	wg.Wait()
	admitted, rejected, p := throttlerStats(t, th)
	if admitted+rejected != goroutines*calls {
		t.Errorf("%d admitted + %d rejected, want %d calls", admitted, rejected, goroutines*calls)
	}
	if p < 0 || p >= 1 {
		t.Errorf("probability %v", p)
	}
}

// BenchmarkThrottler: an admitted call through a throttler whose window
// is clean. Goal: at most 15ns and no allocation on one goroutine, no
// more than twice that with every core calling.
func BenchmarkThrottler(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		return resilience.For[int](must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t"})))
	})
}

// BenchmarkThrottlerDirty: an admitted call while the window holds a
// request not accepted, at probability 0: two clock reads and a lock.
func BenchmarkThrottlerDirty(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "t", Window: time.Hour}))
		resilience.Do(context.Background(), th, answering(errOverloaded))
		return resilience.For[int](th)
	})
}
