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

// callTag marks the context of a call, so that a test sees which call's
// context an event came with.
type callTag struct{}

// events records the events of stages, and the tag of each one's context.
type events struct {
	mu   sync.Mutex
	got  []resilience.Event
	tags []any
}

func (r *events) observe(ctx context.Context, e resilience.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
	r.tags = append(r.tags, ctx.Value(callTag{}))
}

func (r *events) take() ([]resilience.Event, []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, t := r.got, r.tags
	r.got, r.tags = nil, nil
	return g, t
}

// want checks the events recorded, their errors with match, and that each
// came with the context tagged tag.
func (r *events) want(t *testing.T, tag any, want []resilience.Event, match ...func(error) bool) {
	t.Helper()
	got, tags := r.take()
	if len(got) != len(want) {
		t.Fatalf("%d events: %+v, want %d: %+v", len(got), got, len(want), want)
	}
	for i := range got {
		g, w := got[i], want[i]
		gerr := g.Err
		g.Err, w.Err = nil, nil
		if g != w {
			t.Errorf("event %d: %+v, want %+v", i, g, w)
		}
		if i < len(match) && match[i] != nil && !match[i](gerr) {
			t.Errorf("event %d: error %v is not the one expected", i, gerr)
		}
		if tags[i] != tag {
			t.Errorf("event %d came with the context of %v, want %v", i, tags[i], tag)
		}
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func TestEventsOfARetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2, InitialBackoff: 10 * time.Millisecond, BackoffMultiplier: 2}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, retry); err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), callTag{}, "call")
		start := time.Now()
		_, err := resilience.Do(ctx, retry, answering(errDown))
		if !errors.Is(err, resilience.ErrRetriesExhausted) {
			t.Fatalf("err %v, want ErrRetriesExhausted", err)
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("the call took %v, want the two waits, 30ms", d)
		}
		rec.want(t, "call", []resilience.Event{
			{Type: resilience.EventRetry, Kind: "retry", Name: "users", Attempt: 1, Delay: 10 * time.Millisecond},
			{Type: resilience.EventRetry, Kind: "retry", Name: "users", Attempt: 2, Delay: 20 * time.Millisecond},
			{Type: resilience.EventGaveUp, Kind: "retry", Name: "users", Attempt: 3},
		}, is(errDown), is(errDown), is(resilience.ErrRetriesExhausted))

		// A call that succeeds on its second attempt reports the retry
		// alone; one that succeeds at once reports nothing.
		fails := 1
		resilience.Do(ctx, retry, func(context.Context) (int, error) {
			if fails > 0 {
				fails--
				return 0, errDown
			}
			return 1, nil
		})
		rec.want(t, "call", []resilience.Event{{Type: resilience.EventRetry, Kind: "retry", Name: "users", Attempt: 1, Delay: 10 * time.Millisecond}})
		resilience.Do(ctx, retry, answering(nil))
		rec.want(t, "call", nil)

		// A permanent error on the first attempt is no retry given up.
		resilience.Do(ctx, retry, answering(resilience.Permanent(errDown)))
		rec.want(t, "call", nil)
	})
}

func TestEventsOfARetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 3, NoBackoff: true}))
		budget := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Name: "users-budget", Ratio: 0.01, MinPerSecond: 0.01}))
		var rec events
		guard := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry, budget}}))
		if err := resilience.ObserveEvents(rec.observe, guard); err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), callTag{}, 7)
		// The floor lends a budget with no traffic yet a fraction of a
		// retry: none to spend.
		_, err := resilience.Do(ctx, guard, answering(errDown))
		if !errors.Is(err, resilience.ErrRetryBudget) {
			t.Fatalf("err %v, want ErrRetryBudget", err)
		}
		rec.want(t, 7, []resilience.Event{
			{Type: resilience.EventRejected, Kind: "retry_budget", Name: "users-budget", Attempt: 1},
			{Type: resilience.EventGaveUp, Kind: "retry", Name: "users", Attempt: 1},
		}, is(resilience.ErrRetryBudget), is(resilience.ErrRetryBudget))
	})
}

