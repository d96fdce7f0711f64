package resilience

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// KindHedge is the kind of a Hedge.
const KindHedge = "hedge"

// HedgeConfig configures a Hedge. The zero value of every field stands
// for its default, given in the field's comment; one of Delay and
// Latency is required.
type HedgeConfig struct {
	// Name identifies the stage in errors and metrics.
	Name string

	// Delay is how long a call runs before the stage sends a hedge (and
	// then each further hedge, up to MaxHedges). With Latency, it is the
	// delay while the model has too few samples to say; 0 there: no
	// hedge until it has. Not negative.
	Delay time.Duration

	// Latency, if set, is the model of the dependency's latency that sets
	// the delay: its Quantile of the recent answers, no less than
	// MinDelay. Put the same Latency in the chain inside the Hedge, where
	// it times each attempt.
	Latency *Latency

	// Quantile is the quantile of Latency the delay is, above 0 and below
	// 1: with 0.95, a call is hedged once it has run longer than 95% of
	// the recent answers took. Only with Latency; default 0.95
	// (DefaultHedgeQuantile).
	Quantile float64

	// MinDelay is the least delay a quantile of Latency may set: a floor
	// for a dependency that answers in microseconds, whose hedges would
	// otherwise go out as fast. Only with Latency; default 0, none. Not
	// negative.
	MinDelay time.Duration

	// MaxHedges is how many hedges one call may send, each Delay after
	// the one before; from 1 to 10, default 1 (DefaultMaxHedges).
	MaxHedges int

	// Budget is the share of calls that hedges may add, above 0, at most
	// 1: with 0.05, a hundred calls may send five hedges between them
	// over the last BudgetWindow, however slow the dependency is. That is
	// what keeps a dependency slowed by load from being sent more. A
	// hedge the budget refuses is not sent: the call waits for the
	// attempts it has, and the budget is asked again after twice the
	// delay, then four times, and so on, while the call runs: when hedges
	// are short, they go to the calls that stay slow. Default 0.05
	// (DefaultHedgeBudget). See NoBudget.
	Budget float64

	// BudgetWindow is how far back the budget counts calls and hedges;
	// from 100ms to 24h, default 10s.
	BudgetWindow time.Duration

	// NoBudget sends every hedge the delays call for: a dependency twice
	// as slow gets twice the calls. Budget and BudgetWindow must then be
	// unset. Default false.
	NoBudget bool

	// DeadlineQuantile is the quantile of Latency below which the time a
	// call's context has left is too little for a hedge to be worth
	// sending: a hedge that would start with less time left than this
	// quantile of the recent answers took is not sent (counted as
	// "deadline"). Only with Latency; above 0, at most 1; default 0.5
	// (DefaultDeadlineQuantile). With too few samples, every hedge may
	// start.
	DeadlineQuantile float64
}

// Defaults of HedgeConfig.
const (
	DefaultHedgeQuantile    = 0.95
	DefaultMaxHedges        = 1
	DefaultHedgeBudget      = 0.05
	DefaultDeadlineQuantile = 0.5
	maxHedges               = 10
)

// ErrHedgeBudget is the error of the EventRejected a Hedge reports for a
// hedge its budget refused.
var ErrHedgeBudget = errors.New("resilience: hedge budget spent")

