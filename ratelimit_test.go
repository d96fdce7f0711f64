package resilience_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/time/rate"

	"github.com/resilience-go/resilience"
)

// limiterStats returns what l's Stats reports.
func limiterStats(t *testing.T, l *resilience.RateLimiter) (admitted, waited, rejected uint64, tokens float64) {
	t.Helper()
	st := l.Stats()
	if len(st.Calls) != 3 || st.Calls[0].Result != "admitted" || st.Calls[1].Result != "waited" || st.Calls[2].Result != "rejected" ||
		len(st.Gauges) != 1 || st.Gauges[0].Name != "tokens" || st.Gauges[0].Help == "" {
		t.Fatalf("Stats = %+v, want admitted, waited and rejected calls, and a tokens gauge with a help line", st)
	}
	return st.Calls[0].N, st.Calls[1].N, st.Calls[2].N, st.Gauges[0].Value
}

// TestRateLimiterAdmitsAtRate: a full bucket lets Burst calls through at
// once, and then one call per 1/Rate; the others are rejected at once,
// with how long until the next token.
func TestRateLimiterAdmitsAtRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "api", Rate: 10, Burst: 5}))
		for i := range 5 {
			if _, err := resilience.Do(ctx, l, ok); err != nil {
				t.Fatalf("call %d of the burst: %v", i, err)
			}
		}
		ran := false
		_, err := resilience.Do(ctx, l, func(context.Context) (int, error) { ran = true; return 1, nil })
		var rl *resilience.RateLimitedError
		if !errors.As(err, &rl) || !errors.Is(err, resilience.ErrRateLimited) || !errors.Is(err, resilience.ErrRejected) || ran {
			t.Fatalf("past the burst: err %v, ran %v; want a *RateLimitedError matching ErrRateLimited and ErrRejected, not run", err, ran)
		}
		if rl.Name != "api" || rl.Rate != 10 || rl.Delay != 100*time.Millisecond || rl.RetryAfter() != rl.Delay {
			t.Errorf("RateLimitedError %+v, RetryAfter %v; want the limiter's name and rate, and 100ms to the next token", rl, rl.RetryAfter())
		}
		if msg := err.Error(); !strings.Contains(msg, `"api"`) || !strings.Contains(msg, "100ms") {
			t.Errorf("message %q names neither the limiter nor the wait", msg)
		}
		time.Sleep(40 * time.Millisecond)
		if _, err := resilience.Do(ctx, l, ok); !errors.As(err, &rl) || rl.Delay != 60*time.Millisecond {
			t.Errorf("40ms on: err %v, want a rejection with 60ms to the next token", err)
		}

		// Calls every 10ms for 10s: one in ten finds a token.
		admitted, rejected := 0, 0
		for range 1000 {
			time.Sleep(10 * time.Millisecond)
			if _, err := resilience.Do(ctx, l, ok); err == nil {
				admitted++
			} else if errors.Is(err, resilience.ErrRateLimited) {
				rejected++
			}
		}
		if admitted != 100 || rejected != 900 {
			t.Errorf("over 10s at 10 a second: %d admitted, %d rejected; want 100 and 900", admitted, rejected)
		}
		a, w, r, _ := limiterStats(t, l)
		if a != 105 || w != 0 || r != 902 {
			t.Errorf("Stats: %d admitted, %d waited, %d rejected; want 105, 0, 902", a, w, r)
		}
	})
}

// TestRateLimiterDefaultBurst: the bucket holds a second's worth of
// calls, at least one.
func TestRateLimiterDefaultBurst(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{0.01, 1}, {0.5, 1}, {1, 1}, {2.5, 3}, {100, 100}} {
		synctest.Test(t, func(t *testing.T) {
			l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "b", Rate: tc.rate}))
			if got := l.Tokens(); got != float64(tc.burst) {
				t.Errorf("Rate %v: a new bucket holds %v tokens, want %d", tc.rate, got, tc.burst)
			}
			n := 0
			for ; n <= tc.burst; n++ {
				if _, err := resilience.Do(context.Background(), l, ok); err != nil {
					break
				}
			}
			if n != tc.burst {
				t.Errorf("Rate %v: %d calls at once, want %d", tc.rate, n, tc.burst)
			}
		})
	}
}

