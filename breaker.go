package resilience

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience/window"
)

// State is a circuit breaker's state.
type State int32

// The states of a circuit breaker.
const (
	// Closed: calls run, and their outcomes are recorded.
	Closed State = iota
	// Open: calls are rejected at once with an *OpenError, until the open
	// timeout has passed.
	Open
	// HalfOpen: a few probe calls run; enough successes close the breaker,
	// any failure opens it again.
	HalfOpen
)

// String returns "closed", "open" or "half-open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// StateChange describes one transition of a circuit breaker, as passed to
// BreakerConfig.OnStateChange.
type StateChange struct {
	// Name is the breaker's name.
	Name string
	// Key is the key of a KeyedBreaker's breaker, "" for any other.
	Key string
	// From and To are the states before and after.
	From, To State
	// At is when the transition happened.
	At time.Time
}

// BreakerConfig configures a circuit breaker. The zero value of every field
// stands for its default, given in the field's comment; NewBreaker reports
// negative values, rates outside [0, 1] and contradictory settings as errors.
type BreakerConfig struct {
	// Name identifies the breaker in errors, state changes and metrics.
	Name string

	// FailureThreshold opens the breaker after this many failures in a row.
	// With a time-based window (WindowPeriod), the failures must also fall
	// within one WindowPeriod of each other: the last FailureThreshold calls
	// failed, the first of them less than WindowPeriod before the last, so
	// a failure long ago is forgotten; it may then be at most 1000. Default
	// 5; Off turns the rule off.
	FailureThreshold int

	// ErrorRateThreshold opens the breaker when the failure rate over the
	// window reaches it, once the window holds MinCalls outcomes. A rate
	// from 0 to 1; default 0.5; Off turns the rule off.
	ErrorRateThreshold float64

	// MinCalls is how many outcomes the window must hold before its rates
	// are acted on. Default 20, or WindowSize if that is smaller; it may
	// not exceed WindowSize.
	MinCalls int

	// WindowSize makes the window the last WindowSize calls. Default 100.
	// Set it or WindowPeriod, not both.
	WindowSize int

	// WindowPeriod, if set, makes the window time-based: the calls of the
	// last WindowPeriod, kept in WindowBuckets buckets. A time-based window
	// reads the clock once per call. Default 0: count-based.
	WindowPeriod time.Duration

	// WindowBuckets is how many buckets a time-based window is cut into,
	// from 1 to 1000; the window slides one bucket at a time. Default 10.
	// Only with WindowPeriod.
	WindowBuckets int

	// OpenTimeout is how long the breaker stays open before it lets probes
	// through. Default 60s. A timer moves the breaker to half-open, so that
	// calls while it is open need not read the clock; under
	// testing/synctest, call synctest.Wait after advancing the clock past
	// the timeout, to let the timer's goroutine run before the next call.
	OpenTimeout time.Duration

	// SuccessThreshold closes a half-open breaker after this many
	// successful probes. Default 2.
	SuccessThreshold int

	// HalfOpenProbes is how many probes a half-open breaker lets run at
	// once; other calls are rejected. Default SuccessThreshold.
	HalfOpenProbes int

	// SlowCallThreshold, if set, marks calls that take at least this long
	// as slow, whether they succeed or fail. When the slow-call rate over
	// the window reaches SlowCallRateThreshold the breaker opens, and a slow
	// probe counts as a failed one. Timing calls reads the clock twice per
	// call. Default 0: no slow-call tracking.
	SlowCallThreshold time.Duration

	// SlowCallRateThreshold is the slow-call rate, from 0 to 1, that opens
	// the breaker. Default 1: every call in the window slow. Only with
	// SlowCallThreshold.
	SlowCallRateThreshold float64

	// Classify decides how the end of a call counts; it receives the
	// context the call was made with and its error (nil on success).
	// Default DefaultClassify, which ignores a refusal by a stage inside
	// the breaker (a key's open breaker in a KeyedBreaker, a full
	// bulkhead, a throttler): the call never reached the dependency. A
	// Classify of your own decides for itself; hand it the errors you do
	// not know to DefaultClassify to keep that.
	Classify func(ctx context.Context, err error) Outcome

	// OnStateChange, if set, is called after each transition. It is never
	// called with a lock held, so it may use the breaker freely; calls are
	// made one at a time and in the order of the transitions, from the
	// goroutine that caused the transition or from one already reporting
	// an earlier one (the open timeout's timer, for instance).
	OnStateChange func(StateChange)
}

// Off, as BreakerConfig.FailureThreshold or ErrorRateThreshold, turns that
// rule off: the breaker then opens on the other rules only. At least one
// rule (failures in a row, the error rate, or the slow-call rate) must be
// on.
const Off = -1

