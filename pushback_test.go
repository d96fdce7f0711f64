package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// pushBack returns a call that fails with a dependency's hint of d, and
// counts its runs in *calls.
func pushBack(calls *int, d time.Duration) resilience.Func[int] {
	return func(context.Context) (int, error) {
		*calls++
		return 0, resilience.RetryAfter(errBoom, d)
	}
}

// pushbackStats returns what p's Stats reports, checking its shape.
func pushbackStats(t *testing.T, p *resilience.Pushback) (passed, waited, rejected uint64, seconds float64) {
	t.Helper()
	st := p.Stats()
	if len(st.Calls) != 3 || st.Calls[0].Result != "passed" || st.Calls[1].Result != "waited" || st.Calls[2].Result != "rejected" ||
		len(st.Gauges) != 1 || st.Gauges[0].Name != "pushed_back_seconds" ||
		st.Gauges[0].Help != "Seconds left of the period a dependency's pushback set; 0 when none." {
		t.Fatalf("Stats = %+v, want passed, waited and rejected calls, and the pushed_back_seconds gauge with its help line", st)
	}
	return st.Calls[0].N, st.Calls[1].N, st.Calls[2].N, st.Gauges[0].Value
}

// TestPushbackHintHoldsEveryCall: a hint sets a period for every call
// through the stage, whatever its result type, not only for the call it
// came with; calls during it are refused at once with a *PushbackError
// that says until when, and do not run; at its end, calls run again.
func TestPushbackHintHoldsEveryCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "api"}))
		if !p.Until().IsZero() {
			t.Fatalf("a new Pushback has a period until %v", p.Until())
		}
		calls := 0
		start := time.Now()
		_, err := resilience.Do(ctx, p, pushBack(&calls, 2*time.Second))
		if calls != 1 || !errors.Is(err, errBoom) || errors.Is(err, resilience.ErrRejected) {
			t.Fatalf("the hinting call: %d calls, err %v; want it run and its error passed on", calls, err)
		}
		until := start.Add(2 * time.Second)
		if !p.Until().Equal(until) {
			t.Fatalf("Until() = %v, want %v", p.Until(), until)
		}

		for i, d := range []time.Duration{0, time.Second, 2*time.Second - 1} {
			time.Sleep(d - time.Since(start))
			ran := false
			_, err := resilience.Do(ctx, p, func(context.Context) (string, error) { ran = true; return "x", nil })
			var pe *resilience.PushbackError
			if ran || !errors.As(err, &pe) || !errors.Is(err, resilience.ErrPushback) || !errors.Is(err, resilience.ErrRejected) {
				t.Fatalf("call %d, %v in: ran %v, err %v; want a *PushbackError matching ErrPushback and ErrRejected, not run", i, d, ran, err)
			}
			if pe.Name != "api" || !pe.Until.Equal(until) || pe.RetryAfter() != 2*time.Second-d {
				t.Errorf("call %d: PushbackError %+v, RetryAfter %v; want api until %v, %v from now", i, pe, pe.RetryAfter(), until, 2*time.Second-d)
			}
			want := fmt.Sprintf("resilience: pushback %q: the dependency asked for no calls until %s", "api", until.Format("2006-01-02T15:04:05.000Z07:00"))
			if err.Error() != want {
				t.Errorf("call %d: message %q, want %q", i, err.Error(), want)
			}
		}
		time.Sleep(time.Nanosecond) // the period's end
		if v, err := resilience.Do(ctx, p, func(context.Context) (string, error) { return "x", nil }); v != "x" || err != nil {
			t.Fatalf("at the period's end: %q, %v; want the call run", v, err)
		}
		if !p.Until().IsZero() {
			t.Errorf("after the period: Until() = %v, want zero", p.Until())
		}
		if passed, waited, rejected, secs := pushbackStats(t, p); passed != 2 || waited != 0 || rejected != 3 || secs != 0 {
			t.Errorf("Stats: %d passed, %d waited, %d rejected, %v s left; want 2, 0, 3, 0", passed, waited, rejected, secs)
		}
	})
}

