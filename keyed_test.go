package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// keyedCall runs one call through k with key in ctx, failing if fails.
func keyedCall(k resilience.Stage, key string, fails bool) error {
	_, err := resilience.Do(resilience.WithKey(context.Background(), key), k, func(context.Context) (int, error) {
		if fails {
			return 0, errBoom
		}
		return 1, nil
	})
	return err
}

// TestKeyedBreakerIsolatesKeys: one key of ten failing every call opens
// its own breaker after FailureThreshold failures; the other nine see no
// rejection and no failure but their own (none).
func TestKeyedBreakerIsolatesKeys(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts"}))
	var rejected, failed [10]int
	for round := range 100 {
		for h := range 10 {
			err := keyedCall(k, fmt.Sprintf("host-%d", h), h == 3)
			switch {
			case errors.Is(err, resilience.ErrRejected):
				rejected[h]++
				if h == 3 && round < resilience.DefaultFailureThreshold {
					t.Errorf("host-3 rejected in round %d, before its threshold", round)
				}
			case err != nil:
				failed[h]++
			}
		}
	}
	for h := range 10 {
		if h == 3 {
			continue
		}
		if rejected[h] != 0 || failed[h] != 0 {
			t.Errorf("host-%d: %d rejected, %d failed; want 0, 0", h, rejected[h], failed[h])
		}
	}
	if failed[3] != resilience.DefaultFailureThreshold || rejected[3] != 100-resilience.DefaultFailureThreshold {
		t.Errorf("host-3: %d failed, %d rejected; want %d, %d", failed[3], rejected[3], resilience.DefaultFailureThreshold, 100-resilience.DefaultFailureThreshold)
	}
	if s := k.Lookup; true {
		b, ok := s("host-3")
		if !ok || b.State() != resilience.Open {
			t.Errorf("host-3's breaker: %v, %v; want open", b, ok)
		}
	}
	if k.Len() != 10 || k.Ejected() != 1 {
		t.Errorf("Len %d, Ejected %d; want 10, 1", k.Len(), k.Ejected())
	}
	var oe *resilience.OpenError
	err := keyedCall(k, "host-3", false)
	if !errors.As(err, &oe) || oe.Key != "host-3" || oe.Name != "hosts" || !strings.Contains(err.Error(), `"hosts" for key "host-3" is open`) {
		t.Errorf("rejection: %v (%+v); want an OpenError naming hosts and host-3", err, oe)
	}
}

// TestKeyedBreakerEjectionCap: with 5 of 10 keys failing and a 30% cap, at
// most 3 breakers are open at any moment; the other failing keys stay
// closed and say so (capped, OnCapped once per period); when an open key
// recovers, a held key may open in its place.
func TestKeyedBreakerEjectionCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []resilience.CappedEvent
		var mu sync.Mutex
		k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
			Name:              "hosts",
			Breaker:           resilience.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Second, SuccessThreshold: 1},
			MaxEjectedPercent: 30,
			OnCapped: func(e resilience.CappedEvent) {
				mu.Lock()
				events = append(events, e)
				mu.Unlock()
			},
		}))
		failing := func(h int) bool { return h < 5 }
		maxOpen := 0
		for range 50 {
			for h := range 10 {
				keyedCall(k, fmt.Sprintf("h%d", h), failing(h))
				open := 0
				for _, ks := range k.Keys() {
					if ks.State != resilience.Closed {
						open++
					}
				}
				maxOpen = max(maxOpen, open)
				if open != k.Ejected() {
					t.Fatalf("%d keys not closed, Ejected() = %d", open, k.Ejected())
				}
			}
		}
		if maxOpen != 3 || k.EjectionLimit() != 3 {
			t.Fatalf("at most %d open, limit %d; want 3, 3", maxOpen, k.EjectionLimit())
		}
		// h0, h1 and h2 opened first; h3 and h4 were held, once each.
		mu.Lock()
		got := fmt.Sprint(events)
		mu.Unlock()
		if want := "[{hosts h3 3 3} {hosts h4 3 3}]"; got != want {
			t.Errorf("OnCapped events %s, want %s", got, want)
		}
		capped := statsCount(k, "capped")
		// h3 and h4 each failed 50 times, the first 2 of them below the
		// threshold: 48 capped failures each.
		if capped != 96 {
			t.Errorf("capped %d, want 96", capped)
		}

		// h0 recovers: after its open timeout a probe closes it, and the
		// slot it frees goes to the next held key to fail.
		time.Sleep(time.Second)
		synctest.Wait()
		if err := keyedCall(k, "h0", false); err != nil {
			t.Fatalf("h0's probe: %v", err)
		}
		if b, _ := k.Lookup("h0"); b.State() != resilience.Closed {
			t.Fatalf("h0 after a good probe: %v", b.State())
		}
		if k.Ejected() != 2 {
			t.Fatalf("Ejected %d after h0 closed, want 2", k.Ejected())
		}
		keyedCall(k, "h3", true)
		if b, _ := k.Lookup("h3"); b.State() != resilience.Open || k.Ejected() != 3 {
			t.Errorf("h3 after a slot freed: %v, Ejected %d; want open, 3", b.State(), k.Ejected())
		}
		// ForceOpen goes past the cap; Reset gives the slot back.
		b5 := k.Breaker("h5")
		b5.ForceOpen()
		if k.Ejected() != 4 {
			t.Errorf("Ejected %d after ForceOpen beyond the cap, want 4", k.Ejected())
		}
		b5.Reset()
		if k.Ejected() != 3 {
			t.Errorf("Ejected %d after Reset, want 3", k.Ejected())
		}
	})
}

