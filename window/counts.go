package window

// Counts is a snapshot of a window.
type Counts struct {
	// Total is the number of outcomes in the window.
	Total int64
	// Failures is the number of those outcomes that were failures.
	Failures int64
	// Slow is the number of those outcomes that were slow calls,
	// whether they succeeded or failed.
	Slow int64
}

// FailureRate returns Failures/Total, from 0 to 1; 0 for an empty window.
func (c Counts) FailureRate() float64 { return ratio(c.Failures, c.Total) }

// SlowRate returns Slow/Total, from 0 to 1; 0 for an empty window.
func (c Counts) SlowRate() float64 { return ratio(c.Slow, c.Total) }

func ratio(part, total int64) float64 {
	if total <= 0 || part <= 0 {
		return 0
	}
	if part >= total {
		return 1
	}
	return float64(part) / float64(total)
}

// An outcome packs the two facts a window keeps about a call into the bits
// of a slot.
const (
	failureBit = 1 << iota
	slowBit
)

func encode(failure, slow bool) uint64 {
	var v uint64
	if failure {
		v |= failureBit
	}
	if slow {
		v |= slowBit
	}
	return v
}

// cacheLine is the padding unit that keeps counters written by different
// goroutines on separate cache lines. 128 bytes covers the adjacent-line
// prefetcher of x86 processors as well as the 128-byte lines of some arm64
// ones.
const cacheLine = 128
