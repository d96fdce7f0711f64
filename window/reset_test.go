package window_test

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience/internal/testcheck"
	"github.com/resilience-go/resilience/window"
)

func checkQuiescent(t *testing.T, w *window.Count, want []uint8) {
	t.Helper()
	var wc window.Counts
	wc.Total = int64(len(want))
	for _, v := range want {
		wc.Failures += int64(v & 1)
		wc.Slow += int64(v >> 1)
	}
	if diff := testcheck.Diff(want, w.Window()); diff != "" {
		t.Errorf("window content mismatch (-want +got):\n%s", diff)
	}
	if got := w.Counts(); got != wc {
		t.Errorf("Counts() = %+v, want %+v", got, wc)
	}
	f, s := w.Recount()
	tf, ts := w.Totals()
	if f != wc.Failures || s != wc.Slow || tf != f || ts != s {
		t.Errorf("ring holds failures %d, slow %d; totals %d, %d; want %d, %d", f, s, tf, ts, wc.Failures, wc.Slow)
	}
}

func TestCountReset(t *testing.T) {
	for _, size := range []int{1, 5, 31, 100, 1_000_000} {
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefCount(size)
		r := rand.New(rand.NewPCG(uint64(size), 1))
		for range 3 {
			for range r.IntN(min(2*size+3, 3000)) {
				o := outcomes[r.IntN(len(outcomes))]
				if got, want := w.Record(o.failure, o.slow), ref.Record(o.failure, o.slow); got != want {
					t.Fatalf("size %d: Record = %d, want %d", size, got, want)
				}
			}
			if got, want := w.Counts(), ref.Counts(); got != want {
				t.Fatalf("size %d: Counts() = %+v, want %+v", size, got, want)
			}
			w.Reset()
			ref.Reset()
			checkQuiescent(t, w, []uint8{})
		}
		if n := w.Record(true, true); n != 1 {
			t.Errorf("size %d: the first Record after Reset returned %d, want 1", size, n)
		}
		checkQuiescent(t, w, []uint8{3})
		if allocs := testing.AllocsPerRun(10, w.Reset); allocs != 0 {
			t.Errorf("size %d: Reset allocates %v times, want 0", size, allocs)
		}
		checkQuiescent(t, w, []uint8{})
	}
}

// TestCountResetRacesRecord runs rounds of concurrent writers with a Reset
// among them, at a random moment. Once they have all returned, the window
// must hold exactly the outcomes whose tickets came after the Reset's cut,
// the last Size() of them, and its totals must equal the bits it holds.
func TestCountResetRacesRecord(t *testing.T) {
	const (
		writers   = 4
		perWriter = 50
		rounds    = 300
	)
	for _, size := range []int{1, 7, 31, 100, 500} {
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		var hist []uint8 // hist[t] is the outcome that took ticket t
		type rec struct {
			ticket uint64
			v      uint8
		}
		got := make([][]rec, writers)
		for round := range rounds {
			r := rand.New(rand.NewPCG(uint64(size), uint64(round)))
			delay := r.IntN(perWriter)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for g := range writers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
					got[g] = got[g][:0]
					<-start
					for range perWriter {
						v := uint8(r.IntN(4))
						ticket, _ := w.RecordTicket(v&1 != 0, v&2 != 0)
						got[g] = append(got[g], rec{ticket, v})
					}
				})
			}
			wg.Go(func() {
				<-start
				for range delay {
					runtime.Gosched()
				}
				w.Reset()
			})
			close(start)
			wg.Wait()
			hist = append(hist, make([]uint8, writers*perWriter)...)
			for _, g := range got {
				for _, o := range g {
					hist[o.ticket] = o.v
				}
			}
			base := w.Base()
			want := hist[max(int(base), len(hist)-size):]
			checkQuiescent(t, w, want)
			if t.Failed() {
				t.Fatalf("size %d, round %d (cut at ticket %d)", size, round, base)
			}
		}
	}
}