// TestRateLimiterWaits: with MaxWait, a call that finds no token waits
// for the next one, exactly as long as it takes; one that would wait
// longer than MaxWait is rejected at once.
func TestRateLimiterWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "w", Rate: 10, Burst: 1, MaxWait: 250 * time.Millisecond}))
		start := time.Now()
		var (
			mu      sync.Mutex
			started []time.Duration
			errs    []error
			wg      sync.WaitGroup
		)
		for range 5 {
			wg.Go(func() {
				_, err := resilience.Do(ctx, l, func(context.Context) (int, error) {
					mu.Lock()
					started = append(started, time.Since(start))
					mu.Unlock()
					return 1, nil
				})
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
			synctest.Wait() // each call reserves in turn
		}
		// The first runs at once, the next two wait 100ms and 200ms; the
		// last two would wait 300ms and more, and are rejected at once.
		if len(errs) != 2 {
			t.Fatalf("%d calls rejected at once, want 2: %v", len(errs), errs)
		}
		for _, err := range errs {
			var rl *resilience.RateLimitedError
			if !errors.As(err, &rl) || rl.Delay != 300*time.Millisecond {
				t.Errorf("rejection %v, want one saying the wait would be 300ms", err)
			}
		}
		wg.Wait()
		want := []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}
		if len(started) != len(want) || started[0] != want[0] || started[1] != want[1] || started[2] != want[2] {
			t.Errorf("calls started at %v, want %v", started, want)
		}
		if a, w, r, _ := limiterStats(t, l); a != 1 || w != 2 || r != 2 {
			t.Errorf("Stats: %d admitted, %d waited, %d rejected; want 1, 2, 2", a, w, r)
		}
		// The rejected calls gave their reservations back: the bucket fills
		// on from the 200ms token.
		time.Sleep(100 * time.Millisecond)
		if before := time.Now(); func() error { _, err := resilience.Do(ctx, l, ok); return err }() != nil || time.Since(before) != 0 {
			t.Error("a token was not free 100ms after the last waiting call")
		}
	})
}

// TestRateLimiterDeadline: a call that would have to wait until its
// context's deadline, or past it, is rejected at once and takes no token;
// one whose wait ends before the deadline waits.
func TestRateLimiterDeadline(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline time.Duration
		waits    bool
	}{
		{"before the token", 50 * time.Millisecond, false},
		{"at the token", 100 * time.Millisecond, false},
		{"after the token", 150 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "d", Rate: 10, Burst: 1, MaxWait: time.Second}))
				resilience.Do(context.Background(), l, ok) // the bucket's token
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				defer cancel()
				start := time.Now()
				ran := false
				_, err := resilience.Do(ctx, l, func(context.Context) (int, error) { ran = true; return 1, nil })
				took := time.Since(start)
				if !tc.waits {
					if !errors.Is(err, resilience.ErrRateLimited) || ran || took != 0 {
						t.Fatalf("err %v, ran %v, after %v; want a rejection at once, not run", err, ran, took)
					}
					// The reservation was cancelled: the token at 100ms is free.
					time.Sleep(100 * time.Millisecond)
					if tokens := l.Tokens(); math.Abs(tokens-1) > 1e-9 {
						t.Errorf("%v tokens at 100ms, want 1: the rejected call kept its reservation", tokens)
					}
					return
				}
				if err != nil || !ran || took != 100*time.Millisecond {
					t.Errorf("err %v, ran %v, after %v; want the call run after 100ms", err, ran, took)
				}
			})
		})
	}
}

