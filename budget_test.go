package resilience_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// budgeted returns a chain of a Retry of MaxRetries retries with no
// backoff and, right inside it, the budget b.
func budgeted(b *resilience.RetryBudget, retries int) resilience.Policy[int] {
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: retries, NoBackoff: true}))
	if b == nil {
		return resilience.For[int](r)
	}
	return resilience.For[int](r, b)
}

// TestRetryBudgetBoundsAttempts: against a dependency that fails every
// call, five retries per call make 6 attempts per call without a budget,
// and with one, no more than the ratio and the floor allow: 1.2 attempts
// per call plus the floor's share.
func TestRetryBudgetBoundsAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			calls = 10000
			every = 2 * time.Millisecond // 20s in all: two windows
		)
		run := func(p resilience.Policy[int]) (attempts int) {
			for range calls {
				p.Do(context.Background(), func(context.Context) (int, error) { attempts++; return 0, errBoom })
				time.Sleep(every)
			}
			return attempts
		}
		if got := run(budgeted(nil, 5)); got != 6*calls {
			t.Errorf("without a budget: %d attempts, want %d", got, 6*calls)
		}
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{}))
		got := float64(run(budgeted(b, 5))) / calls
		// The floor: 10 a second for 20s, and a window's worth at the
		// start (the window's reserve).
		floor := (10*20.0 + 10*10) / calls
		if got > 1.2+floor || got < 1.2 {
			t.Errorf("with a budget: %.4f attempts per call, want from 1.2 to 1.2 + the floor's %.4f", got, floor)
		}
		t.Logf("attempts per call at 100%% failure: %.4f with the budget (1.2 + floor %.4f), 6 without", got, floor)
		st := b.Stats()
		if st.Calls[0].Result != "first" || st.Calls[0].N != calls {
			t.Errorf("Stats: %+v, want %d first attempts", st.Calls, calls)
		}
		if retried, refused := st.Calls[1].N, st.Calls[2].N; float64(retried) != (got-1)*calls || refused > calls || refused < calls-retried/5 {
			t.Errorf("Stats: retried %d, refused %d; want the %v retries made, and a refusal for each call that did not make all 5", retried, refused, (got-1)*calls)
		}
	})
}

// TestRetryBudgetLeavesRareFailuresAlone: when one call in ten fails once,
// every failed call still has its retry: the budget changes nothing.
func TestRetryBudgetLeavesRareFailuresAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.2, NoFloor: true}))
		p := budgeted(b, 5)
		failed := 0
		for i := range 5000 {
			n := 0
			_, err := p.Do(context.Background(), func(context.Context) (int, error) {
				if n++; n == 1 && i%10 == 5 {
					return 0, errBoom
				}
				return 1, nil
			})
			if err != nil {
				failed++
			}
			time.Sleep(time.Millisecond)
		}
		if failed != 0 {
			t.Errorf("%d calls failed, want 0: a retry was refused at a 10%% failure rate", failed)
		}
	})
}

// TestRetryBudgetRefusalKeepsTheLastError: a retry the budget refuses ends
// the call with its last attempt's result and error, inside a RetryError
// whose Cause is ErrRetryBudget; it is not a rejection.
func TestRetryBudgetRefusalKeepsTheLastError(t *testing.T) {
	b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.5, NoFloor: true, Window: time.Hour}))
	p := budgeted(b, 3)
	errLast := errors.New("last")
	calls := 0
	v, err := p.Do(context.Background(), func(context.Context) (int, error) {
		calls++
		return calls, errLast
	})
	// One first attempt earns half a retry: none is let through.
	var re *resilience.RetryError
	if calls != 1 || v != 1 || !errors.As(err, &re) || re.Cause != resilience.ErrRetryBudget || !errors.Is(err, errLast) {
		t.Fatalf("%d calls, %v, %v; want 1 call, its result and error, Cause ErrRetryBudget", calls, v, err)
	}
	if errors.Is(err, resilience.ErrRejected) || !resilience.GaveUp(err) || !strings.Contains(err.Error(), "budget") {
		t.Errorf("%v: want no rejection, GaveUp, a message naming the budget", err)
	}
	// A second call makes the first attempts two: one retry.
	calls = 0
	p.Do(context.Background(), func(context.Context) (int, error) { calls++; return 0, errLast })
	if calls != 2 {
		t.Errorf("second call: %d attempts, want 2", calls)
	}
}

// TestRetryBudgetFloorLetsAQuietClientRetry: a client making a call every
// ten seconds earns almost no retries from the ratio; the floor gives it
// its retries.
func TestRetryBudgetFloorLetsAQuietClientRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.2, MinPerSecond: 1}))
		p := budgeted(b, 3)
		for i := range 20 {
			attempts := 0
			p.Do(context.Background(), func(context.Context) (int, error) { attempts++; return 0, errBoom })
			if attempts != 4 {
				t.Fatalf("call %d: %d attempts, want 4", i, attempts)
			}
			time.Sleep(10 * time.Second)
		}
	})
}

