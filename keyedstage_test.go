package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// bulkheadPerKey is a family of bulkheads of one call each.
func bulkheadPerKey(t *testing.T, maxKeys int) *resilience.Keyed[*resilience.Bulkhead] {
	t.Helper()
	return must(resilience.NewKeyed(resilience.KeyedConfig{Name: "tenants", MaxKeys: maxKeys}, func(key string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "tenants", MaxConcurrent: 1})
	}))
}

// A bulkhead per tenant: one tenant holding its one slot is refused a
// second call, while another tenant's call goes through; the family
// counts the calls, and the bulkheads' rejections.
func TestKeyedBulkheadIsolatesKeys(t *testing.T) {
	k := bulkheadPerKey(t, 0)
	if k.Kind() != "keyed_bulkhead" || k.Name() != "tenants" {
		t.Errorf("Kind %q, Name %q", k.Kind(), k.Name())
	}
	p := resilience.For[int](k)
	a, b := resilience.WithKey(context.Background(), "a"), resilience.WithKey(context.Background(), "b")
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.Do(a, func(context.Context) (int, error) { close(entered); <-release; return 1, nil })
	}()
	<-entered
	if _, err := p.Do(a, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("a second call for a: %v, want the bulkhead's refusal", err)
	}
	if v, err := p.Do(b, func(context.Context) (int, error) { return 2, nil }); err != nil || v != 2 {
		t.Errorf("a call for b: %v, %v", v, err)
	}
	close(release)
	<-done
	st := k.Stats()
	want := resilience.Stats{
		Calls:  []resilience.Count{{Result: "calls", N: 3}, {Result: "rejected", N: 1}, {Result: "full", N: 0}},
		Gauges: []resilience.Gauge{{Name: "keys", Help: "Keys that have a stage.", Value: 3}}, // "", a, b
	}
	if d := testcheck.Diff(want, st); d != "" {
		t.Errorf("Stats: %s", d)
	}
	if _, ok := k.Lookup("a"); !ok || k.Len() != 3 {
		t.Errorf("Lookup(a) %v, Len %d", ok, k.Len())
	}
}

// A rate limiter per tenant: each tenant has its own quota, and the
// family's counts are the limiters' own, summed.
func TestKeyedRateLimiterPerTenant(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(key string) (*resilience.RateLimiter, error) {
			return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "per-tenant", Rate: 10, Burst: 2})
		}))
		if k.Kind() != "keyed_rate_limit" || k.Name() != "per-tenant" {
			t.Errorf("Kind %q, Name %q", k.Kind(), k.Name())
		}
		p := resilience.For[int](k)
		ok := map[string]int{}
		for range 5 {
			for _, tenant := range []string{"a", "b"} {
				if _, err := p.Do(resilience.WithKey(context.Background(), tenant), func(context.Context) (int, error) { return 1, nil }); err == nil {
					ok[tenant]++
				} else if !errors.Is(err, resilience.ErrRateLimited) {
					t.Fatalf("tenant %s: %v", tenant, err)
				}
			}
		}
		if ok["a"] != 2 || ok["b"] != 2 {
			t.Errorf("admitted %v, want each tenant its burst of 2", ok)
		}
		var admitted, rejected uint64
		for _, c := range k.Stats().Calls {
			switch c.Result {
			case "admitted":
				admitted = c.N
			case "rejected":
				rejected = c.N
			}
		}
		if admitted != 4 || rejected != 6 {
			t.Errorf("Stats %+v, want 4 admitted and 6 rejected", k.Stats().Calls)
		}
	})
}

