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

// Totals returns the running totals, unclamped.
func (w *Count) Totals() (failures, slow int64) { return w.failures.Load(), w.slow.Load() }

// Window returns the outcomes the window holds, oldest first, each encoded
// as failure | slow<<1. Call it only once writers have stopped.
func (w *Count) Window() []uint8 {
	next := w.next.Load()
	first := next - min(next, w.size)
	out := make([]uint8, 0, next-first)
	for t := first; t < next; t++ {
		i, shift := wordOf(w.slot(t))
		out = append(out, uint8(w.words[i].Load()>>shift&3))
	}
	return out
}

// Footprint returns the bytes the window holds.
func (w *Count) Footprint() int { return w.footprint() }
