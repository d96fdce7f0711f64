package resilience_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// occupy takes a slot of p's bulkhead with a call that holds it until
// release is called. It must run in a synctest bubble.
func occupy(p resilience.Policy[int]) (release func()) {
	ch := make(chan struct{})
	go p.Do(context.Background(), func(context.Context) (int, error) { <-ch; return 0, nil })
	synctest.Wait()
	return func() { close(ch) }
}

// TestBulkheadNeverExceedsItsLimit hammers a bulkhead from many goroutines
// with calls that wait, fail, or panic, and checks that the number running
// never passes the limit and every slot comes back.
func TestBulkheadNeverExceedsItsLimit(t *testing.T) {
	const limit = 4
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: limit, MaxWait: time.Second}))
	p := resilience.For[int](bh)
	var running, peak, ran, rejected atomic.Int64
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 200 {
				func() {
					defer func() {
						if r := recover(); r != nil && r != "boom" {
							panic(r)
						}
					}()
					_, err := p.Do(context.Background(), func(context.Context) (int, error) {
						n := running.Add(1)
						defer running.Add(-1)
						for {
							m := peak.Load()
							if n <= m || peak.CompareAndSwap(m, n) {
								break
							}
						}
						ran.Add(1)
						switch (g + i) % 10 {
						case 0:
							panic("boom")
						case 1:
							return 0, errBoom
						}
						time.Sleep(10 * time.Microsecond)
						return 1, nil
					})
					if errors.Is(err, resilience.ErrBulkheadFull) {
						rejected.Add(1)
					}
				}()
			}
		})
	}
	wg.Wait()
	if got := peak.Load(); got > limit || got < 1 {
		t.Errorf("peak concurrency %d, want between 1 and %d", got, limit)
	}
	if got := ran.Load() + rejected.Load(); got != 64*200 {
		t.Errorf("%d calls ran or were rejected, want %d", got, 64*200)
	}
	if got := bh.InUse(); got != 0 {
		t.Errorf("InUse() = %d after all calls, want 0: every slot must come back", got)
	}
}

func TestBulkheadRejectsAtOnceWithoutMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "db", MaxConcurrent: 1}))
		p := resilience.For[int](bh)
		release := occupy(p)
		start := time.Now()
		_, err := p.Do(context.Background(), ok)
		if time.Since(start) != 0 {
			t.Errorf("rejection took %v, want none", time.Since(start))
		}
		var fe *resilience.BulkheadFullError
		if !errors.As(err, &fe) || !errors.Is(err, resilience.ErrBulkheadFull) {
			t.Fatalf("error %v, want a *BulkheadFullError matching ErrBulkheadFull", err)
		}
		if got, want := err.Error(), `resilience: bulkhead "db" is full (1 calls in flight)`; got != want {
			t.Errorf("error text %q, want %q", got, want)
		}
		release()
	})
}

func TestBulkheadWaitsUpToMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxWait: 500 * time.Millisecond}))
		p := resilience.For[int](bh)
		busy := func(d time.Duration) resilience.Func[int] {
			return func(context.Context) (int, error) { time.Sleep(d); return 1, nil }
		}
		go p.Do(context.Background(), busy(2*time.Second))
		synctest.Wait()

		start := time.Now()
		if _, err := p.Do(context.Background(), ok); !errors.Is(err, resilience.ErrBulkheadFull) {
			t.Fatalf("error %v, want ErrBulkheadFull", err)
		}
		if got := time.Since(start); got != 500*time.Millisecond {
			t.Errorf("gave up after %v, want 500ms", got)
		}

		// A slot that comes free within MaxWait goes to the waiter.
		time.Sleep(1300 * time.Millisecond) // 200ms left on the busy call
		start = time.Now()
		if _, err := p.Do(context.Background(), ok); err != nil {
			t.Fatalf("error %v, want the call to run once the slot came free", err)
		}
		if got := time.Since(start); got != 200*time.Millisecond {
			t.Errorf("waited %v, want 200ms", got)
		}
	})
}

func TestBulkheadServesWaitersInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Hour}))
		p := resilience.For[int](bh)
		release := occupy(p)
		var mu sync.Mutex
		var order []int
		var wg sync.WaitGroup
		for i := range 5 {
			wg.Go(func() {
				p.Do(context.Background(), func(context.Context) (int, error) {
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					return 0, nil
				})
			})
			synctest.Wait() // waiter i is in line before waiter i+1 arrives
		}
		release()
		wg.Wait()
		if diff := testcheck.Diff([]int{0, 1, 2, 3, 4}, order); diff != "" {
			t.Errorf("order served (-want +got):\n%s", diff)
		}
	})
}

func TestBulkheadWaitEndsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxWait: time.Hour}))
		p := resilience.For[int](bh)
		release := occupy(p)

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := p.Do(ctx, ok)
		if err != context.Canceled || time.Since(start) != time.Second {
			t.Errorf("after %v: error %v; want context.Canceled after 1s", time.Since(start), err)
		}
		if got := bh.InUse(); got != 1 {
			t.Errorf("InUse() = %d, want 1: the cancelled waiter must hold nothing", got)
		}
		release()
		synctest.Wait()
		if got := bh.InUse(); got != 0 {
			t.Errorf("InUse() = %d, want 0", got)
		}
		// A context already done is answered at once when the bulkhead is full.
		var wg sync.WaitGroup
		wg.Go(func() {
			p.Do(context.Background(), func(context.Context) (int, error) { time.Sleep(time.Second); return 0, nil })
		})
		synctest.Wait()
		if _, err := p.Do(ctx, ok); err != context.Canceled {
			t.Errorf("error %v, want context.Canceled", err)
		}
		wg.Wait()
	})
}

func TestBulkheadTwoStep(t *testing.T) {
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 2}))
	for i := range 2 {
		if !bh.TryAcquire() {
			t.Fatalf("TryAcquire %d failed with a free slot", i+1)
		}
	}
	if bh.TryAcquire() {
		t.Fatal("TryAcquire succeeded on a full bulkhead")
	}
	if err := bh.Acquire(context.Background()); !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Fatalf("Acquire on a full bulkhead: %v, want ErrBulkheadFull", err)
	}
	bh.Release()
	if err := bh.Acquire(context.Background()); err != nil {
		t.Fatalf("Acquire with a free slot: %v", err)
	}
	bh.Release()
	bh.Release()
	if bh.InUse() != 0 {
		t.Fatalf("InUse() = %d, want 0", bh.InUse())
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("Release without a slot taken did not panic")
		}
		if bh.InUse() != 0 {
			t.Errorf("InUse() = %d after a bad Release, want 0", bh.InUse())
		}
	}()
	bh.Release()
}

// TestBulkheadHoldsTheSlotOfAnAbandonedCall: a timeout that abandons calls
// returns at its deadline while the call goes on; the bulkhead around it
// keeps the call's slot until the call returns, so it bounds the calls
// actually running, and InUse says so.
func TestBulkheadHoldsTheSlotOfAnAbandonedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 2}))
		abandon := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second, Abandon: true}))
		p := resilience.For[int](bulkhead, abandon)

		release := make(chan struct{})
		var running, peak, rejected, timedOut atomic.Int64
		stubborn := func(context.Context) (int, error) { // ignores its context
			n := running.Add(1)
			for m := peak.Load(); n > m && !peak.CompareAndSwap(m, n); m = peak.Load() {
			}
			<-release
			running.Add(-1)
			return 1, nil
		}
		var wg sync.WaitGroup
		for range 10 { // two calls a second for ten seconds
			for range 2 {
				wg.Go(func() {
					_, err := p.Do(context.Background(), stubborn)
					switch {
					case errors.Is(err, resilience.ErrBulkheadFull):
						rejected.Add(1)
					case errors.Is(err, resilience.ErrTimeout):
						timedOut.Add(1)
					}
				})
			}
			time.Sleep(time.Second + time.Nanosecond)
		}
		synctest.Wait()
		if got := peak.Load(); got != 2 {
			t.Errorf("at most %d calls ran at once, want 2 (the bulkhead's limit)", got)
		}
		if got := bulkhead.InUse(); got != 2 {
			t.Errorf("InUse() = %d while two abandoned calls run, want 2", got)
		}
		if r, o := rejected.Load(), timedOut.Load(); r != 18 || o != 2 {
			t.Errorf("%d rejected and %d timed out, want 18 and 2", r, o)
		}
		close(release)
		wg.Wait()
		synctest.Wait()
		if got := bulkhead.InUse(); got != 0 {
			t.Errorf("InUse() = %d after the abandoned calls returned, want 0", got)
		}
	})
}