func statsCount(s resilience.Observable, result string) uint64 {
	for _, c := range s.Stats().Calls {
		if c.Result == result {
			return c.N
		}
	}
	panic("no result " + result)
}

// TestKeyedBreakerOneKeyMayAlwaysOpen: the cap rounds down but lets one
// key open, so a family with a single key is a plain breaker.
func TestKeyedBreakerOneKeyMayAlwaysOpen(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "one"}))
	for range resilience.DefaultFailureThreshold {
		keyedCall(k, "", true)
	}
	if err := keyedCall(k, "", false); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("after %d failures: %v, want ErrOpen", resilience.DefaultFailureThreshold, err)
	}
	if k.EjectionLimit() != 1 || k.Ejected() != 1 {
		t.Errorf("limit %d, ejected %d; want 1, 1", k.EjectionLimit(), k.Ejected())
	}
	// No key in ctx is the key "".
	if _, err := resilience.Do(context.Background(), k, ok); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("a call with no key: %v, want the key \"\"'s breaker's ErrOpen", err)
	}
}

// TestKeyedBreakerBoundedMemory sends a million distinct keys through a
// family of 1000: it keeps 1000, its heap stays bounded, and the open
// breakers it evicted leave no timer or goroutine behind.
func TestKeyedBreakerBoundedMemory(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:              "tenants",
		MaxKeys:           1000,
		MaxEjectedPercent: 100,
		Breaker:           resilience.BreakerConfig{FailureThreshold: 1},
	}))
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// Fill the family, then measure.
	for i := range 1000 {
		keyedCall(k, fmt.Sprint("warm-", i), false)
	}
	before := heap()
	for i := range 1_000_000 {
		// Every 10th key fails and opens its breaker, whose timer the
		// eviction must stop.
		keyedCall(k, fmt.Sprint("tenant-", i), i%10 == 0)
	}
	after := heap()
	if k.Len() != 1000 {
		t.Errorf("Len %d, want 1000", k.Len())
	}
	if grown := int64(after) - int64(before); grown > 4<<20 {
		t.Errorf("heap grew by %d bytes over a million keys, want under 4 MiB (bounded by MaxKeys)", grown)
	}
	if open := k.Ejected(); open < 1 || open > 1000 {
		t.Errorf("Ejected %d, want within 1..1000", open)
	}
	total := statsCount(k, "success") + statsCount(k, "failure")
	if total != 1_001_000 {
		t.Errorf("success+failure = %d, want every call counted: 1001000", total)
	}
	testcheck.VerifyNone(t)
}

// TestKeyedBreakerEvictsLeastUsed: the CLOCK passes over a key used since
// the hand last passed, and evicting an open key gives its ejection slot
// back.
func TestKeyedBreakerEvictsLeastUsed(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name: "k", MaxKeys: 3, MaxEjectedPercent: 100, Breaker: resilience.BreakerConfig{FailureThreshold: 1},
	}))
	keyedCall(k, "a", true) // a opens
	keyedCall(k, "b", false)
	keyedCall(k, "c", false)
	keyedCall(k, "d", false) // clears every mark, then evicts a, under the hand
	if _, ok := k.Lookup("a"); ok {
		t.Error("a survived; want it evicted")
	}
	if k.Ejected() != 0 {
		t.Errorf("Ejected %d after evicting the open key, want 0", k.Ejected())
	}
	// Ring [d b c], hand on b; d, new, counts as used.
	keyedCall(k, "b", false) // b used again
	keyedCall(k, "e", false) // passes b, evicts c
	if _, ok := k.Lookup("c"); ok {
		t.Error("c survived; want it evicted")
	}
	for _, key := range []string{"b", "d", "e"} {
		if _, ok := k.Lookup(key); !ok {
			t.Errorf("%s evicted", key)
		}
	}
	if k.Len() != 3 {
		t.Errorf("Len %d, want 3", k.Len())
	}
}

