package window_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resilience-go/resilience/internal/testcheck"
	"github.com/resilience-go/resilience/window"
)

type outcome struct{ failure, slow bool }

var outcomes = []outcome{{false, false}, {true, false}, {false, true}, {true, true}}

func TestNewCountRejectsBadSize(t *testing.T) {
	for _, size := range []int{0, -1, math.MinInt, window.MaxCountSize + 1, 1 << 42, math.MaxInt} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		w, err := window.NewCount(size)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Errorf("NewCount(%d) = %v, nil; want an error", size, w)
			continue
		}
		if !errors.Is(err, window.ErrInvalidSize) {
			t.Errorf("NewCount(%d): error %q does not match ErrInvalidSize", size, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "window: count window size "+strconv.Itoa(size)+":") {
			t.Errorf("NewCount(%d): error %q does not name the size", size, msg)
		}
		if size > 0 && !strings.Contains(msg, strconv.Itoa(window.MaxCountSize)) {
			t.Errorf("NewCount(%d): error %q does not name the maximum", size, msg)
		}
		// The ring of MaxCountSize+1 outcomes would take 4 MB.
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("NewCount(%d) allocated %d bytes before failing", size, n)
		}
	}
	if _, err := window.NewCount(window.MaxCountSize); err != nil {
		t.Errorf("NewCount(MaxCountSize): %v", err)
	}
}

func TestCountFootprint(t *testing.T) {
	for _, tc := range []struct{ size, max int }{{1, 512}, {100, 512}, {1_000_000, 262_144}} {
		w, err := window.NewCount(tc.size)
		if err != nil {
			t.Fatal(err)
		}
		got := w.Footprint()
		t.Logf("a window of %d holds %d bytes", tc.size, got)
		if got > tc.max {
			t.Errorf("a window of %d holds %d bytes, want at most %d", tc.size, got, tc.max)
		}
	}
}

func TestCountRecordAllocatesNothing(t *testing.T) {
	w, err := window.NewCount(100)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	record := func() {
		w.Record(i%3 == 0, i%5 == 0)
		i++
	}
	if allocs := testing.AllocsPerRun(1000, record); allocs != 0 {
		t.Errorf("Record allocates %v times, want 0", allocs)
	}
}

func TestNewTimeRejectsBadArguments(t *testing.T) {
	for _, tc := range []struct {
		period  time.Duration
		buckets int
		names   string
	}{
		{0, 10, "period"}, {-time.Second, 10, "period"}, {time.Second, 0, "buckets"},
		{time.Second, -1, "buckets"}, {5, 10, "period"},
	} {
		w, err := window.NewTime(tc.period, tc.buckets)
		if err == nil {
			t.Errorf("NewTime(%v, %d) = %v, nil; want an error", tc.period, tc.buckets, w)
			continue
		}
		if !errors.Is(err, window.ErrInvalidSize) {
			t.Errorf("NewTime(%v, %d): error %q does not match ErrInvalidSize", tc.period, tc.buckets, err)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "window: time window "+tc.names) {
			t.Errorf("NewTime(%v, %d): error %q does not name the %s", tc.period, tc.buckets, msg, tc.names)
		}
	}
}

func TestCountKeepsLastN(t *testing.T) {
	w, err := window.NewCount(4)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		o    outcome
		want window.Counts
	}{
		{outcome{true, false}, window.Counts{Total: 1, Failures: 1}},
		{outcome{true, true}, window.Counts{Total: 2, Failures: 2, Slow: 1}},
		{outcome{false, false}, window.Counts{Total: 3, Failures: 2, Slow: 1}},
		{outcome{false, true}, window.Counts{Total: 4, Failures: 2, Slow: 2}},
		// The window is full: each record pushes out the oldest.
		{outcome{false, false}, window.Counts{Total: 4, Failures: 1, Slow: 2}}, // out: failure
		{outcome{false, false}, window.Counts{Total: 4, Failures: 0, Slow: 1}}, // out: slow failure
		{outcome{false, false}, window.Counts{Total: 4, Failures: 0, Slow: 1}}, // out: success
		{outcome{false, false}, window.Counts{Total: 4, Failures: 0, Slow: 0}}, // out: slow success
	}
	for i, s := range steps {
		w.Record(s.o.failure, s.o.slow)
		if diff := testcheck.Diff(s.want, w.Counts()); diff != "" {
			t.Fatalf("after record %d (%+v): counts mismatch (-want +got):\n%s", i+1, s.o, diff)
		}
	}
}