// TestRateLimiterCancelWhileWaiting: a caller whose context ends while it
// waits gets the context's error at once, the call does not run, and its
// token goes back to the bucket. A call whose context has already ended
// takes no token.
func TestRateLimiterCancelWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "c", Rate: 10, Burst: 1, MaxWait: time.Second}))
		resilience.Do(context.Background(), l, ok)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		ran := false
		start := time.Now()
		go func() {
			_, err := resilience.Do(ctx, l, func(context.Context) (int, error) { ran = true; return 1, nil })
			done <- err
		}()
		synctest.Wait()
		if tokens := l.Tokens(); math.Abs(tokens+1) > 1e-9 {
			t.Errorf("%v tokens while a call waits for the next, want -1", tokens)
		}
		time.Sleep(50 * time.Millisecond)
		cancel()
		if err := <-done; err != context.Canceled || ran || time.Since(start) != 50*time.Millisecond {
			t.Errorf("err %v, ran %v, after %v; want context.Canceled at 50ms, not run", err, ran, time.Since(start))
		}
		if tokens := l.Tokens(); math.Abs(tokens-0.5) > 1e-9 {
			t.Errorf("%v tokens at 50ms, want 0.5: the token was not given back", tokens)
		}
		time.Sleep(50 * time.Millisecond)
		if before := time.Now(); func() error { _, err := resilience.Do(context.Background(), l, ok); return err }() != nil || time.Since(before) != 0 {
			t.Error("the token at 100ms was not free: the cancelled call kept it")
		}

		// An ended context: no token taken, the call not run.
		time.Sleep(100 * time.Millisecond)
		ran = false
		if _, err := resilience.Do(ctx, l, func(context.Context) (int, error) { ran = true; return 1, nil }); err != context.Canceled || ran {
			t.Errorf("ended context: err %v, ran %v; want context.Canceled, not run", err, ran)
		}
		if tokens := l.Tokens(); math.Abs(tokens-1) > 1e-9 {
			t.Errorf("%v tokens after a call with an ended context, want 1", tokens)
		}
		if a, w, r, _ := limiterStats(t, l); a != 2 || w != 0 || r != 0 {
			t.Errorf("Stats: %d admitted, %d waited, %d rejected; want 2, 0, 0", a, w, r)
		}
	})
}

// TestRateLimiterNotRetried: a Retry around the limiter does not retry its
// rejection.
func TestRateLimiterNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "r", Rate: 1, Burst: 1}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: 100 * time.Millisecond}))
		p := resilience.For[int](retry, l)
		runs := 0
		start := time.Now()
		_, err := p.Do(context.Background(), func(context.Context) (int, error) { runs++; return 0, errBoom })
		// The first attempt takes the token and fails; the retry 100ms
		// later finds none, and is the last.
		if !errors.Is(err, resilience.ErrRateLimited) || runs != 1 || time.Since(start) != 100*time.Millisecond {
			t.Errorf("err %v after %d runs and %v; want the rejection, after 1 run and 100ms", err, runs, time.Since(start))
		}
	})
}

// TestRateLimiterConfigErrors: each invalid field is reported by name,
// all of them at once.
func TestRateLimiterConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   resilience.RateLimitConfig
		field string
	}{
		{"no rate", resilience.RateLimitConfig{}, "RateLimitConfig.Rate"},
		{"negative rate", resilience.RateLimitConfig{Rate: -1}, "RateLimitConfig.Rate"},
		{"NaN rate", resilience.RateLimitConfig{Rate: math.NaN()}, "RateLimitConfig.Rate"},
		{"infinite rate", resilience.RateLimitConfig{Rate: math.Inf(1)}, "RateLimitConfig.Rate"},
		{"negative burst", resilience.RateLimitConfig{Rate: 1, Burst: -1}, "RateLimitConfig.Burst"},
		{"negative wait", resilience.RateLimitConfig{Rate: 1, MaxWait: -time.Second}, "RateLimitConfig.MaxWait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resilience.NewRateLimiter(tc.cfg)
			var ce *resilience.ConfigError
			if !errors.Is(err, resilience.ErrInvalidConfig) || !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v, want a *ConfigError for %s", err, tc.field)
			}
			if !strings.HasPrefix(err.Error(), "resilience: ") || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
	_, err := resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: math.NaN(), Burst: -1, MaxWait: -1})
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		fields = append(fields, e.(*resilience.ConfigError).Field)
	}
	if want := "RateLimitConfig.Rate RateLimitConfig.Burst RateLimitConfig.MaxWait"; strings.Join(fields, " ") != want {
		t.Errorf("fields reported: %v, want %s", fields, want)
	}
	for _, cfg := range []resilience.RateLimitConfig{{Rate: 1e-9}, {Rate: 1e300}, {Rate: 1, Burst: 1}, {Rate: 1, MaxWait: time.Nanosecond}} {
		if _, err := resilience.NewRateLimiter(cfg); err != nil {
			t.Errorf("NewRateLimiter(%+v): %v", cfg, err)
		}
	}
}