// Defaults of BreakerConfig.
const (
	DefaultFailureThreshold   = 5
	DefaultErrorRateThreshold = 0.5
	DefaultMinCalls           = 20
	DefaultWindowSize         = 100
	DefaultWindowBuckets      = 10
	DefaultOpenTimeout        = 60 * time.Second
	DefaultSuccessThreshold   = 2
	maxWindowBuckets          = 1000
	maxTimedFailureThreshold  = 1000 // a failureRun keeps that many times
)

// MaxWindowSize is the largest BreakerConfig.WindowSize, window.MaxCountSize
// (16,777,216 calls, held in about 4.3 MB): a breaker that decides on more
// calls than that reacts too late to be of use. A window of 1,000,000
// calls is held in 258,392 bytes, two bits a call.
const MaxWindowSize = window.MaxCountSize

// breakerSettings is a BreakerConfig with the defaults filled in.
type breakerSettings struct {
	name             string
	key              string // a KeyedBreaker's breaker's key
	failureThreshold int64
	errorRate        float64
	minCalls         int64
	windowSize       int
	windowPeriod     time.Duration
	windowBuckets    int
	openTimeout      time.Duration
	successThreshold int32
	probes           int32
	slowThreshold    time.Duration
	slowRate         float64
	classify         func(context.Context, error) Outcome
	onStateChange    func(StateChange)
	// timed: the breaker reads the clock around calls, for slow-call
	// tracking or for a time-based window.
	timed bool
	// plain: neither timed nor with a Classify of its own, so that a call
	// returning no error is a success recorded in a count-based window.
	plain bool
}

func (c BreakerConfig) settings() (breakerSettings, error) {
	ck := checker{typ: "BreakerConfig"}
	ck.check(c.FailureThreshold >= 0 || c.FailureThreshold == Off, "FailureThreshold", c.FailureThreshold, "must not be negative, or Off")
	ck.check(c.WindowPeriod == 0 || c.FailureThreshold <= maxTimedFailureThreshold, "FailureThreshold", c.FailureThreshold, "must be at most 1000 with a time-based window (WindowPeriod)")
	ck.check(isRate(c.ErrorRateThreshold) || c.ErrorRateThreshold == Off, "ErrorRateThreshold", c.ErrorRateThreshold, "must be a rate from 0 to 1, or Off")
	ck.check(c.FailureThreshold != Off || c.ErrorRateThreshold != Off || c.SlowCallThreshold > 0, "FailureThreshold", c.FailureThreshold,
		"and ErrorRateThreshold are both Off, and there is no slow-call rule: nothing could open the breaker (use Disable to keep it closed)")
	ck.check(c.MinCalls >= 0, "MinCalls", c.MinCalls, "must not be negative")
	ck.check(c.WindowSize >= 0 && c.WindowSize <= MaxWindowSize, "WindowSize", c.WindowSize, "must be from 0 to MaxWindowSize ("+strconv.Itoa(MaxWindowSize)+")")
	ck.check(c.WindowPeriod >= 0, "WindowPeriod", c.WindowPeriod, "must not be negative")
	ck.check(c.WindowSize == 0 || c.WindowPeriod == 0, "WindowSize", c.WindowSize, "set WindowSize (a count-based window) or WindowPeriod (a time-based one), not both")
	ck.check(c.WindowBuckets >= 0 && c.WindowBuckets <= maxWindowBuckets, "WindowBuckets", c.WindowBuckets, "must be from 0 to 1000")
	ck.check(c.WindowBuckets == 0 || c.WindowPeriod > 0, "WindowBuckets", c.WindowBuckets, "applies to a time-based window only: set WindowPeriod too")
	ck.check(c.OpenTimeout >= 0, "OpenTimeout", c.OpenTimeout, "must not be negative")
	ck.check(c.SuccessThreshold >= 0 && c.SuccessThreshold <= math.MaxInt32, "SuccessThreshold", c.SuccessThreshold, "must be from 0 to 2^31-1")
	ck.check(c.HalfOpenProbes >= 0 && c.HalfOpenProbes <= math.MaxInt32, "HalfOpenProbes", c.HalfOpenProbes, "must be from 0 to 2^31-1")
	ck.check(c.SlowCallThreshold >= 0, "SlowCallThreshold", c.SlowCallThreshold, "must not be negative")
	ck.check(isRate(c.SlowCallRateThreshold), "SlowCallRateThreshold", c.SlowCallRateThreshold, "must be a rate from 0 to 1")
	ck.check(c.SlowCallRateThreshold == 0 || c.SlowCallThreshold > 0, "SlowCallRateThreshold", c.SlowCallRateThreshold, "applies only with SlowCallThreshold: set it too")

	s := breakerSettings{
		name:             c.Name,
		failureThreshold: int64(or(c.FailureThreshold, DefaultFailureThreshold)),
		errorRate:        or(c.ErrorRateThreshold, DefaultErrorRateThreshold),
		windowSize:       or(c.WindowSize, DefaultWindowSize),
		windowPeriod:     c.WindowPeriod,
		windowBuckets:    or(c.WindowBuckets, DefaultWindowBuckets),
		openTimeout:      or(c.OpenTimeout, DefaultOpenTimeout),
		successThreshold: int32(or(c.SuccessThreshold, DefaultSuccessThreshold)),
		slowThreshold:    c.SlowCallThreshold,
		slowRate:         or(c.SlowCallRateThreshold, 1),
		classify:         c.Classify,
		onStateChange:    c.OnStateChange,
		timed:            c.SlowCallThreshold > 0 || c.WindowPeriod > 0,
	}
	if c.FailureThreshold == Off {
		s.failureThreshold = math.MaxInt64 // never reached
	}
	if c.ErrorRateThreshold == Off {
		s.errorRate = math.Inf(1) // never reached
	}
	s.probes = int32(or(c.HalfOpenProbes, int(s.successThreshold)))
	s.plain = !s.timed && s.classify == nil
	if c.WindowPeriod > 0 {
		s.windowSize = 0
		ck.check(c.WindowPeriod >= time.Duration(s.windowBuckets), "WindowPeriod", c.WindowPeriod, "must give each bucket at least 1ns")
		s.minCalls = int64(or(c.MinCalls, DefaultMinCalls))
	} else {
		s.minCalls = int64(or(c.MinCalls, min(DefaultMinCalls, s.windowSize)))
		ck.check(s.minCalls <= int64(s.windowSize), "MinCalls", c.MinCalls, "must not exceed WindowSize ("+strconv.Itoa(s.windowSize)+"): the window could never hold that many calls")
	}
	return s, ck.err()
}

