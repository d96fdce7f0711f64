package window

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

func TestSlotMatchesModulo(t *testing.T) {
	sizes := []uint64{1, 2, 3, 7, 64, 100, 1000, 1 << 20, 1_000_000, 1<<31 - 1, 1<<63 + 1, ^uint64(0)}
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range sizes {
		g := newRing(size)
		check := func(i uint64) {
			t.Helper()
			if got, want := g.slot(i), i%size; got != want {
				t.Fatalf("size %d: slot(%d) = %d, want %d", size, i, got, want)
			}
		}
		for i := range uint64(5000) {
			check(i)
			check(^uint64(0) - i)
		}
		for range 100000 {
			check(r.Uint64())
		}
	}
}

// TestWordOfEverySlot checks the slot-to-word mapping for every slot a
// window can have.
func TestWordOfEverySlot(t *testing.T) {
	for s := range uint64(MaxCountSize) {
		if word, shift := wordOf(s); word != s/slotsPerWord || shift != uint(2*(s%slotsPerWord)) {
			t.Fatalf("wordOf(%d) = %d, %d; want %d, %d", s, word, shift, s/slotsPerWord, 2*(s%slotsPerWord))
		}
	}
}

// FuzzSlot checks that a ticket lands in slot ticket mod size, and that
// the slot lands in a word of the ring at the right place.
func FuzzSlot(f *testing.F) {
	f.Add(uint64(12345), uint64(100))
	f.Add(^uint64(0), uint64(3))
	f.Add(uint64(1)<<40, uint64(1_000_000))
	f.Add(^uint64(0)-7, uint64(MaxCountSize-1))
	f.Fuzz(func(t *testing.T, i, size uint64) {
		size = 1 + size%MaxCountSize
		g := newRing(size)
		s := g.slot(i)
		if want := i % size; s != want {
			t.Fatalf("size %d: slot(%d) = %d, want %d", size, i, s, want)
		}
		word, shift := wordOf(s)
		if word != s/slotsPerWord || shift != uint(2*(s%slotsPerWord)) {
			t.Fatalf("wordOf(%d) = %d, %d; want %d, %d", s, word, shift, s/slotsPerWord, 2*(s%slotsPerWord))
		}
		if words := (size + slotsPerWord - 1) / slotsPerWord; word >= words {
			t.Fatalf("size %d: slot %d in word %d of %d", size, s, word, words)
		}
	})
}

