package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// KindAdaptiveLimiter is the kind of an AdaptiveLimiter.
const KindAdaptiveLimiter = "adaptive_limiter"

// ErrLimitExceeded matches the rejection of a call by an AdaptiveLimiter:
// as many calls as its limit were running, and none finished within its
// MaxWait (or the limiter keeps no queue, or a call that mattered more
// took the place). Such errors match ErrRejected too.
var ErrLimitExceeded = errors.New("resilience: concurrency limit reached")

// AdaptiveLimiterConfig configures an adaptive concurrency limiter. The
// zero value of every field stands for its default, given in the field's
// comment.
type AdaptiveLimiterConfig struct {
	// Name identifies the limiter in errors and metrics.
	Name string

	// MinLimit and MaxLimit bound the limit: it never falls below
	// MinLimit, however slow the calls get, and never rises above
	// MaxLimit, however fast they stay. Defaults 1 and 1000; MinLimit at
	// most MaxLimit. A MinLimit at about the concurrency the service needs
	// on its quietest good day keeps a slow dependency from shrinking it
	// to a trickle; MaxLimit is what the process can hold at all (its
	// memory, its connection pool, its file descriptors).
	MinLimit int
	MaxLimit int

	// InitialLimit is the limit the limiter starts with, before it has
	// measured anything. Default 20, or MinLimit or MaxLimit if 20 is
	// outside them. The limit moves from there within a few Windows.
	InitialLimit int

	// MaxWait is how long a call that finds the limit reached may wait,
	// in line, for a running call to finish; waiting also ends when the
	// caller's context does. Default 0: no line, a call that finds the
	// limit reached is rejected at once. Priorities (PriorityCritical,
	// PrioritySheddable) act through the line: a limiter with no MaxWait
	// treats every call alike. A few times the dependency's usual latency
	// is a good MaxWait: long enough for a burst to wait its turn, short
	// enough that a waiting call still has its deadline ahead of it.
	MaxWait time.Duration

	// MaxQueue is how many calls may wait at once. Default 0: as many as
	// the limit is at the time. A call that finds the line full takes the
	// place of the latest waiting call of a lower priority, which is
	// rejected, if there is one beyond that priority's own places: a
	// priority with a share (Shares) holds its share of the line's
	// places, at least one, against the others. Else a call whose
	// priority holds fewer than its own places takes the place of the
	// latest call of the highest priority holding more than its own; else
	// it is rejected itself. At most 1,000,000. Without
	// a MaxWait there is no line, and MaxQueue and Shares do nothing.
	MaxQueue int

	// Window is the shortest time over which the limiter measures
	// latency before it moves the limit: a window ends at the first call
	// to finish after Window has passed, once MinSamples calls were
	// timed in it. Default 100ms.
	Window time.Duration

	// MinSamples is how many calls are timed in a window, at least,
	// before it ends. From 1 to 64; default 16. The limiter times every
	// call while calls are few, and about 32 calls a window once there are
	// more (one in 2^k, k chosen from the last window's calls), so that
	// a busy limiter reads the clock for few of its calls.
	MinSamples int

	// BaselineWindow is how long the limiter remembers the latency of
	// calls that did not queue (its baseline). The baseline falls at once
	// when calls get faster; it rises only when calls that started with
	// few others in flight were slower throughout the last BaselineWindow,
	// and while every call queues, the limiter spends one Window at half
	// its limit every BaselineWindow/2 to measure it (see AdaptiveLimiter).
	// Default 30s, or 10 Windows if that is longer; at least 10 Windows.
	BaselineWindow time.Duration

	// Shares is the least share of the slots that come free each
	// priority is given while its calls wait, whatever waits beside
	// them, and of the places in a full line (MaxQueue): a priority whose
	// calls ask no more than its share of the limiter's throughput is
	// never starved by the priorities above it. Its share is earned as
	// credit at each slot given while its calls wait, and banked, up to
	// one slot, while none does.
	// The rest go to the highest priority waiting. Each share from 0 to
	// 1, and together at most 0.5 (critical calls keep most of the slots
	// that come free). A nil map stands for the default:
	// PriorityDefault 0.1, PrioritySheddable 0.05, PriorityCritical 0 (it
	// comes first anyway); a map of one's own sets every share, a
	// priority it leaves out having none.
	Shares map[Priority]float64
}

