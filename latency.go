package resilience

import (
	"context"
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"
)

// KindLatency is the kind of a Latency.
const KindLatency = "latency"

// LatencyConfig configures a Latency. The zero value of every field stands
// for its default, given in the field's comment.
type LatencyConfig struct {
	// Name identifies the model in errors and metrics.
	Name string

	// Window is how far back the quantiles look. The window moves on a
	// fifth of it at a time, so a quantile covers the samples of the last
	// 4/5 Window at least and of the last Window at most. From 1s to 1h;
	// default 10s.
	Window time.Duration

	// MinSamples is how many samples the window must hold before a
	// quantile is reported: with fewer, Quantile says there is no data
	// yet (ok false), and the quantile gauges read 0. At least 1, at
	// most 1e6; default 50.
	MinSamples int
}

// Defaults of LatencyConfig.
const (
	DefaultLatencyWindow     = 10 * time.Second
	DefaultLatencyMinSamples = 50
)

// The histogram's shape: latencies in nanoseconds fall in log-spaced
// buckets, 32 linear sub-buckets to each power of two from 2^10 ns
// (about 1µs) to 2^37 ns (about 137s).
const (
	latencySlots   = 5                                                 // parts of the window, each Window/5
	latencyMinExp  = 10                                                // the floor, 2^10 ns
	latencyMaxExp  = 37                                                // the ceiling, 2^37 ns
	latencySubBits = 5                                                 // 32 sub-buckets per power of two
	latencyBuckets = (latencyMaxExp - latencyMinExp) << latencySubBits // 864
	latencyFloor   = 1 << latencyMinExp
	latencyCeiling = 1 << latencyMaxExp
	latencyRefresh = 100 * time.Millisecond // how old recent's snapshot may grow
	latencyLinePad = 64                     // a cache line
)

// Latency is a model of a dependency's latency: a histogram of the
// latencies of its calls over a sliding window, from which it answers
// quantiles ("what is p95 now?"). A Hedge stage takes its delay from it,
// a Retry may skip a retry that the time left before the deadline could
// not hold, and a user reads it for dashboards and decisions of their own.
//
// # As a stage
//
// A Latency is a Stage: it times each call through it and records the
// latency of those the dependency answered: the calls that returned no
// error, or an error marked as an answer (see Answer and IsAnswer; a
// Guard's Classify marks them too). It records nothing else: not the
// failures, the time-outs nor the calls whose context was cancelled,
// since the time such a call took says how long the caller waited, not
// how long the dependency takes to answer, and would distort the model.
// The attempts a Hedge cancels, once another attempt has answered, end
// cancelled and the stage skips them; the Hedge itself records each at
// the time it had run, a lower bound of its latency, so that the model
// does not see only the fast answers that won. A call that panics goes up the
// stack unchanged and is not recorded. Place it where it sees each attempt
// on its own (inside a Retry and a Hedge, close to the dependency):
//
//	latency, err := resilience.NewLatency(resilience.LatencyConfig{Name: "users"})
//	if err != nil {
//		return err
//	}
//	users := resilience.For[*User](timeout, retry, breaker, latency)
//
// Stats counts the calls "recorded" and those "skipped" (not answered),
// and keeps the gauges "samples" (in the window) and "p50_seconds",
// "p90_seconds", "p99_seconds" and "p999_seconds". Record adds a latency
// measured elsewhere.
//
// # Precision
//
// A latency falls in one of 864 buckets: 32 of equal width between each
// power of two of nanoseconds and the next, from 2^10 ns to 2^37 ns. A
// quantile is exact over the histogram (the sample of rank ceil(q × n)
// among the n in the window) and reports the midpoint of that sample's
// bucket: within 1/64 (1.6%) of the sample itself. Latencies under the
// floor of 1µs (1024ns) count as 1024ns, and those over the ceiling of
// about 137s (2^37 ns) as just under it.
//
// # The window
//
// The window is cut into 5 slots of Window/5 each, in a ring: a sample
// counts in the slot of the moment it was recorded, and a quantile looks
// at the current slot and the 4 before it, so the samples of the last
// 4/5 Window are all counted, and none older than Window. The first
// sample recorded in a slot's new turn clears what it held a Window ago.
// Samples recorded while another goroutine clears the slot they fall in
// may be lost, and a quantile read during the clearing may still count
// some of what it held: a quantile is an estimate anyway. A bucket counts
// up to 2^32-1 samples in a slot.
//
// Recording a sample is a few atomic operations, with no lock and no
// allocation; a quantile sums the buckets of the slots. A Latency takes
// about 18KB. It is safe for concurrent use. Make one with NewLatency:
// the zero Latency records nothing, and as a stage runs no call,
// returning an error that says so.
type Latency struct {
	name  string
	width time.Duration // Window/latencySlots; 0 in a zero Latency
	inv   float64       // 1/width, in 1/ns
	min   uint64        // MinSamples
	base  time.Time     // slot numbers count from here, with a monotonic reading

	// Written by calls, each group on cache lines of its own so that
	// writes do not slow down the reads above.
	_        [latencyLinePad]byte
	recorded atomic.Uint64 // calls through the stage recorded
	skipped  atomic.Uint64 // calls through the stage not recorded

	_        [latencyLinePad]byte
	snap     atomic.Pointer[latencySnapshot] // recent's, nil until its first call
	building atomic.Bool                     // a goroutine is rebuilding snap

	_     [latencyLinePad]byte
	slots [latencySlots]latencySlot
}