func TestCountsRates(t *testing.T) {
	for _, tc := range []struct {
		c              window.Counts
		failure, slown float64
	}{
		{window.Counts{}, 0, 0},
		{window.Counts{Total: 4, Failures: 1, Slow: 2}, 0.25, 0.5},
		{window.Counts{Total: 3, Failures: 3, Slow: 3}, 1, 1},
	} {
		if got := tc.c.FailureRate(); got != tc.failure {
			t.Errorf("%+v.FailureRate() = %v, want %v", tc.c, got, tc.failure)
		}
		if got := tc.c.SlowRate(); got != tc.slown {
			t.Errorf("%+v.SlowRate() = %v, want %v", tc.c, got, tc.slown)
		}
	}
}

// TestCountMatchesReferenceConcurrently runs phases of concurrent writers.
// Within a phase every writer records the same outcome, so the order in
// which they land does not matter and the window must end each phase
// exactly where the sequential reference ends.
func TestCountMatchesReferenceConcurrently(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	const writers = 8
	for round := range 40 {
		size := 1 + r.IntN(300)
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefCount(size)
		for phase := range 1 + r.IntN(6) {
			o := outcomes[r.IntN(len(outcomes))]
			n := r.IntN(3 * size)
			var wg sync.WaitGroup
			for g := range writers {
				share := n / writers
				if g < n%writers {
					share++
				}
				wg.Go(func() {
					for range share {
						if !o.failure && !o.slow && g%2 == 1 {
							w.RecordSuccess() // as a closed breaker records
						} else {
							w.Record(o.failure, o.slow)
						}
					}
				})
			}
			for range n {
				ref.Record(o.failure, o.slow)
			}
			wg.Wait()
			if diff := testcheck.Diff(ref.Counts(), w.Counts()); diff != "" {
				t.Fatalf("round %d (size %d), phase %d (%d × %+v): counts mismatch (-reference +lock-free):\n%s",
					round, size, phase, n, o, diff)
			}
			f, s := w.Recount()
			if c := w.Counts(); f != c.Failures || s != c.Slow {
				t.Fatalf("round %d, phase %d: totals (failures %d, slow %d) drifted from the ring (failures %d, slow %d)",
					round, phase, c.Failures, c.Slow, f, s)
			}
		}
	}
}

// TestCountTotalsNeverDrift hammers one small window with mixed outcomes
// from many goroutines: whatever the interleaving, the running totals must
// equal what the ring holds once the writers stop.
func TestCountTotalsNeverDrift(t *testing.T) {
	for _, size := range []int{1, 3, 64, 1000} {
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), uint64(size)))
				for range 20000 {
					o := outcomes[r.IntN(len(outcomes))]
					w.Record(o.failure, o.slow)
				}
			})
		}
		wg.Wait()
		c := w.Counts()
		f, s := w.Recount()
		if c.Total != int64(size) || c.Failures != f || c.Slow != s {
			t.Errorf("size %d: counts %+v, ring holds failures %d, slow %d", size, c, f, s)
		}
	}
}