// Breaker is a circuit breaker: it watches the outcomes of calls to a
// dependency and, when too many fail, stops letting calls through for a
// while, so that a struggling dependency gets room to recover and callers
// get a fast answer instead of a slow failure.
//
// A Breaker is a Stage: put it in a chain with For, as many chains as you
// like and of any result types, and they all share its state. For callers
// who cannot wrap a function, Allow and Permit.Done are the same machinery
// in two steps.
//
// # States
//
// Closed: calls run and their outcomes are recorded in a sliding window.
// The breaker opens when FailureThreshold calls in a row fail, or when the
// window holds at least MinCalls outcomes and the failure rate in it
// reaches ErrorRateThreshold (or the slow-call rate reaches
// SlowCallRateThreshold).
//
// Open: calls are rejected at once with an *OpenError, which matches
// ErrOpen and says when the breaker will probe again. After OpenTimeout a
// timer moves the breaker to HalfOpen; State reports HalfOpen from that
// instant on, whether or not any call has come in.
//
// HalfOpen: up to HalfOpenProbes calls run at once; the others are
// rejected. SuccessThreshold successes close the breaker with an empty
// window; a single failure opens it again for another OpenTimeout.
//
// A call let through always gives its permit back: when it succeeds, fails,
// returns an ignored error, is cancelled, or panics (the panic counts as a
// failure and goes on up the stack). A call that ends after the breaker has
// changed state is not counted, so a slow call admitted while Closed
// cannot close a breaker that opened meanwhile.
//
// # Cost
//
// With the default count-based window and no slow-call tracking, neither
// letting a call through nor rejecting one reads the clock, takes a lock or
// allocates: the state is one atomic pointer, the window is lock-free (see
// package window), and the rejection error is built once per open period.
// Locks are taken only to change state.
//
// A Breaker is safe for concurrent use. Make one with NewBreaker: the zero
// Breaker runs no call (Do and Allow return an error matching
// ErrInvalidConfig that says so), reports Closed, and ignores ForceOpen,
// Disable and Reset.
type Breaker struct {
	cur atomic.Pointer[period]          // the current state; replaced on every transition
	obs atomic.Pointer[BreakerObserver] // nil until Observe
	cfg breakerSettings

	// The window, made once and emptied in place on every return to
	// Closed; exactly one is set.
	count *window.Count
	timed *window.Time
	run   failureRun // with a time-based window: the failures in a row

	ev    events
	famEv *events // a keyed breaker's family's, set as it is made; nil for others

	mu         sync.Mutex    // held to change state; guards the fields below
	family     *KeyedBreaker // the family of a keyed breaker, until it is evicted
	timer      *time.Timer
	events     []StateChange // transitions not yet reported to OnStateChange
	delivering bool          // a goroutine is reporting events
}