// Hedge is a stage that sends a second copy of a call (a hedge) when the
// first is slower than usual, takes the first answer, and cancels the
// rest: the cure of "The Tail at Scale" for a dependency whose tail, not
// its median, sets the caller's latency. A call that has not returned
// after a delay (Delay, or a quantile of a Latency model, such as its
// p95) gets a hedge, and, up to MaxHedges, another after each further
// delay.
//
// The first attempt to end with a non-failure wins: a result with no
// error, an error marked as an answer (Answer, a Guard's Classify) or a
// permanent one (Permanent), which another attempt would only repeat. The
// others are cancelled through their contexts, and their results
// dropped: a dropped result that is an io.Closer (*sql.Rows) is closed.
// With a Latency, each attempt so cancelled is recorded in it at the time
// it had run, a lower bound of its latency: the model would otherwise see
// only the attempts that won, the fast ones, and put the delay too low.
// An attempt that fails while another is in flight does not end the
// call: it waits for the others; the call fails once every attempt sent
// has failed, with the error of the last to fail (carrying the longest
// Retry-After hint any of them brought back), without waiting for a
// hedge not yet due.
//
// Only calls that may be sent twice at once are hedged: a call whose
// context was made by AtMostOnce or Unhedged runs as if the stage were
// not there. The integrations mark the others (a POST without an
// Idempotency-Key, a write to Redis, a gRPC method not marked
// idempotent). Hedges are bounded by a budget (Budget: 5% of calls by
// default), so that a dependency slowed by load is not sent twice the
// calls; a hedge whose context would have less time left than the
// dependency usually takes (DeadlineQuantile of Latency) is not sent
// either.
//
// A Hedge sits inside the Retry and the time limit of the whole call, and
// outside the pushback, the breaker and the per-attempt time limit, so
// that each hedge is an attempt of its own, counted by the breaker and
// held off by a dependency's pushback:
//
//	Timeout → Retry → RetryBudget → Hedge → Pushback → Breaker → AttemptTimeout → Latency → call
//
// Each hedge is numbered as an attempt (Attempt reads 2 for the first
// hedge), which the integrations send with it. Under a Retry, a hedge's
// number is the retry's attempt plus its own place: the first hedge of a
// retried call's first attempt and the call's second attempt both read 2. The first attempt runs on
// the caller's goroutine, each hedge on one of its own; a hedge's events
// are reported from that goroutine, with the call's context. Unlike the
// other stages, a Hedge runs the rest of the chain on several goroutines
// at once: a Stage of your own inside it must be safe for that. A panic
// in the first attempt goes on up the caller's stack, the hedges
// cancelled; one in a hedge while the call is undecided is raised again
// on the caller's goroutine, and one in a hedge that lost goes up its own
// goroutine, as any panic in a goroutine does.
//
// A call that is not hedged, because it ends before the delay, costs a
// cancellable context and a timer: see docs/PERFORMANCE.md.
//
// A Hedge is a Stage, an Observable (resilience_hedge_calls_total with
// result "sent", "won", "refused" by the budget, "canceled" and
// "deadline") and an EventSource (EventHedge for each hedge sent,
// EventRejected for each the budget refused). Make one with NewHedge.
type Hedge struct {
	cfg    HedgeConfig
	budget *RetryBudget // nil with NoBudget
	made   bool

	sent, won, refused, canceled, skipped atomic.Uint64
	ev                                    events
}

