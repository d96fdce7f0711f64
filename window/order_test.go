package window_test

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/resilience-go/resilience/window"
)

// TestCountHoldsLastNInTicketOrder checks the window at quiescent points:
// after each round of concurrent writers has returned, the window must hold
// exactly the last min(n, size) outcomes in ticket order, which Record's
// return values let the test reconstruct.
func TestCountHoldsLastNInTicketOrder(t *testing.T) {
	const (
		writers   = 8
		perWriter = 4
	)
	sizes := []int{1, 2, 5, 100}
	var mismatches, points int
	for _, size := range sizes {
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		var hist []uint8 // hist[n-1] is the outcome that Record numbered n
		got := make([][perWriter]struct {
			n uint64
			v uint8
		}, writers)
		bad := 0
		rounds := quiescentPoints / len(sizes)
		var wg sync.WaitGroup
		for round := range rounds {
			start := make(chan struct{})
			for g := range writers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
					<-start
					for i := range perWriter {
						v := uint8(r.IntN(4))
						got[g][i].n = w.Record(v&1 != 0, v&2 != 0)
						got[g][i].v = v
					}
				})
			}
			close(start)
			wg.Wait()
			hist = append(hist, make([]uint8, writers*perWriter)...)
			for g := range got {
				for _, o := range got[g] {
					hist[o.n-1] = o.v
				}
			}
			want := hist[len(hist)-min(len(hist), size):]
			var wc window.Counts
			wc.Total = int64(len(want))
			for _, v := range want {
				wc.Failures += int64(v & 1)
				wc.Slow += int64(v >> 1)
			}
			if !slices.Equal(w.Window(), want) || w.Counts() != wc {
				if bad == 0 {
					t.Logf("size %d, round %d: window %v, counts %+v; want %v, %+v", size, round, w.Window(), w.Counts(), want, wc)
				}
				bad++
			}
			if f, s := w.Recount(); f != w.Counts().Failures || s != w.Counts().Slow {
				t.Fatalf("size %d, round %d: totals %+v drifted from the ring (failures %d, slow %d)", size, round, w.Counts(), f, s)
			}
			points++
		}
		t.Logf("size %d: %d of %d quiescent points mismatched", size, bad, rounds)
		mismatches += bad
	}
	t.Logf("%d mismatches at %d quiescent points", mismatches, points)
	if mismatches != 0 {
		t.Errorf("the window did not hold the last outcomes in ticket order at %d of %d quiescent points", mismatches, points)
	}
}
