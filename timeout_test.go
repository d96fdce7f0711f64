package resilience_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// waitForCtx is a call that honours its context and never finishes on its
// own.
func waitForCtx(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func newTimeout(d time.Duration, abandon bool) resilience.Policy[int] {
	return resilience.For[int](must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "t", Duration: d, Abandon: abandon})))
}

func TestTimeoutCutsTheCallShort(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(mode(abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				_, err := newTimeout(2*time.Second, abandon).Do(context.Background(), waitForCtx)
				if got := time.Since(start); got != 2*time.Second {
					t.Errorf("returned after %v, want 2s exactly", got)
				}
				var te *resilience.TimeoutError
				if !errors.As(err, &te) || te.Limit != 2*time.Second || te.Name != "t" {
					t.Fatalf("error %#v, want a *TimeoutError for 2s named t", err)
				}
				if !errors.Is(err, resilience.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v must match both ErrTimeout and context.DeadlineExceeded", err)
				}
				if !te.Timeout() {
					t.Error("Timeout() = false")
				}
			})
		})
	}
}

func TestTimeoutShorterCallerDeadlineWins(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(mode(abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				start := time.Now()
				_, err := newTimeout(time.Minute, abandon).Do(ctx, waitForCtx)
				if got := time.Since(start); got != time.Second {
					t.Errorf("returned after %v, want 1s: the caller's deadline", got)
				}
				if err != context.DeadlineExceeded {
					t.Errorf("error %#v, want the caller's own context.DeadlineExceeded, unchanged", err)
				}
			})
		})
	}
}

func TestTimeoutCallerCancellationComesBackUnchanged(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(mode(abandon), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(time.Second, cancel)
				_, err := newTimeout(time.Minute, abandon).Do(ctx, waitForCtx)
				if err != context.Canceled {
					t.Errorf("error %#v, want context.Canceled, unchanged", err)
				}
			})
		})
	}
}

// A client that sets its socket's deadline from the context's fails at
// the deadline on its own, perhaps before the context's timer fires: that
// is the time limit at work, and reported as such; while the caller's own
// deadline, reached the same way, comes back unchanged.
func TestTimeoutFailureAtTheDeadlineIsATimeout(t *testing.T) {
	errIO := errors.New("read tcp: i/o timeout")
	atDeadline := func(ctx context.Context) (int, error) {
		d, _ := ctx.Deadline()
		time.Sleep(time.Until(d))
		return 0, errIO
	}
	synctest.Test(t, func(t *testing.T) {
		for range 20 {
			_, err := newTimeout(time.Second, false).Do(context.Background(), atDeadline)
			var te *resilience.TimeoutError
			if !errors.As(err, &te) || te.Err != errIO {
				t.Fatalf("error %#v, want a *TimeoutError wrapping the call's error", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := newTimeout(time.Minute, false).Do(ctx, atDeadline); err != errIO {
			t.Errorf("at the caller's own deadline: error %#v, want the call's error unchanged", err)
		}
	})
}

func TestTimeoutLateSuccessIsASuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A cooperative timeout cannot stop a call that ignores ctx; if it
		// succeeds, late, its result stands.
		v, err := newTimeout(time.Second, false).Do(context.Background(), func(context.Context) (int, error) {
			time.Sleep(3 * time.Second)
			return 7, nil
		})
		if v != 7 || err != nil {
			t.Errorf("Do = %v, %v; want 7, nil", v, err)
		}
	})
}

func TestTimeoutFastCallPassesThrough(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(mode(abandon), func(t *testing.T) {
			v, err := newTimeout(time.Minute, abandon).Do(context.Background(), ok)
			if v != 1 || err != nil {
				t.Errorf("Do = %v, %v; want 1, nil", v, err)
			}
			_, err = newTimeout(time.Minute, abandon).Do(context.Background(), fail)
			if err != errBoom {
				t.Errorf("Do = %v; want the call's error unchanged", err)
			}
		})
	}
}