func TestEventsOfRejections(t *testing.T) {
	ctx := context.WithValue(context.Background(), callTag{}, "c")
	t.Run("breaker", func(t *testing.T) {
		b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db"}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, b); err != nil {
			t.Fatal(err)
		}
		resilience.Do(ctx, b, answering(errDown)) // a failure: no event
		rec.want(t, "c", nil)
		b.ForceOpen()
		resilience.Do(ctx, b, answering(nil))
		if _, err := b.Allow(ctx); err == nil {
			t.Fatal("Allow let a call through an open breaker")
		}
		open := resilience.Event{Type: resilience.EventRejected, Kind: "breaker", Name: "db"}
		rec.want(t, "c", []resilience.Event{open, open}, is(resilience.ErrOpen), is(resilience.ErrOpen))
	})
	t.Run("keyed breaker", func(t *testing.T) {
		k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts", MaxEjectedPercent: 100}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, k); err != nil {
			t.Fatal(err)
		}
		k.Breaker("a").ForceOpen()
		resilience.Do(resilience.WithKey(ctx, "b"), k, answering(nil))
		resilience.Do(resilience.WithKey(ctx, "a"), k, answering(nil))
		rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "keyed_breaker", Name: "hosts", Key: "a"}}, is(resilience.ErrOpen))
	})
	t.Run("a key's own breaker", func(t *testing.T) {
		k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts", MaxEjectedPercent: 100}))
		var fam, own events
		if err := resilience.ObserveEvents(fam.observe, k); err != nil {
			t.Fatal(err)
		}
		b := k.Breaker("a")
		if err := resilience.ObserveEvents(own.observe, b); err != nil {
			t.Fatal(err)
		}
		b.ForceOpen()
		resilience.Do(resilience.WithKey(ctx, "a"), k, answering(nil))
		fam.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "keyed_breaker", Name: "hosts", Key: "a"}}, is(resilience.ErrOpen))
		own.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "breaker", Name: "hosts", Key: "a"}}, is(resilience.ErrOpen))
	})
	t.Run("half-open, its probes taken", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), callTag{}, "c")
			b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db", FailureThreshold: 1, OpenTimeout: time.Second, HalfOpenProbes: 1}))
			var rec events
			if err := resilience.ObserveEvents(rec.observe, b); err != nil {
				t.Fatal(err)
			}
			resilience.Do(ctx, b, answering(errDown))
			time.Sleep(time.Second)
			synctest.Wait()
			resilience.Do(ctx, b, func(ctx context.Context) (int, error) { return resilience.Do(ctx, b, answering(nil)) })
			rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "breaker", Name: "db"}}, is(resilience.ErrOpen))
		})
	})
	t.Run("rate limiter, too long a wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), callTag{}, "c")
			l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "api", Rate: 1, Burst: 1, MaxWait: 100 * time.Millisecond}))
			fam := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "tenants"}, func(string) (*resilience.RateLimiter, error) {
				return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "tenant", Rate: 1, Burst: 1})
			}))
			var rec events
			if err := resilience.ObserveEvents(rec.observe, l, fam); err != nil {
				t.Fatal(err)
			}
			resilience.Do(ctx, l, answering(nil))
			resilience.Do(ctx, l, answering(nil)) // a token in 1s: longer than MaxWait
			resilience.Do(resilience.WithKey(ctx, "t1"), fam, answering(nil))
			resilience.Do(resilience.WithKey(ctx, "t1"), fam, answering(nil))
			rec.want(t, "c", []resilience.Event{
				{Type: resilience.EventRejected, Kind: "rate_limit", Name: "api"},
				{Type: resilience.EventRejected, Kind: "keyed_rate_limit", Name: "tenants", Key: "t1"},
			}, is(resilience.ErrRateLimited), is(resilience.ErrRateLimited))
		})
	})
	t.Run("bulkhead", func(t *testing.T) {
		b := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "pool", MaxConcurrent: 1}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, b); err != nil {
			t.Fatal(err)
		}
		resilience.Do(ctx, b, func(ctx context.Context) (int, error) {
			_, err := resilience.Do(ctx, b, answering(nil))
			return 0, err
		})
		rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "bulkhead", Name: "pool"}}, is(resilience.ErrBulkheadFull))
	})
	t.Run("bulkhead after a wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), callTag{}, "c")
			b := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "pool", MaxConcurrent: 1, MaxWait: time.Second}))
			var rec events
			if err := resilience.ObserveEvents(rec.observe, b); err != nil {
				t.Fatal(err)
			}
			resilience.Do(ctx, b, func(ctx context.Context) (int, error) {
				_, err := resilience.Do(ctx, b, answering(nil))
				return 0, err
			})
			rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "bulkhead", Name: "pool"}}, is(resilience.ErrBulkheadFull))
		})
	})
	t.Run("rate limiter", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), callTag{}, "c")
			l := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "api", Rate: 1, Burst: 1}))
			var rec events
			if err := resilience.ObserveEvents(rec.observe, l); err != nil {
				t.Fatal(err)
			}
			resilience.Do(ctx, l, answering(nil))
			resilience.Do(ctx, l, answering(nil))
			rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "rate_limit", Name: "api"}}, is(resilience.ErrRateLimited))
		})
	})
	t.Run("throttler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(context.Background(), callTag{}, "c")
			th := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "users", K: 1}))
			var rec events
			if err := resilience.ObserveEvents(rec.observe, th); err != nil {
				t.Fatal(err)
			}
			for range 1000 { // p = 1000/1001: nearly every call after these is rejected
				resilience.Do(ctx, th, answering(errOverloaded))
			}
			rec.take()
			rejected := 0
			for range 100 {
				if _, err := resilience.Do(ctx, th, answering(errOverloaded)); errors.Is(err, resilience.ErrThrottled) {
					rejected++
				}
			}
			if rejected == 0 {
				t.Fatal("the throttler rejected nothing")
			}
			got, tags := rec.take()
			if len(got) != rejected {
				t.Fatalf("%d events for %d rejections", len(got), rejected)
			}
			for i, e := range got {
				if e.Type != resilience.EventRejected || e.Kind != "throttle" || e.Name != "users" || !errors.Is(e.Err, resilience.ErrThrottled) || tags[i] != "c" {
					t.Fatalf("event %+v (context %v), want a rejection by throttler users", e, tags[i])
				}
			}
		})
	})
	t.Run("keyed family", func(t *testing.T) {
		fam := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "tenants", MaxKeys: 1}, func(key string) (*resilience.Bulkhead, error) {
			return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "tenant", MaxConcurrent: 1})
		}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, fam); err != nil {
			t.Fatal(err)
		}
		// While tenant a's call runs, a second call of a's is turned away
		// by a's bulkhead, and b's finds the family full.
		resilience.Do(resilience.WithKey(ctx, "a"), fam, func(context.Context) (int, error) {
			resilience.Do(resilience.WithKey(ctx, "a"), fam, answering(nil))
			resilience.Do(resilience.WithKey(ctx, "b"), fam, answering(nil))
			return 0, nil
		})
		rec.want(t, "c", []resilience.Event{
			{Type: resilience.EventRejected, Kind: "keyed_bulkhead", Name: "tenants", Key: "a"},
			{Type: resilience.EventRejected, Kind: "keyed_bulkhead", Name: "tenants", Key: "b"},
		}, is(resilience.ErrBulkheadFull), func(err error) bool {
			var full *resilience.KeyedFullError
			return errors.As(err, &full) && full.Key == "b"
		})
	})
}

