// Package window provides sliding windows of call outcomes, the statistics
// a circuit breaker decides on.
//
// Two kinds are offered:
//
//   - [Count] keeps the last N outcomes, up to [MaxCountSize].
//   - [Time] keeps the outcomes of the last period of time, in buckets.
//
// Both record an outcome in constant time without allocating (a [Time]
// window allocates one small bucket when a new bucket period begins), are
// safe for concurrent use by any number of goroutines, and can be emptied
// in place with Reset while writers go on recording. Writers coordinate
// with atomic operations. A [Time] window takes no lock, so a writer that
// is descheduled never holds up the others. A [Count] window takes none
// in the steady state (an outcome replacing an equal one); otherwise a
// writer holds a lock bit in one word of the ring for a handful of
// instructions, which keeps the window exact: once writers stop, it holds
// precisely the last N outcomes, in the order their Records were admitted.
//
// A snapshot taken while writers are running is a close approximation of
// the window: an outcome being recorded concurrently may or may not be
// included, and the counters may briefly disagree by the number of writers
// in flight. Once writers stop, a snapshot is exact. Counts never drift:
// every outcome that leaves the window, whether pushed out or emptied by
// Reset, takes exactly its own contribution with it.
package window
