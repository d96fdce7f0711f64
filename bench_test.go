package resilience_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// Benchmarks of the hot paths. docs/PERFORMANCE.md has the figures and how
// to reproduce them.

func noop(context.Context) (int, error) { return 1, nil }

// run calls p with noop b.N times, or in parallel on every core.
func run(b *testing.B, p resilience.Policy[int], parallel bool) {
	ctx := context.Background()
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Do(ctx, noop)
			}
		})
		return
	}
	for b.Loop() {
		p.Do(ctx, noop)
	}
}

func both(b *testing.B, p func(b *testing.B) resilience.Policy[int]) {
	b.Run("goroutines=1", func(b *testing.B) { run(b, p(b), false) })
	b.Run("parallel", func(b *testing.B) { run(b, p(b), true) })
}

// BenchmarkBreakerClosed: a breaker in its default configuration around a
// call that succeeds. Goal: at most 25ns and no allocation on one
// goroutine, at most twice that with every core calling.
func BenchmarkBreakerClosed(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		return resilience.For[int](must(resilience.NewBreaker(resilience.BreakerConfig{})))
	})
}

// BenchmarkBreakerOpen: failing fast. Goal: at most 50ns.
func BenchmarkBreakerOpen(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		br := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Hour}))
		p := resilience.For[int](br)
		p.Do(context.Background(), fail)
		if br.State() != resilience.Open {
			b.Fatal("breaker did not open")
		}
		return p
	})
}

// BenchmarkBreakerTwoStep: Allow and Permit.Done around nothing.
func BenchmarkBreakerTwoStep(b *testing.B) {
	ctx := context.Background()
	step := func(br *resilience.Breaker) {
		pm, err := br.Allow(ctx)
		if err != nil {
			panic(err)
		}
		pm.Done(nil)
	}
	b.Run("goroutines=1", func(b *testing.B) {
		br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
		b.ReportAllocs()
		for b.Loop() {
			step(br)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				step(br)
			}
		})
	})
}

// BenchmarkBreakerClosedTimed: the opt-in configurations that read the
// clock around each call.
func BenchmarkBreakerClosedTimed(b *testing.B) {
	b.Run("window=time", func(b *testing.B) {
		run(b, resilience.For[int](must(resilience.NewBreaker(resilience.BreakerConfig{WindowPeriod: time.Minute}))), false)
	})
	b.Run("slowcalls=on", func(b *testing.B) {
		run(b, resilience.For[int](must(resilience.NewBreaker(resilience.BreakerConfig{SlowCallThreshold: time.Second}))), false)
	})
}

// BenchmarkBreakerCapturingClosure: the call a user really writes captures
// its arguments. Through Do, the closure is the caller's allocation: Do
// keeps fn beyond the call only in abandon-mode timeouts and stages and
// policies of one's own, but escape analysis is per function, not per
// path, and cannot tell which stages Do is given, so fn escapes. Through
// Allow and Done the call is the caller's own code, and nothing escapes.
func BenchmarkBreakerCapturingClosure(b *testing.B) {
	br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	ctx := context.Background()
	b.Run("via=Do", func(b *testing.B) {
		b.ReportAllocs()
		id := 0
		for b.Loop() {
			id++
			resilience.Do(ctx, br, func(context.Context) (int, error) { return id, nil })
		}
	})
	b.Run("via=Allow+Done", func(b *testing.B) {
		b.ReportAllocs()
		id := 0
		for b.Loop() {
			id++
			fn := func(context.Context) (int, error) { return id, nil }
			permit, err := br.Allow(ctx)
			if err != nil {
				continue
			}
			_, err = fn(ctx)
			permit.Done(err)
		}
	})
}

// BenchmarkCompose: Compose(retry, breaker, bulkhead) around a call that
// succeeds. Goal: no allocation.
func BenchmarkCompose(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, Jitter: true}))
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{}))
		bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 64}))
		return resilience.Compose(resilience.For[int](retry), resilience.For[int](breaker), resilience.For[int](bulkhead))
	})
}

// BenchmarkTimeout sets the timeout policy beside what it is built on,
// context.WithTimeout and its cancel. Goal: within 1.2× of it.
func BenchmarkTimeout(b *testing.B) {
	ctx := context.Background()
	b.Run("impl=context.WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tctx, cancel := context.WithTimeout(ctx, time.Second)
			noop(tctx)
			cancel()
		}
	})
	b.Run("impl=policy", func(b *testing.B) {
		run(b, resilience.For[int](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second}))), false)
	})
	b.Run("impl=WithTimeoutResult", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resilience.WithTimeoutResult(ctx, time.Second, noop)
		}
	})
	b.Run("impl=policy-abandon", func(b *testing.B) {
		run(b, resilience.For[int](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second, Abandon: true}))), false)
	})
}

