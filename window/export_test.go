package window

import "math/bits"

// Recount sums the bits in the ring, for checking that the running totals
// agree with them. Call it only once writers have stopped.
func (w *Count) Recount() (failures, slow int64) {
	for i := range w.words {
		v := w.words[i].Load()
		failures += int64(bits.OnesCount64(v & failureMask))
		slow += int64(bits.OnesCount64(v & slowMask))
	}
	return failures, slow
}

// Totals returns the running totals of both parities added together,
// unclamped: what the ring holds in all once writers have stopped.
func (w *Count) Totals() (failures, slow int64) {
	for i := range w.totals {
		failures += w.totals[i].failures.Load()
		slow += w.totals[i].slow.Load()
	}
	return failures, slow
}

// Window returns the outcomes the window holds, oldest first, each encoded
// as failure | slow<<1. Call it only once writers have stopped.
func (w *Count) Window() []uint8 {
	base, next := w.Base(), w.next.Load()>>1
	first := max(base, next-min(next, w.size))
	out := make([]uint8, 0, next-first)
	for t := first; t < next; t++ {
		i, shift := wordOf(w.slot(t))
		out = append(out, uint8(w.words[i].Load()>>shift&3))
	}
	return out
}

// RecordTicket is Record, returning the ticket the outcome took (counted
// from 0 since the window was made, Resets included) and whether a Reset
// discarded it, so that tests can order outcomes across Resets.
func (w *Count) RecordTicket(failure, slow bool) (ticket uint64, kept bool) {
	x := w.next.Add(2) - 2
	t, par := x>>1, x&1
	return t, t >= w.base[par].Load() && w.put(t, par, encode(failure, slow))
}

// Base returns the first ticket of the window since the last Reset.
func (w *Count) Base() uint64 { return w.base[w.next.Load()&1].Load() }

// Footprint returns the bytes the window holds.
func (w *Count) Footprint() int { return w.footprint() }
