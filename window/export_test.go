package window

// Recount sums the bits in the ring, for checking that the running totals
// agree with them. Call it only once writers have stopped.
func (w *Count) Recount() (failures, slow int64) {
	for i := range w.slots {
		v := w.slots[i].Load()
		failures += int64(v & failureBit)
		slow += int64(v & slowBit >> 1)
	}
	return failures, slow
}