// mode says who is in charge of a period's state.
type mode uint8

const (
	automatic  mode = iota // the breaker's own rules
	forcedOpen             // ForceOpen: open until Reset
	disabled               // Disable: closed until Reset, still measuring
)

// period is the life of the breaker between two transitions. Everything
// about the state that calls touch hangs off the current period, so a
// transition is one pointer swap, and a call that started in a period that
// has ended is recognised by comparing pointers.
type period struct {
	// Read-only once the period is published.
	state State
	mode  mode
	// The breaker's window: the closed period's, or the last closed
	// period's while Open or HalfOpen (for ErrorRate). Exactly one is set.
	count *window.Count
	timed *window.Time
	// Open and HalfOpen: the error for rejected calls, built with the
	// period.
	rejection OpenError

	// Written by calls, each on a cache line of its own so that writes do
	// not slow down the reads above.
	_ [64]byte
	// Closed: failures in a row. Written by failing calls only.
	consecutive atomic.Int64
	// Closed, in a KeyedBreaker: the family's cap has held this period
	// closed at least once.
	held atomic.Bool
	_    [55]byte
	// HalfOpen: probes in flight, and successful probes so far.
	probes    atomic.Int32
	successes atomic.Int32
}

// NewBreaker returns a closed circuit breaker configured by cfg, or an error
// naming every invalid field of cfg.
func NewBreaker(cfg BreakerConfig) (*Breaker, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, err
	}
	return newBreaker(s)
}

// newBreaker returns a closed breaker with settings s, checked.
func newBreaker(s breakerSettings) (*Breaker, error) {
	b := &Breaker{cfg: s}
	var err error
	if s.windowPeriod > 0 {
		b.timed, err = window.NewTime(s.windowPeriod, s.windowBuckets)
	} else {
		b.count, err = window.NewCount(s.windowSize)
	}
	if err != nil { // unreachable: settings checked the window's arguments
		return nil, err
	}
	if s.windowPeriod > 0 && s.failureThreshold != math.MaxInt64 {
		b.run.times = make([]time.Time, s.failureThreshold)
	}
	b.cur.Store(&period{state: Closed, mode: automatic, count: b.count, timed: b.timed})
	return b, nil
}

// Kind returns KindBreaker.
func (*Breaker) Kind() string { return KindBreaker }

// Run runs call under the breaker, as Do does: it is the breaker as a Stage for
// code that has only an error to pass through.
func (x *Breaker) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// newPeriod builds a period in state s. A closed period starts with the
// window emptied in place; the others keep it as it is, for ErrorRate.
// b.mu is held.
//
// A call admitted in an earlier closed period that checked its period was
// current, and was then preempted before recording, records into the
// emptied window when it runs again, however long that was: one stray
// outcome, counted as one more recent call. The window's totals stay
// exact.
func (b *Breaker) newPeriod(s State, m mode) *period {
	p := &period{state: s, mode: m, count: b.count, timed: b.timed}
	if s == Closed {
		if b.count != nil {
			b.count.Reset()
		} else {
			b.timed.Reset()
		}
	} else {
		p.rejection = OpenError{Name: b.cfg.name, Key: b.cfg.key, State: s}
	}
	return p
}

// Name returns the breaker's name.
func (b *Breaker) Name() string { return b.cfg.name }

// State returns the breaker's state. It is shorthand for
// StateAt(time.Now()).
func (b *Breaker) State() State { return b.StateAt(time.Now()) }

// StateAt returns the breaker's state as it stands at now. It only reads:
// it changes nothing and calls no hook, so it is safe to call from a hook,
// a metrics scrape or a test at any time.
//
// An open breaker reports HalfOpen from the instant its OpenTimeout has
// passed. The move itself is made by a timer, a moment later (under
// testing/synctest, once the bubble's goroutines have run: synctest.Wait);
// until then, calls are still rejected as if the breaker were open.
func (b *Breaker) StateAt(now time.Time) State {
	p := b.cur.Load()
	if p == nil {
		return Closed
	}
	if p.state == Open && p.mode == automatic && !now.Before(p.rejection.Until) {
		return HalfOpen
	}
	return p.state
}

// ErrorRate returns the failure rate, from 0 to 1, over the window: the
// current one while Closed, the one that was current when the breaker
// opened while Open or HalfOpen.
func (b *Breaker) ErrorRate() float64 { return b.cur.Load().counts().FailureRate() }

// SlowCallRate returns the slow-call rate, from 0 to 1, over the same
// window as ErrorRate; 0 without slow-call tracking.
func (b *Breaker) SlowCallRate() float64 { return b.cur.Load().counts().SlowRate() }