// TestPushbackWaits: with MaxWait, a call that arrives during a period
// waits for its end, exactly, and runs, if the end is at most MaxWait away
// and before its context's deadline; otherwise it is refused at once.
func TestPushbackWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "w", MaxWait: time.Second}))
		calls := 0
		resilience.Do(ctx, p, pushBack(&calls, 500*time.Millisecond))
		start := time.Now()
		until := p.Until()

		// A deadline at the period's end leaves the call no time: refused
		// at once; one a nanosecond later, it waits.
		at, cancel := context.WithDeadline(ctx, until)
		_, err := resilience.Do(at, p, ok)
		cancel()
		var pe *resilience.PushbackError
		if !errors.As(err, &pe) || !pe.Until.Equal(until) || time.Since(start) != 0 {
			t.Fatalf("deadline at the period's end: err %v after %v; want a PushbackError at once", err, time.Since(start))
		}
		after, cancel := context.WithDeadline(ctx, until.Add(time.Nanosecond))
		defer cancel()
		v, err := resilience.Do(after, p, func(context.Context) (int, error) {
			if !time.Now().Equal(until) {
				t.Errorf("the call ran at %v, want the period's end %v", time.Now(), until)
			}
			return 7, nil
		})
		if v != 7 || err != nil || time.Since(start) != 500*time.Millisecond {
			t.Fatalf("deadline past the period's end: %v, %v after %v; want 7, nil after 500ms", v, err, time.Since(start))
		}

		// A period longer than MaxWait: refused at once; one of MaxWait
		// exactly: waited for.
		resilience.Do(ctx, p, pushBack(&calls, time.Second+1))
		start = time.Now()
		if _, err := resilience.Do(ctx, p, ok); !errors.Is(err, resilience.ErrPushback) || time.Since(start) != 0 {
			t.Fatalf("a period 1s+1ns long, MaxWait 1s: err %v after %v; want a refusal at once", err, time.Since(start))
		}
		time.Sleep(time.Nanosecond) // 1s left
		start = time.Now()
		if v, err := resilience.Do(ctx, p, ok); v != 1 || err != nil || time.Since(start) != time.Second {
			t.Fatalf("1s left, MaxWait 1s: %v, %v after %v; want the call run after 1s", v, err, time.Since(start))
		}
		if passed, waited, rejected, _ := pushbackStats(t, p); passed != 4 || waited != 2 || rejected != 2 {
			t.Errorf("Stats: %d passed, %d waited, %d rejected; want 4, 2, 2", passed, waited, rejected)
		}
	})
}

// inFlight starts a call through p that runs until the returned func is
// called with a hint, and then fails with it: a call let through before a
// period that returns during it. The func returns once the call has.
func inFlight(p *resilience.Pushback) func(hint time.Duration) {
	release := make(chan time.Duration)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resilience.Do(context.Background(), p, func(context.Context) (int, error) {
			return 0, resilience.RetryAfter(errBoom, <-release)
		})
	}()
	synctest.Wait() // it is in the call
	return func(hint time.Duration) {
		release <- hint
		<-done
	}
}

// TestPushbackWaitLengthened: a hint that lengthens the period while a
// call waits keeps it waiting, within MaxWait of its arrival; past that,
// the call is refused when the period it was waiting for ends.
func TestPushbackWaitLengthened(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "l", MaxWait: 3 * time.Second}))
		for _, tc := range []struct {
			name    string
			longer  time.Duration // the hint that comes 500ms in
			refused bool
			after   time.Duration
		}{
			{"lengthened within MaxWait: waits on", 2500 * time.Millisecond, false, 3 * time.Second},
			{"lengthened past MaxWait: refused at the first end", 2500*time.Millisecond + 1, true, time.Second},
		} {
			time.Sleep(time.Minute) // past any earlier period
			release := inFlight(p)
			calls := 0
			resilience.Do(ctx, p, pushBack(&calls, time.Second))
			start := time.Now()
			var (
				err  error
				took time.Duration
				ran  bool
				wg   sync.WaitGroup
			)
			wg.Go(func() {
				_, err = resilience.Do(ctx, p, func(context.Context) (int, error) { ran = true; return 1, nil })
				took = time.Since(start)
			})
			synctest.Wait()
			time.Sleep(500 * time.Millisecond)
			release(tc.longer)
			if want := start.Add(500*time.Millisecond + tc.longer); !p.Until().Equal(want) {
				t.Fatalf("%s: Until() = %v, want %v", tc.name, p.Until(), want)
			}
			wg.Wait()
			var pe *resilience.PushbackError
			switch {
			case tc.refused && (ran || !errors.As(err, &pe) || !pe.Until.Equal(p.Until())):
				t.Errorf("%s: ran %v, err %v; want a refusal until %v", tc.name, ran, err, p.Until())
			case !tc.refused && (!ran || err != nil):
				t.Errorf("%s: ran %v, err %v; want the call run", tc.name, ran, err)
			}
			if took != tc.after {
				t.Errorf("%s: returned after %v, want %v", tc.name, took, tc.after)
			}
		}
	})
}