// Defaults of AdaptiveLimiterConfig.
const (
	DefaultMinLimit          = 1
	DefaultMaxLimit          = 1000
	DefaultInitialLimit      = 20
	DefaultLimiterWindow     = 100 * time.Millisecond
	DefaultLimiterMinSamples = 16
	DefaultBaselineWindow    = 30 * time.Second
	maxLimiterSamples        = 64
	maxLimiterQueue          = 1_000_000
	limiterSamplesPerWindow  = 32
	limiterBaselineSlots     = 10
	limiterLowSamples        = 4 // low samples a window needs to say what the baseline is
	limiterProbeWindows      = 3 // windows a probe lasts at most
	defaultShareOfDefault    = 0.1
	defaultShareOfSheddable  = 0.05
	maxSharesOfLowPriorities = 0.5
	limiterAlphaFactor       = 2.0
	limiterBetaFactor        = 4.0
	limiterMinRetryAfter     = time.Millisecond
	limiterMaxRetryAfter     = time.Hour
	limiterDropToProbe       = 0.9 // a queued window this much faster than the baseline probes it
	limiterProbeAgain        = 0.8 // a probe this much faster than the baseline probes again, at half
	limiterOverdue           = 4   // a window this many Windows long without its samples times every call
)

// AdaptiveLimiter limits how many calls run at once, as a Bulkhead does,
// but finds the limit itself from the latency of the calls: it lets more
// calls run while latency stays at its baseline, and fewer once calls
// start to queue in the dependency (or in the server's own worker pool,
// when it guards a handler). Use it where a fixed bulkhead would be too
// low on a good day (it sheds load the service could carry) or too high on
// a bad one (queues grow, every call gets slow, and goodput collapses).
//
// # The limit
//
// The control is TCP Vegas's (Brakmo and Peterson, "TCP Vegas: End to End
// Congestion Avoidance on a Global Internet", IEEE JSAC 1995), in the form
// Netflix's concurrency-limits library gives it (VegasLimit): over each
// window it takes the first quartile of the latency of the calls it
// timed, rtt, and
// estimates how many calls are queued in the dependency,
//
//	queue = limit × (1 − baseline/rtt)
//
// where baseline is the latency of a call that does not queue. While the
// queue is under alpha = max(1, 2·log10(limit)) calls and the calls used
// at least half the limit, the limit rises by max(1, log10(limit)); once
// it is over beta = max(2, 4·log10(limit)), the limit falls by
// max(1, log10(limit)) or half the excess, whichever is more; in between
// it holds. So the limiter keeps a few calls queued in the dependency
// (enough that it is never idle for want of work) and no more, and a
// limit far too high comes down geometrically. The limit is never below
// MinLimit nor above MaxLimit.
//
// # The baseline, and why it does not drift
//
// Vegas needs the latency of a call that did not queue. Taking the
// average of past latencies (as failsafe-go's adaptive limiter does)
// lets a long overload or incident raise the baseline to the queued
// latency, after which the limiter takes the queue for the norm and lets
// it grow. Taking the minimum ever seen (TCP Vegas) never forgets a
// dependency that was faster once, and a dependency that became slower
// for good would keep the limit at MinLimit. This limiter does neither:
//
//   - the baseline falls at once to any window's rtt that is lower (a
//     queue can only make calls slower, never faster), and a window much
//     faster than the baseline, itself still queued, is probed at once
//     (below);
//   - it rises only on evidence from calls that did not queue: the first
//     quartile of the latency of calls that started with fewer than half
//     the limit in flight, kept as the minimum over the last
//     BaselineWindow;
//   - while every call queues (the limit is reached all the time, so no
//     call starts with fewer than half the limit in flight), the limiter
//     makes that evidence itself, as BBR's ProbeRTT does: once no window
//     has had it for BaselineWindow/2, it admits at most half its limit
//     for one Window (at most three, until four such calls are timed),
//     and the queue in the dependency drains; a probe that finds the
//     calls much faster than the baseline said (by a fifth or more) probes
//     again at half that, down to MinLimit, since half a limit far above
//     the dependency's capacity still queues. (Halving a limit that is
//     queue-bound about halves the latency; a baseline measured while a
//     few calls queued is a few percent off, which the probe corrects
//     without probing again: a second probe at a quarter of the limit
//     would leave most of a saturated server idle for a Window.)
//
// So a long overload leaves the baseline where it was (the probes keep
// measuring the latency without the queue), a dependency that became
// slower has it raised within about BaselineWindow, and once the incident
// ends the baseline is back at the first window that measures the faster
// calls, and the limit with it.
//
// # Waiting, priorities and rejections
//
// A call that finds the limit reached waits, with MaxWait set, in a line
// ordered by priority (the call's context's, see WithPriority): each slot
// that comes free goes to the waiting call of the highest priority,
// first come first served within a priority, except that a priority with
// calls waiting is given at least its share (AdaptiveLimiterConfig.Shares)
// of the slots whatever waits above it; a full line gives a waiting call
// of the lowest priority's place to a more important newcomer. A call
// that gets no slot is rejected with a *LimitExceededError, which
// matches ErrLimitExceeded and ErrRejected (a Retry does not retry it) and
// says in RetryAfter when a slot is likely to be free, for a Retry-After
// header; a caller whose context ends while it waits gets the context's
// error. A slot is given back when the call returns, or panics.
//
// # Cost
//
// A call admitted at once costs a compare-and-swap and two atomic
// additions, and allocates nothing; the limiter reads the clock for a
// sample of the calls (every call while they are few) and takes its
// mutex when it records one, or when calls wait. No callback runs under
// that mutex.
//
// An AdaptiveLimiter is a Stage: use it in chains with For, Do and
// Guards, around outbound calls, and in resilhttp.Shed and resilgrpc's
// server interceptors around handlers. Acquire and LimiterPermit.Release
// are the same machinery for code that cannot wrap a function. It is an
// Observable (resilience_adaptive_limiter_calls_total{result="admitted|waited|rejected"},
// and gauges limit, inflight, queued and baseline_seconds), and safe for
// concurrent use. Make one with NewAdaptiveLimiter: the zero
// AdaptiveLimiter runs no call (Do returns an error matching
// ErrInvalidConfig that says so).
type AdaptiveLimiter struct {
	inflight atomic.Int64 // calls admitted and running
	waiting  atomic.Int64 // calls in line, readable without mu
	_        [48]byte

	admitted atomic.Uint64 // calls admitted without waiting
	_        [56]byte

	// Read by every call, written once a window.
	limit    atomic.Int64  // calls admitted at once, now
	mask     atomic.Uint64 // a call is timed when its count & mask == 0
	baseline atomic.Int64  // ns; 0 until measured
	recent   atomic.Int64  // the last window's rtt, ns
	waited   atomic.Uint64 // calls admitted after waiting
	rejected atomic.Uint64

	cfg     AdaptiveLimiterConfig // defaults filled in
	shares  [numPriorities]float64
	created time.Time
	ev      events

	mu     sync.Mutex
	queues [numPriorities][]*limiterWaiter
	credit [numPriorities]float64

	// The controller, under mu.
	l          float64 // the limit, before probing
	probing    int     // windows left in a probe; 0 when not probing
	probeCap   int64   // the limit while probing
	lastLow    time.Time
	winStart   time.Time // zero until the first sample
	winCalls   uint64    // admitted + waited when the window started
	ns         int
	maxInfl    int64
	samples    [maxLimiterSamples]limiterSample
	scratch    [2 * maxLimiterSamples]time.Duration
	ring       [limiterBaselineSlots]baselineSlot
	slotLen    time.Duration
	lowMarkAt  int64 // calls in flight under which a call counts as not queued
	lowSamples int   // unqueued calls a window needs to say what the baseline is: limiterLowSamples, or MinSamples if fewer
}