func (p *period) counts() window.Counts {
	if p == nil { // a zero Breaker
		return window.Counts{}
	}
	if p.count != nil {
		return p.count.Counts()
	}
	return p.timed.Counts()
}

// ForceOpen opens the breaker and keeps it open, rejecting every call,
// until Reset.
func (b *Breaker) ForceOpen() { b.force(Open, forcedOpen) }

// Disable closes the breaker and keeps it closed until Reset: every call
// runs, outcomes are still recorded (ErrorRate goes on reporting), and no
// threshold opens it.
func (b *Breaker) Disable() { b.force(Closed, disabled) }

// Reset closes the breaker with an empty window and hands control back to
// its rules, ending ForceOpen and Disable.
func (b *Breaker) Reset() { b.force(Closed, automatic) }

func (b *Breaker) force(s State, m mode) {
	b.mu.Lock()
	prev := b.cur.Load()
	if prev == nil { // a zero Breaker: nothing to control
		b.mu.Unlock()
		return
	}
	if k := b.family; k != nil {
		k.forced(prev.state, s) // past the cap if need be: forcing is the user's call
	}
	b.switchLocked(prev, b.newPeriod(s, m))
	b.mu.Unlock()
	b.deliver()
}

// transition moves the breaker from period from to a new period in state
// to, unless another transition got there first.
func (b *Breaker) transition(from *period, to State) {
	b.mu.Lock()
	if b.cur.Load() != from {
		b.mu.Unlock()
		return
	}
	if k := b.family; k != nil && (from.state == Closed) != (to == Closed) {
		if to == Closed {
			k.ejected.Add(-1)
		} else if !k.eject() {
			// The family has as many keys open as its cap allows: this
			// one stays closed, and says so.
			b.mu.Unlock()
			k.held(b, from)
			return
		}
	}
	b.switchLocked(from, b.newPeriod(to, automatic))
	b.mu.Unlock()
	b.deliver()
}

// retire detaches b from its KeyedBreaker, which has evicted it: it no
// longer counts among the family's open keys, and its open timeout's timer
// is stopped. A call still running through b finishes as usual.
func (b *Breaker) retire() {
	b.mu.Lock()
	if k := b.family; k != nil {
		if p := b.cur.Load(); p.state != Closed {
			k.ejected.Add(-1)
		}
		b.family = nil
	}
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	b.mu.Unlock()
}

// switchLocked makes p the current period. b.mu is held.
func (b *Breaker) switchLocked(prev, p *period) {
	now := time.Now()
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if p.state == Open && p.mode == automatic {
		p.rejection.Until = now.Add(b.cfg.openTimeout)
		b.timer = time.AfterFunc(b.cfg.openTimeout, func() { b.transition(p, HalfOpen) })
	}
	b.cur.Store(p)
	if prev.state != p.state && b.reports() {
		b.events = append(b.events, StateChange{Name: b.cfg.name, Key: b.cfg.key, From: prev.state, To: p.state, At: now})
	}
}

// deliver reports pending transitions to OnStateChange, in order and one at
// a time, without holding b.mu while the hook runs. If another goroutine is
// already reporting, it will report ours too, so deliver returns at once: a
// hook that causes a transition cannot deadlock or recurse.
func (b *Breaker) deliver() {
	if !b.reports() {
		return
	}
	b.mu.Lock()
	if b.delivering {
		b.mu.Unlock()
		return
	}
	b.delivering = true
	for len(b.events) > 0 {
		ev := b.events[0]
		b.events = b.events[1:]
		b.mu.Unlock()
		b.report(ev)
		b.mu.Lock()
	}
	b.events = nil
	b.delivering = false
	b.mu.Unlock()
}

// report calls the hook for one transition. If the hook panics, the panic
// goes on up the stack, and the transitions still queued wait for the next
// one to be reported.
func (b *Breaker) report(ev StateChange) {
	returned := false
	defer func() {
		if !returned {
			b.mu.Lock()
			b.delivering = false
			b.mu.Unlock()
		}
	}()
	if o := b.obs.Load(); o != nil && o.StateChange != nil {
		o.StateChange(ev)
	}
	if b.cfg.onStateChange != nil {
		b.cfg.onStateChange(ev)
	}
	returned = true
}

// reports reports whether anyone listens to state changes.
func (b *Breaker) reports() bool {
	if b.cfg.onStateChange != nil {
		return true
	}
	o := b.obs.Load()
	return o != nil && o.StateChange != nil
}

// Permit is the right to make one call through a breaker, from Allow.
// Report how the call ended with Done on every path: a permit never
// reported keeps a half-open breaker's probe slot forever. Done empties the
// permit, so a second Done on it does nothing; a copy of a permit is a
// second handle on the same call, and reporting through both counts the
// call twice. Done is not safe to call on one permit from two goroutines
// at once.
type Permit struct {
	b     *Breaker
	p     *period
	ctx   context.Context
	start time.Time
}