// TestRetryBudgetWindowForgets: retries and first attempts leave the
// window: a budget spent in one window is whole again in the next.
func TestRetryBudgetWindowForgets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1, MinPerSecond: 1, Window: 10 * time.Second}))
		p := budgeted(b, 1)
		retries := func(calls int) (n int) {
			for range calls {
				p.Do(context.Background(), func(ctx context.Context) (int, error) {
					if resilience.Attempt(ctx) > 1 {
						n++
					}
					return 0, errBoom
				})
			}
			return n
		}
		// 100 calls at once: 0.1 × 100 + 1 × 10 = 20 retries.
		if got := retries(100); got != 19 && got != 20 {
			t.Errorf("first window: %d retries, want 20 (19 for the rounding of the last)", got)
		}
		if got := retries(100); got > 10 {
			t.Errorf("same window, 100 more calls: %d retries, want at most 10 more", got)
		}
		time.Sleep(10 * time.Second)
		if got := retries(100); got < 19 || got > 20 {
			t.Errorf("after a window: %d retries, want the budget whole again (20)", got)
		}
	})
}

// TestRetryBudgetSpreadsAQuietSpell: first attempts counted while no retry
// was asked for are spread over the time since the budget last looked:
// 1000 calls, then 100s of quiet, leave 100 of them in a 10s window.
func TestRetryBudgetSpreadsAQuietSpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 1, NoFloor: true, Window: 10 * time.Second}))
		p := budgeted(b, 1)
		// No retry is asked for, and the budget does not look at the
		// clock, until the quiet spell is over.
		for range 1000 {
			time.Sleep(100 * time.Millisecond)
			p.Do(context.Background(), ok)
		}
		retried := 0
		for range 300 {
			p.Do(context.Background(), func(ctx context.Context) (int, error) {
				if resilience.Attempt(ctx) > 1 {
					retried++
				}
				return 0, errBoom
			})
		}
		// The window holds the last 10s of the 1000 calls, 100 of them,
		// and these calls' own first attempts, each of which earns its
		// own retry at Ratio 1: the 100 are left over.
		if retried != 300 {
			t.Errorf("%d of 300 calls retried, want all (Ratio 1: each first attempt earns a retry)", retried)
		}
		g := b.Stats().Gauges[0]
		if want := 100.0; math.Abs(g.Value-want) > 1.5 {
			t.Errorf("retries left %v, want about %v: the 100 calls of the last 10s of the quiet spell", g.Value, want)
		}
	})
}

// TestAttempt: a Retry numbers the attempts it makes, from 1; Attempt is
// 1 outside any Retry. With nested retries, the innermost Retry that has
// retried is read: an inner Retry's first attempt under the outer's second
// is sent for the second time, and says so.
func TestAttempt(t *testing.T) {
	ctx := context.Background()
	if got := resilience.Attempt(ctx); got != 1 {
		t.Errorf("Attempt outside a retry = %d, want 1", got)
	}
	outer := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1, NoBackoff: true}))
	inner := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true}))
	var seen []int
	resilience.For[int](outer, inner).Do(ctx, func(ctx context.Context) (int, error) {
		seen = append(seen, resilience.Attempt(ctx))
		return 0, errBoom
	})
	want := []int{1, 2, 3, 2, 2, 3}
	if len(seen) != len(want) {
		t.Fatalf("attempts seen %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("attempts seen %v, want %v", seen, want)
		}
	}
	if got := resilience.CallerAttempt(resilience.WithCallerAttempt(ctx, 3)); got != 3 {
		t.Errorf("CallerAttempt = %d, want 3", got)
	}
	if got := resilience.CallerAttempt(ctx); got != 0 {
		t.Errorf("CallerAttempt with none set = %d, want 0", got)
	}
}

// TestRetryBudgetPlacement: a budget anywhere but right inside a Retry is
// a configuration error, since no retry would ask it.
func TestRetryBudgetPlacement(t *testing.T) {
	b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{}))
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	for name, stages := range map[string][]resilience.Stage{
		"alone":               {b},
		"first":               {b, r},
		"inside a breaker":    {r, br, b},
		"outside its retry":   {b, r, br},
		"after a plain stage": {br, b},
	} {
		if _, err := resilience.NewGuard(resilience.GuardConfig{Stages: stages}); !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "inside a Retry") {
			t.Errorf("%s: NewGuard: %v, want a ConfigError saying where a budget goes", name, err)
		}
		func() {
			defer func() {
				if p := recover(); p == nil || !strings.Contains(p.(string), "inside a Retry") {
					t.Errorf("%s: For did not panic saying where a budget goes: %v", name, p)
				}
			}()
			resilience.For[int](stages...)
		}()
	}
	if _, err := resilience.Do(context.Background(), b, ok); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("Do through a lone budget: %v, want ErrInvalidConfig", err)
	}
	g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{r, b, br}}))
	if g.RetryBudget() != b {
		t.Error("Guard.RetryBudget is not the guard's budget")
	}
	// A guard inside a guard is its stages: the budget is right inside r.
	if _, err := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{r, g}}); err != nil {
		t.Errorf("a guard nesting a guard whose budget is right inside its retry: %v", err)
	}
	lone := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{r, b}}))
	if _, err := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{br, lone}}); err != nil {
		t.Errorf("nesting a valid guard: %v", err)
	}
}

