package window_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/resilience-go/resilience/window"
)

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
