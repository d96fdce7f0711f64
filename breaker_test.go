package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

func newBreaker(t testing.TB, cfg resilience.BreakerConfig) (*resilience.Breaker, resilience.Policy[int]) {
	t.Helper()
	b := must(resilience.NewBreaker(cfg))
	return b, resilience.For[int](b)
}

func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	ctx := context.Background()
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 3, ErrorRateThreshold: 1})
	// Failures broken by a success do not add up.
	for _, fn := range []resilience.Func[int]{fail, fail, ok, fail, fail} {
		p.Do(ctx, fn)
	}
	if got := b.State(); got != resilience.Closed {
		t.Fatalf("after fail, fail, ok, fail, fail: state %v, want closed", got)
	}
	p.Do(ctx, fail) // the third in a row
	if got := b.State(); got != resilience.Open {
		t.Fatalf("after three failures in a row: state %v, want open", got)
	}
	ran := false
	_, err := p.Do(ctx, func(context.Context) (int, error) { ran = true; return 0, nil })
	if ran {
		t.Error("an open breaker ran the call")
	}
	if !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("open breaker returned %v, want an error matching ErrOpen", err)
	}
}

func TestBreakerOpensOnErrorRate(t *testing.T) {
	ctx := context.Background()
	b, p := newBreaker(t, resilience.BreakerConfig{
		FailureThreshold: 100, ErrorRateThreshold: 0.5, WindowSize: 10, MinCalls: 6,
	})
	// ok, fail alternating: the rate is 0.5 from the 2nd call on, but it is
	// acted on only once the window holds MinCalls = 6 outcomes.
	for i := 1; i <= 5; i++ {
		fn := ok
		if i%2 == 0 {
			fn = fail
		}
		p.Do(ctx, fn)
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("after call %d (window below MinCalls): state %v, want closed", i, got)
		}
	}
	p.Do(ctx, fail) // 6th call: 3 failures in 6
	if got := b.State(); got != resilience.Open {
		t.Fatalf("after 3 failures in 6 calls: state %v, want open", got)
	}
	if got := b.ErrorRate(); got != 0.5 {
		t.Errorf("ErrorRate() = %v, want 0.5", got)
	}
}

// TestBreakerSuccessReachingMinCallsOpens covers the one way a success can
// open a breaker: by being the call that brings the window to MinCalls
// when the failure rate is already over the threshold.
func TestBreakerSuccessReachingMinCallsOpens(t *testing.T) {
	ctx := context.Background()
	b, p := newBreaker(t, resilience.BreakerConfig{
		FailureThreshold: 100, ErrorRateThreshold: 0.5, WindowSize: 10, MinCalls: 4,
	})
	for _, fn := range []resilience.Func[int]{fail, fail, fail} {
		p.Do(ctx, fn)
	}
	if got := b.State(); got != resilience.Closed {
		t.Fatalf("after 3 calls (MinCalls 4): state %v, want closed", got)
	}
	p.Do(ctx, ok) // 3 failures in 4
	if got := b.State(); got != resilience.Open {
		t.Fatalf("after the success that made MinCalls, with 3 failures in 4: state %v, want open", got)
	}
}

func TestBreakerRateWindowSlides(t *testing.T) {
	ctx := context.Background()
	b, p := newBreaker(t, resilience.BreakerConfig{
		FailureThreshold: 100, ErrorRateThreshold: 0.5, WindowSize: 4, MinCalls: 4,
	})
	for _, fn := range []resilience.Func[int]{fail, ok, ok, ok, ok} {
		p.Do(ctx, fn)
	}
	// The failure has slid out of the last four calls.
	if got := b.ErrorRate(); got != 0 {
		t.Fatalf("ErrorRate() = %v after the failure left the window, want 0", got)
	}
	p.Do(ctx, fail)
	if got := b.ErrorRate(); got != 0.25 {
		t.Fatalf("ErrorRate() = %v, want 0.25", got)
	}
	p.Do(ctx, fail) // 2 of the last 4
	if got := b.State(); got != resilience.Open {
		t.Fatalf("after 2 failures in the last 4: state %v, want open", got)
	}
}

func TestBreakerTimeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{
			FailureThreshold: 100, ErrorRateThreshold: 0.5, MinCalls: 4,
			WindowPeriod: 10 * time.Second, WindowBuckets: 10,
		})
		p.Do(ctx, fail)
		p.Do(ctx, fail)
		p.Do(ctx, fail)
		time.Sleep(10 * time.Second) // the three failures slide out
		p.Do(ctx, ok)
		p.Do(ctx, ok)
		p.Do(ctx, ok)
		p.Do(ctx, fail)
		if got, want := b.ErrorRate(), 0.25; got != want {
			t.Fatalf("ErrorRate() = %v, want %v: the failures of 10s ago should have left the window", got, want)
		}
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("state %v, want closed", got)
		}
		time.Sleep(5 * time.Second)
		p.Do(ctx, fail) // 2 failures of 5 calls in the last 10s
		p.Do(ctx, fail) // 3 of 6
		if got := b.State(); got != resilience.Open {
			t.Fatalf("after 3 failures in 6 calls within 10s: state %v, want open", got)
		}
	})
}