// TestPushbackPeriodOnlyGrows: a hint that ends sooner than the period in
// force leaves it alone; one that ends later lengthens it.
func TestPushbackPeriodOnlyGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "g"}))
		start := time.Now()
		sooner, later := inFlight(p), inFlight(p)
		calls := 0
		resilience.Do(context.Background(), p, pushBack(&calls, 10*time.Second))
		time.Sleep(time.Second)
		sooner(2 * time.Second) // ends at 3s
		if want := start.Add(10 * time.Second); !p.Until().Equal(want) {
			t.Errorf("after a hint ending sooner: Until() = %v, want %v still", p.Until(), want)
		}
		later(20 * time.Second) // ends at 21s
		if want := start.Add(21 * time.Second); !p.Until().Equal(want) {
			t.Errorf("after a hint ending later: Until() = %v, want %v", p.Until(), want)
		}
	})
}

// TestPushbackConcurrentHints: of many hints at once, the period ends at
// the latest; calls racing the hints never see it shrink.
func TestPushbackConcurrentHints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "c"}))
		start := time.Now()
		const n = 100
		releases := make([]func(time.Duration), n)
		for i := range releases {
			releases[i] = inFlight(p)
		}
		var wg sync.WaitGroup
		for i, release := range releases {
			wg.Go(func() { release(time.Duration(i+1) * time.Millisecond) })
			wg.Go(func() {
				if u := p.Until(); !u.IsZero() && u.Before(start.Add(time.Millisecond)) {
					t.Errorf("Until() = %v, before the shortest hint's end", u)
				}
			})
		}
		wg.Wait()
		if want := start.Add(n * time.Millisecond); !p.Until().Equal(want) {
			t.Errorf("Until() = %v, want the latest hint's end %v", p.Until(), want)
		}
	})
}

// TestPushbackMaxPeriod: a hint longer than MaxPeriod sets a period of
// MaxPeriod; by default, a minute.
func TestPushbackMaxPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			maxPeriod, hint, want time.Duration
		}{
			{0, 86400 * time.Second, resilience.DefaultPushbackMaxPeriod},
			{0, time.Minute, time.Minute},
			{0, 59 * time.Second, 59 * time.Second},
			{5 * time.Second, 24 * time.Hour, 5 * time.Second},
			{time.Millisecond, time.Second, time.Millisecond},
			{24 * time.Hour, 1<<63 - 1, 24 * time.Hour},
		} {
			p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "m", MaxPeriod: tc.maxPeriod}))
			calls := 0
			resilience.Do(context.Background(), p, pushBack(&calls, tc.hint))
			if want := time.Now().Add(tc.want); !p.Until().Equal(want) {
				t.Errorf("MaxPeriod %v, hint %v: Until() = %v, want %v", tc.maxPeriod, tc.hint, p.Until(), want)
			}
			if _, _, _, secs := pushbackStats(t, p); secs != tc.want.Seconds() {
				t.Errorf("MaxPeriod %v, hint %v: %v seconds left, want %v", tc.maxPeriod, tc.hint, secs, tc.want.Seconds())
			}
		}
		if resilience.DefaultPushbackMaxPeriod != time.Minute {
			t.Errorf("DefaultPushbackMaxPeriod = %v, want 1m", resilience.DefaultPushbackMaxPeriod)
		}
	})
}