func mustCount(t *testing.T, size int) *Count {
	t.Helper()
	w, err := NewCount(size)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func checkCounts(t *testing.T, w *Count, want Counts) {
	t.Helper()
	if got := w.Counts(); got != want {
		t.Errorf("Counts() = %+v, want %+v", got, want)
	}
	f, s := w.Recount()
	tf, ts := w.Totals()
	if f != want.Failures || s != want.Slow || tf != f || ts != s {
		t.Errorf("ring holds failures %d, slow %d; totals %d, %d; want %d, %d", f, s, tf, ts, want.Failures, want.Slow)
	}
}

// TestLappedWriterSkips plays a writer that took its ticket and stalled
// while another writer, one lap later, wrote the same slot: the stalled
// writer must leave the newer outcome in place.
func TestLappedWriterSkips(t *testing.T) {
	for _, size := range []int{1, 5, 31, 32, 100} {
		w := mustCount(t, size)
		first := w.next.Add(2) - 2
		for range size {
			w.Record(false, true) // the last of these takes ticket first+size
		}
		if !w.put(first>>1, first&1, encode(true, false)) {
			t.Fatalf("size %d: put reported its outcome discarded by a Reset", size)
		}
		checkCounts(t, w, Counts{Total: int64(size), Slow: int64(size)})
	}
}

// TestStaleWriterSkips plays a writer that took its ticket before a Reset
// and reaches the ring after it: its outcome must not appear.
func TestStaleWriterSkips(t *testing.T) {
	w := mustCount(t, 100)
	for range 40 {
		w.Record(true, true)
	}
	x := w.next.Add(2) - 2
	w.Reset()
	if w.put(x>>1, x&1, encode(true, true)) {
		t.Error("a write with a ticket from before the Reset reported its outcome kept")
	}
	checkCounts(t, w, Counts{})
	if n := w.Record(true, false); n != 1 {
		t.Errorf("the first Record after Reset returned %d, want 1", n)
	}
	checkCounts(t, w, Counts{Total: 1, Failures: 1})
}

// TestWriterEmptiesWordBeforeSweep plays a Reset that has made its cut but
// not yet swept the ring: a writer after the cut empties its word itself,
// and the sweep then leaves that word, and its new outcome, alone.
func TestWriterEmptiesWordBeforeSweep(t *testing.T) {
	w := mustCount(t, 100)
	for range 100 {
		w.Record(true, false)
	}
	stale := w.next.Add(2) - 2 // a writer from before the cut, stalled
	par := w.cut()
	// Outcomes from before the cut stop counting at once.
	if got := w.Counts(); got != (Counts{}) {
		t.Errorf("after the cut: Counts() = %+v, want zero", got)
	}
	if n := w.Record(false, true); n != 1 {
		t.Errorf("the first Record after the cut returned %d, want 1", n)
	}
	if w.put(stale>>1, stale&1, encode(true, true)) {
		t.Error("a write with a ticket from before the cut reported its outcome kept")
	}
	if got, want := w.Counts(), (Counts{Total: 1, Slow: 1}); got != want {
		t.Errorf("before the sweep: Counts() = %+v, want %+v", got, want)
	}
	w.sweep(par)
	checkCounts(t, w, Counts{Total: 1, Slow: 1})
	if got := w.Window(); len(got) != 1 || got[0] != 2 {
		t.Errorf("window holds %v, want [2]", got)
	}
}

// TestSweepKeepsOutcomesAfterCut plays writers after a Reset's cut that
// record the very outcomes the ring holds from before it: they must still
// mark their words as theirs, or the sweep would empty them.
func TestSweepKeepsOutcomesAfterCut(t *testing.T) {
	w := mustCount(t, 62) // two words
	for range 62 {
		w.Record(true, false)
	}
	par := w.cut()
	for range 40 {
		w.Record(true, false)
	}
	w.sweep(par)
	checkCounts(t, w, Counts{Total: 40, Failures: 40})
}

// TestTimeStaleWriterDiscarded plays a writer that read the generation
// before a Reset and reaches the ring after it.
func TestTimeStaleWriterDiscarded(t *testing.T) {
	start := time.Unix(100, 0)
	w, err := NewTimeAt(start, 10*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	w.RecordAt(start, true, true)
	g := w.gen.Load()
	w.Reset()
	// Its slot holds a bucket from before the Reset: the writer replaces
	// it with one of its own generation, which counts for nothing.
	w.recordAt(g, start, true, true)
	if got := w.CountsAt(start); got != (Counts{}) {
		t.Errorf("after a stale write into an old bucket: Counts = %+v, want zero", got)
	}
	w.RecordAt(start, false, true)
	// Its slot holds a bucket from after the Reset: the writer must leave
	// it alone.
	w.recordAt(g, start, true, true)
	if got, want := w.CountsAt(start), (Counts{Total: 1, Slow: 1}); got != want {
		t.Errorf("after a stale write into a new bucket: Counts = %+v, want %+v", got, want)
	}
}

// TestWriterWaitsForLockedWord plays a writer that finds its slot already
// holding its outcome while an older writer holds the word's lock, about
// to overwrite that slot: the newer writer must wait and write after it,
// not take the slot's content as its own.
func TestWriterWaitsForLockedWord(t *testing.T) {
	w := mustCount(t, 1)
	word := &w.words[0]
	w.next.Add(2) // the older writer's ticket, 0
	old := lock(word)
	done := make(chan uint64)
	go func() { done <- w.Record(false, false) }() // ticket 1: a success
	for w.next.Load() != 2<<1 {
		runtime.Gosched()
	}
	// Give the newer writer time to find the lock (or, wrongly, to return).
	time.Sleep(10 * time.Millisecond)
	// The older writer's checks passed (no ticket 1 when it made them): it
	// writes a failure and unlocks, as putSlow does.
	word.Store(old | encode(true, false))
	w.totals[0].failures.Add(1)
	if n := <-done; n != 2 {
		t.Errorf("Record = %d, want 2", n)
	}
	checkCounts(t, w, Counts{Total: 1})
}
