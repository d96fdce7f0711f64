package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// KindRateLimit is the kind of a RateLimiter.
const KindRateLimit = "rate_limit"

// ErrRateLimited matches the rejection of a call by a RateLimiter: no
// token was free, and none would be within the limiter's MaxWait or the
// caller's deadline. Such errors match ErrRejected too.
var ErrRateLimited = errors.New("resilience: rate limit exceeded")

// RateLimitConfig configures a rate limiter.
type RateLimitConfig struct {
	// Name identifies the limiter in errors and metrics.
	Name string

	// Rate is how many calls a second the limiter lets start, on average.
	// Required: a finite number above 0 (0.5 is a call every two seconds).
	Rate float64

	// Burst is how many calls may start at once after a quiet spell: the
	// size of the token bucket, which fills at Rate. At least 1; default
	// Rate rounded up, at least 1 (and at most 2^31-1): a second's worth
	// of calls, as Guava's RateLimiter keeps, so that calls that arrive
	// unevenly but within the rate over a second are not turned away. Set
	// it to 1 to space calls evenly instead.
	Burst int

	// MaxWait is how long a call may wait for a token when none is free;
	// waiting also ends when the caller's context does, and a call whose
	// wait would last until its context's deadline, or past it, is
	// rejected at once: it would have no time left to run.
	// Default 0: a call that finds no token is rejected at once.
	MaxWait time.Duration
}

// RateLimiter limits how often calls to a dependency start: on average
// Rate a second, with up to Burst at once after a quiet spell. It is a
// token bucket, golang.org/x/time/rate's Limiter: each call takes a token,
// and the bucket fills at Rate, up to Burst tokens. Use it to keep within
// a quota the dependency sets, or to keep a client from flooding it.
//
// A call that finds a token runs at once. One that finds none is
// rejected with a *RateLimitedError, which matches ErrRateLimited and
// ErrRejected (so a Retry does not retry it) and says how long until a
// token; with MaxWait set, it first reserves the next token and waits for
// it, if that takes at most MaxWait and ends before the context's
// deadline (else the reservation is cancelled and the call rejected at
// once, without waiting). A caller whose context ends while it waits gets
// the context's error, and its token goes back to the bucket. A call whose
// context has already ended takes no token: it returns the context's
// error without running.
//
// A call that finds a token costs what rate.Limiter.Allow does (a mutex
// and a clock read), plus a look at its context and an atomic addition,
// and allocates nothing; waiting costs a reservation and a timer. No
// callback runs under the limiter's mutex.
//
// A RateLimiter is a Stage: use it in chains with For, Do and Guards. It
// is an Observable (resilience_rate_limit_calls_total{result="admitted|waited|rejected"}
// and resilience_rate_limit_tokens), and is safe for concurrent use. Make
// one with NewRateLimiter: the zero RateLimiter runs no call (Do returns an
// error matching ErrInvalidConfig that says so).
type RateLimiter struct {
	lim      *rate.Limiter
	name     string
	rate     float64
	maxWait  time.Duration
	admitted atomic.Uint64 // calls that found a token
	waited   atomic.Uint64 // calls that waited for one, and ran
	rejected atomic.Uint64 // calls rejected
	ev       events
}

// ObserveEvents adds f to the observers of l's events: EventRejected for
// each call it turns away. It implements EventSource.
func (l *RateLimiter) ObserveEvents(f func(context.Context, Event)) { l.ev.add(f) }

var errRateLimiterNotMade error = &notMadeError{"RateLimiter", "NewRateLimiter"}

// NewRateLimiter returns a rate limiter configured by cfg, or an error
// naming every invalid field of cfg. Its bucket starts full.
func NewRateLimiter(cfg RateLimitConfig) (*RateLimiter, error) {
	ck := checker{typ: "RateLimitConfig"}
	ck.check(cfg.Rate > 0 && !math.IsInf(cfg.Rate, 1), "Rate", cfg.Rate, "must be a finite number of calls a second above 0")
	ck.check(cfg.Burst >= 0, "Burst", cfg.Burst, "must not be negative")
	ck.check(cfg.MaxWait >= 0, "MaxWait", cfg.MaxWait, "must not be negative")
	if err := ck.err(); err != nil {
		return nil, err
	}
	if cfg.Burst == 0 {
		cfg.Burst = int(max(1, math.Min(math.Ceil(cfg.Rate), math.MaxInt32)))
	}
	return &RateLimiter{
		lim:     rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		name:    cfg.Name,
		rate:    cfg.Rate,
		maxWait: cfg.MaxWait,
	}, nil
}

// Name returns the limiter's name.
func (l *RateLimiter) Name() string { return l.name }

// Kind returns KindRateLimit.
func (*RateLimiter) Kind() string { return KindRateLimit }