// hinted is an error with a RetryAfter method of its own, as a client's
// error may have.
type hinted struct{ d time.Duration }

func (h hinted) Error() string             { return "hinted" }
func (h hinted) RetryAfter() time.Duration { return h.d }

// TestPushbackHintsThatSetNothing: a refusal by a stage, though it has a
// RetryAfter (an open breaker's next probe, a rate limiter's next token),
// is that stage's, not the dependency's, and sets no period; nor does a
// hint of 0 or less, nor an error with no hint, nor success. A hint
// wrapped, marked or of an error's own method does.
func TestPushbackHintsThatSetNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "n"}))
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "n", FailureThreshold: 1, OpenTimeout: time.Minute}))
		limiter := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "n", Rate: 1, Burst: 1}))
		chain := resilience.For[int](p, breaker)
		chain.Do(ctx, fail) // opens the breaker
		_, err := chain.Do(ctx, ok)
		var oe *resilience.OpenError
		if !errors.As(err, &oe) || oe.RetryAfter() != time.Minute {
			t.Fatalf("err %v, want the open breaker's OpenError, a minute to its probe", err)
		}
		if u := p.Until(); !u.IsZero() {
			t.Errorf("an open breaker's refusal set a period until %v", u)
		}
		limited := resilience.For[int](p, limiter)
		limited.Do(ctx, ok)
		if _, err := limited.Do(ctx, ok); !errors.Is(err, resilience.ErrRateLimited) {
			t.Fatalf("err %v, want a rate limiter's refusal", err)
		}
		if u := p.Until(); !u.IsZero() {
			t.Errorf("a rate limiter's refusal set a period until %v", u)
		}
		for _, err := range []error{
			nil,
			errBoom,
			resilience.RetryAfter(errBoom, 0),
			resilience.RetryAfter(errBoom, -1),
			resilience.Permanent(resilience.RetryAfter(errBoom, -time.Millisecond)), // gRPC's "do not retry"
			hinted{0},
			fmt.Errorf("wrapped: %w", resilience.RetryAfter(resilience.ErrRejected, time.Second)),
		} {
			if _, got := resilience.Do(ctx, p, func(context.Context) (int, error) { return 0, err }); got != err {
				t.Errorf("%v came back as %v", err, got)
			}
			if u := p.Until(); !u.IsZero() {
				t.Errorf("%v set a period until %v", err, u)
			}
		}
		for i, err := range []error{
			fmt.Errorf("get: %w", resilience.RetryAfter(errBoom, time.Second)),
			resilience.Answer(resilience.RetryAfter(errBoom, 2*time.Second)),
			hinted{3 * time.Second},
			errors.Join(errBoom, hinted{4 * time.Second}),
		} {
			want := time.Now().Add(time.Duration(i+1) * time.Second)
			if _, got := resilience.Do(ctx, p, func(context.Context) (int, error) { return 0, err }); got != err {
				t.Errorf("%v came back as %v", err, got)
			}
			if !p.Until().Equal(want) {
				t.Errorf("%v: Until() = %v, want %v", err, p.Until(), want)
			}
			time.Sleep(time.Until(p.Until())) // and the next call goes through
		}
	})
}