// BenchmarkBulkhead: taking and giving back a free slot.
func BenchmarkBulkhead(b *testing.B) {
	both(b, func(b *testing.B) resilience.Policy[int] {
		return resilience.For[int](must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 64})))
	})
}

// BenchmarkRetrySuccess: a retry policy around a call that succeeds at
// once.
func BenchmarkRetrySuccess(b *testing.B) {
	run(b, resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))), false)
}

// BenchmarkBreakerReset: Reset of a breaker with a window of 100 and of
// 1,000,000 calls. The window is emptied in place, so the cost in bytes
// does not grow with it.
func BenchmarkBreakerReset(b *testing.B) {
	for _, size := range []int{100, 1_000_000} {
		b.Run("window="+strconv.Itoa(size), func(b *testing.B) {
			br := must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: size}))
			b.ReportAllocs()
			for b.Loop() {
				br.Reset()
			}
		})
	}
}

// BenchmarkGuard: a call through the gRPC preset's guard (timeout, retry,
// breaker, per-attempt timeout), with the caller's context bearing no
// deadline, and bearing one sooner than the guard's limits, under which
// the guard builds no timer.
func BenchmarkGuard(b *testing.B) {
	g := presets.GRPC()
	b.Run("ctx=background", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, g, noop)
		}
	})
	b.Run("ctx=sooner-deadline", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		g := must(resilience.Preset{
			Name:           "sooner",
			Timeout:        resilience.TimeoutConfig{Duration: 2 * time.Hour},
			Retry:          &resilience.RetryConfig{MaxRetries: 3},
			Breaker:        resilience.BreakerConfig{},
			AttemptTimeout: &resilience.TimeoutConfig{Duration: 2 * time.Hour},
		}.Build())
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, g, noop)
		}
	})
}

// BenchmarkGuardTimer: a guard's time limits beside what they are built
// on. A guard of a Timeout and a Breaker against one context.WithTimeout
// and its cancel; the gRPC preset's guard (a total and a per-attempt
// limit, a retry and its budget, a breaker) against two nested ones.
// Goal: within 1.1x.
func BenchmarkGuardTimer(b *testing.B) {
	ctx := context.Background()
	b.Run("impl=context.WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tctx, cancel := context.WithTimeout(ctx, time.Second)
			noop(tctx)
			cancel()
		}
	})
	g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{
		must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second})),
		must(resilience.NewBreaker(resilience.BreakerConfig{})),
	}}))
	b.Run("impl=guard", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, g, noop)
		}
	})
	b.Run("impl=context.WithTimeout-nested", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			actx, acancel := context.WithTimeout(tctx, 10*time.Second)
			noop(actx)
			acancel()
			cancel()
		}
	})
	grpc := presets.GRPC()
	b.Run("impl=grpc-preset", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, grpc, noop)
		}
	})
}

// BenchmarkRetryFailsTwice: a retry policy around a call that fails twice
// and then succeeds, with the shortest waits.
func BenchmarkRetryFailsTwice(b *testing.B) {
	r := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Nanosecond, MaxBackoff: time.Nanosecond})))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		r.Do(ctx, func(context.Context) (int, error) {
			if n++; n <= 2 {
				return 0, errBoom
			}
			return n, nil
		})
	}
}

// keyedContexts fills a keyed breaker with n keys and returns a context
// for each.
func keyedContexts(k *resilience.KeyedBreaker, n int) []context.Context {
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = resilience.WithKey(context.Background(), "10.0.0."+strconv.Itoa(i)+":443")
		resilience.Do(ctxs[i], k, noop)
	}
	return ctxs
}

// BenchmarkKeyedBreakerLookup: finding a key's breaker among 10,000 live
// keys, each call the next key. Goal: at most 40ns and no allocation on one
// goroutine, no worse than twice that with every core calling.
func BenchmarkKeyedBreakerLookup(b *testing.B) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{}))
	keys := make([]string, 10000)
	for i := range keys {
		keys[i] = "10.0.0." + strconv.Itoa(i) + ":443"
		k.Breaker(keys[i])
	}
	b.Run("goroutines=1", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			k.Breaker(keys[i])
			if i++; i == len(keys) {
				i = 0
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(3331)) % len(keys)
			for pb.Next() {
				k.Breaker(keys[i])
				if i++; i == len(keys) {
					i = 0
				}
			}
		})
	})
}