// TestRateLimiterAllocatesNothing: a call that finds a token allocates
// nothing.
func TestRateLimiterAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "a", Rate: 1e12, MaxWait: time.Second}))
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, l, noop) }); n != 0 {
		t.Errorf("Do: %v allocations per call, want 0", n)
	}
	if p := resilience.For[int](l); testing.AllocsPerRun(1000, func() { p.Do(ctx, noop) }) != 0 {
		t.Error("For: allocations per call, want 0")
	}
}

// TestRateLimiterNil: a nil call, a nil or zero limiter are errors, not
// panics.
func TestRateLimiterNil(t *testing.T) {
	ctx := context.Background()
	l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "n", Rate: 100}))
	if _, err := resilience.Do[int](ctx, l, nil); err == nil {
		t.Error("Do with a nil func: no error")
	}
	if err := l.Run(ctx, nil); err == nil {
		t.Error("Run with a nil call: no error")
	}
	if err := l.Run(ctx, func(context.Context) error { return nil }); err != nil {
		t.Errorf("Run: %v", err)
	}
	var nilLimiter *resilience.RateLimiter
	if _, err := resilience.Do(ctx, nilLimiter, ok); err == nil {
		t.Error("Do with a nil *RateLimiter: no error")
	}
	zero := &resilience.RateLimiter{}
	ran := false
	if _, err := resilience.Do(ctx, zero, func(context.Context) (int, error) { ran = true; return 1, nil }); !errors.Is(err, resilience.ErrInvalidConfig) || ran {
		t.Errorf("zero RateLimiter: err %v, ran %v; want ErrInvalidConfig, not run", err, ran)
	}
	if a, w, r, tokens := limiterStats(t, zero); a+w+r != 0 || tokens != 0 {
		t.Errorf("zero RateLimiter's Stats: %d, %d, %d, %v tokens", a, w, r, tokens)
	}
	if l.Kind() != resilience.KindRateLimit || l.Kind() != "rate_limit" || l.Name() != "n" {
		t.Errorf("Kind %q, Name %q", l.Kind(), l.Name())
	}
	var _ resilience.Observable = l
}

// BenchmarkRateLimiter: a call that finds a token. Goal: within 1.1x of
// BenchmarkXTimeRateAllow, and no allocation.
func BenchmarkRateLimiter(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		return resilience.For[int](must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "b", Rate: 1e12})))
	})
}

// BenchmarkXTimeRateAllow: the bare golang.org/x/time/rate limiter, with
// the same bucket, around the same no-op call, as a caller would write it
// by hand: the cost the RateLimiter is measured against.
func BenchmarkXTimeRateAllow(b *testing.B) {
	ctx := context.Background()
	newLimiter := func() *rate.Limiter { return rate.NewLimiter(1e12, math.MaxInt32) }
	b.Run("goroutines=1", func(b *testing.B) {
		lim := newLimiter()
		b.ReportAllocs()
		for b.Loop() {
			if lim.Allow() {
				noop(ctx)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		lim := newLimiter()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if lim.Allow() {
					noop(ctx)
				}
			}
		})
	})
}