// TestPushbackCancelledWait: a caller whose context ends while it waits
// for the period's end gets the context's error at once, and the call is
// not made; nor is it counted, and the timer is stopped. A call whose
// context has ended before it arrives during a period gets its error too,
// not a refusal.
func TestPushbackCancelledWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "x", MaxWait: time.Hour}))
		calls := 0
		resilience.Do(context.Background(), p, pushBack(&calls, 30*time.Second))
		var rejected []resilience.Event
		p.ObserveEvents(func(_ context.Context, e resilience.Event) { rejected = append(rejected, e) })
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		var (
			err  error
			took time.Duration
			wg   sync.WaitGroup
		)
		wg.Go(func() {
			_, err = resilience.Do(ctx, p, pushBack(&calls, time.Hour))
			took = time.Since(start)
		})
		time.Sleep(10 * time.Second)
		cancel()
		wg.Wait()
		if !errors.Is(err, context.Canceled) || errors.Is(err, resilience.ErrRejected) || took != 10*time.Second || calls != 1 {
			t.Errorf("cancelled while waiting: err %v after %v, %d calls; want context.Canceled at 10s, no call", err, took, calls)
		}
		if _, err := resilience.Do(ctx, p, pushBack(&calls, time.Hour)); err != context.Canceled || calls != 1 {
			t.Errorf("ended before it came: err %v, %d calls; want context.Canceled, no call", err, calls)
		}
		if passed, waited, refused, _ := pushbackStats(t, p); passed != 1 || waited != 0 || refused != 0 || len(rejected) != 0 {
			t.Errorf("Stats: %d passed, %d waited, %d rejected, %d events; want 1, 0, 0, 0", passed, waited, refused, len(rejected))
		}
		if want := start.Add(30 * time.Second); !p.Until().Equal(want) {
			t.Errorf("Until() = %v, want %v: the calls that gave up changed the period", p.Until(), want)
		}

		// One that may not wait is not refused either: its caller has gone.
		now := must(resilience.NewPushback(resilience.PushbackConfig{Name: "now"}))
		resilience.Do(context.Background(), now, pushBack(&calls, time.Second))
		if _, err := resilience.Do(ctx, now, ok); err != context.Canceled {
			t.Errorf("ended, MaxWait 0: err %v, want context.Canceled, not a refusal", err)
		}
		if _, _, refused, _ := pushbackStats(t, now); refused != 0 {
			t.Errorf("ended, MaxWait 0: %d refusals counted, want 0", refused)
		}
	})
}

// TestPushbackWaitLeavesNothingBehind: many calls wait at once, half of
// them cancelled; all return, and none leaves a goroutine or a timer
// behind (synctest.Test fails on a goroutine still blocked at its end,
// goleak in TestMain on one outside it).
func TestPushbackWaitLeavesNothingBehind(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "leak", MaxWait: time.Minute}))
		calls := 0
		resilience.Do(context.Background(), p, pushBack(&calls, time.Second))
		var (
			wg             sync.WaitGroup
			mu             sync.Mutex
			ran, cancelled int
			cancels        []context.CancelFunc
			start          = time.Now()
			lastReturned   time.Duration
		)
		for i := range 50 {
			ctx, cancel := context.WithCancel(context.Background())
			cancels = append(cancels, cancel)
			wg.Go(func() {
				_, err := resilience.Do(ctx, p, ok)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					ran++
				case errors.Is(err, context.Canceled) && i%2 == 0:
					cancelled++
				default:
					t.Errorf("call %d: %v", i, err)
				}
				lastReturned = max(lastReturned, time.Since(start))
			})
		}
		synctest.Wait()
		for i, cancel := range cancels {
			if i%2 == 0 {
				cancel()
			}
		}
		wg.Wait()
		for _, cancel := range cancels {
			cancel()
		}
		if ran != 25 || cancelled != 25 || lastReturned != time.Second {
			t.Errorf("%d ran, %d cancelled, the last back at %v; want 25, 25, at 1s", ran, cancelled, lastReturned)
		}
		if passed, waited, _, _ := pushbackStats(t, p); passed != 26 || waited != 25 {
			t.Errorf("Stats: %d passed, %d waited; want 26, 25", passed, waited)
		}
	})
}