type limiterSample struct {
	rtt      time.Duration
	inflight int64 // calls in flight when it started, itself not counted
}

type baselineSlot struct {
	epoch int64 // slot number since created; 0 for none
	min   time.Duration
}

type limiterWaiter struct {
	ready    chan struct{}
	prio     Priority
	granted  bool  // given a slot; under mu
	evicted  bool  // its place given to a call of higher priority; under mu
	inflight int64 // calls in flight when it was given its slot
}

var errLimiterNotMade error = &notMadeError{"AdaptiveLimiter", "NewAdaptiveLimiter"}

// NewAdaptiveLimiter returns an adaptive limiter configured by cfg, or an
// error naming every invalid field of cfg.
func NewAdaptiveLimiter(cfg AdaptiveLimiterConfig) (*AdaptiveLimiter, error) {
	ck := checker{typ: "AdaptiveLimiterConfig"}
	ck.check(cfg.MinLimit >= 0, "MinLimit", cfg.MinLimit, "must not be negative")
	ck.check(cfg.MaxLimit >= 0, "MaxLimit", cfg.MaxLimit, "must not be negative")
	ck.check(cfg.InitialLimit >= 0, "InitialLimit", cfg.InitialLimit, "must not be negative")
	ck.check(cfg.MaxWait >= 0, "MaxWait", cfg.MaxWait, "must not be negative")
	ck.check(cfg.MaxQueue >= 0 && cfg.MaxQueue <= maxLimiterQueue, "MaxQueue", cfg.MaxQueue, "must be from 0 to 1000000")
	ck.check(cfg.Window >= 0, "Window", cfg.Window, "must not be negative")
	ck.check(cfg.MinSamples >= 0 && cfg.MinSamples <= maxLimiterSamples, "MinSamples", cfg.MinSamples, "must be from 0 to 64")
	ck.check(cfg.BaselineWindow >= 0, "BaselineWindow", cfg.BaselineWindow, "must not be negative")
	if cfg.MinLimit == 0 {
		cfg.MinLimit = DefaultMinLimit
	}
	if cfg.MaxLimit == 0 {
		cfg.MaxLimit = max(DefaultMaxLimit, cfg.MinLimit)
	}
	ck.check(cfg.MinLimit <= cfg.MaxLimit, "MinLimit", cfg.MinLimit, fmt.Sprintf("must not be above MaxLimit (%d)", cfg.MaxLimit))
	if cfg.InitialLimit == 0 {
		cfg.InitialLimit = min(max(DefaultInitialLimit, cfg.MinLimit), cfg.MaxLimit)
	}
	ck.check(cfg.InitialLimit >= cfg.MinLimit && cfg.InitialLimit <= cfg.MaxLimit, "InitialLimit", cfg.InitialLimit,
		fmt.Sprintf("must be from MinLimit (%d) to MaxLimit (%d)", cfg.MinLimit, cfg.MaxLimit))
	if cfg.Window == 0 {
		cfg.Window = DefaultLimiterWindow
	}
	if cfg.MinSamples == 0 {
		cfg.MinSamples = DefaultLimiterMinSamples
	}
	if cfg.BaselineWindow == 0 {
		cfg.BaselineWindow = max(DefaultBaselineWindow, 10*cfg.Window)
	}
	ck.check(cfg.BaselineWindow >= 10*cfg.Window, "BaselineWindow", cfg.BaselineWindow, fmt.Sprintf("must be at least 10 Windows (%v)", 10*cfg.Window))
	var shares [numPriorities]float64
	if cfg.Shares == nil {
		shares[PriorityDefault.index()] = defaultShareOfDefault
		shares[PrioritySheddable.index()] = defaultShareOfSheddable
	} else {
		sum := 0.0
		for p, s := range cfg.Shares {
			if !p.valid() {
				ck.check(false, "Shares", p, "is not a priority (PrioritySheddable, PriorityDefault, PriorityCritical)")
				continue
			}
			ok := s >= 0 && s <= 1 // NaN fails
			ck.check(ok, "Shares["+p.String()+"]", s, "must be from 0 to 1")
			if ok {
				shares[p.index()] = s
				sum += s
			}
		}
		ck.check(sum <= maxSharesOfLowPriorities, "Shares", sum, "must add up to at most 0.5")
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	l := &AdaptiveLimiter{
		cfg:     cfg,
		shares:  shares,
		created: time.Now(),
		l:       float64(cfg.InitialLimit),
		slotLen: cfg.BaselineWindow / limiterBaselineSlots,

		lowSamples: min(limiterLowSamples, cfg.MinSamples),
	}
	l.lastLow = l.created
	l.limit.Store(int64(cfg.InitialLimit))
	l.setLowMark()
	return l, nil
}

// Name returns the limiter's name.
func (l *AdaptiveLimiter) Name() string { return l.cfg.Name }

// Kind returns KindAdaptiveLimiter.
func (*AdaptiveLimiter) Kind() string { return KindAdaptiveLimiter }

// Run runs call under the limiter, as Do does: it is the limiter as a
// Stage for code that has only an error to pass through.
func (l *AdaptiveLimiter) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(l, ctx, call)
}

