package resilience_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/resilience-go/resilience"
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
		if diff := cmp.Diff([]int{0, 1, 2, 3, 4}, order); diff != "" {
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
