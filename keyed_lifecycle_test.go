package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// A Keyed bulkhead with an abandoning Timeout inside: the abandoned call
// keeps its key's bulkhead slot after Do returns, and the key is not
// evicted while it does, so no second bulkhead for the key lets a second
// call run beside the first. (Before, the family counted the key idle as
// soon as Do returned, and evicted it.)
func TestKeyedKeepsAKeyWhoseSlotIsLent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "t", MaxKeys: 1}, func(string) (*resilience.Bulkhead, error) {
			return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "t", MaxConcurrent: 1})
		}))
		to := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: 10 * time.Millisecond, Abandon: true}))
		p := resilience.For[int](k, to)
		var running, most atomic.Int32
		release := make(chan struct{})
		slow := func(context.Context) (int, error) {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			running.Add(-1)
			return 1, nil
		}
		a := resilience.WithKey(context.Background(), "a")
		if _, err := p.Do(a, slow); !errors.Is(err, resilience.ErrTimeout) {
			t.Fatalf("first call for a: %v, want abandoned at the deadline", err)
		}
		// The abandoned call still holds a's only slot: a second call for a
		// is refused, as it should be.
		if _, err := p.Do(a, ok); !errors.Is(err, resilience.ErrBulkheadFull) {
			t.Fatalf("second call for a: %v, want the bulkhead's refusal", err)
		}
		// A call for another key finds the family full (MaxKeys 1) and a
		// busy: it is refused, and a stays.
		if _, err := p.Do(resilience.WithKey(context.Background(), "b"), ok); !errors.As(err, new(*resilience.KeyedFullError)) {
			t.Errorf("a call for b: %v, want a KeyedFullError", err)
		}
		go p.Do(a, slow)
		synctest.Wait()
		got := most.Load()
		close(release)
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if got > 1 {
			t.Errorf("%d calls of key a ran at once through bulkheads of one slot", got)
		}
	})
}

// A New that returns a nil stage for a key other than "": the call for the
// key is an error, not a panic. (NewKeyed checks the stage of "" alone.)
func TestKeyedNilStageOfALaterKey(t *testing.T) {
	k := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(key string) (*resilience.Bulkhead, error) {
		if key == "x" {
			return nil, nil
		}
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	var panicked any
	func() {
		defer func() { panicked = recover() }()
		resilience.For[int](k).Do(resilience.WithKey(context.Background(), "x"), ok)
	}()
	if panicked != nil {
		t.Errorf("a call for a key whose New made a nil stage panicked: %v", panicked)
	}
}

// With S an interface type, a nil stage for a later key is an error: the
// chain does not skip the family and the stages inside it (before, the
// open breaker behind the family let the call through).
func TestKeyedNilInterfaceStageOfALaterKey(t *testing.T) {
	k := must(resilience.NewKeyed(resilience.KeyedConfig{}, func(key string) (resilience.Stage, error) {
		if key == "x" {
			return nil, nil
		}
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))
	b := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	b.ForceOpen()
	ran := false
	_, err := resilience.For[int](k, b).Do(resilience.WithKey(context.Background(), "x"), func(context.Context) (int, error) { ran = true; return 1, nil })
	if ran || err == nil {
		t.Errorf("call for x: ran %v, err %v; want an error and the call not run (the breaker inside is forced open)", ran, err)
	}
}

// A stage of the user's own that embeds a Keyed and has a Run of its own:
// the chain calls its Run, not the embedded family's (whose unexported
// methods are promoted to it).
type tenantLimit struct {
	*resilience.Keyed[*resilience.Bulkhead]
	runs atomic.Int32
}

func (l *tenantLimit) Run(ctx context.Context, call func(context.Context) error) error {
	l.runs.Add(1)
	return l.Keyed.Run(resilience.WithKey(ctx, "tenant"), call)
}

func TestKeyedEmbeddedRunIsCalled(t *testing.T) {
	l := &tenantLimit{Keyed: must(resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	}))}
	resilience.For[int](l).Do(context.Background(), ok)
	resilience.Do(context.Background(), l, ok)
	if n := l.runs.Load(); n != 2 {
		t.Errorf("the user's Run ran %d times for 2 calls through chains", n)
	}
}

// A whole-dependency breaker outside a Retry, around a KeyedBreaker: a
// call whose first attempt reaches the dependency and fails, and whose
// retry the key's now open breaker refuses, ends in a RetryError that
// matches ErrRejected; the outer breaker counts it as the failure it is,
// since only a refusal itself, not one wrapped, is ignored.
func TestOuterBreakerCountsFailuresBehindARefusedRetry(t *testing.T) {
	outer := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "all", FailureThreshold: 3}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true}))
	keyed := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Breaker: resilience.BreakerConfig{FailureThreshold: 1}, MaxEjectedPercent: 100}))
	p := resilience.For[int](outer, retry, keyed)
	reached := 0
	for i := range 10 {
		ctx := resilience.WithKey(context.Background(), fmt.Sprint("host", i))
		_, err := p.Do(ctx, func(context.Context) (int, error) { reached++; return 0, errBoom })
		if i == 0 {
			t.Logf("error of a call that reached the dependency: %v (ErrRejected: %v)", err, errors.Is(err, resilience.ErrRejected))
		}
	}
	if outer.State() != resilience.Open {
		t.Errorf("%d calls reached the dependency and failed, on 10 hosts; the whole-dependency breaker (threshold 3) is %v", reached, outer.State())
	}
}