// ObserveEvents adds f to the observers of l's events: EventRejected for
// each call it turns away. It implements EventSource.
func (l *AdaptiveLimiter) ObserveEvents(f func(context.Context, Event)) { l.ev.add(f) }

// Limit returns how many calls the limiter lets run at once now (half its
// limit while it measures its baseline).
func (l *AdaptiveLimiter) Limit() int { return int(l.limit.Load()) }

// InFlight returns how many calls it admitted are running.
func (l *AdaptiveLimiter) InFlight() int { return int(l.inflight.Load()) }

// Queued returns how many calls are waiting for a slot.
func (l *AdaptiveLimiter) Queued() int { return int(l.waiting.Load()) }

// Baseline returns the latency the limiter takes for a call that does not
// queue; 0 until it has measured one.
func (l *AdaptiveLimiter) Baseline() time.Duration { return time.Duration(l.baseline.Load()) }

// Stats reports the calls admitted at once, admitted after waiting and
// rejected, and the limit, the calls in flight and in line, and the
// baseline latency. It implements Observable.
func (l *AdaptiveLimiter) Stats() Stats {
	return Stats{
		Calls: []Count{
			{Result: "admitted", N: l.admitted.Load()},
			{Result: "waited", N: l.waited.Load()},
			{Result: "rejected", N: l.rejected.Load()},
		},
		Gauges: []Gauge{
			{Name: "limit", Help: "How many calls the adaptive limiter lets run at once.", Value: float64(l.Limit())},
			{Name: "inflight", Help: "Calls the adaptive limiter admitted that are running.", Value: float64(l.InFlight())},
			{Name: "queued", Help: "Calls waiting for a slot of the adaptive limiter.", Value: float64(l.Queued())},
			{Name: "baseline_seconds", Help: "The latency the adaptive limiter takes for a call that does not queue.", Value: l.Baseline().Seconds()},
		},
	}
}

