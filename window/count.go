package window

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
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
// to ask for gigabytes. Reset visits the whole ring: at this size it takes
// milliseconds. The bound also keeps an outcome's position within its
// word a multiplication rather than a division (see wordOf), which is
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
// Reset empties the window in place, without allocating, while writers go
// on recording; see Reset for what a Record racing with it sees.
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
	// next is the next ticket to hand out, shifted left by one, and in bit
	// 0 the parity of the current reset period: Reset flips it, so that a
	// ticket and the period it belongs to are taken in one atomic step.
	// Every Record adds 2.
	next atomic.Uint64
	// base[p] is the first ticket of the latest reset period of parity p:
	// the window is the tickets from base[next&1] on. It shares the cache
	// line of next, which every Record has just written.
	base [2]atomic.Uint64
	_    [cacheLine - 24]byte

	// The failure and slow bits held by the words of each parity: words of
	// the current parity are the window, words of the other one are yet to
	// be emptied by a Reset in progress. Each change to a word's bits
	// brings exactly its own difference here, so once writers stop,
	// totals[q] equals the bits of the words of parity q.
	totals [2]struct{ failures, slow atomic.Int64 }
	_      [cacheLine - 32]byte

	words []atomic.Uint64
	ring
	resetMu sync.Mutex // serializes Resets
}

// A word of the ring holds 31 slots of 2 bits (the outcome's failure bit,
// then its slow bit) in bits 0 to 61, the parity of the Reset its content
// belongs to in bit 62, and a lock bit in bit 63.
const (
	slotsPerWord = 31
	dataMask     = 1<<(2*slotsPerWord) - 1
	failureMask  = dataMask / 3 // 0b0101...01: the failure bit of every slot
	slowMask     = failureMask << 1
	parityShift  = 62
	parityBit    = 1 << parityShift
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
	return word, uint(2*(s-word*slotsPerWord)) & 63 // & 63: below 62 anyway, and it spares the shifts a range check
}

// Record adds one outcome to the window, pushing out the oldest once the
// window is full. It returns how many outcomes have been recorded since the
// window was made or last Reset, this one included: n for the n-th; the
// window holds the last min(n, Size()) of them. A Record whose outcome a
// concurrent Reset discards returns 0, or the number the outcome had
// before the Reset if the two ran too close together to tell.
func (w *Count) Record(failure, slow bool) (n uint64) {
	x := w.next.Add(2) - 2
	t, par := x>>1, x&1
	// The base of our period, stored before the Reset that began it made
	// its cut; it is above t only if a second Reset has begun since we
	// took our ticket.
	b := w.base[par].Load()
	v := encode(failure, slow)
	i, shift := wordOf(w.slot(t))
	// Fast path, and the steady state (a success replacing a success): the
	// word is unlocked, carries our period's parity (it has been emptied
	// since the last cut, if it needed to be), and our slot holds v. Then
	// nothing needs to change and a load spares the cache line a
	// read-modify-write. If the slot's v was written for an earlier
	// ticket, this is as if ours had landed now; if for a later one (a
	// writer a lap ahead), ours has left the window anyway. Either way a
	// writer of an earlier ticket still to come will find our ticket taken
	// and skip its write (see putSlow). A locked word sends us to putSlow:
	// its holder may be about to overwrite our slot with an older outcome
	// which only we, writing after it, can put right.
	//
	// The test is put's, written out so that the steady state makes no
	// call: Record then needs no stack frame to speak of.
	if t >= b && i < uint64(len(w.words)) && w.words[i].Load()&(lockBit|parityBit|3<<shift) == par<<parityShift|v<<shift {
		return t - b + 1
	}
	return w.record(t, par, b, v)
}

