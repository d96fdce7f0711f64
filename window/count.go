package window

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
)

// MaxCountSize is the largest window NewCount accepts: 16,777,216
// outcomes.
//
// A breaker deciding on more calls than that would react to a failing
// dependency only after millions of failures, and a window so large is
// more likely a configuration mistake (a duration or a byte count given as
// a size) than a wish; a size from outside the program must not be able
// to ask for gigabytes.
const MaxCountSize = 1 << 24

// ErrInvalidSize is matched, with errors.Is, by every error NewCount,
// NewTime and NewTimeAt return: a window size, period or bucket count out
// of range. The error itself names the argument and the range.
var ErrInvalidSize = errors.New("window: invalid size")

// argError is an invalid-argument error that matches ErrInvalidSize.
type argError string

func (e argError) Error() string        { return string(e) }
func (e argError) Is(target error) bool { return target == ErrInvalidSize }

func argErrorf(format string, args ...any) error { return argError(fmt.Sprintf(format, args...)) }

// Count is a sliding window over the last N outcomes recorded.
//
// Each Record takes a ticket from a shared counter; ticket i owns slot
// i mod N of a ring, and the window is the N most recent tickets. Running
// totals of failures and slow calls are kept beside the ring, so Record and
// Counts are O(1) whatever N is, and Record never allocates.
//
// A Count is safe for concurrent use. It has no Reset: a window that must
// start over is replaced by a new one, which is what keeps concurrent
// writers from ever skewing the totals.
type Count struct {
	next atomic.Uint64 // tickets handed out; every Record adds one
	_    [cacheLine - 8]byte

	failures atomic.Int64 // failure bits set in slots
	slow     atomic.Int64 // slow bits set in slots
	_        [cacheLine - 16]byte

	slots []atomic.Uint32
	ring
}

// ring maps tickets to slots, i mod size, without a hardware division: for
// a size that is a power of two, a mask; otherwise a multiplication by a
// precomputed reciprocal (see slot).
type ring struct {
	size  uint64
	mask  uint64
	recip uint64
	pow2  bool
}

func newRing(n uint64) ring {
	if n&(n-1) == 0 {
		return ring{size: n, mask: n - 1, pow2: true}
	}
	// floor(2^64/n); n is not a power of two, so this equals
	// floor((2^64-1)/n).
	return ring{size: n, recip: ^uint64(0) / n}
}

// NewCount returns an empty window over the last size outcomes.
// It reports an error matching ErrInvalidSize if size is not positive or
// is over MaxCountSize.
func NewCount(size int) (*Count, error) {
	switch {
	case size <= 0:
		return nil, argErrorf("window: count window size %d: must be positive", size)
	case size > MaxCountSize:
		return nil, argErrorf("window: count window size %d: must be at most MaxCountSize (%d)", size, MaxCountSize)
	}
	return &Count{slots: make([]atomic.Uint32, size), ring: newRing(uint64(size))}, nil
}

// Size returns the number of outcomes the window holds when full.
func (w *Count) Size() int { return int(w.size) }

// slot maps a ticket to its slot, i mod size, without a hardware division.
// With recip = floor(2^64/size), q = floor(i*recip/2^64) is floor(i/size)
// or one less, so i-q*size lies in [0, 2*size) and one subtraction finishes
// the job.
func (r *ring) slot(i uint64) uint64 {
	if r.pow2 {
		return i & r.mask
	}
	q, _ := bits.Mul64(i, r.recip)
	s := i - q*r.size
	if s >= r.size {
		s -= r.size
	}
	return s
}

// Record adds one outcome to the window, pushing out the oldest once the
// window is full. It returns how many outcomes have been recorded in all,
// this one included: n for the n-th call to Record. The window holds the
// last min(n, Size()) of them.
func (w *Count) Record(failure, slow bool) (n uint64) {
	n = w.next.Add(1)
	v := encode(failure, slow)
	s := &w.slots[w.slot(n-1)]
	// In the steady state (a success replacing a success) nothing changes:
	// a load is enough and spares the cache line a read-modify-write. If a
	// writer a full lap ahead races us on this slot, the outcome is the same
	// as if ours had landed first and been overwritten by theirs.
	if s.Load() == v {
		return n
	}
	old := s.Swap(v)
	// The swap hands each writer the exact value it displaced, so the
	// totals below track the bits in the ring whatever the interleaving.
	if d := int64(v&failureBit) - int64(old&failureBit); d != 0 {
		w.failures.Add(d)
	}
	if d := int64(v&slowBit>>1) - int64(old&slowBit>>1); d != 0 {
		w.slow.Add(d)
	}
	return n
}

// Counts returns a snapshot of the window.
func (w *Count) Counts() Counts {
	total := int64(min(w.next.Load(), w.size))
	return Counts{
		Total:    total,
		Failures: clamp(w.failures.Load(), total),
		Slow:     clamp(w.slow.Load(), total),
	}
}

// clamp bounds a running total that concurrent writers may have pushed a
// little out of range for an instant (a decrement landing before the
// matching increment).
func clamp(v, hi int64) int64 { return max(0, min(v, hi)) }