// latencySlot is one part of the window: the samples recorded during its
// slot number epoch.
type latencySlot struct {
	epoch  atomic.Int64 // the slot number of the samples it holds
	_      [latencyLinePad - 8]byte
	counts [latencyBuckets]atomic.Uint32 // what they sum to is the samples it holds: a sample is one atomic add
}

// latencySnapshot is the histogram of a window at one moment, for recent:
// cum[i] is the count of the buckets up to i, i included. It is never
// changed once published.
type latencySnapshot struct {
	taken time.Time
	total uint64
	cum   [latencyBuckets]uint64
}

// NewLatency returns a latency model configured by cfg, or an error naming
// every invalid field of cfg.
func NewLatency(cfg LatencyConfig) (*Latency, error) {
	ck := checker{typ: "LatencyConfig"}
	ck.check(cfg.Window == 0 || cfg.Window >= time.Second && cfg.Window <= time.Hour, "Window", cfg.Window, "must be from 1s to 1h (0 for the default)")
	ck.check(cfg.MinSamples >= 0 && cfg.MinSamples <= 1e6, "MinSamples", cfg.MinSamples, "must be at least 1, at most 1e6 (0 for the default)")
	if err := ck.err(); err != nil {
		return nil, err
	}
	cfg.Window = or(cfg.Window, DefaultLatencyWindow)
	cfg.MinSamples = or(cfg.MinSamples, DefaultLatencyMinSamples)
	return &Latency{
		name:  cfg.Name,
		width: cfg.Window / latencySlots,
		inv:   1 / float64(cfg.Window/latencySlots),
		min:   uint64(cfg.MinSamples),
		base:  time.Now(),
	}, nil
}

// made reports whether l was made by NewLatency.
func (l *Latency) made() bool { return l.width != 0 }

// Name returns the model's name.
func (l *Latency) Name() string { return l.name }

// Kind returns KindLatency.
func (*Latency) Kind() string { return KindLatency }

// Run runs call through the model, as Do does: it times the call, and
// records its latency if the dependency answered.
func (l *Latency) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(l, ctx, call)
}

// Record records a latency d measured now, as the stage does for each
// call the dependency answered. A d of 0 or less is ignored. It is
// shorthand for recording d at time.Now().
func (l *Latency) Record(d time.Duration) {
	if l.width == 0 || d <= 0 {
		return
	}
	// time.Since reads only the monotonic clock, where time.Now reads
	// the wall clock too.
	l.record(time.Since(l.base), d)
}

// recordAt records a latency d measured at now.
func (l *Latency) recordAt(now time.Time, d time.Duration) {
	if l.width == 0 || d <= 0 {
		return
	}
	l.record(now.Sub(l.base), d)
}