func TestTimeSlidesWithTheClock(t *testing.T) {
	start := time.Unix(1000, 0)
	w, err := window.NewTimeAt(start, 10*time.Second, 10)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) time.Time { return start.Add(d) }
	w.RecordAt(at(0), true, false)
	w.RecordAt(at(500*time.Millisecond), false, true)
	w.RecordAt(at(3*time.Second), false, false)
	for _, tc := range []struct {
		now  time.Duration
		want window.Counts
	}{
		{0, window.Counts{Total: 2, Failures: 1, Slow: 1}},
		{3 * time.Second, window.Counts{Total: 3, Failures: 1, Slow: 1}},
		// Bucket 0 covers [0s, 1s); the window at 9.999s still holds it.
		{10*time.Second - 1, window.Counts{Total: 3, Failures: 1, Slow: 1}},
		// At 10s the window is buckets 1..10, and bucket 0 is gone.
		{10 * time.Second, window.Counts{Total: 1}},
		{13*time.Second - 1, window.Counts{Total: 1}},
		{13 * time.Second, window.Counts{}},
	} {
		if diff := testcheck.Diff(tc.want, w.CountsAt(at(tc.now))); diff != "" {
			t.Errorf("at %v: counts mismatch (-want +got):\n%s", tc.now, diff)
		}
	}
	// A slot coming round again replaces its old bucket.
	w.RecordAt(at(20*time.Second), true, true)
	if diff := testcheck.Diff(window.Counts{Total: 1, Failures: 1, Slow: 1}, w.CountsAt(at(20*time.Second))); diff != "" {
		t.Errorf("after the slot came round: counts mismatch (-want +got):\n%s", diff)
	}
	if got, want := w.Period(), 10*time.Second; got != want {
		t.Errorf("Period() = %v, want %v", got, want)
	}
}

func TestTimeMatchesReferenceConcurrently(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	start := time.Unix(0, 0)
	const writers = 8
	for round := range 30 {
		buckets := 1 + r.IntN(12)
		period := time.Duration(buckets) * time.Duration(1+r.IntN(1000)) * time.Millisecond
		w, err := window.NewTimeAt(start, period, buckets)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefTime(start, period, buckets)
		now := start
		for phase := range 1 + r.IntN(8) {
			now = now.Add(time.Duration(r.Int64N(int64(period))))
			var wg sync.WaitGroup
			for range writers {
				o := outcomes[r.IntN(len(outcomes))]
				n := r.IntN(200)
				for range n {
					ref.RecordAt(now, o.failure, o.slow)
				}
				wg.Go(func() {
					for range n {
						w.RecordAt(now, o.failure, o.slow)
					}
				})
			}
			wg.Wait()
			if diff := testcheck.Diff(ref.CountsAt(now), w.CountsAt(now)); diff != "" {
				t.Fatalf("round %d (%v in %d buckets), phase %d: counts mismatch (-reference +lock-free):\n%s",
					round, period, buckets, phase, diff)
			}
		}
	}
}

// FuzzCount replays a sequence of outcomes and Resets (an op from 0xfc up)
// through the window and the reference, and compares them after every step.
func FuzzCount(f *testing.F) {
	f.Add(uint16(1), []byte{0, 1, 2, 3})
	f.Add(uint16(3), []byte{1, 1, 1, 0, 0, 0, 2, 3, 1})
	f.Add(uint16(100), []byte("a long and varied history of outcomes"))
	f.Add(uint16(2), []byte{1, 3, 1, 0xff, 2, 0xff, 0xff, 1, 1, 3, 0xfc, 0})
	f.Fuzz(func(t *testing.T, size uint16, ops []byte) {
		n := int(size%512) + 1
		w, err := window.NewCount(n)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefCount(n)
		for i, op := range ops {
			if op >= 0xfc {
				w.Reset()
				ref.Reset()
				if got, want := w.Counts(), ref.Counts(); got != want {
					t.Fatalf("size %d, after Reset at op %d: got %+v, want %+v", n, i, got, want)
				}
				continue
			}
			failure, slow := op&1 != 0, op&2 != 0
			got, want := w.Record(failure, slow), ref.Record(failure, slow)
			if got != want {
				t.Fatalf("size %d, op %d: Record = %d, want %d", n, i, got, want)
			}
			if got, want := w.Counts(), ref.Counts(); got != want {
				t.Fatalf("size %d, after op %d: got %+v, want %+v", n, i, got, want)
			}
		}
	})
}