// NewHedge returns a Hedge configured by cfg, or an error naming every
// invalid field of cfg.
func NewHedge(cfg HedgeConfig) (*Hedge, error) {
	ck := checker{typ: "HedgeConfig"}
	ck.check(cfg.Delay >= 0, "Delay", cfg.Delay, "must not be negative")
	ck.check(cfg.Delay > 0 || cfg.Latency != nil, "Delay", cfg.Delay, "must be set when there is no Latency: a hedge needs a delay or a latency model")
	inRange := func(q float64, hi float64) bool { return q == 0 || q > 0 && q <= hi }
	ck.check(inRange(cfg.Quantile, math.Nextafter(1, 0)), "Quantile", cfg.Quantile, "must be above 0 and below 1 (0 for the default)")
	ck.check(inRange(cfg.DeadlineQuantile, 1), "DeadlineQuantile", cfg.DeadlineQuantile, "must be above 0, at most 1 (0 for the default)")
	ck.check(cfg.MinDelay >= 0, "MinDelay", cfg.MinDelay, "must not be negative")
	if cfg.Latency == nil {
		ck.check(cfg.Quantile == 0, "Quantile", cfg.Quantile, "must be unset without a Latency")
		ck.check(cfg.MinDelay == 0, "MinDelay", cfg.MinDelay, "must be unset without a Latency")
		ck.check(cfg.DeadlineQuantile == 0, "DeadlineQuantile", cfg.DeadlineQuantile, "must be unset without a Latency")
	} else {
		ck.check(cfg.Latency.made(), "Latency", "the zero Latency", "must be made by NewLatency")
	}
	ck.check(cfg.MaxHedges >= 0 && cfg.MaxHedges <= maxHedges, "MaxHedges", cfg.MaxHedges, "must be from 1 to 10 (0 for the default)")
	ck.check(inRange(cfg.Budget, 1), "Budget", cfg.Budget, "must be above 0, at most 1 (0 for the default)")
	ck.check(cfg.BudgetWindow == 0 || cfg.BudgetWindow >= 100*time.Millisecond && cfg.BudgetWindow <= 24*time.Hour, "BudgetWindow", cfg.BudgetWindow, "must be from 100ms to 24h")
	if cfg.NoBudget {
		ck.check(cfg.Budget == 0, "Budget", cfg.Budget, "must be unset with NoBudget")
		ck.check(cfg.BudgetWindow == 0, "BudgetWindow", cfg.BudgetWindow, "must be unset with NoBudget")
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	cfg.MaxHedges = or(cfg.MaxHedges, DefaultMaxHedges)
	if cfg.Latency != nil {
		cfg.Quantile = or(cfg.Quantile, DefaultHedgeQuantile)
		cfg.DeadlineQuantile = or(cfg.DeadlineQuantile, DefaultDeadlineQuantile)
	}
	h := &Hedge{cfg: cfg, made: true}
	if !cfg.NoBudget {
		cfg.Budget = or(cfg.Budget, DefaultHedgeBudget)
		b, err := NewRetryBudget(RetryBudgetConfig{Name: cfg.Name, Ratio: cfg.Budget, NoFloor: true, Window: cfg.BudgetWindow})
		if err != nil {
			return nil, err
		}
		h.cfg.Budget = cfg.Budget
		h.budget = b
	}
	return h, nil
}

// Name returns the stage's name.
func (h *Hedge) Name() string { return h.cfg.Name }

// Kind returns KindHedge.
func (*Hedge) Kind() string { return KindHedge }

// Run runs call under the stage, as Do does.
func (h *Hedge) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(h, ctx, call)
}

// ObserveEvents adds f to the observers of h's events: EventHedge for each
// hedge sent, EventRejected for each hedge the budget refused. It
// implements EventSource.
func (h *Hedge) ObserveEvents(f func(context.Context, Event)) { h.ev.add(f) }

// Stats returns the hedges sent, the calls a hedge won, the hedges the
// budget refused, the attempts cancelled because another won, and the
// hedges not sent for the time the call had left.
func (h *Hedge) Stats() Stats {
	return Stats{Calls: []Count{
		{Result: "sent", N: h.sent.Load()},
		{Result: "won", N: h.won.Load()},
		{Result: "refused", N: h.refused.Load()},
		{Result: "canceled", N: h.canceled.Load()},
		{Result: "deadline", N: h.skipped.Load()},
	}}
}

// Delay returns the delay a call starting now would be hedged after, and
// false when no hedge would be sent (a Latency with too few samples and
// no Delay).
func (h *Hedge) Delay() (time.Duration, bool) { return h.delay(time.Now()) }

func (h *Hedge) delay(now time.Time) (time.Duration, bool) {
	if l := h.cfg.Latency; l != nil {
		if d, ok := l.recent(now, h.cfg.Quantile); ok {
			return max(d, h.cfg.MinDelay), true
		}
	}
	return h.cfg.Delay, h.cfg.Delay > 0
}

// Unhedged returns a copy of ctx for a call that may be sent again after
// it fails but must never run twice at once: a Hedge runs it once, as if
// it were not there, while a Retry retries it as usual. Use AtMostOnce
// for a call that must not be sent twice at all. The mark goes with every
// context derived from ctx.
func Unhedged(ctx context.Context) context.Context {
	return context.WithValue(ctx, unhedgedKey{}, true)
}

// IsUnhedged reports whether ctx was made by Unhedged or AtMostOnce, or
// derives from such a context: whether a stage of your own may run the
// call twice at once.
func IsUnhedged(ctx context.Context) bool {
	if IsAtMostOnce(ctx) {
		return true
	}
	u, _ := ctx.Value(unhedgedKey{}).(bool)
	return u
}

