package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// KindPushback is the kind of a Pushback.
const KindPushback = "pushback"

// ErrPushback matches the rejection of a call by a Pushback: the
// dependency asked for no calls until a time that had not come, and the
// call could not wait for it. Such errors match ErrRejected too.
var ErrPushback = errors.New("resilience: dependency pushed back")

// DefaultPushbackMaxPeriod is the longest period a dependency's hint may
// set, when PushbackConfig.MaxPeriod is unset.
const DefaultPushbackMaxPeriod = time.Minute

// Bounds of PushbackConfig.MaxPeriod.
const (
	minPushbackMaxPeriod = time.Millisecond
	maxPushbackMaxPeriod = 24 * time.Hour
)

// PushbackConfig configures a Pushback. The zero value of every field
// stands for its default, given in the field's comment.
type PushbackConfig struct {
	// Name identifies the stage in errors and metrics.
	Name string

	// MaxWait is how long a call that arrives during a period may wait
	// for it to end; waiting also ends when the caller's context does,
	// and a call whose context's deadline comes at the period's end or
	// before it is rejected at once: it would have no time left to run.
	// Not negative; default 0: a call that arrives during a period is
	// rejected at once.
	MaxWait time.Duration

	// MaxPeriod is the longest period a dependency's hint may set: a
	// longer hint is cut to it. A hint is the dependency's input, not
	// configuration: a server's "Retry-After: 86400" must not cut a client
	// off for a day. From 1ms to 24h; default 1 minute
	// (DefaultPushbackMaxPeriod).
	MaxPeriod time.Duration
}

// Pushback makes a dependency's request to back off hold for every call to
// it, not only for the call it answered. A Retry-After hint (an HTTP
// Retry-After header, gRPC's grpc-retry-pushback-ms, attached by the
// integrations with RetryAfter, or any error with a RetryAfter method)
// alone sets the wait before the next retry of the one call it came
// with; through a Pushback it starts a period, from the moment the call
// returns until the hint's wait is over (cut to MaxPeriod), during which
// no call goes to the dependency. A hint that comes during a period
// lengthens it if it ends later, and never shortens it. A hint of 0 or
// less starts nothing (gRPC's "do not retry" pushback is a Permanent
// error, not a period), and neither does a refusal by a stage, whose
// hint is that stage's own: an open Breaker's OpenError says when the
// breaker will probe, not when the dependency asked to be left alone.
//
// A call that arrives during a period waits for its end, if that is at
// most MaxWait away and comes before the context's deadline, and then
// runs (unless a later hint has lengthened the period past what it may
// wait meanwhile); otherwise it is rejected at once with a
// *PushbackError, which matches ErrPushback and ErrRejected (so a Retry
// does not retry it) and says until when. A caller whose context ends
// while it waits gets the context's error, and the call is not made.
//
// # Where it sits
//
// Put it right inside the Retry and its RetryBudget, outside the
// Breaker, as Preset.Build does:
//
//	Timeout → Retry → RetryBudget → Pushback → Breaker → AttemptTimeout → call
//
// so that every attempt goes through it: a retry whose own wait was
// shorter than the hint (MaxBackoff cut it, or a retry of another call
// came sooner) meets the period and waits or is refused, and, a refusal
// never being retried, the call ends there instead of adding load to a
// dependency that asked for less. The Breaker inside it never sees the
// calls it refuses, so they count neither for nor against the
// dependency. Make one Pushback per dependency, shared by all its chains,
// as its breaker is. With a breaker per key (a KeyedBreaker, a breaker
// per host), one Pushback still covers the whole dependency: a hint from
// one host holds off the calls to every host. For a period per key, use
// a Keyed family of them, as for a Bulkhead or a RateLimiter:
//
//	perHost, err := resilience.NewKeyed(resilience.KeyedConfig{}, func(string) (*resilience.Pushback, error) {
//		return resilience.NewPushback(resilience.PushbackConfig{Name: "api"})
//	})
//
// keyed, as a KeyedBreaker is, by the key WithKey put in the call's
// context. A key the family evicts to make room forgets its period.
//
// # Cost
//
// While no period is in force, a call costs an atomic load, and a clock
// read if a period has ended since the last call looked, and allocates
// nothing: the period's end is an atomic integer, and no lock is taken.
// A failed call costs a walk down its error's chain for a hint; a call
// that waits costs a timer.
//
// A Pushback is a Stage: use it in chains with For, Do and Guards. It is
// an Observable (resilience_pushback_calls_total{result="passed|waited|rejected"}
// and resilience_pushback_pushed_back_seconds) and an EventSource
// (EventRejected for each call it refuses), and is safe for concurrent
// use. Make one with NewPushback: the zero Pushback runs no call (Do
// returns an error matching ErrInvalidConfig that says so).
type Pushback struct {
	name      string
	maxWait   time.Duration
	maxPeriod time.Duration // set by NewPushback, always above 0
	base      time.Time     // the time the ends are counted from, with its monotonic reading

	// end is the end of the period, in nanoseconds since base; 0 when no
	// period was set, or the calls found the last one over.
	end atomic.Int64

	passed   atomic.Uint64 // calls that ran, at once or after a wait
	waited   atomic.Uint64 // of those, the ones that waited for a period to end
	rejected atomic.Uint64 // calls refused
	ev       events
}