// record records a latency d, d > 0, at elapsed since l.base.
func (l *Latency) record(elapsed, d time.Duration) {
	e := l.slotOf(elapsed)
	s := &l.slots[e%latencySlots]
	// The slot still holds the samples of a Window ago: the goroutine
	// that moves its epoch on clears it. A sample racing the clearing may
	// be counted and then cleared, or counted in the fresh slot. A sample
	// of an older slot number, whose goroutine read the clock before the
	// slot moved on, is counted in the fresh slot: it is at most a few
	// moments older than the window.
	if old := s.epoch.Load(); old < e && s.epoch.CompareAndSwap(old, e) {
		s.clear()
	}
	s.counts[latencyBucket(d)].Add(1)
}

// clear empties s, for its new turn.
func (s *latencySlot) clear() {
	for i := range s.counts {
		s.counts[i].Store(0)
	}
}

// latencyBucket returns the bucket of a latency d > 0: the floor's for one
// under it, the last for one over the ceiling.
func latencyBucket(d time.Duration) int {
	ns := min(max(uint64(d), latencyFloor), latencyCeiling-1)
	e := bits.Len64(ns) - 1
	return (e-latencyMinExp)<<latencySubBits | int(ns>>(e-latencySubBits))&(1<<latencySubBits-1)
}

// latencyMidpoint returns the midpoint of bucket i.
func latencyMidpoint(i int) time.Duration {
	e := i>>latencySubBits + latencyMinExp
	sub := int64(i & (1<<latencySubBits - 1))
	return time.Duration(1<<e + sub<<(e-latencySubBits) + 1<<(e-latencySubBits-1))
}

// latencyRank returns the rank, from 1 to total, of the q-quantile of
// total samples, 0 < q <= 1: ceil(q × total).
func latencyRank(q float64, total uint64) uint64 {
	return min(max(uint64(math.Ceil(q*float64(total))), 1), total)
}

// current returns the slot number of now.
func (l *Latency) current(now time.Time) int64 {
	return l.slotOf(now.Sub(l.base))
}

// slotOf returns elapsed / width, elapsed taken as 0 if negative: from a
// multiplication by the inverse of the width, corrected by one where its
// rounding made it miss, which costs a sample less than a 64-bit
// division.
func (l *Latency) slotOf(elapsed time.Duration) int64 {
	n := int64(max(elapsed, 0))
	w := int64(l.width)
	e := int64(float64(n) * l.inv)
	if e*w > n {
		e--
	} else if (e+1)*w <= n {
		e++
	}
	return e
}

// live reports whether a slot of the given epoch is in the window of the
// slot number cur: cur or one of the 4 before it. A later epoch, written
// by a goroutine whose clock read came after now's, is in it too.
func live(epoch, cur int64) bool { return epoch > cur-latencySlots }

// collect adds the counts of the slots in the window at now to h, and
// returns their sum.
func (l *Latency) collect(now time.Time, h *[latencyBuckets]uint64) uint64 {
	cur := l.current(now)
	var total uint64
	for i := range l.slots {
		s := &l.slots[i]
		if !live(s.epoch.Load(), cur) {
			continue
		}
		for j := range s.counts {
			c := uint64(s.counts[j].Load())
			h[j] += c
			total += c
		}
	}
	return total
}

// quantileOf returns the q-quantile of histogram h of total samples, or
// false under MinSamples.
func (l *Latency) quantileOf(h *[latencyBuckets]uint64, total uint64, q float64) (time.Duration, bool) {
	if !(q > 0 && q <= 1) || total < l.min || total == 0 {
		return 0, false
	}
	rank := latencyRank(q, total)
	var cum uint64
	for i, c := range h {
		if cum += c; cum >= rank {
			return latencyMidpoint(i), true
		}
	}
	return latencyMidpoint(latencyBuckets - 1), true // not reached: the counts sum to total
}

// Quantile returns the q-quantile of the latencies in the window: the
// midpoint of the bucket of the sample of rank ceil(q × n) among the n
// samples, q from 0 (excluded) to 1. With q out of that range or NaN, or
// fewer than MinSamples samples in the window, it returns 0, false.
func (l *Latency) Quantile(q float64) (time.Duration, bool) { return l.quantileAt(time.Now(), q) }

// quantileAt is Quantile at now.
func (l *Latency) quantileAt(now time.Time, q float64) (time.Duration, bool) {
	if l.width == 0 || !(q > 0 && q <= 1) {
		return 0, false
	}
	var h [latencyBuckets]uint64
	total := l.collect(now, &h)
	return l.quantileOf(&h, total, q)
}