// LimiterPermit is a slot of an AdaptiveLimiter, taken by Acquire and
// given back by Release.
type LimiterPermit struct {
	l        *AdaptiveLimiter
	start    time.Duration // since l.created, plus one; 0 when the call is not timed
	inflight int64
}

// Release gives the slot back, and, for a call the limiter times, records
// how long it took. It empties p: a second Release does nothing. Release
// it when the call ends, on every path: defer it.
func (p *LimiterPermit) Release() {
	l := p.l
	if l == nil {
		return
	}
	p.l = nil
	l.release(p.start, p.inflight)
}

// Acquire takes a slot for a call with ctx, waiting in line up to MaxWait
// if the limit is reached. It returns a *LimitExceededError if no slot
// came free in time, or ctx's error if ctx ended first; either way no slot
// is held. A permit taken must be given back with Release.
func (l *AdaptiveLimiter) Acquire(ctx context.Context) (LimiterPermit, error) {
	if n, ok := l.tryAdmit(); ok {
		return l.permit(l.admitted.Add(1), n), nil
	}
	if l.cfg.MaxLimit == 0 {
		return LimiterPermit{}, errLimiterNotMade
	}
	return l.acquireSlow(ctx)
}

// tryAdmit takes a slot if one is free and nobody waits, returning the
// calls in flight before it.
func (l *AdaptiveLimiter) tryAdmit() (int64, bool) {
	for {
		n := l.inflight.Load()
		if n >= l.limit.Load() || l.waiting.Load() != 0 {
			return n, false
		}
		if l.inflight.CompareAndSwap(n, n+1) {
			return n, true
		}
	}
}

// permit is the permit of the count'th call admitted one way, with n calls
// in flight before it: timed if its count falls on the sample.
func (l *AdaptiveLimiter) permit(count uint64, n int64) LimiterPermit {
	p := LimiterPermit{l: l, inflight: n}
	if count&l.mask.Load() == 0 {
		p.start = time.Since(l.created) + 1
	}
	return p
}

func (l *AdaptiveLimiter) acquireSlow(ctx context.Context) (LimiterPermit, error) {
	prio := PriorityFrom(ctx)
	if l.cfg.MaxWait != 0 {
		// Before the lock: a context is the caller's code.
		if err := ctx.Err(); err != nil {
			return LimiterPermit{}, err
		}
	}
	l.mu.Lock()
	if l.waiting.Load() == 0 {
		if n, ok := l.tryAdmit(); ok { // a slot came free since we looked
			l.mu.Unlock()
			return l.permit(l.admitted.Add(1), n), nil
		}
	}
	if l.cfg.MaxWait == 0 {
		l.mu.Unlock()
		return LimiterPermit{}, l.reject(ctx, prio)
	}
	if l.waiting.Load() >= l.maxQueue() && !l.evictLocked(prio) {
		l.mu.Unlock()
		return LimiterPermit{}, l.reject(ctx, prio)
	}
	w := &limiterWaiter{ready: make(chan struct{}), prio: prio}
	i := prio.index()
	l.queues[i] = append(l.queues[i], w)
	l.waiting.Add(1)
	// A slot may have come free since tryAdmit looked. Release checks
	// waiting after freeing its slot, and we check the slots after raising
	// waiting, so one of the two always sees the other: no lost wake-up.
	l.grantLocked()
	l.mu.Unlock()

	t := time.NewTimer(l.cfg.MaxWait)
	defer t.Stop()
	select {
	case <-w.ready:
	case <-t.C:
		l.leave(w)
	case <-ctx.Done():
		if !l.leave(w) && w.granted {
			l.release(0, 0) // given a slot just as ctx ended: hand it on
		}
		return LimiterPermit{}, ctx.Err()
	}
	if w.granted { // read after ready was closed, or under leave's lock
		return l.permit(l.waited.Add(1), w.inflight), nil
	}
	return LimiterPermit{}, l.reject(ctx, prio)
}