// TestBulkheadSlotAcrossRetriesOfAbandonedCalls: with a retry between the
// bulkhead and an abandoning timeout, the abandoned attempt keeps the slot,
// so the next attempt must find a slot of its own; with none free, it is
// rejected, and the rejection is not retried. When attempts return in
// time, the one slot serves them all.
func TestBulkheadSlotAcrossRetriesOfAbandonedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))
		abandon := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second, Abandon: true}))
		p := resilience.For[int](bulkhead, retry, abandon)

		release := make(chan struct{})
		var calls atomic.Int64
		_, err := p.Do(context.Background(), func(context.Context) (int, error) {
			calls.Add(1)
			<-release
			return 1, nil
		})
		if !errors.Is(err, resilience.ErrBulkheadFull) {
			t.Errorf("err = %v, want the bulkhead's rejection of the second attempt", err)
		}
		if got := calls.Load(); got != 1 {
			t.Errorf("%d attempts ran, want 1: the abandoned one holds the only slot", got)
		}
		if got := bulkhead.InUse(); got != 1 {
			t.Errorf("InUse() = %d with the abandoned attempt running, want 1", got)
		}
		close(release)
		synctest.Wait()
		if got := bulkhead.InUse(); got != 0 {
			t.Errorf("InUse() = %d after the abandoned attempt returned, want 0", got)
		}

		// Attempts that fail in time share the caller's slot.
		calls.Store(0)
		if _, err := p.Do(context.Background(), func(context.Context) (int, error) {
			if calls.Add(1) < 3 {
				return 0, errBoom
			}
			return 1, nil
		}); err != nil {
			t.Errorf("attempts that return in time: %v", err)
		}
		if got, inUse := calls.Load(), bulkhead.InUse(); got != 3 || inUse != 0 {
			t.Errorf("%d attempts and %d slots in use after, want 3 and 0", got, inUse)
		}
	})
}

// TestBulkheadSlotsStayInTheirChain: the protected call of a chain whose
// bulkhead lends its slots may itself call other chains that abandon
// calls, one after another or at once; those chains never lend, take back
// or demand the outer bulkhead's slots, and every slot comes back.
func TestBulkheadSlotsStayInTheirChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outer := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "outer", MaxConcurrent: 1}))
		abandon := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute, Abandon: true}))
		innerAbandon := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second, Abandon: true}))
		inner := resilience.For[int](innerAbandon)

		release := make(chan struct{})
		stubborn := func(context.Context) (int, error) { <-release; return 1, nil }
		var innerErrs []error
		var mu sync.Mutex
		_, err := resilience.For[int](outer, abandon).Do(context.Background(), func(ctx context.Context) (int, error) {
			// One inner call abandoned, then two more at once.
			if _, err := inner.Do(ctx, stubborn); !errors.Is(err, resilience.ErrTimeout) {
				mu.Lock()
				innerErrs = append(innerErrs, err)
				mu.Unlock()
			}
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					_, err := inner.Do(ctx, func(context.Context) (int, error) { return 1, nil })
					if err != nil {
						mu.Lock()
						innerErrs = append(innerErrs, err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return 1, nil
		})
		if err != nil {
			t.Errorf("outer call: %v", err)
		}
		if len(innerErrs) != 0 {
			t.Errorf("inner chains, which have no bulkhead: errors %v", innerErrs)
		}
		close(release)
		synctest.Wait()
		if got := outer.InUse(); got != 0 {
			t.Errorf("InUse() = %d after every call returned, want 0", got)
		}
	})
}