// TestTimeoutAbandonReturnsAtTheDeadline: a call that ignores its context
// is left behind at the deadline, finishes on its own goroutine, and
// leaves nothing running once it has.
func TestTimeoutAbandonReturnsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		finished := make(chan struct{})
		start := time.Now()
		_, err := newTimeout(time.Second, true).Do(context.Background(), func(context.Context) (int, error) {
			defer close(finished)
			time.Sleep(time.Hour) // ignores its context
			return 1, nil
		})
		if got := time.Since(start); got != time.Second {
			t.Errorf("returned after %v, want 1s", got)
		}
		var te *resilience.TimeoutError
		if !errors.As(err, &te) || te.Err != nil {
			t.Errorf("error %#v, want a *TimeoutError with no call error", err)
		}
		<-finished
		// synctest.Test itself fails if any goroutine of the bubble is
		// still running when the function returns.
	})
}

func TestTimeoutAbandonHandsBackAPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		defer func() {
			if r := recover(); r != "call panicked" {
				t.Errorf("recovered %v, want the call's panic", r)
			}
		}()
		newTimeout(time.Second, true).Do(context.Background(), func(context.Context) (int, error) {
			panic("call panicked")
		})
	})
}

func TestTimeoutAbandonGoexit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, err := newTimeout(time.Second, true).Do(context.Background(), func(context.Context) (int, error) {
			runtimeGoexit()
			return 0, nil
		})
		if err == nil || errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("error %v, want the Goexit error, at once", err)
		}
	})
}

func TestWithTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		err := resilience.WithTimeout(context.Background(), 10*time.Second, func(ctx context.Context) error {
			<-ctx.Done()
			return ctx.Err()
		})
		if !errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("WithTimeout: %v, want a timeout", err)
		}
		v, err := resilience.WithTimeoutResult(context.Background(), 10*time.Second, func(ctx context.Context) (string, error) {
			return "done", nil
		})
		if v != "done" || err != nil {
			t.Errorf("WithTimeoutResult = %q, %v; want done, nil", v, err)
		}
		for _, d := range []time.Duration{0, -time.Second} {
			called := false
			err := resilience.WithTimeout(context.Background(), d, func(context.Context) error { called = true; return nil })
			if !errors.Is(err, resilience.ErrInvalidConfig) || called {
				t.Errorf("WithTimeout(%v): %v, called %v; want a config error without calling", d, err, called)
			}
		}
		if err := resilience.WithTimeout(context.Background(), time.Second, nil); err == nil {
			t.Error("WithTimeout with a nil func: no error")
		}
	})
}

// TestTimeoutLeavesNoGoroutines runs both modes for real (no bubble) and
// checks that no goroutine is left once the calls have returned.
func TestTimeoutLeavesNoGoroutines(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		p := newTimeout(time.Millisecond, abandon)
		for range 50 {
			p.Do(context.Background(), waitForCtx)
			p.Do(context.Background(), ok)
		}
	}
	testcheck.VerifyNone(t)
}

func mode(abandon bool) string {
	if abandon {
		return "abandon"
	}
	return "cooperative"
}

// A call that panics has its context ended before the panic goes on up,
// so that its timer and its place in the parent context go with it.
func TestTimeoutPanicEndsTheContext(t *testing.T) {
	var got context.Context
	func() {
		defer func() { recover() }()
		newTimeout(time.Hour, false).Do(context.Background(), func(ctx context.Context) (int, error) {
			got = ctx
			panic("boom")
		})
	}()
	if got == nil || got.Err() == nil {
		t.Fatal("the panicking call's context is still open")
	}
}

// Under a caller's deadline sooner than its own, a Timeout builds no timer
// and allocates nothing, and reports what it would have: the caller's
// error, unchanged, and a canceled call to its observer.
func TestTimeoutUnderASoonerDeadline(t *testing.T) {
	tm := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "t", Duration: time.Hour}))
	var results []resilience.TimeoutResult
	tm.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) { results = append(results, r) }})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if n := testing.AllocsPerRun(100, func() { resilience.Do(ctx, tm, ok) }); n != 0 {
		t.Errorf("a call under a sooner deadline allocates %v times, want 0", n)
	}
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		results = nil
		start := time.Now()
		_, err := resilience.Do(ctx, tm, waitForCtx)
		var te *resilience.TimeoutError
		if err != context.DeadlineExceeded || errors.As(err, &te) || time.Since(start) != time.Second {
			t.Errorf("err %v after %v; want the caller's context.DeadlineExceeded, unchanged, at its 1s", err, time.Since(start))
		}
		if len(results) != 1 || results[0] != resilience.TimeoutCanceled {
			t.Errorf("observer saw %v, want [canceled]", results)
		}
	})
}