// RecordSuccess records a success, as Record(false, false) does, except
// when the window is full and holds neither a failure nor a slow call:
// then the success would take the place of a success and change nothing,
// and it is not written. The writers of that steady state, nearly every
// call a closed breaker sees, then share the window's cache lines
// read-only instead of contending for its ticket. It returns Record's n,
// or 0 when it wrote nothing.
//
// The window stays exact: a success left out is ordered after every
// outcome whose Record had returned when it looked, and after those still
// under way too, which may only take failures out (a failure's Record
// counts it before it returns); recorded there, it would replace a
// success and change no count.
func (w *Count) RecordSuccess() uint64 {
	x := w.next.Load()
	par := x & 1
	if x>>1-min(w.base[par].Load(), x>>1) >= w.size {
		if t := &w.totals[par]; t.failures.Load() == 0 && t.slow.Load() == 0 {
			return 0
		}
	}
	return w.Record(false, false)
}

// record is the rest of Record, off its fast path.
func (w *Count) record(t, par, b, v uint64) uint64 {
	if t < b || !w.put(t, par, v) {
		return 0
	}
	return t - b + 1
}

// put writes outcome v for ticket t, of a reset period of parity par, as
// Record does once it has its ticket. It reports false if a Reset has
// discarded the outcome.
func (w *Count) put(t, par, v uint64) bool {
	i, shift := wordOf(w.slot(t))
	p := &w.words[i]
	return p.Load()&(lockBit|parityBit|3<<shift) == par<<parityShift|v<<shift || w.putSlow(p, t, par, shift, v)
}