type unhedgedKey struct{}

var (
	errHedgeNotMade error = &notMadeError{"Hedge", "NewHedge"}
	errHedgeGoexit        = errors.New("resilience: a hedge's attempt called runtime.Goexit")
)

// hedgeDo runs the rest of a chain under h.
func hedgeDo[T any](h *Hedge, ctx context.Context, n next[T]) (T, error) {
	if !h.made {
		var zero T
		return zero, errHedgeNotMade
	}
	if IsUnhedged(ctx) || ctx.Err() != nil {
		return n.call(ctx)
	}
	var now time.Time // read only for a Latency: a fixed delay needs no clock
	if h.cfg.Latency != nil {
		now = time.Now()
	}
	delay, ok := h.delay(now)
	if !ok {
		return n.call(ctx)
	}
	if h.budget != nil {
		h.budget.first()
	}
	if deadline, ok := ctx.Deadline(); ok && sooner(deadline, delay+1) {
		// No hedge could start before the deadline.
		return n.call(ctx)
	}
	return hedgeRun(h, ctx, n, delay, now)
}

// hedgeCall is one hedged call: its attempts, the first on the caller's
// goroutine and each hedge on its own, end through finish.
type hedgeCall[T any] struct {
	h      *Hedge
	parent context.Context
	n      next[T]
	delay  time.Duration
	timer  *time.Timer   // fires each hedge
	end    chan struct{} // closed when the call is decided; made with the first hedge, under mu

	mu        sync.Mutex  // guards what follows; no callback runs under it
	launched  int         // attempts sent, the first included
	running   int         // attempts sent and not ended
	done      bool        // the call's result is decided
	stopped   bool        // no further hedge is sent
	att       []hedgeSlot // the attempts sent, the first included
	att0      [1]hedgeSlot
	v         T // the result, once done
	err       error
	panicked  bool // the attempt that decided panicked with pv
	pv        any
	refusals  int           // hedges the budget refused this call, each asked again later
	committed int           // the attempt that committed the call (see Commit), or -1
	hint      time.Duration // the longest Retry-After hint of the attempts that failed

	first hedgeAttempt // the first attempt's context
}

// hedgeSlot is one attempt of a hedged call, as the call keeps it.
type hedgeSlot struct {
	cancel context.CancelFunc
	start  time.Time // when it began; only with a Latency, for the model
	ended  bool
}

// hedgeAttempt is the context of one attempt of a hedged call: the
// attempt's own, cancellable, numbered from the second on.
type hedgeAttempt struct {
	attemptCtx
	c interface{ commit(i int) }
	i int // the attempt's index, 0 for the first
}

func (a *hedgeAttempt) Value(key any) any {
	switch key {
	case commitKey{}:
		return a
	case attemptKey{}:
		if a.i > 0 {
			return &a.attemptCtx
		}
	}
	return a.attemptCtx.Context.Value(key)
}

type commitKey struct{}

// Commit tells the Hedge that runs the attempt on ctx that the attempt
// has begun to answer, as a gRPC response header says: the call is
// committed to it. No further hedge is sent, the call's other attempts
// are cancelled, and this attempt's result is the call's, whatever it
// is, as gRPC's hedging (gRFC A6) commits a call. resilgrpc commits an
// attempt when its response header arrives. On a context no Hedge runs,
// or after the call is decided, Commit does nothing.
func Commit(ctx context.Context) {
	if a, ok := ctx.Value(commitKey{}).(*hedgeAttempt); ok {
		a.c.commit(a.i)
	}
}