// Allow asks the breaker for a permit to make one call, the first of the
// two steps that Do-style use rolls into one:
//
//	permit, err := breaker.Allow(ctx)
//	if err != nil {
//		return err // rejected: errors.Is(err, resilience.ErrOpen)
//	}
//	err = call(ctx)
//	permit.Done(err)
//
// ctx is the context the call will run with; Done uses it to tell the
// caller's cancellation from a failure. A rejection is an *OpenError.
func (b *Breaker) Allow(ctx context.Context) (Permit, error) {
	p := b.cur.Load()
	if p == nil {
		return Permit{}, errBreakerNotMade
	}
	if p.state != Closed {
		if err := b.admit(p); err != nil {
			b.observeCall(p.state, CallRejected)
			b.rejectedEvent(ctx, err)
			return Permit{}, err
		}
	}
	var start time.Time
	if b.cfg.timed {
		start = time.Now()
	}
	// Built in the return statement, the permit travels back in registers.
	return Permit{b: b, p: p, ctx: ctx, start: start}, nil
}

// Done reports how the permitted call ended: err is the call's error, nil
// for success, classified by BreakerConfig.Classify. Done empties the
// permit: a second Done, like Done on the zero Permit, does nothing.
func (pm *Permit) Done(err error) {
	if pm.b == nil {
		return
	}
	b, p, ctx, start := pm.b, pm.p, pm.ctx, pm.start
	*pm = Permit{}
	b.finish(p, ctx, start, err)
}

// finish records how a call admitted in period p ended.
func (b *Breaker) finish(p *period, ctx context.Context, start time.Time, err error) {
	if b.isPlainSuccess(p, err) {
		b.succeeded(p)
	} else {
		b.done(p, start, b.classify(ctx, err))
	}
}

// isPlainSuccess reports whether a call ending with err in period p is the
// common case that succeeded records: a success, counted in a closed
// period's count-based window, untimed and with the default classification.
func (b *Breaker) isPlainSuccess(p *period, err error) bool {
	return err == nil && b.cfg.plain && p.state == Closed
}

// admit decides on a call arriving while the breaker is not closed: Open
// rejects; HalfOpen takes a probe slot if one is free.
func (b *Breaker) admit(p *period) error {
	if p.state == HalfOpen {
		for {
			n := p.probes.Load()
			if n >= b.cfg.probes {
				break
			}
			if p.probes.CompareAndSwap(n, n+1) {
				return nil
			}
		}
	}
	return &p.rejection
}

func (b *Breaker) classify(ctx context.Context, err error) Outcome {
	if b.cfg.classify != nil {
		if o := b.cfg.classify(ctx, err); o != PermanentFailure {
			return o
		}
		return Failure // to a breaker, a failure is a failure
	}
	if err == nil {
		return Success
	}
	return DefaultClassify(ctx, err)
}

// breakerDo runs the rest of a chain under b. It is Allow and Done rolled
// into one, written out so that nothing is copied on the way: this is the
// path every call through a closed breaker takes.
func breakerDo[T any](b *Breaker, ctx context.Context, n next[T]) (T, error) {
	p := b.cur.Load()
	if p == nil || p.state != Closed {
		if p == nil {
			var zero T
			return zero, errBreakerNotMade
		}
		if err := b.admit(p); err != nil {
			b.observeCall(p.state, CallRejected)
			b.rejectedEvent(ctx, err)
			var zero T
			return zero, err
		}
	}
	if b.cfg.timed {
		return breakerDoTimed(b, p, ctx, n)
	}
	// If the call panics (or calls runtime.Goexit), ended is still false when
	// the deferred function runs: the call counts as a failure and its
	// permit is returned, and the panic carries on up the stack untouched,
	// with its original stack trace.
	ended := false
	defer func() {
		if !ended {
			b.done(p, time.Time{}, Failure)
		}
	}()
	var (
		v   T
		err error
	)
	if n.c == nil { // n.call, by hand: the compiler will not inline it
		v, err = n.fn(ctx)
	} else {
		v, err = n.c.Do(ctx, n.fn)
	}
	ended = true
	// finish, written out: the compiler will not inline it.
	if b.isPlainSuccess(p, err) {
		b.succeeded(p)
	} else {
		b.done(p, time.Time{}, b.classify(ctx, err))
	}
	return v, err
}