// KeyedConfig.Key gives the family a key of its own, apart from the one
// WithKey carries for a KeyedBreaker.
func TestKeyedOwnKey(t *testing.T) {
	type tenantKey struct{}
	k := must(resilience.NewKeyed(resilience.KeyedConfig{Key: func(ctx context.Context) string {
		s, _ := ctx.Value(tenantKey{}).(string)
		return s
	}}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	ctx := context.WithValue(resilience.WithKey(context.Background(), "http://host:80"), tenantKey{}, "acme")
	resilience.For[int](k).Do(ctx, func(context.Context) (int, error) { return 1, nil })
	if _, ok := k.Lookup("acme"); !ok {
		t.Error("no stage for the tenant")
	}
	if _, ok := k.Lookup("http://host:80"); ok {
		t.Error("a stage for the host key")
	}
}

// 1,000,000 distinct keys (200,000 under the race detector) through a
// family of at most 1,000: it keeps at most 1,000 stages, its memory stays
// bounded, its counts only grow, and no goroutine is left behind.
func TestKeyedBoundsItsKeys(t *testing.T) {
	calls := 1_000_000
	if raceEnabled {
		calls = 200_000
	}
	k := bulkheadPerKey(t, 1000)
	p := resilience.For[int](k)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var last uint64
	for i := range calls {
		p.Do(resilience.WithKey(context.Background(), "tenant-"+strconv.Itoa(i)), func(context.Context) (int, error) { return 1, nil })
		if k.Len() > 1000 {
			t.Fatalf("after %d keys: %d live, want at most 1000", i+1, k.Len())
		}
		if i%10000 == 0 {
			n := k.Stats().Calls[0].N
			if n < last {
				t.Fatalf("admitted went down: %d after %d", n, last)
			}
			last = n
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapInuse) - int64(before.HeapInuse); grown > 8<<20 {
		t.Errorf("heap grew %d bytes over %d keys, want it bounded by the 1000 live ones", grown, calls)
	}
	if n := k.Stats().Calls[0].N; n != uint64(calls) {
		t.Errorf("calls %d, want %d (the evicted keys' counts kept)", n, calls)
	}
	testcheck.VerifyNone(t)
}

// A key with a call running through its stage is not evicted, so that a
// key's bulkhead is never two at once.
func TestKeyedDoesNotEvictABusyKey(t *testing.T) {
	k := bulkheadPerKey(t, 2)
	p := resilience.For[int](k)
	busy := resilience.WithKey(context.Background(), "busy")
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		p.Do(busy, func(context.Context) (int, error) { close(entered); <-release; return 1, nil })
	}()
	<-entered
	for i := range 50 {
		p.Do(resilience.WithKey(context.Background(), "k"+strconv.Itoa(i)), func(context.Context) (int, error) { return 1, nil })
	}
	if _, err := p.Do(busy, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("a second call for the busy key after 50 others: %v, want its bulkhead (still the same, full) to refuse it", err)
	}
	close(release)
	<-done
}

// New runs with no lock of the family held: a New that reads the family
// does not deadlock. A panic in a call gives the stage's permit back.
func TestKeyedNewRunsUnlocked(t *testing.T) {
	var k *resilience.Keyed[*resilience.Bulkhead]
	k = must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) {
		if k != nil {
			k.Stats()
			k.Len()
		}
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	p := resilience.For[int](k)
	ctx := resilience.WithKey(context.Background(), "x")
	func() {
		defer func() { recover() }()
		p.Do(ctx, func(context.Context) (int, error) { panic("boom") })
	}()
	if _, err := p.Do(ctx, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Errorf("after a panic: %v, want the bulkhead's slot given back", err)
	}
}

// Bad configuration is an error naming what is wrong; a stage of a sort
// that makes no sense per key is refused, naming what to use.
func TestKeyedConfig(t *testing.T) {
	bh := func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{MaxKeys: -1}, bh); err == nil || !strings.Contains(err.Error(), "MaxKeys") {
		t.Errorf("MaxKeys -1: %v", err)
	}
	if _, err := resilience.NewKeyed[*resilience.Bulkhead](resilience.KeyedConfig{}, nil); err == nil || !strings.Contains(err.Error(), "New") {
		t.Errorf("nil New: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{})
	}); err == nil || !strings.Contains(err.Error(), "MaxConcurrent") {
		t.Errorf("a New that fails: %v, want its error", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("a nil stage: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (resilience.Stage, error) { return nil, nil }); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("a nil Stage: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Breaker, error) {
		return resilience.NewBreaker(resilience.BreakerConfig{})
	}); err == nil || !strings.Contains(err.Error(), "NewKeyedBreaker") {
		t.Errorf("breakers: %v, want NewKeyedBreaker named", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.RetryBudget, error) {
		return resilience.NewRetryBudget(resilience.RetryBudgetConfig{})
	}); err == nil || !strings.Contains(err.Error(), "RetryBudget") {
		t.Errorf("budgets: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Hedge, error) {
		return resilience.NewHedge(resilience.HedgeConfig{Delay: time.Millisecond})
	}); err == nil || !strings.Contains(err.Error(), "*resilience.Hedge") {
		t.Errorf("hedges: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Latency, error) {
		return resilience.NewLatency(resilience.LatencyConfig{})
	}); err == nil || !strings.Contains(err.Error(), "*resilience.Latency") {
		t.Errorf("latency models: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Guard, error) {
		return resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{must(bh(""))}})
	}); err == nil || !strings.Contains(err.Error(), "*Guard") {
		t.Errorf("guards: %v", err)
	}
	inner := must(resilience.NewKeyed(resilience.KeyedConfig{}, bh))
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Keyed[*resilience.Bulkhead], error) { return inner, nil }); err == nil || !strings.Contains(err.Error(), "families") {
		t.Errorf("a family of families: %v", err)
	}
	if _, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*callsStage, error) { return &callsStage{}, nil }); err == nil || !strings.Contains(err.Error(), `"calls"`) {
		t.Errorf("a stage counting \"calls\" itself: %v", err)
	}
	// A key whose stage New cannot make: the call's error says so, and
	// the call is not run.
	k := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(key string) (*resilience.Bulkhead, error) {
		if key == "xy" {
			return resilience.NewBulkhead(resilience.BulkheadConfig{}) // MaxConcurrent missing
		}
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	ran := false
	_, err := resilience.For[int](k).Do(resilience.WithKey(context.Background(), "xy"), func(context.Context) (int, error) { ran = true; return 1, nil })
	if err == nil || ran || !strings.Contains(err.Error(), `"xy"`) {
		t.Errorf("a key New refuses: %v (ran %v), want an error naming the key", err, ran)
	}
	var zero resilience.Keyed[*resilience.Bulkhead]
	if err := zero.Run(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero Keyed: %v", err)
	}
}