// maxQueue is how many calls may wait now.
func (l *AdaptiveLimiter) maxQueue() int64 {
	if l.cfg.MaxQueue > 0 {
		return int64(l.cfg.MaxQueue)
	}
	return max(l.limit.Load(), 1)
}

// leave takes w out of the line, and reports false if it had already been
// given a slot or its place. l.mu is not held.
func (l *AdaptiveLimiter) leave(w *limiterWaiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w.granted || w.evicted {
		return false
	}
	q := l.queues[w.prio.index()]
	for i, x := range q {
		if x == w {
			l.queues[w.prio.index()] = slices.Delete(q, i, i+1)
			l.waiting.Add(-1)
			break
		}
	}
	return true
}

// evictLocked makes room in a full line for a newcomer of priority prio,
// and reports whether it could. It takes the place of the latest waiting
// call of the lowest priority below prio that holds more than its own
// places (placesOf), which is rejected. Else, if prio holds fewer than its
// own places, it takes the place of the latest waiting call of the
// highest priority above it that holds more than its own: a line full of
// critical calls would otherwise refuse every other call at the door, and
// a priority's share of the slots would be worth nothing. l.mu is held.
func (l *AdaptiveLimiter) evictLocked(prio Priority) bool {
	p := prio.index()
	victim := -1
	for i := range p {
		if len(l.queues[i]) > l.placesOf(i) {
			victim = i
			break
		}
	}
	if victim < 0 && len(l.queues[p]) < l.placesOf(p) {
		for i := numPriorities - 1; i > p; i-- {
			if len(l.queues[i]) > max(1, l.placesOf(i)) {
				victim = i
				break
			}
		}
	}
	if victim < 0 {
		return false
	}
	q := l.queues[victim]
	w := q[len(q)-1]
	q[len(q)-1] = nil
	l.queues[victim] = q[:len(q)-1]
	l.waiting.Add(-1)
	w.evicted = true
	close(w.ready)
	return true
}

// placesOf is how many places in a full line the priority of index i
// holds against newcomers of other priorities: its share of the line, at
// least one, if it has a share (Shares), else none. l.mu is held.
func (l *AdaptiveLimiter) placesOf(i int) int {
	share := l.shares[i]
	if share <= 0 {
		return 0
	}
	return max(1, int(share*float64(l.maxQueue())))
}

// grantLocked hands free slots to waiting calls. l.mu is held.
func (l *AdaptiveLimiter) grantLocked() {
	for l.waiting.Load() > 0 {
		n := l.inflight.Load()
		if n >= l.limit.Load() {
			return
		}
		if !l.inflight.CompareAndSwap(n, n+1) {
			continue
		}
		w := l.nextLocked()
		w.granted = true
		w.inflight = n
		l.waiting.Add(-1)
		close(w.ready)
	}
}

// nextLocked takes the next call to be given a slot out of the line: the
// first of the highest priority waiting, unless a lower priority waiting
// has earned a slot by its share. l.mu is held, and a call waits.
func (l *AdaptiveLimiter) nextLocked() *limiterWaiter {
	top := -1
	for i := numPriorities - 1; i >= 0; i-- {
		if len(l.queues[i]) > 0 {
			top = i
			break
		}
	}
	pick := top
	for i := top - 1; i >= 0; i-- {
		if len(l.queues[i]) == 0 {
			// Banked while nothing of it waits, up to one slot: a call of
			// a priority that asks for less than its share then finds its
			// slot at the next grant rather than wait for its credit
			// (and leave at MaxWait) each time.
			l.credit[i] = min(1, l.credit[i]+l.shares[i])
			continue
		}
		l.credit[i] += l.shares[i]
		if pick == top && l.credit[i] >= 1 {
			pick = i
		}
	}
	if pick != top {
		l.credit[pick]--
	}
	for i := top + 1; i < numPriorities; i++ {
		l.credit[i] = 0
	}
	q := l.queues[pick]
	w := q[0]
	q[0] = nil
	l.queues[pick] = q[1:]
	return w
}

// release gives back a slot; start is when the call began if it was
// timed (LimiterPermit.start), and n the calls in flight before it.
func (l *AdaptiveLimiter) release(start time.Duration, n int64) {
	var end time.Duration
	timed := start != 0
	if timed {
		end = time.Since(l.created) + 1
	}
	if l.inflight.Add(-1) < 0 {
		l.inflight.Add(1)
		panic("resilience: AdaptiveLimiter released a slot it did not give")
	}
	if !timed && l.waiting.Load() == 0 {
		return
	}
	l.mu.Lock()
	if timed {
		l.recordLocked(l.created.Add(start-1), l.created.Add(end-1), n)
	}
	if l.waiting.Load() != 0 {
		l.grantLocked()
	}
	l.mu.Unlock()
}