var errPushbackNotMade error = &notMadeError{"Pushback", "NewPushback"}

// NewPushback returns a Pushback configured by cfg, or an error naming
// every invalid field of cfg. It starts with no period in force.
func NewPushback(cfg PushbackConfig) (*Pushback, error) {
	ck := checker{typ: "PushbackConfig"}
	ck.check(cfg.MaxWait >= 0, "MaxWait", cfg.MaxWait, "must not be negative")
	ck.check(cfg.MaxPeriod == 0 || cfg.MaxPeriod >= minPushbackMaxPeriod && cfg.MaxPeriod <= maxPushbackMaxPeriod,
		"MaxPeriod", cfg.MaxPeriod, "must be from 1ms to 24h, or 0 for the default ("+DefaultPushbackMaxPeriod.String()+")")
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &Pushback{
		name:      cfg.Name,
		maxWait:   cfg.MaxWait,
		maxPeriod: or(cfg.MaxPeriod, DefaultPushbackMaxPeriod),
		base:      time.Now(),
	}, nil
}

// Name returns the stage's name.
func (p *Pushback) Name() string { return p.name }

// Kind returns KindPushback.
func (*Pushback) Kind() string { return KindPushback }

// Run runs call under the stage, as Do does: it is the Pushback as a
// Stage for code that has only an error to pass through.
func (p *Pushback) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(p, ctx, call)
}

// ObserveEvents adds f to the observers of p's events: EventRejected for
// each call it refuses. It implements EventSource.
func (p *Pushback) ObserveEvents(f func(context.Context, Event)) { p.ev.add(f) }

// Until returns the end of the period in force, or the zero time when
// none is.
func (p *Pushback) Until() time.Time {
	end := p.end.Load()
	if end == 0 || int64(time.Since(p.base)) >= end {
		return time.Time{}
	}
	return p.base.Add(time.Duration(end))
}

// Stats returns how many calls the stage let through, how many of those
// waited first, and how many it refused, and the seconds left of the
// period in force.
func (p *Pushback) Stats() Stats {
	var left float64
	if end := p.end.Load(); end != 0 {
		left = max(time.Duration(end)-time.Since(p.base), 0).Seconds()
	}
	return Stats{
		Calls: []Count{
			{Result: "passed", N: p.passed.Load()},
			{Result: "waited", N: p.waited.Load()},
			{Result: "rejected", N: p.rejected.Load()},
		},
		Gauges: []Gauge{{
			Name:  "pushed_back_seconds",
			Help:  "Seconds left of the period a dependency's pushback set; 0 when none.",
			Value: left,
		}},
	}
}