func TestBreakerOpenErrorAndTimeoutToTheNanosecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{Name: "users", FailureThreshold: 1, OpenTimeout: 15 * time.Second})
		opened := time.Now()
		p.Do(ctx, fail)
		if got := b.State(); got != resilience.Open {
			t.Fatalf("state %v, want open", got)
		}

		time.Sleep(4 * time.Second)
		_, err := p.Do(ctx, ok)
		var oe *resilience.OpenError
		if !errors.As(err, &oe) {
			t.Fatalf("rejection is %T (%v), want *OpenError", err, err)
		}
		if want := opened.Add(15 * time.Second); !oe.Until.Equal(want) {
			t.Errorf("OpenError.Until = %v, want %v", oe.Until, want)
		}
		if got, want := oe.RetryAfter(), 11*time.Second; got != want {
			t.Errorf("OpenError.RetryAfter() = %v, want %v", got, want)
		}
		if got, want := err.Error(), `resilience: circuit breaker "users" is open; next probe in 11s`; got != want {
			t.Errorf("error text %q, want %q", got, want)
		}

		// The message rounds what is left; RetryAfter keeps it exact.
		for _, tc := range []struct {
			after time.Duration
			want  string
		}{
			{89_360_288 * time.Nanosecond, "10.9s"},                                    // 10.910639712s left
			{10*time.Second + 400*time.Millisecond + 123_456*time.Nanosecond, "511ms"}, // 510.516256ms left
			{510_416_377 * time.Nanosecond, "99.879µs"},
		} {
			time.Sleep(tc.after)
			_, err := p.Do(ctx, ok)
			if want := `resilience: circuit breaker "users" is open; next probe in ` + tc.want; err.Error() != want {
				t.Errorf("error text %q, want %q", err.Error(), want)
			}
		}
		time.Sleep(time.Until(opened.Add(15*time.Second)) - time.Nanosecond)
		if got := b.State(); got != resilience.Open {
			t.Fatalf("1ns before the open timeout: state %v, want open", got)
		}
		time.Sleep(time.Nanosecond)
		if got := b.State(); got != resilience.HalfOpen {
			t.Fatalf("at the open timeout: state %v, want half-open", got)
		}
	})
}

// TestBreakerTimerMovesToHalfOpenWithoutTraffic checks that the move to
// HalfOpen happens by itself, observed through the state-change hook.
func TestBreakerTimerMovesToHalfOpenWithoutTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var changes []string
		b, p := newBreaker(t, resilience.BreakerConfig{
			FailureThreshold: 1, OpenTimeout: time.Minute,
			OnStateChange: func(c resilience.StateChange) {
				mu.Lock()
				changes = append(changes, fmt.Sprintf("%v->%v at %v", c.From, c.To, c.At.Sub(time.Unix(946684800, 0))))
				mu.Unlock()
			},
		})
		p.Do(context.Background(), fail)
		time.Sleep(time.Minute)
		synctest.Wait() // let the timer's goroutine run
		mu.Lock()
		got := changes
		mu.Unlock()
		want := []string{"closed->open at 0s", "open->half-open at 1m0s"}
		if diff := testcheck.Diff(want, got); diff != "" {
			t.Errorf("state changes (-want +got):\n%s", diff)
		}
		if b.State() != resilience.HalfOpen {
			t.Errorf("state %v, want half-open", b.State())
		}
	})
}

// openThenHalfOpen drives b to HalfOpen through p.
func openThenHalfOpen(t *testing.T, b *resilience.Breaker, p resilience.Policy[int], timeout time.Duration) {
	t.Helper()
	for b.State() == resilience.Closed {
		p.Do(context.Background(), fail)
	}
	time.Sleep(timeout)
	synctest.Wait()
	if got := b.State(); got != resilience.HalfOpen {
		t.Fatalf("state %v, want half-open", got)
	}
}

func TestBreakerHalfOpenClosesAfterSuccessThreshold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 2, SuccessThreshold: 3, HalfOpenProbes: 1, OpenTimeout: time.Second})
		openThenHalfOpen(t, b, p, time.Second)
		for i := 1; i <= 2; i++ {
			if _, err := p.Do(ctx, ok); err != nil {
				t.Fatalf("probe %d: %v", i, err)
			}
			if got := b.State(); got != resilience.HalfOpen {
				t.Fatalf("after %d successful probes of 3: state %v, want half-open", i, got)
			}
		}
		p.Do(ctx, ok)
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("after 3 successful probes: state %v, want closed", got)
		}
		if got := b.ErrorRate(); got != 0 {
			t.Errorf("ErrorRate() = %v after closing, want 0: a closed breaker starts with an empty window", got)
		}
		p.Do(ctx, fail) // one failure of the two it takes
		if got := b.State(); got != resilience.Closed {
			t.Errorf("after one failure: state %v, want closed", got)
		}
	})
}