// recordLocked records a call timed from start to end, started with n
// calls in flight, and ends the window if its time has come. l.mu is held.
func (l *AdaptiveLimiter) recordLocked(start, end time.Time, n int64) {
	if l.winStart.IsZero() {
		l.winStart = start
		l.winCalls = 0
	}
	if l.ns < len(l.samples) {
		l.samples[l.ns] = limiterSample{rtt: end.Sub(start), inflight: n}
		l.ns++
	}
	l.maxInfl = max(l.maxInfl, n+1)
	if elapsed := end.Sub(l.winStart); elapsed >= l.cfg.Window {
		switch {
		case l.ns >= l.cfg.MinSamples:
			l.updateLocked(end)
		case elapsed >= limiterOverdue*l.cfg.Window:
			// The calls got fewer since the sample was chosen: time
			// every call until the window has its samples.
			l.mask.Store(0)
		}
	}
}

// updateLocked ends the window at now: it moves the baseline and the
// limit from the window's samples and starts the next window. l.mu is
// held.
func (l *AdaptiveLimiter) updateLocked(now time.Time) {
	all := l.scratch[:0]
	for _, s := range l.samples[:l.ns] {
		all = append(all, s.rtt)
	}
	slices.Sort(all)
	rtt := lowQuantile(all)
	low := l.scratch[len(all):len(all)]
	for _, s := range l.samples[:l.ns] {
		if s.inflight < l.lowMarkAt {
			low = append(low, s.rtt)
		}
	}
	v := rtt
	if len(low) >= l.lowSamples {
		slices.Sort(low)
		v = min(v, lowQuantile(low))
		l.lastLow = now
	}
	old := time.Duration(l.baseline.Load())
	base := l.baselineLocked(now, v)
	l.baseline.Store(int64(base))
	l.recent.Store(int64(rtt))

	switch {
	case l.probing > 0:
		// A probe's window measures the baseline; the limit waits. A
		// probe that found calls faster than the baseline was probes
		// again at half the calls, until it finds no faster or is at
		// MinLimit: half a limit far above the dependency's capacity
		// still queues.
		l.probing--
		if len(low) >= l.lowSamples {
			l.probing = 0
			if float64(v) < limiterProbeAgain*float64(old) && l.probeCap > int64(l.cfg.MinLimit) {
				l.probing = limiterProbeWindows
				l.probeCap = max(int64(l.cfg.MinLimit), l.probeCap/2)
			}
		}
	case len(low) < l.lowSamples && (old == 0 || float64(v) < limiterDropToProbe*float64(old)),
		now.Sub(l.lastLow) >= l.cfg.BaselineWindow/2:
		// The first window, or calls faster than the baseline said,
		// measured while they queue: the latency without the queue is
		// lower still. Or no call has gone without queueing for a while.
		l.probing = limiterProbeWindows
		l.probeCap = max(int64(l.cfg.MinLimit), (int64(l.l)+1)/2)
	default:
		l.l = l.vegas(rtt, base)
	}
	if l.probing > 0 {
		l.limit.Store(l.probeCap)
	} else {
		l.limit.Store(int64(l.l))
	}
	l.setLowMark()

	// Time about limiterSamplesPerWindow calls of the next window, at the
	// rate of calls of this one (which may have lasted more than Window).
	calls := l.admitted.Load() + l.waited.Load()
	per := (calls - l.winCalls) / limiterSamplesPerWindow
	if elapsed := now.Sub(l.winStart); elapsed > l.cfg.Window {
		per = uint64(float64(per) * float64(l.cfg.Window) / float64(elapsed))
	}
	mask := uint64(0)
	for mask < per/2 && mask < 1<<20 {
		mask = mask<<1 | 1
	}
	l.mask.Store(mask)
	l.winCalls = calls
	l.winStart = now
	l.ns = 0
	l.maxInfl = 0
}

// setLowMark sets the calls in flight under which a call counts as not
// queued: half the limit (at least MinLimit). l.mu is held, or l is new.
func (l *AdaptiveLimiter) setLowMark() {
	l.lowMarkAt = max(int64(l.cfg.MinLimit), (int64(l.l)+1)/2)
}