// FuzzTime replays a sequence of outcomes, clock advances (an op with the
// top bit set) and Resets (0x7c to 0x7f) through the window and the
// reference, and compares them after every step.
func FuzzTime(f *testing.F) {
	f.Add(uint8(10), uint16(100), []byte{0, 1, 2, 3, 0xf0, 1, 0xff, 2})
	f.Add(uint8(1), uint16(1), []byte{1, 0x80, 1, 0x80, 0x80})
	f.Add(uint8(4), uint16(10), []byte{1, 3, 0xc0, 1, 0x7f, 2, 0xc0, 0x7c, 0xff, 3})
	f.Fuzz(func(t *testing.T, buckets uint8, widthMillis uint16, ops []byte) {
		b := int(buckets%32) + 1
		period := time.Duration(b) * time.Duration(int(widthMillis)+1) * time.Millisecond
		start := time.Unix(50, 0)
		w, err := window.NewTimeAt(start, period, b)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefTime(start, period, b)
		now := start
		for i, op := range ops {
			switch {
			case op&0x80 != 0:
				// Advance the clock by up to 1/8 of the period per step.
				now = now.Add(period * time.Duration(op&0x7f) / (8 * 127))
			case op >= 0x7c:
				w.Reset()
				ref.Reset()
			default:
				w.RecordAt(now, op&1 != 0, op&2 != 0)
				ref.RecordAt(now, op&1 != 0, op&2 != 0)
			}
			if got, want := w.CountsAt(now), ref.CountsAt(now); got != want {
				t.Fatalf("after op %d at +%v: got %+v, want %+v", i, now.Sub(start), got, want)
			}
		}
	})
}

func ExampleCount() {
	w, err := window.NewCount(4)
	if err != nil {
		panic(err)
	}
	for _, failed := range []bool{true, true, false, true, false, false} {
		w.Record(failed, false)
	}
	c := w.Counts() // the last 4: false, true, false, false
	fmt.Printf("%d of %d failed (%.2f)\n", c.Failures, c.Total, c.FailureRate())
	// Output: 1 of 4 failed (0.25)
}

func ExampleTime() {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w, err := window.NewTimeAt(start, time.Minute, 6) // six buckets of 10s
	if err != nil {
		panic(err)
	}
	w.RecordAt(start, true, false)
	w.RecordAt(start.Add(30*time.Second), false, false)
	fmt.Println(w.CountsAt(start.Add(59 * time.Second)))
	fmt.Println(w.CountsAt(start.Add(60 * time.Second))) // the first bucket has slid out
	// Output:
	// {2 1 0}
	// {1 0 0}
}

// TestRecordSuccessMatchesRecord: a success recorded with RecordSuccess,
// which writes nothing into a full window of successes, leaves the same
// counts as Record(false, false), after every step of random sequences of
// outcomes and Resets; and its n is Record's, or 0 when it wrote nothing.
func TestRecordSuccessMatchesRecord(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	skipped := 0
	for round := range 200 {
		size := 1 + r.IntN(70)
		w, err := window.NewCount(size)
		if err != nil {
			t.Fatal(err)
		}
		ref := newRefCount(size)
		for step := range 4 * size {
			switch k := r.IntN(40); {
			case k == 0:
				w.Reset()
				ref = newRefCount(size)
			case k < 4:
				o := outcomes[r.IntN(len(outcomes))]
				w.Record(o.failure, o.slow)
				ref.Record(o.failure, o.slow)
			default:
				before := w.Counts()
				n := w.RecordSuccess()
				ref.Record(false, false)
				if n == 0 {
					skipped++
					if before.Total != int64(size) || before.Failures != 0 || before.Slow != 0 {
						t.Fatalf("round %d, step %d: RecordSuccess wrote nothing into %+v, which is not a full window of successes", round, step, before)
					}
				}
			}
			if diff := testcheck.Diff(ref.Counts(), w.Counts()); diff != "" {
				t.Fatalf("round %d (size %d), step %d: counts (-Record +RecordSuccess):\n%s", round, size, step, diff)
			}
		}
	}
	if skipped < 100 {
		t.Fatalf("RecordSuccess left a full window of successes as it was %d times: too few for the test to test it", skipped)
	}
}

// TestRecordSuccessAllocatesNothing, as Record.
func TestRecordSuccessAllocatesNothing(t *testing.T) {
	w, _ := window.NewCount(10)
	if n := testing.AllocsPerRun(100, func() { w.RecordSuccess() }); n != 0 {
		t.Errorf("RecordSuccess allocates %v times", n)
	}
}