// BenchmarkKeyedBreaker: a call through a keyed breaker of 10,000 live
// keys, the key in ctx, each call the next key; against
// BenchmarkBreakerClosed, the lookup's cost.
func BenchmarkKeyedBreaker(b *testing.B) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{}))
	ctxs := keyedContexts(k, 10000)
	benchKeys(b, resilience.For[int](k), ctxs)
}

// benchKeys runs calls through p with the contexts ctxs in turn, from one
// goroutine and from every core.
func benchKeys(b *testing.B, p resilience.Policy[int], ctxs []context.Context) {
	b.Run("goroutines=1", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			p.Do(ctxs[i], noop)
			if i++; i == len(ctxs) {
				i = 0
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var seed atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.Add(3331)) % len(ctxs)
			for pb.Next() {
				p.Do(ctxs[i], noop)
				if i++; i == len(ctxs) {
					i = 0
				}
			}
		})
	})
}

// BenchmarkKeyedBulkhead: a call through a Keyed family of bulkheads with
// 10,000 live keys, the key in ctx, each call the next key; against
// BenchmarkBulkhead, the family's cost.
func BenchmarkKeyedBulkhead(b *testing.B) {
	k := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 64})
	}))
	ctxs := make([]context.Context, 10000)
	for i := range ctxs {
		ctxs[i] = resilience.WithKey(context.Background(), "tenant-"+strconv.Itoa(i))
		resilience.Do(ctxs[i], k, noop)
	}
	benchKeys(b, resilience.For[int](k), ctxs)
}

// BenchmarkChaos: a call through a chaos stage that spares it: switched
// off, and on at a rate of 0.1 (the 90% of calls it spares; the faulted
// ones return its error at once).
func BenchmarkChaos(b *testing.B) {
	off := must(resilience.NewChaos(resilience.ChaosConfig{Disabled: true, Seed: 1}))
	on := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.1, Seed: 1}))
	for _, c := range []struct {
		name  string
		chaos *resilience.Chaos
	}{{"off", off}, {"rate=0.1", on}} {
		p := resilience.For[int](c.chaos)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				p.Do(ctx, noop)
			}
		})
	}
}

// BenchmarkHedge: a call through a Hedge whose delay it never reaches,
// beside the same call through no stage: what hedging costs a call that
// does not need it (a cancellable context for the first attempt, a timer,
// a lock), with a caller's context that can end and one that cannot.
func BenchmarkHedge(b *testing.B) {
	h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "h", Delay: time.Hour}))
	cancellable, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []struct {
		name string
		p    resilience.Policy[int]
		ctx  context.Context
	}{
		{"none", resilience.For[int](), context.Background()},
		// What any hedge of a call on the caller's goroutine needs, and
		// nothing else: a context that a winning hedge can cancel, and
		// a timer.
		{"floor/WithCancel+AfterFunc", resilience.Compose[int](resilience.PolicyFunc[int](func(ctx context.Context, fn resilience.Func[int]) (int, error) {
			actx, cancel := context.WithCancel(ctx)
			defer cancel()
			t := time.AfterFunc(time.Hour, noopFire)
			defer t.Stop()
			return fn(actx)
		})), context.Background()},
		{"not-triggered/ctx=background", resilience.For[int](h), context.Background()},
		{"not-triggered/ctx=cancellable", resilience.For[int](h), cancellable},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.p.Do(c.ctx, noop)
			}
		})
	}
}

func noopFire() {}

// BenchmarkPushback: a call through a Pushback with no period in force.
func BenchmarkPushback(b *testing.B) {
	p := resilience.For[int](must(resilience.NewPushback(resilience.PushbackConfig{Name: "p"})))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p.Do(ctx, noop)
	}
}

// BenchmarkAdaptiveLimiter is an admitted call through an AdaptiveLimiter,
// and its Acquire and Release without a chain; Bulkhead is the same call
// through a fixed limit, for comparison. Parallel is the first on every
// core.
func BenchmarkAdaptiveLimiter(b *testing.B) {
	ctx := context.Background()
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{MaxLimit: 1 << 20, InitialLimit: 1 << 20}))
	b.Run("Do", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, l, ok)
		}
	})
	b.Run("Acquire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, _ := l.Acquire(ctx)
			p.Release()
		}
	})
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1 << 20}))
	b.Run("Bulkhead", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resilience.Do(ctx, bh, ok)
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resilience.Do(ctx, l, ok)
			}
		})
	})
}