// TestPushbackInAGuard: Timeout → Retry (MaxBackoff 10ms) → Pushback →
// call. A dependency's Retry-After of 1s sets the retry's wait to 10ms, and
// the period to 1s: the retry meets the period and is refused, and not
// retried, so one attempt reaches the dependency; a second call within
// the second is refused without reaching it.
func TestPushbackInAGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "dep"}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Name: "dep", Stages: []resilience.Stage{
			must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "dep", Duration: time.Minute})),
			must(resilience.NewRetry(resilience.RetryConfig{Name: "dep", MaxRetries: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})),
			p,
		}}))
		calls := 0
		start := time.Now()
		_, err := resilience.Do(context.Background(), g, pushBack(&calls, time.Second))
		var (
			re *resilience.RetryError
			pe *resilience.PushbackError
		)
		if calls != 1 || !errors.As(err, &re) || re.Attempts != 2 || !errors.As(re.Err, &pe) || time.Since(start) != 10*time.Millisecond {
			t.Fatalf("%d calls, err %v after %v; want 1 call, and its retry at 10ms refused by the pushback", calls, err, time.Since(start))
		}
		if !pe.Until.Equal(start.Add(time.Second)) || !errors.Is(err, resilience.ErrPushback) {
			t.Errorf("PushbackError %+v, want until 1s from the start", pe)
		}
		time.Sleep(500 * time.Millisecond)
		_, err = resilience.Do(context.Background(), g, pushBack(&calls, time.Second))
		if calls != 1 || !errors.As(err, &pe) || errors.As(err, &re) {
			t.Errorf("a second call 510ms in: %d calls, err %v; want it refused at once, unwrapped, not retried", calls, err)
		}
		time.Sleep(time.Until(start.Add(time.Second)))
		if v, err := resilience.Do(context.Background(), g, ok); v != 1 || err != nil {
			t.Errorf("after the second: %v, %v; want the call run", v, err)
		}
	})
}

// TestPushbackPreset: Preset.Build puts the Pushback right after the
// RetryBudget and before the Breaker, named after the preset unless it
// has a name of its own, with no Retry as well; its invalid fields are
// named; and the Breaker never counts the calls it refuses.
func TestPushbackPreset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := resilience.Preset{
			Name:        "dep",
			Timeout:     resilience.TimeoutConfig{Duration: time.Minute},
			Retry:       &resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond},
			RetryBudget: &resilience.RetryBudgetConfig{},
			Pushback:    &resilience.PushbackConfig{},
			Breaker:     resilience.BreakerConfig{FailureThreshold: 2},
		}
		kinds := func(g *resilience.Guard) string {
			var s []string
			for _, st := range g.Stages() {
				s = append(s, st.Kind()+" "+st.Name())
			}
			return strings.Join(s, ", ")
		}
		g := must(p.Build())
		if got, want := kinds(g), "timeout dep, retry dep, retry_budget dep, pushback dep, breaker dep"; got != want {
			t.Errorf("stages %s, want %s", got, want)
		}
		var results []resilience.CallResult
		g.Breaker().Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) { results = append(results, r) }})
		calls := 0
		for range 3 {
			resilience.Do(context.Background(), g, pushBack(&calls, time.Second))
		}
		if calls != 1 || len(results) != 1 || results[0] != resilience.CallFailed || g.Breaker().State() != resilience.Closed {
			t.Errorf("%d calls, breaker saw %v, %v; want 1 call, 1 failure, closed: the refusals never reach it", calls, results, g.Breaker().State())
		}

		p.Retry, p.Pushback.Name = nil, "own"
		if got, want := kinds(must(p.Build())), "timeout dep, pushback own, breaker dep"; got != want {
			t.Errorf("without a Retry: stages %s, want %s", got, want)
		}
		p.Pushback = nil
		if got, want := kinds(must(p.Build())), "timeout dep, breaker dep"; got != want {
			t.Errorf("without a Pushback: stages %s, want %s", got, want)
		}

		p.Pushback = &resilience.PushbackConfig{MaxWait: -1, MaxPeriod: 25 * time.Hour}
		p.Breaker.ErrorRateThreshold = 2
		_, err := p.Build()
		for _, field := range []string{"PushbackConfig.MaxWait", "PushbackConfig.MaxPeriod", "BreakerConfig.ErrorRateThreshold"} {
			if !errors.Is(err, resilience.ErrInvalidConfig) || err == nil || !strings.Contains(err.Error(), field) {
				t.Errorf("Build: %v, want ErrInvalidConfig naming %s", err, field)
			}
		}
	})
}