// TestRetryBudgetConfig: bad values are errors naming the field.
func TestRetryBudgetConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   resilience.RetryBudgetConfig
		field string
	}{
		{resilience.RetryBudgetConfig{Ratio: -0.1}, "RetryBudgetConfig.Ratio"},
		{resilience.RetryBudgetConfig{Ratio: math.NaN()}, "RetryBudgetConfig.Ratio"},
		{resilience.RetryBudgetConfig{Ratio: math.Inf(1)}, "RetryBudgetConfig.Ratio"},
		{resilience.RetryBudgetConfig{MinPerSecond: -1}, "RetryBudgetConfig.MinPerSecond"},
		{resilience.RetryBudgetConfig{MinPerSecond: math.NaN()}, "RetryBudgetConfig.MinPerSecond"},
		{resilience.RetryBudgetConfig{Window: time.Millisecond}, "RetryBudgetConfig.Window"},
		{resilience.RetryBudgetConfig{Window: -time.Second}, "RetryBudgetConfig.Window"},
		{resilience.RetryBudgetConfig{Window: 25 * time.Hour}, "RetryBudgetConfig.Window"},
		{resilience.RetryBudgetConfig{Ratio: 1001}, "RetryBudgetConfig.Ratio"},
		{resilience.RetryBudgetConfig{NoFloor: true, MinPerSecond: 1}, "RetryBudgetConfig.MinPerSecond"},
	} {
		_, err := resilience.NewRetryBudget(tc.cfg)
		if !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	p := resilience.Preset{Name: "x", Timeout: resilience.TimeoutConfig{Duration: time.Second}, RetryBudget: &resilience.RetryBudgetConfig{Ratio: -1}}
	if g, err := p.Build(); err != nil || g.RetryBudget() != nil {
		t.Errorf("a preset with a budget and no retry: %v, budget %v; want it built without the budget, which nothing would ask", err, g.RetryBudget())
	}
	r := resilience.RetryConfig{MaxRetries: 1}
	p.Retry = &r
	if _, err := p.Build(); !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "RetryBudgetConfig.Ratio") {
		t.Errorf("a preset with a bad budget: %v, want an error naming RetryBudgetConfig.Ratio", err)
	}
}

// TestRetryBudgetHappyPathAllocatesNothing: counting a first attempt costs
// no allocation.
func TestRetryBudgetHappyPathAllocatesNothing(t *testing.T) {
	p := budgeted(must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{})), 3)
	ctx := context.Background()
	if n := testing.AllocsPerRun(100, func() { p.Do(ctx, ok) }); n != 0 {
		t.Errorf("a call through a retry and its budget allocates %v times, want 0", n)
	}
}

func BenchmarkRetryBudget(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name   string
		budget *resilience.RetryBudget
	}{
		{"retry", nil},
		{"retry+budget", must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{}))},
	} {
		p := budgeted(bc.budget, 3)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.Do(ctx, ok)
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					p.Do(ctx, ok)
				}
			})
		})
	}
}

// TestRetryBudgetRefusalIsObserved: the Retry's observer sees a call its
// budget stopped, with its error matching ErrRetryBudget.
func TestRetryBudgetRefusalIsObserved(t *testing.T) {
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, NoBackoff: true}))
	var seen []error
	r.Observe(resilience.RetryObserver{Done: func(_ int, err error) { seen = append(seen, err) }})
	b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1, NoFloor: true}))
	resilience.For[int](r, b).Do(context.Background(), func(context.Context) (int, error) { return 0, errBoom })
	if len(seen) != 1 || !errors.Is(seen[0], resilience.ErrRetryBudget) || !errors.Is(seen[0], errBoom) {
		t.Errorf("observer saw %v, want one call ending in the budget's refusal, with the call's error", seen)
	}
}