func TestBreakerHalfOpenFailureReopensWithFreshTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: 30 * time.Second})
		openThenHalfOpen(t, b, p, 30*time.Second)
		time.Sleep(7 * time.Second) // half-open for a while, no traffic
		p.Do(ctx, fail)
		if got := b.State(); got != resilience.Open {
			t.Fatalf("after a failed probe: state %v, want open", got)
		}
		time.Sleep(30*time.Second - time.Nanosecond)
		if got := b.State(); got != resilience.Open {
			t.Fatalf("1ns before the fresh timeout: state %v, want open", got)
		}
		time.Sleep(time.Nanosecond)
		if got := b.State(); got != resilience.HalfOpen {
			t.Fatalf("at the fresh timeout: state %v, want half-open", got)
		}
	})
}

// TestBreakerHalfOpenAdmitsExactlyItsProbeLimit hammers a half-open
// breaker with 500 goroutines: exactly HalfOpenProbes calls may run.
func TestBreakerHalfOpenAdmitsExactlyItsProbeLimit(t *testing.T) {
	for _, limit := range []int{1, 3, 7} {
		t.Run(fmt.Sprintf("probes=%d", limit), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, p := newBreaker(t, resilience.BreakerConfig{
					FailureThreshold: 1, SuccessThreshold: limit, HalfOpenProbes: limit, OpenTimeout: time.Second,
				})
				openThenHalfOpen(t, b, p, time.Second)

				var running, rejected atomic.Int64
				release := make(chan struct{})
				var wg sync.WaitGroup
				for range 500 {
					wg.Go(func() {
						_, err := p.Do(context.Background(), func(context.Context) (int, error) {
							running.Add(1)
							<-release
							return 1, nil
						})
						if errors.Is(err, resilience.ErrOpen) {
							rejected.Add(1)
						}
					})
				}
				synctest.Wait() // every goroutine is rejected or holding a probe
				if got := running.Load(); got != int64(limit) {
					t.Errorf("%d probes running, want exactly %d", got, limit)
				}
				if got := rejected.Load(); got != int64(500-limit) {
					t.Errorf("%d calls rejected, want %d", got, 500-limit)
				}
				close(release)
				wg.Wait()
				if got := b.State(); got != resilience.Closed {
					t.Errorf("after %d successful probes: state %v, want closed", limit, got)
				}
			})
		})
	}
}

// TestBreakerProbePermitIsAlwaysReturned makes the single probe slot of a
// half-open breaker end in every way a call can end, and checks that the
// slot comes back each time: the breaker is never stuck half-open.
func TestBreakerProbePermitIsAlwaysReturned(t *testing.T) {
	errIgnored := errors.New("ignored by the classifier")
	cases := []struct {
		name string
		run  func(p resilience.Policy[int])
		want resilience.State // after the probe
	}{
		{"panic", func(p resilience.Policy[int]) {
			defer func() {
				if r := recover(); r != "probe panicked" {
					panic(r)
				}
			}()
			p.Do(context.Background(), func(context.Context) (int, error) { panic("probe panicked") })
		}, resilience.Open},
		{"cancelled", func(p resilience.Policy[int]) {
			ctx, cancel := context.WithCancel(context.Background())
			p.Do(ctx, func(ctx context.Context) (int, error) { cancel(); return 0, ctx.Err() })
		}, resilience.HalfOpen},
		{"ignored error", func(p resilience.Policy[int]) {
			p.Do(context.Background(), func(context.Context) (int, error) { return 0, errIgnored })
		}, resilience.HalfOpen},
		{"goexit", func(p resilience.Policy[int]) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.Do(context.Background(), func(context.Context) (int, error) { runtimeGoexit(); return 0, nil })
			}()
			<-done
		}, resilience.Open},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b, p := newBreaker(t, resilience.BreakerConfig{
					FailureThreshold: 1, SuccessThreshold: 1, HalfOpenProbes: 1, OpenTimeout: time.Second,
					Classify: func(ctx context.Context, err error) resilience.Outcome {
						if errors.Is(err, errIgnored) {
							return resilience.Ignored
						}
						return resilience.DefaultClassify(ctx, err)
					},
				})
				openThenHalfOpen(t, b, p, time.Second)
				tc.run(p)
				if got := b.State(); got != tc.want {
					t.Fatalf("after the probe: state %v, want %v", got, tc.want)
				}
				if tc.want == resilience.Open {
					time.Sleep(time.Second)
					synctest.Wait()
				}
				// The slot is free: the next probe runs and closes the breaker.
				if _, err := p.Do(context.Background(), ok); err != nil {
					t.Fatalf("next probe: %v (the slot was not returned)", err)
				}
				if got := b.State(); got != resilience.Closed {
					t.Fatalf("after a successful probe: state %v, want closed", got)
				}
			})
		})
	}
}