// TestKeyedBreakerStateChangeKey: the per-key breakers report their
// transitions through Breaker.OnStateChange with their key.
func TestKeyedBreakerStateChangeKey(t *testing.T) {
	var got []string
	var mu sync.Mutex
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Breaker: resilience.BreakerConfig{Name: "svc", FailureThreshold: 1, OnStateChange: func(c resilience.StateChange) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s/%s %v→%v", c.Name, c.Key, c.From, c.To))
			mu.Unlock()
		}},
	}))
	keyedCall(k, "x", true)
	k.Breaker("x").Reset()
	mu.Lock()
	defer mu.Unlock()
	if want := "[svc/x closed→open svc/x open→closed]"; fmt.Sprint(got) != want {
		t.Errorf("state changes %v, want %s", got, want)
	}
	if k.Name() != "svc" || k.Kind() != resilience.KindKeyedBreaker {
		t.Errorf("Name %q Kind %q", k.Name(), k.Kind())
	}
}

// TestKeyedBreakerStats: the family counts every key's calls, evicted
// keys' included, and each key's own.
func TestKeyedBreakerStats(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name: "s", MaxKeys: 2, MaxEjectedPercent: 100, Breaker: resilience.BreakerConfig{FailureThreshold: 2},
	}))
	keyedCall(k, "a", false)
	keyedCall(k, "a", true)
	keyedCall(k, "a", true) // opens
	keyedCall(k, "a", false)
	keyedCall(k, "b", false)
	got := fmt.Sprint(k.Stats())
	if want := "{[{success 2} {failure 2} {ignored 0} {rejected 1} {capped 0}] [{keys Keys that have a breaker. 2} {ejected Keys whose breaker is open or half-open. 1} {ejection_limit How many keys' breakers the ejection cap lets be open at once. 2}]}"; got != want {
		t.Errorf("Stats\n got %s\nwant %s", got, want)
	}
	keyedCall(k, "c", false) // evicts a, under the hand once every mark is cleared
	if n := statsCount(k, "success"); n != 3 {
		t.Errorf("success %d after an eviction, want 3", n)
	}
	keys := map[string]string{}
	for _, ks := range k.Keys() {
		keys[ks.Key] = fmt.Sprint(ks.State, ks.Calls)
	}
	want := map[string]string{
		"b": "closed [{success 1} {failure 0} {ignored 0} {rejected 0}]",
		"c": "closed [{success 1} {failure 0} {ignored 0} {rejected 0}]",
	}
	if d := testcheck.Diff(want, keys); d != "" {
		t.Errorf("Keys: %s", d)
	}
}

// TestKeyedBreakerConfig: every invalid field is named, at once.
func TestKeyedBreakerConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  resilience.KeyedBreakerConfig
		want []string
	}{
		{resilience.KeyedBreakerConfig{MaxKeys: -1}, []string{"KeyedBreakerConfig.MaxKeys -1"}},
		{resilience.KeyedBreakerConfig{MaxEjectedPercent: 101}, []string{"KeyedBreakerConfig.MaxEjectedPercent 101"}},
		{resilience.KeyedBreakerConfig{MaxEjectedPercent: -5}, []string{"KeyedBreakerConfig.MaxEjectedPercent -5"}},
		{resilience.KeyedBreakerConfig{Name: "a", Breaker: resilience.BreakerConfig{Name: "b"}}, []string{`KeyedBreakerConfig.Name "a": differs from Breaker.Name ("b")`}},
		{resilience.KeyedBreakerConfig{MaxKeys: -1, Breaker: resilience.BreakerConfig{FailureThreshold: -3}}, []string{"KeyedBreakerConfig.MaxKeys -1", "BreakerConfig.FailureThreshold -3"}},
	} {
		k, err := resilience.NewKeyedBreaker(c.cfg)
		if k != nil || !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%+v: %v, %v; want a config error", c.cfg, k, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not name %q", c.cfg, err, w)
			}
		}
	}
	var zero resilience.KeyedBreaker
	if _, err := resilience.Do(context.Background(), &zero, ok); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero KeyedBreaker: %v, want ErrInvalidConfig", err)
	}
	if zero.Breaker("x") != nil {
		t.Error("zero KeyedBreaker made a breaker")
	}
}

// TestKeyedBreakerConcurrent: many goroutines over overlapping keys, with
// evictions and failures, under -race; every call is counted once.
func TestKeyedBreakerConcurrent(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name: "c", MaxKeys: 16, Breaker: resilience.BreakerConfig{OpenTimeout: time.Millisecond},
	}))
	var wg sync.WaitGroup
	var calls atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				keyedCall(k, fmt.Sprint((g*7+i)%40), i%5 == 0)
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	if k.Len() != 16 {
		t.Errorf("Len %d, want 16", k.Len())
	}
	if e := k.Ejected(); e < 0 || e > k.EjectionLimit() {
		t.Errorf("Ejected %d, outside 0..%d", e, k.EjectionLimit())
	}
	var sum uint64
	for _, c := range k.Stats().Calls[:4] {
		sum += c.N
	}
	// A call running through a key as it is evicted may go uncounted.
	if sum > uint64(calls.Load()) || sum < uint64(calls.Load())*9/10 {
		t.Errorf("counted %d calls of %d", sum, calls.Load())
	}
}