func TestEventsOfATimeout(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(map[bool]string{false: "cooperative", true: "abandon"}[abandon], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "slow", Duration: time.Second, Abandon: abandon}))
				var rec events
				if err := resilience.ObserveEvents(rec.observe, timeout); err != nil {
					t.Fatal(err)
				}
				ctx := context.WithValue(context.Background(), callTag{}, "c")
				resilience.Do(ctx, timeout, answering(errDown)) // a failure in time: no event
				_, err := resilience.Do(ctx, timeout, func(ctx context.Context) (int, error) {
					<-ctx.Done()
					return 0, ctx.Err()
				})
				if !errors.Is(err, resilience.ErrTimeout) {
					t.Fatalf("err %v, want ErrTimeout", err)
				}
				rec.want(t, "c", []resilience.Event{{Type: resilience.EventTimeout, Kind: "timeout", Name: "slow"}}, is(resilience.ErrTimeout))
				synctest.Wait()
			})
		})
	}
}

func TestEventsOfChaos(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		chaos := must(resilience.NewChaos(resilience.ChaosConfig{Name: "drill", Rate: 1, Latency: 50 * time.Millisecond}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, chaos); err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), callTag{}, "c")
		resilience.Do(ctx, chaos, answering(nil))
		rec.want(t, "c", []resilience.Event{{Type: resilience.EventChaos, Kind: "chaos", Name: "drill", Delay: 50 * time.Millisecond}}, is(resilience.ErrChaos))
		chaos.Disable()
		resilience.Do(ctx, chaos, answering(nil))
		rec.want(t, "c", nil)
	})
}