func TestBreakerCallerCancellationIsNotAFailure(t *testing.T) {
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.Do(ctx, func(ctx context.Context) (int, error) { return 0, ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Do returned %v, want context.Canceled", err)
	}
	if got := b.State(); got != resilience.Closed {
		t.Fatalf("after the caller cancelled: state %v, want closed", got)
	}
	// A deadline that passes is a failure: the dependency was too slow.
	ctx, cancel = context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	p.Do(ctx, func(ctx context.Context) (int, error) { return 0, ctx.Err() })
	if got := b.State(); got != resilience.Open {
		t.Fatalf("after a deadline exceeded: state %v, want open", got)
	}
}

func TestBreakerClassify(t *testing.T) {
	errNotFound := errors.New("not found")
	b, p := newBreaker(t, resilience.BreakerConfig{
		FailureThreshold: 2,
		Classify: func(ctx context.Context, err error) resilience.Outcome {
			if errors.Is(err, errNotFound) {
				return resilience.Success // the backend answered
			}
			return resilience.DefaultClassify(ctx, err)
		},
	})
	ctx := context.Background()
	notFound := func(context.Context) (int, error) { return 0, errNotFound }
	p.Do(ctx, fail)
	p.Do(ctx, notFound) // breaks the run of failures
	p.Do(ctx, fail)
	if got := b.State(); got != resilience.Closed {
		t.Fatalf("state %v, want closed: a not-found answer is a success", got)
	}
	p.Do(ctx, notFound)
	p.Do(ctx, notFound)
	if got, want := b.ErrorRate(), 2.0/5; got != want {
		t.Errorf("ErrorRate() = %v, want %v", got, want)
	}
}

func TestBreakerSlowCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{
			FailureThreshold: 100, WindowSize: 4, MinCalls: 4, SuccessThreshold: 1, OpenTimeout: time.Second,
			SlowCallThreshold: 100 * time.Millisecond, SlowCallRateThreshold: 0.5,
		})
		after := func(d time.Duration) resilience.Func[int] {
			return func(context.Context) (int, error) { time.Sleep(d); return 1, nil }
		}
		p.Do(ctx, after(99*time.Millisecond))  // fast
		p.Do(ctx, after(100*time.Millisecond)) // slow: at the threshold
		p.Do(ctx, after(10*time.Millisecond))  // fast
		if got := b.SlowCallRate(); got != 1.0/3 {
			t.Fatalf("SlowCallRate() = %v, want 1/3", got)
		}
		p.Do(ctx, after(time.Second)) // 2 slow of 4
		if got := b.State(); got != resilience.Open {
			t.Fatalf("with 2 slow calls of 4: state %v, want open", got)
		}
		if got := b.ErrorRate(); got != 0 {
			t.Errorf("ErrorRate() = %v, want 0: slow successes are not failures", got)
		}
		// A slow probe counts as a failed one.
		time.Sleep(time.Second)
		synctest.Wait()
		p.Do(ctx, after(200*time.Millisecond))
		if got := b.State(); got != resilience.Open {
			t.Fatalf("after a slow probe: state %v, want open", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		p.Do(ctx, after(time.Millisecond))
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("after a fast probe: state %v, want closed", got)
		}
	})
}

func TestBreakerManualControl(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Second})

		b.ForceOpen()
		_, err := p.Do(ctx, ok)
		var oe *resilience.OpenError
		if !errors.As(err, &oe) || !oe.Until.IsZero() || oe.RetryAfter() != 0 {
			t.Fatalf("forced open: Do returned %v, want an *OpenError with no probe time", err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := b.State(); got != resilience.Open {
			t.Fatalf("forced open, an hour later: state %v, want open", got)
		}

		b.Disable()
		for range 10 {
			if _, err := p.Do(ctx, fail); !errors.Is(err, errBoom) {
				t.Fatalf("disabled: Do returned %v, want the call's own error", err)
			}
		}
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("disabled, after 10 failures: state %v, want closed", got)
		}
		if got := b.ErrorRate(); got != 1 {
			t.Errorf("disabled: ErrorRate() = %v, want 1: a disabled breaker still measures", got)
		}

		b.Reset()
		if got := b.ErrorRate(); got != 0 {
			t.Errorf("after Reset: ErrorRate() = %v, want 0", got)
		}
		p.Do(ctx, fail)
		if got := b.State(); got != resilience.Open {
			t.Fatalf("after Reset and a failure: state %v, want open: the rules are back", got)
		}
	})
}

func TestBreakerStateChangeHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var got []string
		var b *resilience.Breaker
		b = must(resilience.NewBreaker(resilience.BreakerConfig{
			Name: "db", FailureThreshold: 1, SuccessThreshold: 1, OpenTimeout: time.Second,
			OnStateChange: func(c resilience.StateChange) {
				// The hook may use the breaker: no lock is held.
				got = append(got, fmt.Sprintf("%s: %v->%v (state now %v)", c.Name, c.From, c.To, b.State()))
			},
		}))
		p := resilience.For[string](b)
		ctx := context.Background()
		p.Do(ctx, func(context.Context) (string, error) { return "", errBoom })
		time.Sleep(time.Second)
		synctest.Wait()
		p.Do(ctx, func(context.Context) (string, error) { return "ok", nil })
		want := []string{
			"db: closed->open (state now open)",
			"db: open->half-open (state now half-open)",
			"db: half-open->closed (state now closed)",
		}
		if diff := testcheck.Diff(want, got); diff != "" {
			t.Errorf("state changes (-want +got):\n%s", diff)
		}
	})
}

// TestBreakerHookMayChangeState: a hook that forces a transition must not
// deadlock, and both transitions are reported, in order.
func TestBreakerHookMayChangeState(t *testing.T) {
	var got []string
	var b *resilience.Breaker
	b = must(resilience.NewBreaker(resilience.BreakerConfig{
		FailureThreshold: 1,
		OnStateChange: func(c resilience.StateChange) {
			got = append(got, fmt.Sprintf("%v->%v", c.From, c.To))
			if c.To == resilience.Open {
				b.Reset() // an operator's override, say
			}
		},
	}))
	resilience.For[int](b).Do(context.Background(), fail)
	if diff := testcheck.Diff([]string{"closed->open", "open->closed"}, got); diff != "" {
		t.Errorf("state changes (-want +got):\n%s", diff)
	}
	if b.State() != resilience.Closed {
		t.Errorf("state %v, want closed", b.State())
	}
}

func TestBreakerHookPanicDoesNotWedgeReporting(t *testing.T) {
	var calls int
	b := must(resilience.NewBreaker(resilience.BreakerConfig{
		FailureThreshold: 1,
		OnStateChange: func(c resilience.StateChange) {
			calls++
			if calls == 1 {
				panic("hook failed")
			}
		},
	}))
	func() {
		defer func() {
			if r := recover(); r != "hook failed" {
				t.Fatalf("recovered %v, want the hook's panic", r)
			}
		}()
		b.ForceOpen()
	}()
	b.Reset()
	if calls != 2 {
		t.Errorf("hook called %d times, want 2: reporting must resume after a panicking hook", calls)
	}
}

// TestBreakerSharedAcrossResultTypes: chains of different result types
// built on one breaker see one state.
func TestBreakerSharedAcrossResultTypes(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 2}))
	users := resilience.For[[]string](b)
	count := resilience.For[int](b)
	ctx := context.Background()
	users.Do(ctx, func(context.Context) ([]string, error) { return nil, errBoom })
	count.Do(ctx, fail)
	if _, err := users.Do(ctx, func(context.Context) ([]string, error) { return []string{"ann"}, nil }); !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("after one failure through each chain: %v, want ErrOpen", err)
	}
}

// TestBreakerStaleOutcomesAreDropped: a call admitted while closed that
// ends after the breaker opened must not count in the new period.
func TestBreakerStaleOutcomesAreDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1, SuccessThreshold: 1, OpenTimeout: time.Second})
		release := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			p.Do(context.Background(), func(context.Context) (int, error) { <-release; return 1, nil })
		}()
		synctest.Wait()
		p.Do(context.Background(), fail)
		time.Sleep(time.Second)
		synctest.Wait()
		if b.State() != resilience.HalfOpen {
			t.Fatalf("state %v, want half-open", b.State())
		}
		close(release) // the old call succeeds now
		<-done
		if got := b.State(); got != resilience.HalfOpen {
			t.Fatalf("after a call from the closed period succeeded: state %v, want half-open still", got)
		}
	})
}

func TestBreakerTwoStep(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 2}))
	ctx := context.Background()
	for range 2 {
		pm, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		pm.Done(errBoom)
	}
	if _, err := b.Allow(ctx); !errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("Allow on an open breaker: %v, want ErrOpen", err)
	}
	var zero resilience.Permit
	zero.Done(errBoom) // does nothing, and does not panic
}