func hedgeRun[T any](h *Hedge, ctx context.Context, n next[T], delay time.Duration, start time.Time) (T, error) {
	c := &hedgeCall[T]{h: h, parent: ctx, n: n, delay: delay, launched: 1, running: 1, committed: -1}
	actx, cancel := context.WithCancel(ctx)
	c.att0[0] = hedgeSlot{cancel: cancel, start: start}
	c.att = c.att0[:]
	c.first = hedgeAttempt{attemptCtx: attemptCtx{Context: actx}, c: c}
	c.mu.Lock() // fire reads the timer under the lock, and may run before AfterFunc returns
	c.timer = time.AfterFunc(delay, c.fire)
	c.mu.Unlock()
	returned := false
	defer func() {
		if !returned {
			// The first attempt panicked: the hedges are cancelled, and
			// the panic goes on up.
			c.abort()
		}
	}()
	v, err := n.call(&c.first)
	returned = true
	c.mu.Lock()
	if c.launched == 1 {
		// No hedge was sent: none will be.
		c.done = true
		c.running = 0
		c.mu.Unlock()
		c.timer.Stop()
		c.keep(0, cancel)
		return v, err
	}
	c.mu.Unlock()
	c.finish(0, v, err, false, nil)
	<-c.end
	c.mu.Lock()
	v, err, panicked, pv := c.v, c.err, c.panicked, c.pv
	c.mu.Unlock()
	if panicked {
		panic(pv)
	}
	return v, err
}

// fire sends the next hedge, on the timer's goroutine, and runs it there.
func (c *hedgeCall[T]) fire() {
	h := c.h
	c.mu.Lock()
	if c.done || c.stopped {
		c.mu.Unlock()
		return
	}
	i := c.launched
	if c.parent.Err() != nil {
		// The caller has gone: no hedge for a call no one waits for.
		c.stopped = true
		c.mu.Unlock()
		return
	}
	if l := h.cfg.Latency; l != nil {
		if deadline, ok := c.parent.Deadline(); ok {
			now := time.Now()
			if p, ok := l.recent(now, h.cfg.DeadlineQuantile); ok && deadline.Sub(now) < p {
				c.stopped = true
				c.mu.Unlock()
				h.skipped.Add(1)
				return
			}
		}
	}
	if h.budget != nil && !h.budget.withdraw() {
		// Asked again later, while the call runs, each time after twice
		// the wait before: a call still running then is more likely to be
		// slow for good than one delayed a moment, so that when the
		// budget is short, what it has goes to the calls that need it
		// most.
		c.refusals++
		wait := c.delay << min(c.refusals, 20)
		if wait>>min(c.refusals, 20) != c.delay {
			wait = math.MaxInt64 // past any call's life: asked no more
		}
		c.timer.Reset(wait)
		first := c.refusals == 1
		c.mu.Unlock()
		if first { // a hedge refused is counted once, however often it asks again
			h.refused.Add(1)
			if h.ev.on() {
				h.ev.emit(c.parent, Event{Type: EventRejected, Kind: KindHedge, Name: h.cfg.Name, Attempt: i + 1, Err: ErrHedgeBudget})
			}
		}
		return
	}
	actx, cancel := context.WithCancel(c.parent)
	slot := hedgeSlot{cancel: cancel}
	if h.cfg.Latency != nil {
		slot.start = time.Now()
	}
	c.att = append(c.att, slot)
	if c.end == nil {
		c.end = make(chan struct{}) // made by the first hedge: a call with none never waits on it
	}
	c.launched++
	c.running++
	if c.launched <= h.cfg.MaxHedges {
		c.timer.Reset(c.delay)
	}
	c.mu.Unlock()
	h.sent.Add(1)
	if h.ev.on() {
		h.ev.emit(c.parent, Event{Type: EventHedge, Kind: KindHedge, Name: h.cfg.Name, Attempt: i + 1, Delay: c.delay})
	}
	a := &hedgeAttempt{attemptCtx: attemptCtx{Context: actx}, c: c, i: i}
	a.n.Store(int32(min(Attempt(c.parent)+i, math.MaxInt32)))
	var (
		v        T
		err      error
		returned bool
	)
	defer func() {
		if !returned {
			pv := recover()
			if pv == nil {
				// runtime.Goexit, not a panic (a panic(nil) recovers as a
				// *runtime.PanicNilError): the attempt failed, and its
				// goroutine goes on ending.
				c.finish(i, v, errHedgeGoexit, false, nil)
				return
			}
			if !c.finish(i, v, nil, true, pv) {
				panic(pv) // the call was decided: the panic is this goroutine's
			}
		}
	}()
	v, err = c.n.call(a)
	returned = true
	c.finish(i, v, err, false, nil)
}