// TestPushbackConfig: each invalid field is named, every one at once, and
// the error matches ErrInvalidConfig; the bounds themselves are valid.
func TestPushbackConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    resilience.PushbackConfig
		fields []string
	}{
		{"defaults", resilience.PushbackConfig{}, nil},
		{"bounds", resilience.PushbackConfig{MaxWait: 1<<63 - 1, MaxPeriod: time.Millisecond}, nil},
		{"longest period", resilience.PushbackConfig{MaxPeriod: 24 * time.Hour}, nil},
		{"negative MaxWait", resilience.PushbackConfig{MaxWait: -1}, []string{"PushbackConfig.MaxWait"}},
		{"negative MaxPeriod", resilience.PushbackConfig{MaxPeriod: -time.Second}, []string{"PushbackConfig.MaxPeriod"}},
		{"MaxPeriod under 1ms", resilience.PushbackConfig{MaxPeriod: time.Millisecond - 1}, []string{"PushbackConfig.MaxPeriod"}},
		{"MaxPeriod over 24h", resilience.PushbackConfig{MaxPeriod: 24*time.Hour + 1}, []string{"PushbackConfig.MaxPeriod"}},
		{"both", resilience.PushbackConfig{MaxWait: -time.Second, MaxPeriod: 1}, []string{"PushbackConfig.MaxWait", "PushbackConfig.MaxPeriod"}},
	} {
		p, err := resilience.NewPushback(tc.cfg)
		if len(tc.fields) == 0 {
			if err != nil || p == nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if p != nil || !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%s: %v, %v; want no stage and an error matching ErrInvalidConfig", tc.name, p, err)
			continue
		}
		var fields []string
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ce *resilience.ConfigError
			if errors.As(e, &ce) {
				fields = append(fields, ce.Field)
			}
		}
		if fmt.Sprint(fields) != fmt.Sprint(tc.fields) {
			t.Errorf("%s: fields %v, want %v (%v)", tc.name, fields, tc.fields, err)
		}
	}
}

// TestPushbackEvents: each refusal is reported as EventRejected with the
// stage's kind and name, the refusal as its error and the call's context;
// calls let through report nothing. ObserveEvents on a guard reaches it.
func TestPushbackEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "ev"}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Name: "ev", Stages: []resilience.Stage{p}}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, g); err != nil {
			t.Fatal(err)
		}
		var _ resilience.EventSource = p
		var _ resilience.Observable = p
		calls := 0
		resilience.Do(context.Background(), g, pushBack(&calls, time.Second))
		resilience.Do(context.Background(), g, ok) // refused
		rec.take()
		ctx := context.WithValue(context.Background(), callTag{}, "refused")
		_, err := resilience.Do(ctx, g, ok)
		rec.want(t, "refused", []resilience.Event{{Type: resilience.EventRejected, Kind: resilience.KindPushback, Name: "ev"}},
			func(e error) bool { return e == err && errors.Is(e, resilience.ErrPushback) })
		time.Sleep(time.Second)
		resilience.Do(ctx, g, ok)
		resilience.Do(ctx, g, fail)
		rec.want(t, nil, nil)
	})
}

// TestPushbackZeroValue: the zero Pushback runs no call, and says to
// make one with NewPushback.
func TestPushbackZeroValue(t *testing.T) {
	var p resilience.Pushback
	ran := false
	_, err := resilience.Do(context.Background(), &p, func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "NewPushback") {
		t.Errorf("zero Pushback: ran %v, err %v; want no call, ErrInvalidConfig naming NewPushback", ran, err)
	}
	if err := p.Run(context.Background(), func(context.Context) error { ran = true; return nil }); ran || !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero Pushback's Run: ran %v, err %v", ran, err)
	}
	if !p.Until().IsZero() || p.Kind() != resilience.KindPushback {
		t.Errorf("zero Pushback: Until %v, Kind %q", p.Until(), p.Kind())
	}
	pushbackStats(t, &p)
}

// TestPushbackPanic: a panic in the call goes up unchanged, and the stage
// goes on working, its period included.
func TestPushbackPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "pp", MaxWait: time.Second}))
		calls := 0
		resilience.Do(context.Background(), p, pushBack(&calls, 100*time.Millisecond))
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Errorf("recovered %v, want the call's panic", r)
				}
			}()
			resilience.Do(context.Background(), p, func(context.Context) (int, error) { panic("boom") })
		}()
		if v, err := resilience.Do(context.Background(), p, ok); v != 1 || err != nil {
			t.Errorf("after the panic: %v, %v", v, err)
		}
	})
}