// TestBreakerCountsNeverDrift runs many goroutines through a disabled
// breaker (it measures but never opens) and checks the final rate.
func TestBreakerCountsNeverDrift(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 1000}))
	b.Disable()
	p := resilience.For[int](b)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 5000 {
				if (g+i)%4 == 0 {
					p.Do(context.Background(), fail)
				} else {
					p.Do(context.Background(), ok)
				}
			}
		})
	}
	wg.Wait()
	// Every goroutine ends with 1000 calls of which exactly 1 in 4 failed;
	// whichever 1000 are last overall, the tail of each goroutine has the
	// same mix, so the rate must be close to 0.25, and it must be exact in
	// a window made of a single goroutine's calls.
	if got := b.ErrorRate(); got < 0.2 || got > 0.3 {
		t.Errorf("ErrorRate() = %v, want about 0.25", got)
	}
	for range 1000 {
		p.Do(context.Background(), ok)
	}
	if got := b.ErrorRate(); got != 0 {
		t.Errorf("ErrorRate() = %v after 1000 successes, want 0", got)
	}
}

func TestStateAndOutcomeStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{resilience.Closed.String(), "closed"},
		{resilience.Open.String(), "open"},
		{resilience.HalfOpen.String(), "half-open"},
		{resilience.State(7).String(), "State(7)"},
		{resilience.Success.String(), "success"},
		{resilience.Failure.String(), "failure"},
		{resilience.Ignored.String(), "ignored"},
		{resilience.Outcome(9).String(), "Outcome(9)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestBreakerStress drives one breaker through many open, probe and close
// cycles from 64 goroutines whose calls fail in bursts, and checks what
// must hold whatever the interleaving: the transitions reported form one
// valid sequence, in order, and a half-open breaker never has more probes
// running than its limit.
func TestBreakerStress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const probes = 3
		var (
			mu      sync.Mutex
			changes []resilience.StateChange
		)
		b := must(resilience.NewBreaker(resilience.BreakerConfig{
			FailureThreshold: 5, WindowSize: 50, MinCalls: 10, ErrorRateThreshold: 0.4,
			OpenTimeout: 50 * time.Millisecond, SuccessThreshold: 2, HalfOpenProbes: probes,
			OnStateChange: func(c resilience.StateChange) {
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			},
		}))
		p := resilience.For[int](b)
		// probing counts the calls running that were let through while
		// half-open. A call that finds the breaker half-open as it starts
		// was let through half-open: under synctest the clock cannot move
		// the breaker from closed through open to half-open between the
		// admission and the start of a call, which do not block.
		var probing, peakProbing, probesSeen atomic.Int64
		var failing atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() { // the dependency fails for 200ms in every 500ms
			for i := range 20 {
				failing.Store(i%5 < 2)
				time.Sleep(100 * time.Millisecond)
			}
			failing.Store(false)
		})
		for g := range 64 {
			wg.Go(func() {
				for i := range 400 {
					p.Do(context.Background(), func(context.Context) (int, error) {
						if b.State() == resilience.HalfOpen {
							probesSeen.Add(1)
							n := probing.Add(1)
							defer probing.Add(-1)
							for {
								m := peakProbing.Load()
								if n <= m || peakProbing.CompareAndSwap(m, n) {
									break
								}
							}
						}
						time.Sleep(time.Duration(1+(g+i)%5) * time.Millisecond)
						if failing.Load() {
							return 0, errBoom
						}
						return 1, nil
					})
					time.Sleep(time.Millisecond)
				}
			})
		}
		wg.Wait()
		time.Sleep(time.Second)
		synctest.Wait()

		mu.Lock()
		defer mu.Unlock()
		if len(changes) < 6 {
			t.Fatalf("only %d transitions: the scenario did not exercise the breaker", len(changes))
		}
		valid := map[[2]resilience.State]bool{
			{resilience.Closed, resilience.Open}:     true,
			{resilience.Open, resilience.HalfOpen}:   true,
			{resilience.HalfOpen, resilience.Closed}: true,
			{resilience.HalfOpen, resilience.Open}:   true,
		}
		prev := resilience.Closed
		for i, c := range changes {
			if c.From != prev || !valid[[2]resilience.State{c.From, c.To}] {
				t.Fatalf("transition %d is %v -> %v after reaching %v", i, c.From, c.To, prev)
			}
			if i > 0 && c.At.Before(changes[i-1].At) {
				t.Fatalf("transition %d reported out of order", i)
			}
			prev = c.To
		}
		if prev != b.State() {
			t.Errorf("last reported state %v, but the breaker is %v", prev, b.State())
		}
		if probesSeen.Load() == 0 {
			t.Fatal("no call ran half-open: the scenario did not exercise the probe limit")
		}
		if got := peakProbing.Load(); got > probes {
			t.Errorf("%d probes ran at once, want at most HalfOpenProbes = %d", got, probes)
		}
		t.Logf("%d transitions; %d probes, at most %d at once", len(changes), probesSeen.Load(), peakProbing.Load())
	})
}