// TestCountResetNeverDrifts hammers small windows with writers and
// Resets: once they stop, the totals equal the bits in the ring.
func TestCountResetNeverDrifts(t *testing.T) {
	for _, size := range []int{1, 3, 64, 1000} {
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), uint64(size)))
				for range 20000 {
					o := outcomes[r.IntN(len(outcomes))]
					w.Record(o.failure, o.slow)
				}
			})
		}
		for range 2 {
			wg.Go(func() {
				for !stop.Load() {
					w.Reset()
					_ = w.Counts()
					runtime.Gosched()
				}
			})
		}
		for range 200 {
			c := w.Counts()
			if c.Total < 0 || c.Total > int64(size) || c.Failures > c.Total || c.Slow > c.Total {
				t.Errorf("size %d: inconsistent snapshot %+v", size, c)
			}
			runtime.Gosched()
		}
		stop.Store(true)
		wg.Wait()
		c := w.Counts()
		f, s := w.Recount()
		tf, ts := w.Totals()
		if c.Failures != f || c.Slow != s || tf != f || ts != s {
			t.Errorf("size %d: counts %+v and totals (%d, %d), ring holds failures %d, slow %d", size, c, tf, ts, f, s)
		}
		w.Reset()
		checkQuiescent(t, w, []uint8{})
	}
}

func TestTimeReset(t *testing.T) {
	start := time.Unix(1000, 0)
	w, err := window.NewTimeAt(start, 10*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	ref := newRefTime(start, 10*time.Second, 10)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for i := range 30 {
		w.RecordAt(at(time.Duration(i)*time.Second/3), i%3 == 0, i%5 == 0)
	}
	w.Reset()
	ref.Reset()
	for _, d := range []time.Duration{0, 9 * time.Second, 10 * time.Second} {
		if got := w.CountsAt(at(d)); got != (window.Counts{}) {
			t.Errorf("after Reset, at %v: Counts = %+v, want zero", d, got)
		}
	}
	// The window slides over new outcomes exactly as before.
	for _, d := range []time.Duration{9 * time.Second, 9*time.Second + 500*time.Millisecond, 12 * time.Second} {
		w.RecordAt(at(d), true, false)
		ref.RecordAt(at(d), true, false)
	}
	for _, d := range []time.Duration{9 * time.Second, 12 * time.Second, 18*time.Second + 999*time.Millisecond, 19 * time.Second, 25 * time.Second} {
		if got, want := w.CountsAt(at(d)), ref.CountsAt(at(d)); got != want {
			t.Errorf("at %v: Counts = %+v, want %+v", d, got, want)
		}
	}
	if allocs := testing.AllocsPerRun(10, w.Reset); allocs != 0 {
		t.Errorf("Reset allocates %v times, want 0", allocs)
	}
	if got := w.CountsAt(at(12 * time.Second)); got != (window.Counts{}) {
		t.Errorf("after Reset: Counts = %+v, want zero", got)
	}
}

// TestTimeResetRacesRecord runs writers and Resets together, then checks
// that a last Reset empties the window and that it counts what follows.
func TestTimeResetRacesRecord(t *testing.T) {
	start := time.Unix(0, 0)
	w, err := window.NewTimeAt(start, time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 5000 {
				now := start.Add(time.Duration(i) * time.Millisecond / 2)
				o := outcomes[r.IntN(len(outcomes))]
				w.RecordAt(now, o.failure, o.slow)
				if i%500 == 0 {
					w.Reset()
				}
			}
		})
	}
	wg.Wait()
	end := start.Add(2500 * time.Millisecond)
	w.Reset()
	if got := w.CountsAt(end); got != (window.Counts{}) {
		t.Errorf("after the last Reset: Counts = %+v, want zero", got)
	}
	var want window.Counts
	for i := range 100 {
		failure, slow := i%4 == 0, i%8 == 0
		w.RecordAt(end, failure, slow)
		want.Total++
		want.Failures += int64(btoi(failure))
		want.Slow += int64(btoi(slow))
	}
	if got := w.CountsAt(end); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