// finish ends attempt i with its result, and reports whether the result
// was taken (the call was still undecided).
func (c *hedgeCall[T]) finish(i int, v T, err error, panicked bool, pv any) bool {
	decisive := panicked || err == nil || markOf(err) == Success || IsPermanent(err)
	c.mu.Lock()
	c.running--
	c.att[i].ended = true
	own, start := c.att[i].cancel, c.att[i].start
	if c.done || c.committed >= 0 && c.committed != i {
		// A loser: the call was decided, or committed to another
		// attempt.
		c.mu.Unlock()
		if l := c.h.cfg.Latency; l != nil && !panicked && err != nil && errors.Is(err, context.Canceled) && c.parent.Err() == nil {
			// Cancelled because another answered first: it took at
			// least this long. Without it the model would see only the
			// answers that won, the fast ones, and set the delay too
			// low. (One that answered anyway was timed by the Latency
			// in the chain, as any answer is.)
			now := time.Now()
			l.recordAt(now, now.Sub(start))
		}
		discard(v)
		own()
		return false
	}
	if c.committed == i {
		decisive = true
	}
	hint, hinted := time.Duration(0), false
	if !decisive {
		if hint, hinted = retryAfterHint(err); hinted && hint > c.hint {
			c.hint = hint
		}
	}
	if !decisive && c.running > 0 {
		c.mu.Unlock()
		discard(v)
		own()
		return true
	}
	if !decisive && c.hint > 0 && (!hinted || hint < c.hint) {
		// Every attempt failed: the longest wait any of them was told
		// holds, for the Retry outside and a Pushback.
		err = RetryAfter(err, c.hint)
	}
	// Decided: by a non-failure, or by the last attempt in flight
	// failing.
	c.done = true
	c.v, c.err, c.panicked, c.pv = v, err, panicked, pv
	att := c.att
	launched, losers := c.launched, c.running
	if c.committed >= 0 {
		losers = 0 // cancelled, and counted, when the call was committed
	}
	c.mu.Unlock()
	c.timer.Stop()
	for j := range launched {
		if j != i {
			att[j].cancel()
		}
	}
	if losers > 0 {
		c.h.canceled.Add(uint64(losers))
	}
	if i > 0 && !panicked && (err == nil || markOf(err) == Success) {
		c.h.won.Add(1) // a hedge answered first
	}
	c.keep(i, att[i].cancel)
	close(c.end)
	return true
}

// commit commits the call to attempt i: no further hedge, the others
// cancelled.
func (c *hedgeCall[T]) commit(i int) {
	c.mu.Lock()
	if c.done || c.committed >= 0 || c.att[i].ended {
		// Decided, committed already, or an attempt that has ended
		// (failed while another ran): nothing to commit to.
		c.mu.Unlock()
		return
	}
	c.committed = i
	c.stopped = true
	att, launched, losers := c.att, c.launched, c.running-1
	c.mu.Unlock()
	c.timer.Stop()
	for j := range launched {
		if j != i {
			att[j].cancel()
		}
	}
	if losers > 0 {
		c.h.canceled.Add(uint64(losers))
	}
}

// keep ends the context of attempt i, the call's result, or leaves it to
// the Hold the call runs under, for a result read after the call returns.
func (c *hedgeCall[T]) keep(i int, cancel context.CancelFunc) {
	if !holdFrom(c.parent).keep(c.h, cancel) {
		cancel()
	}
}

// abort ends a call whose first attempt panicked.
func (c *hedgeCall[T]) abort() {
	c.mu.Lock()
	won := c.done && !c.panicked // a hedge had answered: its result is no one's now
	v := c.v
	c.done = true
	att, launched := c.att, c.launched
	c.running--
	c.mu.Unlock()
	c.timer.Stop()
	for j := range launched {
		att[j].cancel()
	}
	if won {
		discard(v)
	}
}

// discard closes a result that no caller will see, if it is a Closer.
func discard[T any](v T) {
	if c, ok := any(v).(io.Closer); ok && !isNil(c) {
		c.Close()
	}
}