// breakerDoTimed is breakerDo for a breaker that times its calls. It is
// kept apart so that the untimed path carries no start time through its
// defer: merged, the closed path measured 10 more instructions per call
// (230 against 220).
func breakerDoTimed[T any](b *Breaker, p *period, ctx context.Context, n next[T]) (T, error) {
	start := time.Now()
	ended := false
	defer func() {
		if !ended {
			b.done(p, start, Failure)
		}
	}()
	v, err := n.call(ctx)
	ended = true
	b.finish(p, ctx, start, err)
	return v, err
}

// succeeded records a success in a closed period with a count-based window,
// untimed: the outcome of nearly every call.
func (b *Breaker) succeeded(p *period) {
	if o := b.obs.Load(); o != nil { // observeCall, by hand: it is not inlined
		o.call(Closed, CallSucceeded)
	}
	if b.cur.Load() != p {
		return
	}
	n := p.count.RecordSuccess() // 0 when a full window of successes stays as it is
	if p.mode != automatic {
		return
	}
	if p.consecutive.Load() != 0 {
		p.consecutive.Store(0)
	}
	// In a count-based window a success never raises a rate: it either
	// grows the total or takes the place of an outcome at least as bad.
	// So a success can only open the breaker by being the call that brings
	// the window to MinCalls, when the rates start to count.
	if n == uint64(b.cfg.minCalls) && b.overThresholds(p, time.Time{}) {
		b.transition(p, Open)
	}
}

// done records the outcome o of a call admitted in period p.
func (b *Breaker) done(p *period, start time.Time, o Outcome) {
	b.observeCall(p.state, callResult(o))
	var (
		now  time.Time
		slow bool
	)
	if b.cfg.timed {
		now = time.Now()
		slow = b.cfg.slowThreshold > 0 && now.Sub(start) >= b.cfg.slowThreshold && o != Ignored
	}
	switch p.state {
	case Closed:
		if o == Ignored || b.cur.Load() != p {
			return
		}
		failure := o == Failure
		if p.count != nil {
			p.count.Record(failure, slow)
		} else {
			p.timed.RecordAt(now, failure, slow)
		}
		if p.mode != automatic {
			return
		}
		if b.timed != nil {
			if b.run.record(p, now, failure, b.cfg.windowPeriod) {
				b.transition(p, Open)
				return
			}
		} else if failure {
			if p.consecutive.Add(1) >= b.cfg.failureThreshold {
				b.transition(p, Open)
				return
			}
		} else if p.consecutive.Load() != 0 {
			p.consecutive.Store(0)
		}
		if b.overThresholds(p, now) {
			b.transition(p, Open)
		}
	case HalfOpen:
		// Give the probe slot back first, whatever happens next.
		p.probes.Add(-1)
		if b.cur.Load() != p {
			return
		}
		switch {
		case o == Failure || (slow && o == Success):
			b.transition(p, Open)
		case o == Success:
			if p.successes.Add(1) >= b.cfg.successThreshold {
				b.transition(p, Closed)
			}
		}
	}
}

// failureRun is the run of failures in a row of a breaker with a
// time-based window, where the run counts towards FailureThreshold only
// within one WindowPeriod: the breaker opens when its last
// FailureThreshold outcomes were failures, all within WindowPeriod of
// each other. It keeps the times of the run's last FailureThreshold
// failures, in a ring made once (nil when the rule is off).
type failureRun struct {
	mu    sync.Mutex
	p     *period     // the period the run belongs to
	times []time.Time // the run's last len(times) failures, oldest at next once full
	next  int
	n     int // failures in the run, up to len(times)
}

// record adds the outcome of a call that ended at now in period p, and
// reports whether the run calls for opening.
func (r *failureRun) record(p *period, now time.Time, failure bool, period time.Duration) bool {
	if r.times == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.p != p {
		r.p, r.n = p, 0
	}
	if !failure {
		r.n = 0
		return false
	}
	r.times[r.next] = now
	r.next = (r.next + 1) % len(r.times)
	r.n = min(r.n+1, len(r.times))
	return r.n == len(r.times) && now.Sub(r.times[r.next]) < period
}

// callResult is how an outcome is reported to observers: as done counts
// it, an outcome other than Failure and Ignored as a success.
func callResult(o Outcome) CallResult {
	switch o {
	case Failure:
		return CallFailed
	case Ignored:
		return CallIgnored
	}
	return CallSucceeded
}

// overThresholds reports whether the window's rates call for opening.
func (b *Breaker) overThresholds(p *period, now time.Time) bool {
	var c window.Counts
	if p.count != nil {
		c = p.count.Counts()
	} else {
		c = p.timed.CountsAt(now)
	}
	if c.Total < b.cfg.minCalls {
		return false
	}
	if c.Failures > 0 && c.FailureRate() >= b.cfg.errorRate {
		return true
	}
	return b.cfg.slowThreshold > 0 && c.Slow > 0 && c.SlowRate() >= b.cfg.slowRate
}