// vegas returns the next limit for a window whose latency was rtt,
// against the baseline base.
func (l *AdaptiveLimiter) vegas(rtt, base time.Duration) float64 {
	lim := l.l
	queue := 0.0
	if rtt > base {
		queue = lim * (1 - float64(base)/float64(rtt))
	}
	lg := math.Log10(lim)
	alpha := max(1, limiterAlphaFactor*lg)
	beta := max(2, limiterBetaFactor*lg)
	step := max(1, lg)
	switch {
	case queue > beta:
		lim -= max(step, (queue-beta)/2)
	case queue < alpha && float64(l.maxInfl) >= lim/2:
		lim += step
	}
	return min(max(lim, float64(l.cfg.MinLimit)), float64(l.cfg.MaxLimit))
}

// baselineLocked adds v, a window's estimate of the latency without a
// queue, to the baseline's slots at now, and returns the baseline: the
// least estimate of the last BaselineWindow. l.mu is held.
func (l *AdaptiveLimiter) baselineLocked(now time.Time, v time.Duration) time.Duration {
	epoch := int64(now.Sub(l.created)/l.slotLen) + 1
	s := &l.ring[epoch%limiterBaselineSlots]
	if s.epoch != epoch {
		*s = baselineSlot{epoch: epoch, min: v}
	} else {
		s.min = min(s.min, v)
	}
	base := v
	for _, s := range l.ring {
		if s.epoch > epoch-limiterBaselineSlots && s.epoch != 0 {
			base = min(base, s.min)
		}
	}
	return base
}

// lowQuantile returns the first quartile of sorted, which is not empty:
// the latency the limiter compares, in a window and for its baseline. A
// low quantile, rather than the median, still reads the latency of a call
// that did not queue when most calls of a probe do (half a limit well
// above the dependency's capacity), and is not moved by the slow tail.
func lowQuantile(sorted []time.Duration) time.Duration {
	return sorted[(len(sorted)-1)/4]
}

// reject counts a rejection of a call of priority prio, and returns its
// error.
func (l *AdaptiveLimiter) reject(ctx context.Context, prio Priority) error {
	l.rejected.Add(1)
	lim := l.limit.Load()
	err := &LimitExceededError{
		Name:     l.cfg.Name,
		Limit:    int(lim),
		Priority: prio,
		Delay:    l.retryAfter(lim),
	}
	if l.ev.on() {
		l.ev.emit(ctx, Event{Type: EventRejected, Kind: KindAdaptiveLimiter, Name: l.cfg.Name, Err: err})
	}
	return err
}

// retryAfter estimates how long until a slot is free for a call that
// would join the line: the calls ahead of it, at the rate the limit lets
// calls of the recent latency through; at least limiterMinRetryAfter (an
// estimate of a few nanoseconds, for fast calls at a high limit, would
// read as "now"), at most limiterMaxRetryAfter.
func (l *AdaptiveLimiter) retryAfter(lim int64) time.Duration {
	rtt := time.Duration(l.recent.Load())
	if rtt <= 0 {
		return limiterMinRetryAfter
	}
	ahead := l.waiting.Load() + 1
	d := float64(rtt) * float64(ahead) / float64(max(lim, 1))
	return time.Duration(min(max(d, float64(limiterMinRetryAfter)), float64(limiterMaxRetryAfter)))
}

// limiterDo runs the rest of a chain in a slot of l.
func limiterDo[T any](l *AdaptiveLimiter, ctx context.Context, n next[T]) (T, error) {
	p, err := l.Acquire(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	defer p.Release()
	return n.call(ctx)
}

// LimitExceededError is the error of a call rejected by an
// AdaptiveLimiter. It matches ErrLimitExceeded and ErrRejected.
type LimitExceededError struct {
	// Name is the limiter's name (AdaptiveLimiterConfig.Name).
	Name string
	// Limit is how many calls the limiter let run at once when it
	// rejected the call.
	Limit int
	// Priority is the priority of the call rejected.
	Priority Priority
	// Delay is the limiter's estimate of how long until a slot is free:
	// the calls waiting, at the rate the limit lets calls through; from a
	// millisecond to an hour.
	Delay time.Duration
}

// Error describes the error.
func (e *LimitExceededError) Error() string {
	return fmt.Sprintf("resilience: adaptive limiter %q is at its limit of %d calls in flight (a %s call; a slot in about %v)",
		e.Name, e.Limit, e.Priority, approx(e.Delay))
}

// Is reports whether target is ErrLimitExceeded or ErrRejected.
func (e *LimitExceededError) Is(target error) bool {
	return target == ErrLimitExceeded || target == ErrRejected
}

// RetryAfter returns Delay, for code that tells its own callers when to
// come back (a Retry-After header, gRPC pushback). A Retry never retries
// the rejection itself.
func (e *LimitExceededError) RetryAfter() time.Duration { return e.Delay }