// Run runs call under the limiter, as Do does: it is the limiter as a
// Stage for code that has only an error to pass through.
func (l *RateLimiter) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(l, ctx, call)
}

// Tokens returns how many tokens the bucket holds now: how many calls
// could start at once. It is negative while calls wait for tokens they
// reserved.
func (l *RateLimiter) Tokens() float64 {
	if l.lim == nil {
		return 0
	}
	return l.lim.Tokens()
}

// Stats returns how many calls the limiter admitted at once, admitted
// after a wait, and rejected, and the tokens in its bucket. Reading the
// tokens takes the rate.Limiter's mutex, which a call holds for the few
// nanoseconds of taking a token and never while it waits or runs: a scrape
// never waits behind a call.
func (l *RateLimiter) Stats() Stats {
	return Stats{
		Calls: []Count{
			{Result: "admitted", N: l.admitted.Load()},
			{Result: "waited", N: l.waited.Load()},
			{Result: "rejected", N: l.rejected.Load()},
		},
		Gauges: []Gauge{{
			Name:  "tokens",
			Help:  "Tokens in the rate limiter's bucket: calls that could start at once; negative while calls wait for tokens they reserved.",
			Value: l.Tokens(),
		}},
	}
}

// rateLimitDo runs the rest of a chain once l gives it a token.
func rateLimitDo[T any](l *RateLimiter, ctx context.Context, n next[T]) (T, error) {
	var err error
	switch {
	case l.lim == nil:
		err = errRateLimiterNotMade
	case ctx.Err() != nil:
		err = ctx.Err() // an ended call takes no token, and reads no clock
	default:
		// The path of nearly every call, written out here.
		if now := time.Now(); l.lim.AllowN(now, 1) {
			l.admitted.Add(1)
		} else {
			err = l.noToken(ctx, now)
		}
	}
	if err != nil {
		var zero T
		return zero, err
	}
	if n.c == nil { // n.call, by hand: the compiler will not inline it
		return n.fn(ctx)
	}
	return n.c.Do(ctx, n.fn)
}

// noToken takes a token for a call that found none free at now, waiting
// for one if l may.
func (l *RateLimiter) noToken(ctx context.Context, now time.Time) error {
	if l.maxWait == 0 {
		if d := l.untilToken(now); d > 0 || !l.lim.AllowN(now, 1) {
			return l.reject(ctx, d)
		}
		l.admitted.Add(1) // a token came back since AllowN looked
		return nil
	}
	return l.wait(ctx, now)
}

// wait reserves the next token and waits for it, or cancels the
// reservation and rejects the call if the wait would be too long.
func (l *RateLimiter) wait(ctx context.Context, now time.Time) error {
	r := l.lim.ReserveN(now, 1) // OK: the burst is at least 1
	d := r.DelayFrom(now)
	if d == 0 { // a token came back since AllowN looked
		l.admitted.Add(1)
		return nil
	}
	if deadline, ok := ctx.Deadline(); d > l.maxWait || ok && !now.Add(d).Before(deadline) {
		// Waiting until the deadline would leave the call no time.
		r.CancelAt(now)
		return l.reject(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		l.waited.Add(1)
		return nil
	case <-ctx.Done():
		r.Cancel() // the token goes back, for the calls that come next
		return ctx.Err()
	}
}

// untilToken returns how long from now until the bucket holds a token.
func (l *RateLimiter) untilToken(now time.Time) time.Duration {
	missing := 1 - l.lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	ns := math.Ceil(missing / l.rate * float64(time.Second))
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(ns)
}

// reject counts a rejection, and returns its error.
func (l *RateLimiter) reject(ctx context.Context, after time.Duration) error {
	l.rejected.Add(1)
	err := &RateLimitedError{Name: l.name, Rate: l.rate, Delay: after}
	if l.ev.on() {
		l.ev.emit(ctx, Event{Type: EventRejected, Kind: KindRateLimit, Name: l.name, Err: err})
	}
	return err
}

// RateLimitedError is the error of a call rejected by a RateLimiter. It
// matches ErrRateLimited and ErrRejected.
type RateLimitedError struct {
	// Name is the limiter's name (RateLimitConfig.Name).
	Name string
	// Rate is the limiter's rate, in calls a second.
	Rate float64
	// Delay is how long after the rejection the call could have started:
	// until the bucket held a token, or, for a limiter that lets calls
	// wait, until the token it would have reserved.
	Delay time.Duration
}

// Error describes the error.
func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("resilience: rate limiter %q is over its rate of %g calls a second; next token in %v", e.Name, e.Rate, approx(e.Delay))
}

// Is reports whether target is ErrRateLimited or ErrRejected.
func (e *RateLimitedError) Is(target error) bool {
	return target == ErrRateLimited || target == ErrRejected
}

// RetryAfter returns Delay, for code that tells its own callers when to
// come back (a Retry-After header). A Retry never retries the rejection
// itself.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.Delay }
