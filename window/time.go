package window

import (
	"sync/atomic"
	"time"
)

// Time is a sliding window over the outcomes of the last period of time.
//
// The period is cut into buckets of equal width; the window is the current
// bucket and the buckets-1 before it, so it spans between (buckets-1)/buckets
// of the period and the whole period. Record touches one bucket, O(1);
// Counts sums the buckets, O(buckets).
//
// A bucket is replaced, not cleared, when its slot comes round again: the
// first writer of a new bucket period allocates a fresh bucket (a few dozen
// bytes, once per bucket width) and publishes it with a compare-and-swap.
// A writer still holding the old bucket adds to an object that has left the
// window, which is where its outcome belonged.
//
// Reset empties the window in O(1), without allocating: it starts a new
// generation, and buckets of earlier generations stop counting and are
// replaced as their slots are next written.
//
// Time reads the clock through the time package, so testing/synctest
// controls it. Every method that reads the clock has a twin taking the time
// as an argument.
//
// A Time is safe for concurrent use.
type Time struct {
	start   time.Time
	width   time.Duration
	gen     atomic.Uint64 // Resets so far
	buckets []atomic.Pointer[bucket]
}

type bucket struct {
	// Immutable once published.
	gen   uint64 // the generation the bucket belongs to
	epoch int64  // bucket number since start

	total    atomic.Int64
	failures atomic.Int64
	slow     atomic.Int64
}

// NewTime returns an empty window over the given period, cut into the given
// number of buckets, starting now. It reports an error if period or buckets
// is not positive, or if the period is too short to give every bucket a
// width of at least one nanosecond; the error matches ErrInvalidSize.
func NewTime(period time.Duration, buckets int) (*Time, error) {
	return NewTimeAt(time.Now(), period, buckets)
}

// NewTimeAt is like NewTime with the window starting at start.
func NewTimeAt(start time.Time, period time.Duration, buckets int) (*Time, error) {
	switch {
	case period <= 0:
		return nil, argErrorf("window: time window period %v: must be positive", period)
	case buckets <= 0:
		return nil, argErrorf("window: time window buckets %d: must be positive", buckets)
	case period < time.Duration(buckets):
		return nil, argErrorf("window: time window period %v is shorter than one nanosecond per bucket (%d buckets)", period, buckets)
	}
	return &Time{
		start:   start,
		width:   period / time.Duration(buckets),
		buckets: make([]atomic.Pointer[bucket], buckets),
	}, nil
}

// Period returns the span the window covers.
func (w *Time) Period() time.Duration { return w.width * time.Duration(len(w.buckets)) }

func (w *Time) epoch(now time.Time) int64 {
	d := now.Sub(w.start)
	if d < 0 {
		return 0
	}
	return int64(d / w.width)
}

// Record adds one outcome at the current time. It is shorthand for
// RecordAt(time.Now(), failure, slow).
func (w *Time) Record(failure, slow bool) { w.RecordAt(time.Now(), failure, slow) }

// RecordAt adds one outcome that happened at now.
func (w *Time) RecordAt(now time.Time, failure, slow bool) {
	w.recordAt(w.gen.Load(), now, failure, slow)
}

// recordAt records an outcome in generation g, which the caller read
// before anything else: an outcome belongs to the window of the generation
// current when its Record began.
func (w *Time) recordAt(g uint64, now time.Time, failure, slow bool) {
	e := w.epoch(now)
	s := &w.buckets[e%int64(len(w.buckets))]
	var fresh *bucket
	for {
		b := s.Load()
		// b.epoch > e: our clock reading is older than another writer's
		// and our bucket has already gone round; count the outcome in the
		// newer bucket rather than drop it.
		if b != nil && b.gen == g && b.epoch >= e {
			// If a Reset ends generation g now, before the add lands, the
			// outcome goes with the bucket: it was recorded before the
			// Reset.
			b.add(failure, slow)
			return
		}
		if b != nil && b.gen > g {
			// A Reset since we read g: the outcome belongs to the window
			// it emptied. Replacing the newer bucket would lose outcomes
			// recorded after the Reset.
			return
		}
		// An empty slot, a bucket of an earlier period, or one from before
		// a Reset: replace it. If a Reset ends generation g before the
		// swap, our bucket is born stale and counts for nothing, as our
		// outcome should.
		if fresh == nil {
			fresh = &bucket{gen: g, epoch: e}
			fresh.add(failure, slow)
		}
		if s.CompareAndSwap(b, fresh) {
			return
		}
	}
}

func (b *bucket) add(failure, slow bool) {
	b.total.Add(1)
	if failure {
		b.failures.Add(1)
	}
	if slow {
		b.slow.Add(1)
	}
}

// Counts returns a snapshot of the window at the current time. It is
// shorthand for CountsAt(time.Now()).
func (w *Time) Counts() Counts { return w.CountsAt(time.Now()) }

// CountsAt returns a snapshot of the window as it stands at now.
func (w *Time) CountsAt(now time.Time) Counts {
	g := w.gen.Load()
	newest := w.epoch(now)
	oldest := newest - int64(len(w.buckets)) + 1
	var c Counts
	for i := range w.buckets {
		if b := w.buckets[i].Load(); b != nil && b.gen == g && b.epoch >= oldest && b.epoch <= newest {
			c.Total += b.total.Load()
			c.Failures += b.failures.Load()
			c.Slow += b.slow.Load()
		}
	}
	c.Failures = clamp(c.Failures, c.Total)
	c.Slow = clamp(c.Slow, c.Total)
	return c
}

// Reset empties the window in place, in O(1) and without allocating. It
// may run while other goroutines record and read the window.
//
// Reset takes effect at one instant. An outcome whose RecordAt started
// before it is discarded, even if it lands after Reset has returned; one
// whose RecordAt started after it is kept. Counts from that instant on
// report only the outcomes kept. The buckets keep their boundaries: the
// window slides as before, over what is recorded from then on. Reset
// reads no clock, so it has no twin taking the time.
func (w *Time) Reset() { w.gen.Add(1) }