// TestPermitDoneTwiceIsANoOp: a permit reported twice gives its probe slot
// back once and counts its outcome once, so a breaker that needs two
// successful probes does not close on one.
func TestPermitDoneTwiceIsANoOp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 1, SuccessThreshold: 2, HalfOpenProbes: 1, OpenTimeout: time.Second})
		openThenHalfOpen(t, b, p, time.Second)
		pm, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow: %v", err)
		}
		pm.Done(nil)
		pm.Done(nil)
		if got := b.State(); got != resilience.HalfOpen {
			t.Fatalf("after one probe reported twice: state %v, want half-open (one success of two)", got)
		}
		// The slot came back once: one probe runs, a second is rejected.
		first, err := b.Allow(ctx)
		if err != nil {
			t.Fatalf("Allow after the probe: %v", err)
		}
		if _, err := b.Allow(ctx); !errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("a second probe at once: err = %v, want ErrOpen (HalfOpenProbes is 1)", err)
		}
		first.Done(nil)
		if got := b.State(); got != resilience.Closed {
			t.Errorf("after two successful probes: state %v, want closed", got)
		}
		if n := testing.AllocsPerRun(100, func() {
			pm, _ := b.Allow(ctx)
			pm.Done(nil)
			pm.Done(nil)
		}); n != 0 {
			t.Errorf("Allow and Done twice: %v allocations, want 0", n)
		}
	})
}

// TestBreakerStateOnlyReads: State run past the open timeout, before the
// timer has made the move to half-open, reports HalfOpen but makes no
// transition and calls no hook.
func TestBreakerStateOnlyReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes atomic.Int32
		b, p := newBreaker(t, resilience.BreakerConfig{
			FailureThreshold: 1, OpenTimeout: time.Second,
			OnStateChange: func(resilience.StateChange) { changes.Add(1) },
		})
		p.Do(context.Background(), fail)
		if got := changes.Load(); got != 1 {
			t.Fatalf("%d state changes after opening, want 1", got)
		}
		resilience.StopOpenTimer(b)
		time.Sleep(time.Second)
		for range 3 {
			if got := b.State(); got != resilience.HalfOpen {
				t.Fatalf("State() past the timeout = %v, want half-open", got)
			}
			if got := b.StateAt(time.Now().Add(-time.Nanosecond)); got != resilience.Open {
				t.Fatalf("StateAt 1ns before the timeout = %v, want open", got)
			}
		}
		synctest.Wait()
		if got := changes.Load(); got != 1 {
			t.Fatalf("State() made %d transitions of its own; a getter must only read", got-1)
		}
		if _, err := p.Do(context.Background(), ok); !errors.Is(err, resilience.ErrOpen) {
			t.Errorf("a call before the move to half-open: err = %v, want ErrOpen", err)
		}
	})
}

// TestBreakerRulesCanBeTurnedOff: each rule that opens the breaker can be
// turned off alone, and turning off every rule is a configuration error.
func TestBreakerRulesCanBeTurnedOff(t *testing.T) {
	ctx := context.Background()

	// Failures in a row alone: alternating failures never open it, however
	// high the rate.
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 5, ErrorRateThreshold: resilience.Off})
	for i := range 200 {
		if i%2 == 0 {
			p.Do(ctx, fail)
		} else {
			p.Do(ctx, ok)
		}
	}
	if got := b.State(); got != resilience.Closed {
		t.Fatalf("rate rule off, failures never 5 in a row: state %v after 200 calls at 50%% failures, want closed", got)
	}
	for range 5 {
		p.Do(ctx, fail)
	}
	if got := b.State(); got != resilience.Open {
		t.Errorf("rate rule off: state %v after 5 failures in a row, want open", got)
	}

	// The rate alone: a run of failures opens it only once the window
	// holds MinCalls outcomes.
	b, p = newBreaker(t, resilience.BreakerConfig{FailureThreshold: resilience.Off, MinCalls: 60})
	for i := 1; i <= 60; i++ {
		p.Do(ctx, fail)
		if want := i == 60; (b.State() == resilience.Open) != want {
			t.Fatalf("failures-in-a-row rule off: state %v after %d failures, want open only from the 60th", b.State(), i)
		}
	}

	_, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: resilience.Off, ErrorRateThreshold: resilience.Off})
	var ce *resilience.ConfigError
	if !errors.As(err, &ce) || ce.Field != "BreakerConfig.FailureThreshold" || !strings.Contains(err.Error(), "nothing could open") {
		t.Errorf("every rule off: err = %v, want a ConfigError naming BreakerConfig.FailureThreshold", err)
	}
	if _, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: resilience.Off, ErrorRateThreshold: resilience.Off, SlowCallThreshold: time.Second}); err != nil {
		t.Errorf("only the slow-call rule on: %v", err)
	}
}

