package resilience_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// faultsIn makes calls calls through c and returns which got an error.
func faultsIn(c *resilience.Chaos, calls int) []bool {
	p := resilience.For[int](c)
	got := make([]bool, calls)
	for i := range got {
		_, err := p.Do(context.Background(), func(context.Context) (int, error) { return 1, nil })
		got[i] = err != nil
	}
	return got
}

func countTrue(b []bool) (n int) {
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// At rate 0.3, exactly 3,000 of 10,000 calls get a fault, whatever the
// seed; a seed fixes which, and another seed picks others.
func TestChaosRateIsExact(t *testing.T) {
	for _, seed := range []uint64{1, 2, 42, 1 << 40} {
		c := must(resilience.NewChaos(resilience.ChaosConfig{Name: "c", Rate: 0.3, Seed: seed}))
		if n := countTrue(faultsIn(c, 10000)); n != 3000 {
			t.Errorf("seed %d: %d faults in 10,000 calls, want exactly 3,000", seed, n)
		}
	}
	a := faultsIn(must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.3, Seed: 7})), 2000)
	b := faultsIn(must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.3, Seed: 7})), 2000)
	other := faultsIn(must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.3, Seed: 8})), 2000)
	same, differ := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differ = differ || a[i] != other[i]
	}
	if !same || !differ {
		t.Errorf("same seed, same faults: %v; another seed, other faults: %v", same, differ)
	}
	// The faults are spread through each block: the longest run of calls
	// without one stays short, and a block's first 300 calls are not its
	// 300 faults.
	run, longest := 0, 0
	for _, f := range a {
		if f {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	if longest > 40 {
		t.Errorf("longest run of calls without a fault: %d, want the faults spread through the block", longest)
	}
	if countTrue(a[:300]) == 300 {
		t.Error("the first 300 calls of a block all got a fault: not shuffled")
	}
	for _, tc := range []struct {
		rate float64
		want int
	}{{0, 0}, {1, 10000}, {0.001, 10}, {0.123, 1230}, {0.5, 5000}, {0.0049, 49}, {0.0059, 59}, {0.0093, 93}, {0.999999, 9999}, {1e-9, 0}} {
		c := must(resilience.NewChaos(resilience.ChaosConfig{Rate: tc.rate, Seed: 3}))
		if n := countTrue(faultsIn(c, 10000)); n != tc.want {
			t.Errorf("rate %v: %d faults in 10,000 calls, want %d", tc.rate, n, tc.want)
		}
	}
}

// A rate set at run time holds from the next call; a disabled stage runs
// every call untouched, and counts none toward the rate.
func TestChaosSwitchesAtRunTime(t *testing.T) {
	c := must(resilience.NewChaos(resilience.ChaosConfig{Name: "c", Seed: 5}))
	if n := countTrue(faultsIn(c, 1000)); n != 0 {
		t.Errorf("rate 0: %d faults", n)
	}
	if err := c.SetRate(1); err != nil {
		t.Fatal(err)
	}
	if n := countTrue(faultsIn(c, 1)); n != 1 {
		t.Error("the call after SetRate(1) got no fault")
	}
	c.Disable()
	if n := countTrue(faultsIn(c, 100)); n != 0 || c.Enabled() {
		t.Errorf("disabled: %d faults", n)
	}
	c.Enable()
	if n := countTrue(faultsIn(c, 10)); n != 10 {
		t.Errorf("enabled again at rate 1: %d faults of 10", n)
	}
	if err := c.SetRate(1.5); err == nil || !errors.Is(err, resilience.ErrInvalidConfig) || c.Rate() != 1 {
		t.Errorf("SetRate(1.5): %v, rate %v; want an error and the rate unchanged", err, c.Rate())
	}
	st := c.Stats().Calls
	if st[0].N != 1100 || st[1].N != 11 || st[2].N != 0 {
		t.Errorf("Stats %+v, want 1100 passed, 11 injected, 0 delayed", st)
	}
}

// Latency, with an error or without, waits exactly Latency on the fake
// clock, and ends with the caller's context; Match picks the calls.
func TestChaosLatencyAndMatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		slow := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, NoError: true, Latency: 250 * time.Millisecond, Seed: 1}))
		start := time.Now()
		v, err := resilience.Do(context.Background(), slow, func(context.Context) (int, error) { return 7, nil })
		if v != 7 || err != nil || time.Since(start) != 250*time.Millisecond {
			t.Errorf("latency alone: %v, %v after %v; want 7, nil after 250ms", v, err, time.Since(start))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		ran := false
		_, err = resilience.Do(ctx, slow, func(context.Context) (int, error) { ran = true; return 7, nil })
		if !errors.Is(err, context.DeadlineExceeded) || ran || time.Since(start) != 100*time.Millisecond {
			t.Errorf("latency past the deadline: %v, ran %v, after %v; want the deadline's error at 100ms", err, ran, time.Since(start))
		}

		type tenant struct{}
		down := errors.New("connection refused")
		picky := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Err: down, Latency: time.Second, Seed: 1,
			Match: func(ctx context.Context) bool { return ctx.Value(tenant{}) == "beta" }}))
		start = time.Now()
		if _, err := resilience.Do(context.WithValue(context.Background(), tenant{}, "beta"), picky, func(context.Context) (int, error) { return 1, nil }); err != down || time.Since(start) != time.Second {
			t.Errorf("a matched call: %v after %v, want the configured error after 1s", err, time.Since(start))
		}
		if _, err := resilience.Do(context.WithValue(context.Background(), tenant{}, "ga"), picky, func(context.Context) (int, error) { return 1, nil }); err != nil {
			t.Errorf("a call Match turns down: %v", err)
		}
	})
}

