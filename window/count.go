package window

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// MaxCountSize is the largest window NewCount accepts: 16,777,216
// outcomes, whose ring takes 4.3 MB.
//
// A breaker deciding on more calls than that would react to a failing
// dependency only after millions of failures, and a window so large is
// more likely a configuration mistake (a duration or a byte count given as
// a size) than a wish; a size from outside the program must not be able
// to ask for gigabytes. The bound also keeps an outcome's position within
// its word a multiplication rather than a division (see wordOf), which is
// exact for every slot below it and checked for each.
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
// i mod N of a ring, and the window is the N most recent tickets: once
// writers stop, it holds exactly the last min(n, N) outcomes of the n
// recorded, whatever the order in which concurrent writers reached the
// ring. Running totals of failures and slow calls are kept beside the
// ring, so Record and Counts are O(1) whatever N is, and Record never
// allocates. The ring takes 2 bits an outcome, 31 outcomes to a 64-bit
// word: a window of 1,000,000 holds 258 KB in all.
//
// It has no Reset: a window that must start over is replaced by a new
// one.
//
// A Count is safe for concurrent use. A Record takes no lock when the
// outcome it records equals the one it replaces (a success replacing a
// success, the steady state); otherwise it sets a lock bit in the word of
// the ring it writes, for a handful of instructions, so that checking that
// no newer outcome has taken its slot and writing its own are one step.
// A writer that finds the bit set spins a little, then yields: a holder
// that is descheduled delays only the writers of the same 31 slots, and
// only until it runs again.
type Count struct {
	next atomic.Uint64 // tickets handed out; every Record adds one
	_    [cacheLine - 8]byte

	// Failure and slow bits set in the ring. Each change to the ring's
	// bits brings exactly its own difference here, so once writers stop,
	// the totals equal the bits of the ring.
	failures atomic.Int64
	slow     atomic.Int64
	_        [cacheLine - 16]byte

	words []atomic.Uint64
	ring
}

// A word of the ring holds 31 slots of 2 bits (the outcome's failure bit,
// then its slow bit) in bits 0 to 61, and a lock bit in bit 63.
const (
	slotsPerWord = 31
	dataMask     = 1<<(2*slotsPerWord) - 1
	failureMask  = dataMask / 3 // 0b0101...01: the failure bit of every slot
	slowMask     = failureMask << 1
	lockBit      = 1 << 63

	// recip31 is ceil(2^32/31). For s below 2^27, s*recip31>>32 is
	// floor(s/31): the rounding error, s*27/(31*2^32), stays below the
	// 1/31 that separates s/31 from the next integer.
	recip31 = 0x8421085

	// spins is how often a writer retries a lock bit before yielding.
	spins = 8
)

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
	return &Count{
		words: make([]atomic.Uint64, (size+slotsPerWord-1)/slotsPerWord),
		ring:  newRing(uint64(size)),
	}, nil
}

// Size returns the number of outcomes the window holds when full.
func (w *Count) Size() int { return int(w.size) }

// footprint returns the memory the window holds: the Count and its ring.
func (w *Count) footprint() int { return int(unsafe.Sizeof(*w)) + cap(w.words)*8 }

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

// wordOf maps a slot below MaxCountSize to its word and to the shift of
// its 2 bits within the word.
func wordOf(s uint64) (word uint64, shift uint) {
	word = s * recip31 >> 32
	return word, uint(2 * (s - word*slotsPerWord))
}

// Record adds one outcome to the window, pushing out the oldest once the
// window is full. It returns how many outcomes have been recorded in all,
// this one included: n for the n-th call to Record. The window holds the
// last min(n, Size()) of them.
func (w *Count) Record(failure, slow bool) (n uint64) {
	t := w.next.Add(1) - 1
	w.put(t, encode(failure, slow))
	return t + 1
}

// put writes outcome v for ticket t.
func (w *Count) put(t, v uint64) {
	i, shift := wordOf(w.slot(t))
	p := &w.words[i]
	// Fast path, and the steady state (a success replacing a success): the
	// word is unlocked and our slot holds v. Then nothing needs to change
	// and a load spares the cache line a read-modify-write. If the slot's
	// v was written for an earlier ticket, this is as if ours had landed
	// now; if for a later one (a writer a lap ahead), ours has left the
	// window anyway. Either way a writer of an earlier ticket still to
	// come will find our ticket taken and skip its write (see putSlow). A
	// locked word sends us to putSlow: its holder may be about to
	// overwrite our slot with an older outcome which only we, writing
	// after it, can put right.
	if p.Load()&(lockBit|3<<shift) == v<<shift {
		return
	}
	w.putSlow(p, t, shift, v)
}

// putSlow writes outcome v for ticket t into word p under the word's lock.
func (w *Count) putSlow(p *atomic.Uint64, t uint64, shift uint, v uint64) {
	old := lock(p)
	// A writer one lap ahead holds a ticket for our slot: our outcome has
	// left the window, and writing it could overwrite the newer one. This
	// check is airtight because it is made under the lock: ticket t+size
	// was taken either before it (we skip) or after, in which case its
	// writer finds the word locked or written by us, and writes after us.
	if w.next.Load() > t+w.size {
		p.Store(old)
		return
	}
	prev := old >> shift & 3
	// One store writes our bits and releases the lock.
	p.Store(old&^(3<<shift) | v<<shift)
	// The bits we displaced are known exactly, so the totals track the
	// ring whatever the interleaving; they may only lag it while writers
	// are running.
	if d := int64(v&failureBit) - int64(prev&failureBit); d != 0 {
		w.failures.Add(d)
	}
	if d := int64(v>>1) - int64(prev>>1); d != 0 {
		w.slow.Add(d)
	}
}

// lock sets the lock bit of p and returns the word as it was, unlocked.
// The bit is held for a handful of instructions; a writer that finds it
// set retries a few times, then yields, so that a holder that was
// descheduled gets to run.
func lock(p *atomic.Uint64) uint64 {
	for i := 0; ; i++ {
		if v := p.Load(); v&lockBit == 0 && p.CompareAndSwap(v, v|lockBit) {
			return v
		}
		if i >= spins {
			runtime.Gosched()
		}
	}
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