// TestPresetBreakerPerKey: a preset with BreakerPerKey builds a
// KeyedBreaker from its Breaker config, in the breaker's place.
func TestPresetBreakerPerKey(t *testing.T) {
	p := resilience.Preset{
		Name:          "api",
		Timeout:       resilience.TimeoutConfig{Duration: time.Second},
		Breaker:       resilience.BreakerConfig{FailureThreshold: 2},
		BreakerPerKey: &resilience.KeyedBreakerConfig{MaxKeys: 5, MaxEjectedPercent: 50},
	}
	g := must(p.Build())
	k := g.KeyedBreaker()
	if k == nil || g.Breaker() != nil || k.Name() != "api" {
		t.Fatalf("KeyedBreaker %v, Breaker %v; want a family named api and no shared breaker", k, g.Breaker())
	}
	keyedCall(g, "a", true)
	keyedCall(g, "a", true)
	if err := keyedCall(g, "a", false); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("a after 2 failures: %v, want ErrOpen (FailureThreshold 2 from Preset.Breaker)", err)
	}
	if err := keyedCall(g, "b", false); err != nil {
		t.Errorf("b: %v, want nil", err)
	}
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{Breaker: resilience.BreakerConfig{FailureThreshold: 3}, MaxKeys: -1}
	_, err := p.Build()
	for _, want := range []string{"Preset.BreakerPerKey.Breaker", "KeyedBreakerConfig.MaxKeys -1"} {
		if !strings.Contains(fmt.Sprint(err), want) {
			t.Errorf("Build: %v; want it to name %s", err, want)
		}
	}
}

// TestKeyedBreakerStatsOnlyGrow: under calls that evict keys all the
// time, the family's counts read by Stats never go down.
func TestKeyedBreakerStatsOnlyGrow(t *testing.T) {
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "g", MaxKeys: 2}))
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				keyedCall(k, fmt.Sprint(g, i%5), false)
			}
		})
	}
	last := uint64(0)
	for range 20000 {
		n := statsCount(k, "success")
		if n < last {
			t.Fatalf("success went from %d down to %d", last, n)
		}
		last = n
	}
	close(done)
	wg.Wait()
}

// A plain Breaker around a KeyedBreaker, for the whole dependency, does not
// count the family's rejections as failures: one key's breaker rejecting
// its calls at once is not the dependency failing, and counting it would
// open the outer breaker for every key after a few calls to the one open
// key. The same holds for an inner bulkhead's refusals. (Before, the
// outer breaker counted each inner rejection as a failure and opened.)
func TestOuterBreakerIgnoresInnerRejections(t *testing.T) {
	outer := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "whole", FailureThreshold: 3, OpenTimeout: time.Minute}))
	perKey := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name: "per-host", MaxEjectedPercent: 100,
		Breaker: resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Minute},
	}))
	counts := map[resilience.CallResult]int{}
	outer.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) { counts[r]++ }})
	p := resilience.For[int](outer, perKey)
	a, b := resilience.WithKey(context.Background(), "a"), resilience.WithKey(context.Background(), "b")
	if _, err := p.Do(a, func(context.Context) (int, error) { return 0, errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("first call to a: %v", err)
	}
	for i := range 10 {
		if _, err := p.Do(a, func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("call %d to a: %v, want a's breaker's rejection", i, err)
		}
	}
	if s := outer.State(); s != resilience.Closed {
		t.Errorf("the outer breaker is %v after 10 rejections by a's breaker, want closed", s)
	}
	if _, err := p.Do(b, func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Errorf("a call to b: %v", err)
	}
	if counts[resilience.CallFailed] != 1 || counts[resilience.CallIgnored] != 10 || counts[resilience.CallSucceeded] != 1 {
		t.Errorf("outer breaker counts %v, want 1 failure, 10 ignored, 1 success", counts)
	}

	// A full bulkhead inside a breaker: its refusals are not failures.
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	br := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Minute}))
	q := resilience.For[int](br, bh)
	release, entered := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Do(context.Background(), func(context.Context) (int, error) { close(entered); <-release; return 1, nil })
	}()
	<-entered
	if _, err := q.Do(context.Background(), func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("second call: %v, want the bulkhead's refusal", err)
	}
	close(release)
	<-done
	if s := br.State(); s != resilience.Closed {
		t.Errorf("the breaker is %v after the bulkhead refused a call, want closed", s)
	}
}