func isRate(r float64) bool { return r >= 0 && r <= 1 } // false for NaN

// or returns v, or def if v is the zero value.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// OpenError is the error of a call rejected by a circuit breaker. It
// matches ErrOpen and ErrRejected.
//
// An OpenError is built once per open period and shared by every call the
// breaker rejects in that period, so rejecting costs no allocation; treat it
// as read-only.
type OpenError struct {
	// Name is the breaker's name (BreakerConfig.Name).
	Name string
	// Key is the key of a KeyedBreaker's breaker, "" for any other.
	Key string
	// State is Open, or HalfOpen when the breaker is probing and all its
	// probe permits are taken.
	State State
	// Until is when an open breaker will let a probe through. It is the zero
	// time for a half-open breaker and for one forced open (ForceOpen),
	// which stays open until Reset.
	Until time.Time
}

// Error describes the error.
func (e *OpenError) Error() string {
	name := strconv.Quote(e.Name)
	if e.Key != "" {
		name += " for key " + strconv.Quote(e.Key)
	}
	switch {
	case e.State == HalfOpen:
		return fmt.Sprintf("resilience: circuit breaker %s is half-open and all its probes are in flight", name)
	case e.Until.IsZero():
		return fmt.Sprintf("resilience: circuit breaker %s is forced open", name)
	default:
		return fmt.Sprintf("resilience: circuit breaker %s is open; next probe in %v", name, approx(e.RetryAfter()))
	}
}

// approx rounds d for a message: to a tenth of a second from a second up,
// to a millisecond below. RetryAfter has the exact figure.
func approx(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d
}

// Is reports whether target is ErrOpen or ErrRejected.
func (e *OpenError) Is(target error) bool { return target == ErrOpen || target == ErrRejected }

// RetryAfter returns how long until the breaker lets a probe through, or 0
// when that time has come, when the breaker is half-open, or when it is
// forced open.
func (e *OpenError) RetryAfter() time.Duration {
	if e.Until.IsZero() {
		return 0
	}
	return max(time.Until(e.Until), 0)
}

// CallResult is how a call through a circuit breaker ended, as reported to
// BreakerObserver.Call.
type CallResult uint8

const (
	CallSucceeded CallResult = iota // ran and counted as a success
	CallFailed                      // ran and counted as a failure (a panic included)
	CallIgnored                     // ran and counted as neither
	CallRejected                    // not run: the breaker was open, or out of probes
)

var callResultNames = [...]string{"success", "failure", "ignored", "rejected"}

// String returns "success", "failure", "ignored" or "rejected".
func (r CallResult) String() string {
	if int(r) < len(callResultNames) {
		return callResultNames[r]
	}
	return "CallResult(" + strconv.Itoa(int(r)) + ")"
}

// BreakerObserver receives the events of a circuit breaker.
type BreakerObserver struct {
	// Call is called as each call ends, or is rejected, with the state the
	// breaker was in when the call arrived. It is on the path of every
	// call: keep it short.
	Call func(state State, result CallResult)

	// StateChange is called after each transition, with the same promises
	// as BreakerConfig.OnStateChange: one at a time, in order, and before
	// OnStateChange.
	StateChange func(StateChange)
}

// Observe adds o to the observers of b.
func (b *Breaker) Observe(o BreakerObserver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.obs.Load(); old != nil {
		o = BreakerObserver{Call: join2(old.Call, o.Call), StateChange: join1(old.StateChange, o.StateChange)}
	}
	b.obs.Store(&o)
}

// ObserveEvents adds f to the observers of b's events: EventRejected for
// each call it turns away. It implements EventSource.
func (b *Breaker) ObserveEvents(f func(context.Context, Event)) { b.ev.add(f) }

// rejectedEvent reports the rejection of a call with ctx, with err, to
// the observers of events of b, and of its family for a keyed breaker's.
func (b *Breaker) rejectedEvent(ctx context.Context, err error) {
	if b.ev.on() {
		b.ev.emit(ctx, Event{Type: EventRejected, Kind: KindBreaker, Name: b.cfg.name, Key: b.cfg.key, Err: err})
	}
	if b.famEv != nil && b.famEv.on() {
		b.famEv.emit(ctx, Event{Type: EventRejected, Kind: KindKeyedBreaker, Name: b.cfg.name, Key: b.cfg.key, Err: err})
	}
}

// observeCall reports a call to b's observers, if any.
func (b *Breaker) observeCall(s State, r CallResult) {
	if o := b.obs.Load(); o != nil {
		o.call(s, r)
	}
}

func (o *BreakerObserver) call(s State, r CallResult) {
	if o.Call != nil {
		o.Call(s, r)
	}
}