// TestPushbackKeyed: a Keyed family of Pushbacks keeps a period per key:
// one key's hint refuses that key's calls and no other's, and its events
// carry the key.
func TestPushbackKeyed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "hosts"}, func(string) (*resilience.Pushback, error) {
			return resilience.NewPushback(resilience.PushbackConfig{Name: "hosts"})
		}))
		if k.Kind() != "keyed_pushback" {
			t.Errorf("Kind() = %q, want keyed_pushback", k.Kind())
		}
		var rec events
		k.ObserveEvents(rec.observe)
		a, b := resilience.WithKey(context.Background(), "a"), resilience.WithKey(context.Background(), "b")
		calls := 0
		resilience.Do(a, k, pushBack(&calls, time.Second))
		if _, err := resilience.Do(a, k, ok); !errors.Is(err, resilience.ErrPushback) {
			t.Errorf("key a after its hint: %v, want a refusal", err)
		}
		if v, err := resilience.Do(b, k, ok); v != 1 || err != nil {
			t.Errorf("key b: %v, %v; want the call run", v, err)
		}
		pa, _ := k.Lookup("a")
		pb, _ := k.Lookup("b")
		if pa.Until().IsZero() || !pb.Until().IsZero() {
			t.Errorf("Until: a %v, b %v; want a period for a alone", pa.Until(), pb.Until())
		}
		rec.want(t, nil, []resilience.Event{{Type: resilience.EventRejected, Kind: "keyed_pushback", Name: "hosts", Key: "a"}})
		var got []string
		for _, c := range k.Stats().Calls {
			got = append(got, fmt.Sprintf("%s=%d", c.Result, c.N))
		}
		if want := "[calls=3 passed=2 waited=0 rejected=1 full=0]"; fmt.Sprint(got) != want {
			t.Errorf("family Stats %v, want %s", got, want)
		}
	})
}

// nanosecondHint fails with a hint of 1ns: a period over almost at once.
func nanosecondHint(context.Context) (int, error) { return 0, errNanosecond }

var errNanosecond error = hinted{time.Nanosecond}

// TestPushbackAllocs: a call through a Pushback with no period in force
// allocates nothing, alone, in a chain, at the first call after a period
// and in a Keyed family, key found, with the race detector on or off.
func TestPushbackAllocs(t *testing.T) {
	ctx := context.Background()
	p := must(resilience.NewPushback(resilience.PushbackConfig{Name: "a"}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))
	budget := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{}))
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	alone := resilience.For[int](p)
	chain := resilience.For[int](retry, budget, p, breaker)
	for name, run := range map[string]func(){
		"Do":  func() { resilience.Do(ctx, p, noop) },
		"For": func() { alone.Do(ctx, noop) },
		"Retry → RetryBudget → Pushback → Breaker": func() { chain.Do(ctx, noop) },
		"a failure without a hint":                 func() { resilience.Do(ctx, p, fail) },
	} {
		if n := testing.AllocsPerRun(1000, run); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
	// A period that has ended: the first call after it reads the clock
	// and clears it, allocating nothing either.
	ended := must(resilience.NewPushback(resilience.PushbackConfig{Name: "e", MaxPeriod: time.Millisecond}))
	if n := testing.AllocsPerRun(100, func() {
		resilience.Do(ctx, ended, nanosecondHint)
		for !ended.Until().IsZero() {
		}
		resilience.Do(ctx, ended, noop)
	}); n != 0 {
		t.Errorf("a call after a period: %v allocations per call, want 0", n)
	}
	keyed := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Pushback, error) {
		return resilience.NewPushback(resilience.PushbackConfig{})
	}))
	kctx := resilience.WithKey(ctx, "k")
	resilience.Do(kctx, keyed, noop)
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(kctx, keyed, noop) }); n != 0 {
		t.Errorf("keyed Pushback, key found: %v allocations per call, want 0", n)
	}
}