// pushbackDo runs the rest of a chain through p: at once while no period
// is in force, after its end or not at all during one; and starts or
// lengthens the period when the call's error carries a hint.
func pushbackDo[T any](p *Pushback, ctx context.Context, n next[T]) (T, error) {
	if p.maxPeriod == 0 {
		var zero T
		return zero, errPushbackNotMade
	}
	if end := p.end.Load(); end != 0 {
		if err := p.enter(ctx, end); err != nil {
			var zero T
			return zero, err
		}
	}
	p.passed.Add(1)
	var (
		v   T
		err error
	)
	if n.c == nil { // n.call, by hand: the compiler will not inline it
		v, err = n.fn(ctx)
	} else {
		v, err = n.c.Do(ctx, n.fn)
	}
	if err != nil {
		p.learn(err)
	}
	return v, err
}

// enter lets a call through once no period is in force: at once if the
// one that ends at end (nanoseconds since p.base) is over, after a wait,
// or never, returning the call's refusal or its context's error.
func (p *Pushback) enter(ctx context.Context, end int64) error {
	now := int64(time.Since(p.base))
	if now >= end {
		// The period is over: the calls that come next read no clock,
		// unless a hint has set a new one meanwhile.
		p.end.CompareAndSwap(end, 0)
		return nil
	}
	return p.hold(ctx, now, end)
}

// hold waits for the period that ends at end to be over, if the call may,
// or refuses the call. now is the time of the call's arrival; both are in
// nanoseconds since p.base.
func (p *Pushback) hold(ctx context.Context, now, end int64) error {
	if err := ctx.Err(); err != nil {
		return err // the caller has given up: no refusal to count
	}
	deadline, hasDeadline := ctx.Deadline()
	arrived := now
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if time.Duration(end-arrived) > p.maxWait || hasDeadline && !deadline.After(p.base.Add(time.Duration(end))) {
			return p.reject(ctx, end)
		}
		if err := sleep(ctx, time.Duration(end-now), &t); err != nil {
			return err
		}
		// A hint may have lengthened the period while the call waited.
		now = int64(time.Since(p.base))
		if end = p.end.Load(); end == 0 || now >= end {
			p.waited.Add(1)
			return nil
		}
	}
}

// learn starts or lengthens the period if err, a call's error, carries
// the dependency's hint.
func (p *Pushback) learn(err error) {
	d, ok := retryAfterHint(err)
	if !ok || d <= 0 || isRejection(err) {
		return
	}
	to := int64(time.Since(p.base) + min(d, p.maxPeriod))
	for {
		cur := p.end.Load()
		if cur >= to || p.end.CompareAndSwap(cur, to) {
			return
		}
	}
}

// reject counts a refusal during the period that ends at end, and
// returns its error.
func (p *Pushback) reject(ctx context.Context, end int64) error {
	p.rejected.Add(1)
	err := &PushbackError{Name: p.name, Until: p.base.Add(time.Duration(end))}
	if p.ev.on() {
		p.ev.emit(ctx, Event{Type: EventRejected, Kind: KindPushback, Name: p.name, Err: err})
	}
	return err
}

// PushbackError is the error of a call refused by a Pushback: the
// dependency asked for no calls until Until. It matches ErrPushback and
// ErrRejected.
type PushbackError struct {
	// Name is the stage's name (PushbackConfig.Name).
	Name string
	// Until is the end of the period the call arrived in.
	Until time.Time
}

// Error describes the error.
func (e *PushbackError) Error() string {
	return fmt.Sprintf("resilience: pushback %q: the dependency asked for no calls until %s", e.Name, e.Until.Format("2006-01-02T15:04:05.000Z07:00"))
}

// Is reports whether target is ErrPushback or ErrRejected.
func (e *PushbackError) Is(target error) bool {
	return target == ErrPushback || target == ErrRejected
}

// RetryAfter returns how long from now until Until, 0 once it has come,
// for code that tells its own callers when to come back (a Retry-After
// header). A Retry never retries the rejection itself, and a Pushback
// takes no period from it.
func (e *PushbackError) RetryAfter() time.Duration {
	return max(time.Until(e.Until), 0)
}
