package resilience_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// A held call's contexts stay open after it returns, their deadlines
// still running, until release.
func TestHoldKeepsTheContextsOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		total := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "total", Duration: 10 * time.Second}))
		attempt := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "attempt", Duration: 3 * time.Second}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Second}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{total, retry, attempt}}))

		held, release := resilience.Hold(context.Background(), g)
		var ctxs []context.Context
		calls := 0
		got, err := resilience.Do(held, g, func(ctx context.Context) (context.Context, error) {
			ctxs = append(ctxs, ctx)
			if calls++; calls == 1 {
				return nil, errors.New("first attempt fails")
			}
			return ctx, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ctxs[0].Err() != nil {
			t.Error("the failed attempt's context ended before release")
		}
		if got.Err() != nil {
			t.Fatalf("the successful attempt's context ended on return: %v", got.Err())
		}
		// The attempt, begun after the 1s backoff, has its 3s limit still running.
		time.Sleep(3*time.Second - time.Nanosecond)
		synctest.Wait()
		if got.Err() != nil {
			t.Fatalf("ended %v before the attempt's deadline", time.Nanosecond)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !errors.Is(got.Err(), context.DeadlineExceeded) {
			t.Fatalf("at the attempt's deadline, Err() = %v, want DeadlineExceeded", got.Err())
		}

		// Release ends what is held, at once.
		held, release2 := resilience.Hold(context.Background(), g)
		got, _ = resilience.Do(held, g, func(ctx context.Context) (context.Context, error) { return ctx, nil })
		if got.Err() != nil {
			t.Fatal("ended before release")
		}
		release2()
		if !errors.Is(got.Err(), context.Canceled) {
			t.Fatalf("after release, Err() = %v, want Canceled", got.Err())
		}
		release2() // twice is fine
		release()

		// So does a call that failed, until release.
		held, release3 := resilience.Hold(context.Background(), total)
		var failed context.Context
		resilience.Do(held, total, func(ctx context.Context) (int, error) {
			failed = ctx
			return 0, errors.New("fails")
		})
		if failed.Err() != nil {
			t.Fatal("a failed call's context ended before release")
		}
		release3()
		if !errors.Is(failed.Err(), context.Canceled) {
			t.Fatalf("after release, the failed call's Err() = %v, want Canceled", failed.Err())
		}
	})
}

// Without Hold, a Timeout ends the call's context when it returns.
func TestWithoutHoldTheContextEndsOnReturn(t *testing.T) {
	tm := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Hour}))
	got, err := resilience.Do(context.Background(), tm, func(ctx context.Context) (context.Context, error) { return ctx, nil })
	if err != nil || got.Err() == nil {
		t.Fatalf("err %v, ctx.Err() %v: want the context ended on return", err, got.Err())
	}
	// A call made after release is not held.
	held, release := resilience.Hold(context.Background(), tm)
	release()
	got, _ = resilience.Do(held, tm, func(ctx context.Context) (context.Context, error) { return ctx, nil })
	if got.Err() == nil {
		t.Fatal("a call made after release kept its context open")
	}
}

// Hold holds only the stages it was given: a Timeout of another chain,
// run inside the held call on its context, ends its context on return, as
// does WithTimeout. (Their limits are shorter than the held one's, or
// they would run under its deadline and make no context of their own.)
func TestHoldHoldsOnlyItsStages(t *testing.T) {
	outer := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "outer", Duration: time.Hour}))
	inner := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "inner", Duration: time.Minute}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{outer}}))
	held, release := resilience.Hold(context.Background(), g)
	defer release()
	var innerCtx, helperCtx context.Context
	got, err := resilience.Do(held, g, func(ctx context.Context) (context.Context, error) {
		resilience.Do(ctx, inner, func(ctx context.Context) (int, error) { innerCtx = ctx; return 0, nil })
		resilience.WithTimeout(ctx, time.Minute, func(ctx context.Context) error { helperCtx = ctx; return nil })
		return ctx, nil
	})
	if err != nil || got.Err() != nil {
		t.Fatalf("err %v, the held stage's ctx.Err() %v: want it open", err, got.Err())
	}
	if innerCtx.Err() == nil || helperCtx.Err() == nil {
		t.Errorf("inner chain's ctx.Err() %v, WithTimeout's %v: want both ended on return", innerCtx.Err(), helperCtx.Err())
	}
	// Held for another stage, the guard's Timeout ends as usual.
	held2, release2 := resilience.Hold(context.Background(), inner)
	defer release2()
	got, _ = resilience.Do(held2, g, func(ctx context.Context) (context.Context, error) { return ctx, nil })
	if got.Err() == nil {
		t.Error("a Timeout the hold was not given kept its context open")
	}
}

// AtMostOnce stops a retry from repeating the call, whatever failed,
// the per-attempt time limit included; the breaker still counts it.
func TestAtMostOnceIsNeverRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 100}))
		failures := 0
		breaker.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
			if r == resilience.CallFailed {
				failures++
			}
		}})
		attempt := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry, breaker, attempt}}))
		for _, tc := range []struct {
			name string
			call func(ctx context.Context) (int, error)
		}{
			{"failure", func(context.Context) (int, error) { return 0, errors.New("boom") }},
			{"hung attempt", waitForCtx},
		} {
			calls := 0
			_, err := resilience.Do(resilience.AtMostOnce(context.Background()), g, func(ctx context.Context) (int, error) {
				calls++
				return tc.call(ctx)
			})
			if err == nil || calls != 1 {
				t.Errorf("%s: %d calls, err %v; want 1 call and its error", tc.name, calls, err)
			}
			// Without the mark, the same guard retries.
			calls = 0
			resilience.Do(context.Background(), g, func(ctx context.Context) (int, error) {
				calls++
				return tc.call(ctx)
			})
			if calls != 4 {
				t.Errorf("%s without AtMostOnce: %d calls, want 4", tc.name, calls)
			}
		}
		if got := failures; got != 10 {
			t.Errorf("breaker counted %d failures, want 10 (1+4, twice)", got)
		}
	})
	if resilience.IsAtMostOnce(context.Background()) || !resilience.IsAtMostOnce(context.WithValue(resilience.AtMostOnce(context.Background()), otherKey{}, 1)) {
		t.Error("IsAtMostOnce does not follow the context")
	}
}

type otherKey struct{}