// putSlow writes outcome v for ticket t into word p under the word's lock.
func (w *Count) putSlow(p *atomic.Uint64, t, par uint64, shift uint, v uint64) bool {
	old := lock(p)
	// The lock makes the checks below and the write one step as far as
	// other writers of this word and Reset are concerned: both take the
	// lock (Reset through a compare-and-swap of the unlocked word).
	//
	// A Reset has made its cut since we took our ticket: the outcome
	// belongs to the window it empties. Leave the word as it is. A cut
	// after this check finds our word locked or already written, and the
	// sweep that follows it empties the word after us. The parity alone
	// says whether one Reset has cut since our ticket; base, whether two
	// or more have (it is above t if the parity has come round again, and
	// at most t while our period is still the current one).
	cur := w.next.Load()
	if cur&1 != par || t < w.base[par].Load() {
		p.Store(old)
		return false
	}
	// A writer one lap ahead holds a ticket for our slot: our outcome has
	// left the window, and writing it could overwrite the newer one. This
	// check is airtight because it is made under the lock: ticket t+size
	// was taken either before it (we skip) or after, in which case its
	// writer finds the word locked or written by us, and writes after us.
	if cur>>1 > t+w.size {
		p.Store(old)
		return true
	}
	if old>>parityShift&1 != par {
		// The word has not been emptied since the last cut: it holds
		// outcomes from before the cut, if any, and the sweep has yet to
		// reach it (or passed it by, having nothing to empty). Empty it
		// here, on the sweep's behalf, so that the sweep finds it done and
		// leaves our outcome alone.
		if old&dataMask != 0 {
			stale := &w.totals[par^1]
			stale.failures.Add(-int64(bits.OnesCount64(old & failureMask)))
			stale.slow.Add(-int64(bits.OnesCount64(old & slowMask)))
		}
		old = par << parityShift
	}
	prev := old >> shift & 3
	// One store writes our bits and releases the lock.
	p.Store(old&^(3<<shift) | v<<shift)
	// The bits we displaced are known exactly, so the totals track the
	// ring whatever the interleaving; they may only lag it while writers
	// are running.
	tot := &w.totals[par]
	if d := int64(v&failureBit) - int64(prev&failureBit); d != 0 {
		tot.failures.Add(d)
	}
	if d := int64(v>>1) - int64(prev>>1); d != 0 {
		tot.slow.Add(d)
	}
	return true
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

// Reset empties the window in place, without allocating. It costs one
// pass over the ring (8 bytes per 31 outcomes), and may run while other
// goroutines Record and read Counts; concurrent Resets run one at a time.
//
// Reset begins by flipping, with one compare-and-swap, a parity bit that
// every ticket is taken with: call that instant its cut. An outcome whose
// Record took its ticket before the cut is discarded, even if it lands
// after Reset has returned; one whose Record took its ticket after the cut
// is kept, as in a new window. So once Reset has returned and every
// Record that was running during it has returned too, the window holds
// exactly the outcomes after the cut (the last Size() of them), and the
// totals equal their bits. A Record that overlaps Reset may fall on either
// side of the cut. Counts taken after the cut report only outcomes after
// it: those before it stop counting at once, not word by word; a Counts
// that began before the cut and ends during the sweep may, for that one
// snapshot, pair the old total with partly emptied failure counts.
func (w *Count) Reset() {
	w.resetMu.Lock()
	defer w.resetMu.Unlock()
	w.sweep(w.cut())
}

// cut starts a Reset: it makes the next ticket the window's first and
// flips the parity, which it returns. From here on, every writer that
// takes a word's lock sees the new parity: one with an older ticket skips
// its write, one with a newer ticket empties the word itself before
// writing, if sweep has not done so yet (see putSlow).
func (w *Count) cut() (par uint64) {
	for {
		x := w.next.Load()
		par = x&1 ^ 1
		// Store the base first, so that a writer whose ticket comes after
		// the cut finds it. No writer reads base[par] for its own period
		// now: the last period of this parity ended at the last cut.
		w.base[par].Store(x >> 1)
		if w.next.CompareAndSwap(x, x^1) {
			return par
		}
	}
}

// sweep finishes a Reset: it empties every word that still holds outcomes
// from before the cut.
func (w *Count) sweep(par uint64) {
	var df, ds int64
	for i := range w.words {
		p := &w.words[i]
		for j := 0; ; j++ {
			v := p.Load()
			if v&lockBit == 0 {
				// A word of the new parity was emptied by a writer after
				// the cut and holds only outcomes after it. A word with no
				// bits set has nothing to empty: parity decides nothing for
				// it. Leaving it as it is, unlocked, is safe: a writer
				// with a ticket from before the cut would take its lock
				// after the cut, and skip.
				if v>>parityShift == par || v&dataMask == 0 {
					break
				}
				// The word holds outcomes from before the cut, including
				// those of any writer that held its lock at the cut and has
				// released it since. Compare-and-swap from the unlocked
				// value is as good as taking the lock.
				if p.CompareAndSwap(v, par<<parityShift) {
					df += int64(bits.OnesCount64(v & failureMask))
					ds += int64(bits.OnesCount64(v & slowMask))
					break
				}
			}
			if j >= spins {
				runtime.Gosched()
			}
		}
	}
	// At the cut, every word of the new parity was empty (the last Reset
	// had emptied or left empty every word of this parity, and every write
	// since carried the other one), so the new parity's totals were zero,
	// give or take the additions of writers in flight. What the loop
	// emptied leaves the old parity's totals, which no one reads once the
	// cut is made.
	stale := &w.totals[par^1]
	stale.failures.Add(-df)
	stale.slow.Add(-ds)
}

// Counts returns a snapshot of the window.
func (w *Count) Counts() Counts {
	x := w.next.Load()
	par := x & 1
	// base[par] is above x>>1 only if two cuts came between the loads.
	total := int64(min(x>>1-min(w.base[par].Load(), x>>1), w.size))
	t := &w.totals[par]
	return Counts{
		Total:    total,
		Failures: clamp(t.failures.Load(), total),
		Slow:     clamp(t.slow.Load(), total),
	}
}

// clamp bounds a running total that concurrent writers may have pushed a
// little out of range for an instant (a decrement landing before the
// matching increment).
func clamp(v, hi int64) int64 { return max(0, min(v, hi)) }