// Many goroutines over a few keys, with eviction: no call runs through a
// stage of a key while another of the same key's stages runs one (each
// bulkhead holds one call, and the family's calls for a key never
// overlap), and the counts add up.
func TestKeyedConcurrent(t *testing.T) {
	k := bulkheadPerKey(t, 4)
	p := resilience.For[int](k)
	var running [8]atomic.Int32
	var overlap atomic.Bool
	var wg sync.WaitGroup
	var calls, full atomic.Uint64
	// Stats, read all along, never goes down while keys are evicted.
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		var last uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := k.Stats().Calls[0].N
			if n < last {
				t.Errorf("calls went down from %d to %d", last, n)
				return
			}
			last = n
		}
	}()
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				key := (g + i) % 8
				calls.Add(1)
				_, err := p.Do(resilience.WithKey(context.Background(), strconv.Itoa(key)), func(context.Context) (int, error) {
					if running[key].Add(1) > 1 {
						overlap.Store(true)
					}
					runtime.Gosched()
					running[key].Add(-1)
					return 1, nil
				})
				var fe *resilience.KeyedFullError
				if errors.As(err, &fe) {
					full.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watched
	if overlap.Load() {
		t.Error("two calls of one key ran at once through bulkheads of one call")
	}
	if full.Load() != k.Stats().Calls[2].N {
		t.Errorf("%d calls refused as full, Stats counts %d", full.Load(), k.Stats().Calls[2].N)
	}
	st := k.Stats()
	if n := st.Calls[0].N + st.Calls[2].N; n != calls.Load() || k.Len() > 4 {
		t.Errorf("counted %d of %d calls; %d keys live", n, calls.Load(), k.Len())
	}
}

// callsStage is a stage whose Stats count a result the family counts too.
type callsStage struct{}

func (*callsStage) Name() string { return "c" }
func (*callsStage) Kind() string { return "calls_stage" }
func (*callsStage) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}
func (*callsStage) Stats() resilience.Stats {
	return resilience.Stats{Calls: []resilience.Count{{Result: "calls"}}}
}

// A call for a new key whose context has ended makes no stage and evicts
// no other key's.
func TestKeyedEndedCallMakesNothing(t *testing.T) {
	made := 0
	k := must(resilience.NewKeyed(resilience.KeyedConfig{MaxKeys: 1}, func(string) (*resilience.Bulkhead, error) {
		made++
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	ctx, cancel := context.WithCancel(resilience.WithKey(context.Background(), "late"))
	cancel()
	if _, err := resilience.Do(ctx, k, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("an ended call for a new key: %v, want its context's error", err)
	}
	if _, ok := k.Lookup(""); !ok || made != 1 || k.Len() != 1 {
		t.Errorf("after an ended call: made %d stages, %d keys, the first key kept %v; want nothing changed", made, k.Len(), ok)
	}
}