// A fallback of the user's, tested with a chaos stage where the
// dependency would be: under faults the fallback answers, and the
// guard's retry sees the injected errors as the dependency's.
func TestChaosTestsAFallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chaos := must(resilience.NewChaos(resilience.ChaosConfig{Name: "users", Rate: 0.5, Seed: 11}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1, NoBackoff: true}))
		fallback := must(resilience.NewFallback(resilience.FallbackConfig[string]{
			Func: func(ctx context.Context, err error) (string, error) { return "cached", nil },
		}))
		users := resilience.Compose(fallback, resilience.For[string](retry, chaos))
		answers := map[string]int{}
		for range 1000 {
			v, err := users.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil })
			if err != nil {
				t.Fatal(err)
			}
			answers[v]++
		}
		// Each call has two tries; both fault for about a quarter of them.
		if answers["cached"] < 150 || answers["cached"] > 350 || answers["fresh"]+answers["cached"] != 1000 {
			t.Errorf("answers %v: want about a quarter from the fallback", answers)
		}
	})
}

// Bad configuration is an error naming the field; the zero Chaos runs no
// call.
func TestChaosConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg   resilience.ChaosConfig
		field string
	}{
		{resilience.ChaosConfig{Rate: -0.1}, "Rate"},
		{resilience.ChaosConfig{Rate: 1.1}, "Rate"},
		{resilience.ChaosConfig{Latency: -1}, "Latency"},
		{resilience.ChaosConfig{NoError: true, Err: errBoom, Latency: 1}, "Err"},
		{resilience.ChaosConfig{NoError: true}, "Latency"},
	} {
		if _, err := resilience.NewChaos(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	var zero resilience.Chaos
	if _, err := resilience.Do(context.Background(), &zero, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero Chaos: %v", err)
	}
	c := must(resilience.NewChaos(resilience.ChaosConfig{Name: "x"}))
	if c.Kind() != resilience.KindChaos || c.Name() != "x" || !c.Enabled() {
		t.Errorf("Kind %q Name %q Enabled %v", c.Kind(), c.Name(), c.Enabled())
	}
	if off := must(resilience.NewChaos(resilience.ChaosConfig{Disabled: true})); off.Enabled() {
		t.Error("Disabled: enabled")
	}
}

// The shuffle spreads a block's faults as independent draws would: at
// rate 0.1, two calls in a row both get a fault about 9.9 times in 1,000
// calls on average over seeds, and no seed makes them never or nearly
// always follow each other (an immediate retry's fate does not hang on
// the seed). An affine shuffle failed this: for most multipliers no two
// neighbours ever both faulted.
func TestChaosNeighboursAreIndependent(t *testing.T) {
	const seeds = 200
	total, most, least := 0, 0, 1000
	for seed := uint64(1); seed <= seeds; seed++ {
		f := faultsIn(must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.1, Seed: seed})), 1000)
		pairs := 0
		for i := 1; i < len(f); i++ {
			if f[i] && f[i-1] {
				pairs++
			}
		}
		total += pairs
		most, least = max(most, pairs), min(least, pairs)
	}
	mean := float64(total) / seeds
	t.Logf("back-to-back faults in 1,000 calls at rate 0.1 over %d seeds: mean %.2f, from %d to %d", seeds, mean, least, most)
	if mean < 8 || mean > 12 || most > 30 {
		t.Errorf("back-to-back faults: mean %.2f (want about 9.9), most %d", mean, most)
	}
}

// A chaos stage innermost in a Guard with a Classify: the injected error is
// classified as the same error from the dependency would be (an answer,
// not retried). Before, the Guard's classifier sat inside the chaos stage,
// and the injected error was retried as a failure.
func TestChaosInAGuardIsClassified(t *testing.T) {
	notFound := errors.New("not found")
	classify := func(_ context.Context, err error) resilience.Outcome {
		if errors.Is(err, notFound) {
			return resilience.Success // an answer: not retried
		}
		return resilience.Failure
	}
	run := func(withChaos bool) int {
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, NoBackoff: true}))
		stages := []resilience.Stage{retry}
		var chaos *resilience.Chaos
		if withChaos {
			chaos = must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Err: notFound, Seed: 1}))
			stages = append(stages, chaos)
		}
		g := must(resilience.NewGuard(resilience.GuardConfig{Stages: stages, Classify: classify}))
		calls := 0
		resilience.Do(context.Background(), g, func(context.Context) (int, error) { calls++; return 0, notFound })
		if withChaos {
			return int(chaos.Stats().Calls[1].N)
		}
		return calls
	}
	dep, injected := run(false), run(true)
	if dep != injected {
		t.Errorf("dependency returning notFound: %d attempt(s); chaos injecting notFound: %d attempts", dep, injected)
	}
}