// TestRetryBudgetDefaultsPerField: a field left at zero takes its own
// default, whatever the others are set to.
func TestRetryBudgetDefaultsPerField(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Ratio set alone: the floor's default still lets a quiet client
		// (a failing call every minute) retry every call.
		p := budgeted(must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1})), 1)
		for i := range 10 {
			attempts := 0
			p.Do(context.Background(), func(context.Context) (int, error) { attempts++; return 0, errBoom })
			if attempts != 2 {
				t.Fatalf("call %d: %d attempts, want 2: the floor's default was not applied", i, attempts)
			}
			time.Sleep(time.Minute)
		}
		// MinPerSecond set alone: Ratio's default, 20% of 1000 calls made
		// at once, plus the floor's 1 × 10s.
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{MinPerSecond: 1}))
		p = budgeted(b, 1)
		retried := 0
		for range 1000 {
			p.Do(context.Background(), func(ctx context.Context) (int, error) {
				if resilience.Attempt(ctx) > 1 {
					retried++
				}
				return 0, errBoom
			})
		}
		if retried < 200 || retried > 210 {
			t.Errorf("%d of 1000 calls retried, want 200 to 210 (Ratio's default 0.2, and the floor)", retried)
		}
	})
}

// TestRetryBudgetOutageAfterAHealthySpell: a budget made at start-up, and
// never asked for a retry during an hour of healthy calls, bounds the
// retries from the first second of an outage: the hour's first attempts
// are spread over the hour, not taken as the last window's.
func TestRetryBudgetOutageAfterAHealthySpell(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const perSecond = 100
		b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1, NoFloor: true}))
		p := budgeted(b, 3)
		for range 3600 {
			for range perSecond {
				p.Do(context.Background(), ok)
			}
			time.Sleep(time.Second)
		}
		attempts := 0
		for range perSecond {
			p.Do(context.Background(), func(context.Context) (int, error) { attempts++; return 0, errBoom })
		}
		// 0.1 × the last 10s' 1000 healthy calls, and these 100: 110
		// retries, not 0.1 × the hour's 360,000.
		if retries := attempts - perSecond; retries < 105 || retries > 111 {
			t.Errorf("%d retries in the first second of the outage, want about 110: 10%% of the last window's first attempts", retries)
		}
	})
}

// TestGaveUp: a Retry gave up when it retried in vain or its budget
// refused a retry; one that never retries, or a call that failed with no
// Retry, did not.
func TestGaveUp(t *testing.T) {
	ctx := context.Background()
	fail := func(context.Context) (int, error) { return 0, errBoom }
	run := func(stages ...resilience.Stage) error {
		_, err := resilience.For[int](stages...).Do(ctx, fail)
		return err
	}
	if err := run(must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true}))); !resilience.GaveUp(err) {
		t.Errorf("retries used up: GaveUp(%v) = false", err)
	}
	if err := run(must(resilience.NewRetry(resilience.RetryConfig{NoBackoff: true}))); resilience.GaveUp(err) {
		t.Errorf("a Retry with MaxRetries 0: GaveUp(%v) = true, want false: it made no retry", err)
	}
	refusing := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.1, NoFloor: true}))
	if err := run(must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true})), refusing); !resilience.GaveUp(err) {
		t.Errorf("budget refused: GaveUp(%v) = false", err)
	}
	if resilience.GaveUp(errBoom) || resilience.GaveUp(nil) {
		t.Error("GaveUp of an error no Retry returned, or of nil: true")
	}
	// An outer Retry that never retries, around an inner one that gave up.
	err := run(must(resilience.NewRetry(resilience.RetryConfig{NoBackoff: true})), must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1, NoBackoff: true})))
	if !resilience.GaveUp(err) {
		t.Errorf("an inner Retry that gave up, inside one that never retries: GaveUp(%v) = false", err)
	}
}

// TestRetryBudgetSpreadingIsExact: the first attempts spread over the time
// between two looks add up to the attempts made, so a budget whose Ratio
// allows exactly one retry lets it through, at whatever moments it looks.
// (Before, 1/d×d rounded to 0.9999999999999999 for some d: two first
// attempts at Ratio 0.5 allowed 0.99999 retries, and the retry was
// refused.)
func TestRetryBudgetSpreadingIsExact(t *testing.T) {
	for _, gaps := range [][2]time.Duration{{197, 123457}, {239, 123457}, {1, 3}, {time.Millisecond, 7 * time.Minute}} {
		synctest.Test(t, func(t *testing.T) {
			b := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Ratio: 0.5, NoFloor: true, Window: time.Hour}))
			p := budgeted(b, 1)
			attempts := 0
			call := func(context.Context) (int, error) { attempts++; return 0, errBoom }
			time.Sleep(gaps[0])
			p.Do(context.Background(), call) // 1 first attempt: 0.5 retries, refused
			time.Sleep(gaps[1])
			p.Do(context.Background(), call) // 2: one retry
			if attempts != 3 {
				t.Errorf("gaps %v: %d attempts, want 3 (the second call's retry let through)", gaps, attempts)
			}
		})
	}
}
