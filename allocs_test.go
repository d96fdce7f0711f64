package resilience_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// TestHappyPathAllocatesNothing guards what the benchmarks measure: the
// policies of this package allocate nothing on their happy path.
func TestHappyPathAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	closed := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	open := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	open.ForceOpen()
	timed := must(resilience.NewBreaker(resilience.BreakerConfig{WindowPeriod: time.Minute, SlowCallThreshold: time.Second}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, Jitter: true}))
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 8}))
	guard := must(resilience.Preset{
		Timeout: resilience.TimeoutConfig{Duration: time.Second},
		Retry:   &resilience.RetryConfig{MaxRetries: 3},
	}.Build())
	fallback := must(resilience.NewFallback(resilience.FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return 0, nil }}))

	for name, p := range map[string]resilience.Policy[int]{
		"closed breaker":              resilience.For[int](closed),
		"open breaker":                resilience.For[int](open),
		"timed breaker":               resilience.For[int](timed),
		"retry":                       resilience.For[int](retry),
		"bulkhead":                    resilience.For[int](bulkhead),
		"retry, breaker, bulkhead":    resilience.For[int](retry, closed, bulkhead),
		"fallback around the rest":    resilience.Compose(fallback, resilience.For[int](retry, closed, bulkhead)),
		"nested Compose, flattened":   resilience.Compose(resilience.For[int](retry), resilience.Compose(resilience.For[int](closed), resilience.For[int](bulkhead))),
		"empty chain":                 resilience.For[int](),
		"stale cache around the rest": resilience.Compose(must(resilience.NewStaleCache(resilience.StaleCacheConfig[int]{MaxAge: time.Minute})), resilience.For[int](closed)),
	} {
		if n := testing.AllocsPerRun(1000, func() { p.Do(ctx, noop) }); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
	// A keyed breaker, key found: the lookup allocates nothing.
	keyed := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{}))
	for i := range 100 {
		resilience.Do(resilience.WithKey(ctx, strconv.Itoa(i)), keyed, noop)
	}
	keyedCtx := resilience.WithKey(ctx, "42")
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(keyedCtx, keyed, noop) }); n != 0 {
		t.Errorf("keyed breaker, key found: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { keyed.Breaker("42") }); n != 0 {
		t.Errorf("KeyedBreaker.Breaker, key found: %v allocations per call, want 0", n)
	}
	// A chaos stage that leaves the call alone: switched off, at rate 0,
	// and at a rate that spares this call.
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Seed: 1}))
	for _, set := range []func(){chaos.Disable, func() { chaos.Enable(); chaos.SetRate(0) }, func() { chaos.SetRate(1e-9) }} {
		set()
		if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, chaos, noop) }); n != 0 {
			t.Errorf("chaos stage, call untouched: %v allocations per call, want 0", n)
		}
	}
	// A Keyed family of bulkheads and of rate limiters, key found.
	bulkheads := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 4})
	}))
	limiters := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.RateLimiter, error) {
		return resilience.NewRateLimiter(resilience.RateLimitConfig{Rate: 1e9})
	}))
	for _, s := range []resilience.Stage{bulkheads, limiters} {
		resilience.Do(keyedCtx, s, noop)
		if n := testing.AllocsPerRun(1000, func() { resilience.Do(keyedCtx, s, noop) }); n != 0 {
			t.Errorf("%s, key found: %v allocations per call, want 0", s.Kind(), n)
		}
	}
	for name, s := range map[string]resilience.Stage{"breaker": closed, "retry": retry, "bulkhead": bulkhead} {
		if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, s, noop) }); n != 0 {
			t.Errorf("Do through %s: %v allocations per call, want 0", name, n)
		}
	}
	// A guard's time limit allocates what context.WithTimeout does, and
	// the rest of it nothing.
	bare := testing.AllocsPerRun(1000, func() {
		_, cancel := context.WithTimeout(ctx, time.Second)
		cancel()
	})
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, guard, noop) }); n != bare {
		t.Errorf("Do through a guard: %v allocations per call, want %v as for context.WithTimeout", n, bare)
	}
	// A preset with a per-attempt limit too: what two nested
	// context.WithTimeout do; and none under a caller's deadline sooner
	// than both, where no timer is made.
	nested := testing.AllocsPerRun(1000, func() {
		outer, cancel := context.WithTimeout(ctx, time.Minute)
		_, cancelInner := context.WithTimeout(outer, time.Second)
		cancelInner()
		cancel()
	})
	grpc := presets.GRPC()
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, grpc, noop) }); n != nested {
		t.Errorf("Do through the gRPC preset: %v allocations per call, want %v as for two nested context.WithTimeout", n, nested)
	}
	soon, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(soon, grpc, noop) }); n != 0 {
		t.Errorf("Do through the gRPC preset under a sooner deadline: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		pm, err := closed.Allow(ctx)
		if err == nil {
			pm.Done(nil)
		}
	}); n != 0 {
		t.Errorf("two-step: %v allocations per call, want 0", n)
	}
}

// TestPolicyFuncAllocatesItsNext: a policy written outside the package is
// handed a Func for the rest of the chain, the one closure a chain
// allocates, as documented.
func TestPolicyFuncAllocatesItsNext(t *testing.T) {
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	pass := resilience.PolicyFunc[int](func(ctx context.Context, next resilience.Func[int]) (int, error) { return next(ctx) })
	p := resilience.Compose(pass, resilience.For[int](breaker))
	if n := testing.AllocsPerRun(1000, func() { p.Do(context.Background(), noop) }); n != 1 {
		t.Errorf("%v allocations per call, want 1", n)
	}
}

// failsTwice fails its first two calls of every three, with a plain
// error; a package-level counter keeps the func from capturing anything.
var failsTwiceCalls int

func failsTwice(context.Context) (int, error) {
	if failsTwiceCalls++; failsTwiceCalls%3 != 0 {
		return 0, errBoom
	}
	return failsTwiceCalls, nil
}

// TestRetryFailurePathAllocatesOnlyItsTimer: a call that fails twice and
// then succeeds allocates one timer for its waits, reused for each, one
// context for its retries (which carries Attempt, reused for each), and
// nothing for the checks made on each failure (Permanent, the marks, a
// Retry-After hint, a stage not made), which errors.As would allocate.
func TestRetryFailurePathAllocatesOnlyItsTimer(t *testing.T) {
	r := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond})))
	ctx := context.Background()
	failsTwiceCalls = 0
	var timer float64
	{
		// What one time.NewTimer costs, on this Go.
		timer = testing.AllocsPerRun(100, func() { time.NewTimer(time.Hour).Stop() })
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.Do(ctx, failsTwice); err != nil {
			t.Fatal(err)
		}
	}); n > timer+1 {
		t.Errorf("a call that fails twice allocates %v times, want at most one timer's %v and a context", n, timer)
	}
}