// TestBreakerFailuresInARowExpireWithATimeWindow: with a time-based
// window, a run of failures counts towards FailureThreshold only within
// one WindowPeriod of its first failure.
func TestBreakerFailuresInARowExpireWithATimeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 3, ErrorRateThreshold: resilience.Off, WindowPeriod: 10 * time.Second})
		p.Do(ctx, fail) // t=0: the run begins
		time.Sleep(5 * time.Second)
		p.Do(ctx, fail) // t=5s: 2 in the run
		time.Sleep(5 * time.Second)
		p.Do(ctx, fail) // t=10s: a period after the run began, so a new run
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("third failure a full period after the first: state %v, want closed", got)
		}
		time.Sleep(10*time.Second - 2*time.Nanosecond)
		p.Do(ctx, fail) // 2 in the new run, 1ns before it is a period old
		if got := b.State(); got != resilience.Closed {
			t.Fatalf("after two failures in the new run: state %v, want closed", got)
		}
		time.Sleep(time.Nanosecond)
		p.Do(ctx, fail) // 3 within the period
		if got := b.State(); got != resilience.Open {
			t.Fatalf("three failures within a period: state %v, want open", got)
		}
	})
}

// TestBreakerWindowSizeIsBounded: a window above MaxWindowSize is a
// configuration error naming the field, reported without trying to
// allocate it.
func TestBreakerWindowSizeIsBounded(t *testing.T) {
	for _, size := range []int{resilience.MaxWindowSize + 1, 1 << 42, math.MaxInt} {
		_, err := resilience.NewBreaker(resilience.BreakerConfig{WindowSize: size})
		var ce *resilience.ConfigError
		if !errors.As(err, &ce) || ce.Field != "BreakerConfig.WindowSize" {
			t.Errorf("WindowSize %d: err = %v, want a ConfigError naming BreakerConfig.WindowSize", size, err)
		}
	}
	if _, err := resilience.NewBreaker(resilience.BreakerConfig{WindowSize: resilience.MaxWindowSize}); err != nil {
		t.Errorf("WindowSize MaxWindowSize: %v", err)
	}
}

// allocated returns the bytes allocated while f ran, and the objects.
func allocated(f func()) (bytes, objects uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, after.Mallocs - before.Mallocs
}

// TestBreakerReusesItsWindow: closing and Reset empty the window in place,
// so what they allocate does not grow with the window: the record of the
// new period, and nothing else.
func TestBreakerReusesItsWindow(t *testing.T) {
	for _, size := range []int{100, 1_000_000} {
		var b *resilience.Breaker
		bytes, _ := allocated(func() { b = must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: size})) })
		t.Logf("a breaker with a window of %d holds %d bytes", size, bytes)
		if size == 1_000_000 && bytes > 264<<10 {
			t.Errorf("a breaker with a window of 1,000,000 allocated %d bytes, want its window (at most 256 KB) and a few KB of its own", bytes)
		}
		const resets = 100
		bytes, objects := allocated(func() {
			for range resets {
				b.Reset()
			}
		})
		t.Logf("window of %d: a Reset allocates %d bytes in %d objects", size, bytes/resets, objects/resets)
		if bytes/resets > 512 || objects/resets > 1 {
			t.Errorf("window of %d: a Reset allocates %d bytes in %d objects, want one period record of at most 512 bytes", size, bytes/resets, objects/resets)
		}
		// The window was emptied: a failure rate starts from nothing.
		p := resilience.For[int](b)
		b.Disable()
		p.Do(context.Background(), fail)
		if got := b.ErrorRate(); got != 1 {
			t.Errorf("window of %d: ErrorRate after Reset and one failure = %v, want 1", size, got)
		}
		b.Reset()
		if got := b.ErrorRate(); got != 0 {
			t.Errorf("window of %d: ErrorRate after Reset = %v, want 0", size, got)
		}
	}
}

// TestBreakerFailuresInARowSlideWithATimeWindow: the rule looks at the
// last FailureThreshold calls, wherever the run began: a burst of failures
// opens the breaker as soon as it holds FailureThreshold of them within
// the period, even when an old failure began the run.
func TestBreakerFailuresInARowSlideWithATimeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 5, ErrorRateThreshold: resilience.Off, WindowPeriod: time.Minute})
		p.Do(ctx, fail) // t=0
		time.Sleep(59500 * time.Millisecond)
		for i := 1; i <= 5; i++ {
			p.Do(ctx, fail)
			if want := i == 5; (b.State() == resilience.Open) != want {
				t.Fatalf("after %d failures of a burst: state %v, want open only at the 5th", i, b.State())
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	_, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1001, WindowPeriod: time.Minute})
	var ce *resilience.ConfigError
	if !errors.As(err, &ce) || ce.Field != "BreakerConfig.FailureThreshold" {
		t.Errorf("FailureThreshold 1001 with a time window: err = %v, want a ConfigError naming it", err)
	}
}