// Samples returns how many samples the window holds.
func (l *Latency) Samples() int {
	if l.width == 0 {
		return 0
	}
	return int(l.samples(time.Now()))
}

func (l *Latency) samples(now time.Time) uint64 {
	cur := l.current(now)
	var n uint64
	for i := range l.slots {
		s := &l.slots[i]
		if live(s.epoch.Load(), cur) {
			for j := range s.counts {
				n += uint64(s.counts[j].Load())
			}
		}
	}
	return n
}

// recent is Quantile at now for the stages that ask on every call: it
// answers from a snapshot of the window taken at most latencyRefresh
// before (by a binary search, with no allocation), and one goroutine
// takes a fresh one when it has grown older, while the others answer from
// the old one.
func (l *Latency) recent(now time.Time, q float64) (time.Duration, bool) {
	if l.width == 0 || !(q > 0 && q <= 1) {
		return 0, false
	}
	s := l.snap.Load()
	if s == nil || now.Sub(s.taken) >= latencyRefresh {
		if l.building.CompareAndSwap(false, true) {
			// Another goroutine may have stored a fresh snapshot between
			// the load and the swap.
			if s = l.snap.Load(); s == nil || now.Sub(s.taken) >= latencyRefresh {
				s = l.snapshot(now)
				l.snap.Store(s)
			}
			l.building.Store(false)
		}
	}
	if s == nil || s.total < l.min || s.total == 0 {
		return 0, false
	}
	i, _ := slices.BinarySearch(s.cum[:], latencyRank(q, s.total))
	return latencyMidpoint(min(i, latencyBuckets-1)), true
}

// snapshot returns the histogram of the window at now.
func (l *Latency) snapshot(now time.Time) *latencySnapshot {
	s := &latencySnapshot{taken: now}
	s.total = l.collect(now, &s.cum)
	for i := 1; i < len(s.cum); i++ {
		s.cum[i] += s.cum[i-1]
	}
	return s
}

// Stats returns how many calls through the stage were recorded and
// skipped, and the samples and quantiles of the window.
func (l *Latency) Stats() Stats {
	var (
		n                   uint64
		p50, p90, p99, p999 time.Duration
	)
	if l.width != 0 {
		now := time.Now()
		var h [latencyBuckets]uint64
		total := l.collect(now, &h)
		n = l.samples(now)
		p50, _ = l.quantileOf(&h, total, 0.5)
		p90, _ = l.quantileOf(&h, total, 0.9)
		p99, _ = l.quantileOf(&h, total, 0.99)
		p999, _ = l.quantileOf(&h, total, 0.999)
	}
	return Stats{
		Calls: []Count{
			{Result: "recorded", N: l.recorded.Load()},
			{Result: "skipped", N: l.skipped.Load()},
		},
		Gauges: []Gauge{
			{Name: "samples", Help: "Latencies in the window.", Value: float64(n)},
			{Name: "p50_seconds", Help: "The median latency of the window, in seconds; 0 while the window holds fewer than MinSamples latencies.", Value: p50.Seconds()},
			{Name: "p90_seconds", Help: "The 90th percentile latency of the window, in seconds; 0 while the window holds fewer than MinSamples latencies.", Value: p90.Seconds()},
			{Name: "p99_seconds", Help: "The 99th percentile latency of the window, in seconds; 0 while the window holds fewer than MinSamples latencies.", Value: p99.Seconds()},
			{Name: "p999_seconds", Help: "The 99.9th percentile latency of the window, in seconds; 0 while the window holds fewer than MinSamples latencies.", Value: p999.Seconds()},
		},
	}
}

var errLatencyNotMade error = &notMadeError{"Latency", "NewLatency"}

// latencyDo runs the rest of a chain through l, timing it, and records
// its latency if the dependency answered. A call too quick for the clock
// to time counts as the floor.
func latencyDo[T any](l *Latency, ctx context.Context, n next[T]) (T, error) {
	if !l.made() {
		var zero T
		return zero, errLatencyNotMade
	}
	start := time.Since(l.base)
	v, err := n.call(ctx)
	if err != nil && markOf(err) != Success {
		l.skipped.Add(1)
		return v, err
	}
	end := time.Since(l.base)
	l.recorded.Add(1)
	l.record(end, max(end-start, 1))
	return v, err
}