// A guard's stages all report to an observer given the guard, and a
// call that runs as usual reports nothing.
func TestObserveEventsOfAGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "g"}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "g", MaxRetries: 1, NoBackoff: true}))
		timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "g", Duration: time.Second}))
		guard := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{timeout, retry, breaker}}))
		var rec events
		if err := resilience.ObserveEvents(rec.observe, guard); err != nil {
			t.Fatal(err)
		}
		ctx := context.WithValue(context.Background(), callTag{}, "c")
		for range 10 {
			resilience.Do(ctx, guard, answering(nil))
		}
		rec.want(t, "c", nil)
		breaker.ForceOpen()
		resilience.Do(ctx, guard, answering(nil))
		rec.want(t, "c", []resilience.Event{{Type: resilience.EventRejected, Kind: "breaker", Name: "g"}}, is(resilience.ErrOpen))
	})
}

// plain is a stage that reports no events.
type plain struct{}

func (plain) Name() string { return "plain" }
func (plain) Kind() string { return "plain" }
func (plain) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

func TestObserveEventsErrors(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	noop := func(context.Context, resilience.Event) {}
	for _, c := range []struct {
		name   string
		f      func(context.Context, resilience.Event)
		stages []resilience.Stage
		want   string
	}{
		{"nil func", nil, []resilience.Stage{b}, "ObserveEvents"},
		{"no stage", noop, nil, "no stage given"},
		{"nil stage", noop, []resilience.Stage{b, nil}, "stage 1 is nil"},
		{"nil breaker", noop, []resilience.Stage{(*resilience.Breaker)(nil)}, "stage 0 is nil"},
		{"zero guard", noop, []resilience.Stage{&resilience.Guard{}}, "stage 0"},
		{"no events", noop, []resilience.Stage{plain{}}, `"plain" of kind "plain"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls := 0
			f := c.f
			if f != nil {
				f = func(context.Context, resilience.Event) { calls++ }
			}
			err := resilience.ObserveEvents(f, c.stages...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one saying %q", err, c.want)
			}
			// Nothing was added: an open breaker's rejection reaches no one.
			b.ForceOpen()
			resilience.Do(context.Background(), b, answering(nil))
			b.Reset()
			if calls != 0 {
				t.Errorf("an observer was added despite the error")
			}
		})
	}
}

// Put what the stages of a guard do to a call where that call's other
// records go: here printed, in a service on its span or in its log line.
func ExampleObserveEvents() {
	retry, _ := resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2, NoBackoff: true})
	guard, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry}})
	err := resilience.ObserveEvents(func(ctx context.Context, e resilience.Event) {
		fmt.Printf("%s %s %q attempt %d: %v\n", e.Type, e.Kind, e.Name, e.Attempt, e.Err)
	}, guard)
	if err != nil {
		panic(err)
	}
	resilience.Do(context.Background(), guard, func(context.Context) (int, error) { return 0, errors.New("unavailable") })
	// Output:
	// retry retry "users" attempt 1: unavailable
	// retry retry "users" attempt 2: unavailable
	// gave_up retry "users" attempt 3: resilience: retry "users" gave up after 3 attempts: unavailable
}
