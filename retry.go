package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// RetryConfig configures a retry policy. The zero value of every field
// stands for its default, given in the field's comment; note that the
// default MaxRetries is 0, no retries, so that retrying is always a choice
// made in writing.
type RetryConfig struct {
	// Name identifies the policy in errors and metrics.
	Name string

	// MaxRetries is how many times a failed call is tried again, so a call
	// runs at most MaxRetries+1 times. Default 0: no retries.
	MaxRetries int

	// InitialBackoff is the wait before the first retry. Default 100ms.
	InitialBackoff time.Duration

	// NoBackoff makes the policy retry at once, with no wait between
	// attempts (a Retry-After hint is still waited, up to MaxBackoff):
	// for a dependency that fails one attempt at a time, such as a pool
	// handing out a dead connection, or for tests. InitialBackoff,
	// BackoffMultiplier and Jitter must then be left unset. Default false:
	// the zero InitialBackoff means its default, not no wait.
	NoBackoff bool

	// MaxBackoff caps every wait, jitter and Retry-After hints included.
	// Default 10s.
	MaxBackoff time.Duration

	// BackoffMultiplier multiplies the wait after each retry: the wait
	// before retry n is min(InitialBackoff × BackoffMultiplier^(n-1),
	// MaxBackoff). At least 1; default 2.
	BackoffMultiplier float64

	// Jitter multiplies each wait by a random factor from 0.7 to 1.3, so
	// that clients failing together do not retry together. A wait that
	// could pass MaxBackoff is drawn from 0.7 times it up to MaxBackoff
	// instead: waits at the cap are spread over [0.7, 1] × MaxBackoff
	// rather than piled on MaxBackoff itself. Default false.
	Jitter bool

	// Retryable reports whether an error is worth another attempt. Default
	// DefaultRetryable. Whatever it says, errors marked with Permanent or
	// Answer (or classified so by a Guard's Classify) and rejections by
	// this package's stages (ErrRejected) are
	// never retried, since retrying into a rejection only adds load where
	// there is too much already; nor is the error of a stage used as its
	// zero value, nor anything once the caller's context has ended. It must
	// be safe for concurrent use.
	Retryable func(err error) bool

	// Latency, if set, is the model of the dependency's latency (see
	// Latency) by which the policy does not start a retry the time left
	// cannot fit: when the context's deadline comes less than
	// DeadlineQuantile of the recent answers' latency after the wait,
	// the policy stops there, with ErrRetryDeadline, as it does for a
	// wait that would pass the deadline, rather than start an attempt
	// the deadline will cut. While the model has too few samples, the
	// wait alone decides. Put the same Latency in the chain inside the
	// Retry, where it times the attempts. Default nil: the wait alone.
	Latency *Latency

	// DeadlineQuantile is the quantile of Latency a retry needs the time
	// left to fit, above 0, at most 1: 0.5 starts a retry only if the
	// time left after its wait is at least what half the recent answers
	// took. Only with Latency; default 0.5 (DefaultDeadlineQuantile).
	DeadlineQuantile float64

	// OnRetry, if set, is called before each wait, with the attempt that
	// just failed. It runs on the caller's goroutine, so calls for one Do
	// come one at a time, but calls for different Do calls may run
	// concurrently. The policy holds no lock while calling it.
	OnRetry func(RetryEvent)
}

// RetryEvent describes a failed attempt that is about to be retried.
type RetryEvent struct {
	// Name is the retry policy's name.
	Name string
	// Attempt is the number of the attempt that failed, from 1.
	Attempt int
	// Err is its error.
	Err error
	// Delay is how long the policy will wait before the next attempt.
	Delay time.Duration
}

// Defaults of RetryConfig.
const (
	DefaultInitialBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff        = 10 * time.Second
	DefaultBackoffMultiplier = 2.0
	// jitterFactor makes backoff/v4 draw each wait from [0.7, 1.3] of the
	// exponential sequence.
	jitterFactor = 0.3
)

// DefaultRetryable is the retry predicate a Retry uses when its config has
// none. It retries every error except rejections (ErrRejected: a circuit
// breaker's ErrOpen, a bulkhead's ErrBulkheadFull), which a Retry never retries
// whatever its predicate, and context.Canceled. A timeout (ErrTimeout,
// context.DeadlineExceeded) of the attempt itself is retried: that is what
// a per-attempt timeout inside a retry is for.
func DefaultRetryable(err error) bool {
	return !isRejection(err) && !errors.Is(err, context.Canceled)
}

// isRejection reports whether err is a refusal by one of this package's
// stages to run a call.
func isRejection(err error) bool {
	return errors.Is(err, ErrRejected)
}

// Retry is a retry policy: it runs a call again when it fails with an
// error worth retrying, waiting longer before each attempt (exponential
// backoff, optionally with jitter), until the call succeeds, MaxRetries is
// used up, or waiting any longer would outlive the caller's context.
//
// Waits end at once when the context ends, and a retry whose wait would
// end after the context's deadline is not attempted at all: the policy
// returns the last error instead of sleeping in vain. An error carrying a
// Retry-After hint (see RetryAfter) sets the next wait, capped by
// MaxBackoff.
//
// When the policy gives up after retrying, or on a retryable error, it
// returns a *RetryError that says how many attempts were made and unwraps
// to the last error, along with the last attempt's result: adding a retry
// does not change what a failed call returns. An error it would never
// retry, on the first attempt, comes back unchanged. A policy that stops
// because the next wait would pass the context's deadline returns an error
// matching context.DeadlineExceeded (and ErrTimeout too, inside a Timeout
// whose time limit set that deadline).
//
// The waits are computed by backoff/v4's ExponentialBackOff, a fresh one
// for each call that fails (it is not safe to share between goroutines),
// with its 15-minute MaxElapsedTime turned off. A call that succeeds at
// once costs nothing more than the call.
//
// A Retry is a Stage: use it in chains with For. It holds no state between
// calls and is safe for concurrent use. Make one with NewRetry: the zero
// Retry runs no call (Do returns an error matching ErrInvalidConfig that
// says so).
type Retry struct {
	cfg RetryConfig                   // defaults filled in
	obs atomic.Pointer[RetryObserver] // nil until Observe
	mu  sync.Mutex                    // held by Observe
	ev  events
}

// ObserveEvents adds f to the observers of r's events: EventRetry before
// each wait, EventGaveUp when a call fails after retrying or being
// stopped from it. It implements EventSource.
func (r *Retry) ObserveEvents(f func(context.Context, Event)) { r.ev.add(f) }

// NewRetry returns a retry policy configured by cfg, or an error naming
// every invalid field of cfg.
func NewRetry(cfg RetryConfig) (*Retry, error) {
	ck := checker{typ: "RetryConfig"}
	ck.check(cfg.MaxRetries >= 0, "MaxRetries", cfg.MaxRetries, "must not be negative")
	ck.check(cfg.InitialBackoff >= 0, "InitialBackoff", cfg.InitialBackoff, "must not be negative")
	ck.check(cfg.MaxBackoff >= 0, "MaxBackoff", cfg.MaxBackoff, "must not be negative")
	ck.check(cfg.BackoffMultiplier == 0 || cfg.BackoffMultiplier >= 1 && !math.IsInf(cfg.BackoffMultiplier, 1),
		"BackoffMultiplier", cfg.BackoffMultiplier, "must be a finite number of at least 1")
	if cfg.NoBackoff {
		ck.check(cfg.InitialBackoff == 0, "InitialBackoff", cfg.InitialBackoff, "must be unset with NoBackoff, which waits nothing")
		ck.check(cfg.BackoffMultiplier == 0, "BackoffMultiplier", cfg.BackoffMultiplier, "must be unset with NoBackoff, which waits nothing")
		ck.check(!cfg.Jitter, "Jitter", cfg.Jitter, "must be unset with NoBackoff, which waits nothing")
	}
	cfg.InitialBackoff = or(cfg.InitialBackoff, DefaultInitialBackoff)
	cfg.MaxBackoff = or(cfg.MaxBackoff, DefaultMaxBackoff)
	cfg.BackoffMultiplier = or(cfg.BackoffMultiplier, DefaultBackoffMultiplier)
	ck.check(cfg.MaxBackoff >= cfg.InitialBackoff, "MaxBackoff", cfg.MaxBackoff, "must not be less than InitialBackoff ("+cfg.InitialBackoff.String()+")")
	ck.check(cfg.DeadlineQuantile == 0 || cfg.DeadlineQuantile > 0 && cfg.DeadlineQuantile <= 1, "DeadlineQuantile", cfg.DeadlineQuantile, "must be above 0, at most 1 (0 for the default)")
	if cfg.Latency == nil {
		ck.check(cfg.DeadlineQuantile == 0, "DeadlineQuantile", cfg.DeadlineQuantile, "must be unset without a Latency")
	} else {
		ck.check(cfg.Latency.made(), "Latency", "the zero Latency", "must be made by NewLatency")
		cfg.DeadlineQuantile = or(cfg.DeadlineQuantile, DefaultDeadlineQuantile)
	}
	if cfg.Retryable == nil {
		cfg.Retryable = DefaultRetryable
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &Retry{cfg: cfg}, nil
}

// Kind returns KindRetry.
func (*Retry) Kind() string { return KindRetry }

// Run runs call under the retry, as Do does: it is the retry as a Stage for
// code that has only an error to pass through.
func (x *Retry) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// Name returns the policy's name.
func (r *Retry) Name() string { return r.cfg.Name }

// MaxRetries returns how many times the policy tries a failed call again:
// 0 for a policy that never retries.
func (r *Retry) MaxRetries() int { return r.cfg.MaxRetries }

// WithRetry runs fn under a retry policy configured by cfg. It is shorthand
// for building the policy with NewRetry and running fn through it; a
// configuration error is returned without running fn. Code on a hot path
// should build the policy once instead.
func WithRetry[T any](ctx context.Context, cfg RetryConfig, fn Func[T]) (T, error) {
	r, err := NewRetry(cfg)
	if err != nil {
		var zero T
		return zero, err
	}
	return For[T](r).Do(ctx, fn)
}

// retryDo runs the rest of a chain under r. The first attempt is made here; the loop and
// the backoff it may need live in retryAgain, off the happy path.
func retryDo[T any](r *Retry, ctx context.Context, n next[T]) (T, error) {
	if r.cfg.Retryable == nil { // set by NewRetry, always
		var zero T
		return zero, errRetryNotMade
	}
	var budget *RetryBudget
	if n.c != nil {
		if b, ok := n.c.link.(*RetryBudget); ok {
			// The budget right inside the retry is run by the retry
			// itself: it counts this first attempt, and is asked
			// before each retry.
			budget = b
			n.c = (*chain[T])(n.c.rest)
			b.first()
		}
	}
	v, err := n.call(ctx)
	if err == nil {
		r.observe(1, nil)
		return v, nil
	}
	v, attempts, err := retryAgain(r, ctx, n, budget, v, err)
	r.observe(attempts, err)
	return v, err
}

// observe reports a call that made attempts attempts to r's observers, if
// any.
func (r *Retry) observe(attempts int, err error) {
	if o := r.obs.Load(); o != nil && o.Done != nil {
		o.Done(attempts, err)
	}
}

// retryAgain carries on after a first attempt that failed with v and err,
// and returns the final result and the number of attempts made. Whatever
// stops it, the result is the last attempt's.
func retryAgain[T any](r *Retry, ctx context.Context, n next[T], budget *RetryBudget, v T, err error) (T, int, error) {
	var (
		b     backoff.ExponentialBackOff
		begun bool        // b is made
		timer *time.Timer // made for the first wait, reused for the others
		actx  *attemptCtx // the context of the attempts from the second on
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for attempt := 1; ; attempt++ {
		// v and err are the result of attempt number attempt.
		if ctxErr := ctx.Err(); ctxErr != nil || IsPermanent(err) || markOf(err) != Failure || isRejection(err) || isNotMade(err) || !r.cfg.Retryable(err) || IsAtMostOnce(ctx) {
			if attempt == 1 {
				return v, 1, err
			}
			return giveUp(r, ctx, v, attempt, &RetryError{Name: r.cfg.Name, Attempts: attempt, Err: err, Cause: ctxErr})
		}
		if attempt > r.cfg.MaxRetries {
			return giveUp(r, ctx, v, attempt, &RetryError{Name: r.cfg.Name, Attempts: attempt, Err: err, Cause: ErrRetriesExhausted})
		}
		var delay time.Duration
		if !r.cfg.NoBackoff {
			if !begun {
				r.initBackOff(&b)
				begun = true
			}
			delay = r.wait(&b)
		}
		if hint, ok := retryAfterHint(err); ok {
			delay = min(max(hint, 0), r.cfg.MaxBackoff)
		}
		if deadline, ok := ctx.Deadline(); ok {
			now := time.Now()
			need := delay
			if l := r.cfg.Latency; l != nil {
				if p, ok := l.recent(now, r.cfg.DeadlineQuantile); ok {
					need += p // the attempt itself must fit too
				}
			}
			if !now.Add(need).Before(deadline) {
				return giveUp(r, ctx, v, attempt, &RetryError{Name: r.cfg.Name, Attempts: attempt, Err: err, Cause: ErrRetryDeadline, deadline: deadline})
			}
		}
		if budget != nil && !budget.withdraw() {
			e := &RetryError{Name: r.cfg.Name, Attempts: attempt, Err: err, Cause: ErrRetryBudget}
			if budget.ev.on() {
				budget.ev.emit(ctx, Event{Type: EventRejected, Kind: KindRetryBudget, Name: budget.cfg.Name, Attempt: attempt, Err: e})
			}
			return giveUp(r, ctx, v, attempt, e)
		}
		if r.ev.on() {
			r.ev.emit(ctx, Event{Type: EventRetry, Kind: KindRetry, Name: r.cfg.Name, Attempt: attempt, Delay: delay, Err: err})
		}
		if r.cfg.OnRetry != nil {
			r.cfg.OnRetry(RetryEvent{Name: r.cfg.Name, Attempt: attempt, Err: err, Delay: delay})
		}
		if ctxErr := sleep(ctx, delay, &timer); ctxErr != nil {
			return giveUp(r, ctx, v, attempt, &RetryError{Name: r.cfg.Name, Attempts: attempt, Err: err, Cause: ctxErr})
		}
		if actx == nil {
			actx = &attemptCtx{Context: ctx}
		}
		actx.n.Store(int32(min(attempt+1, math.MaxInt32)))
		if v, err = n.call(actx); err == nil {
			return v, attempt + 1, nil
		}
	}
}

// giveUp returns v and e, the end of a call that attempt attempts did
// not carry through, reporting it to r's observers of events.
func giveUp[T any](r *Retry, ctx context.Context, v T, attempt int, e *RetryError) (T, int, error) {
	if r.ev.on() {
		r.ev.emit(ctx, Event{Type: EventGaveUp, Kind: KindRetry, Name: r.cfg.Name, Attempt: attempt, Err: e})
	}
	return v, attempt, e
}

// wait returns the next wait of the sequence b, jittered if the policy
// says so, always within [0, MaxBackoff].
//
// b gives the exponential sequence itself, capped by MaxBackoff, without
// randomisation: backoff/v4 jitters the capped interval and converts the
// result back to a Duration unchecked, which piles half the waits at the
// cap on MaxBackoff and, for a MaxBackoff near the largest Duration,
// overflows to negative waits. The jitter is drawn here instead, from
// [0.7, 1.3] of the interval cut off at MaxBackoff, and computed in
// float64 with the cap applied before converting back.
func (r *Retry) wait(b *backoff.ExponentialBackOff) time.Duration {
	maxWait := r.cfg.MaxBackoff
	d := b.NextBackOff()
	if d < 0 || d > maxWait { // a Duration that overflowed in backoff/v4's float arithmetic
		d = maxWait
	}
	if !r.cfg.Jitter {
		return d
	}
	lo := (1 - jitterFactor) * float64(d)
	hi := min((1+jitterFactor)*float64(d), float64(maxWait))
	w := lo + rand.Float64()*(hi-lo)
	if w >= float64(maxWait) {
		return maxWait
	}
	return time.Duration(w)
}

// initBackOff makes b the wait sequence for one call.
func (r *Retry) initBackOff(b *backoff.ExponentialBackOff) {
	*b = backoff.ExponentialBackOff{
		InitialInterval: r.cfg.InitialBackoff,
		Multiplier:      r.cfg.BackoffMultiplier,
		MaxInterval:     r.cfg.MaxBackoff,
		MaxElapsedTime:  0, // never give up on elapsed time: MaxRetries and the context decide
		Stop:            backoff.Stop,
		Clock:           stoppedClock{}, // read only for MaxElapsedTime, which is 0
	}
	b.RandomizationFactor = 0 // wait draws the jitter
	b.Reset()
}

// stoppedClock is backoff/v4's clock for a sequence with no MaxElapsedTime,
// which has no use for the time: Reset and NextBackOff read it all the
// same, and a nil Clock would panic.
type stoppedClock struct{}

func (stoppedClock) Now() time.Time { return time.Time{} }

// sleep waits for d or until ctx ends, and returns ctx's error in the
// latter case. *t is the timer of the waits of one call: made for the
// first, reset for the others, and stopped by the caller.
func sleep(ctx context.Context, d time.Duration, t **time.Timer) error {
	if d <= 0 {
		return ctx.Err()
	}
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d) // fired or stopped: since Go 1.23 its channel holds nothing stale
	}
	select {
	case <-(*t).C:
		return nil
	case <-ctx.Done():
		(*t).Stop()
		return ctx.Err()
	}
}

// RetryError is the error of a call the retry policy gave up on. It says
// how many attempts were made and unwraps to the last attempt's error (and,
// when the caller's context ended during a backoff, to the context's error
// too).
type RetryError struct {
	// Name is the retry policy's name (RetryConfig.Name).
	Name string
	// Attempts is the number of times the call ran.
	Attempts int
	// Err is the error of the last attempt.
	Err error
	// Cause says why the policy stopped: ErrRetriesExhausted,
	// ErrRetryDeadline, ErrRetryBudget, or the caller's context error when
	// it ended during a backoff.
	Cause error

	deadline time.Time // with ErrRetryDeadline: the deadline the policy stopped before
}

// Reasons a retry policy stops, found in RetryError.Cause.
var (
	// ErrRetriesExhausted: every retry allowed by MaxRetries was made.
	ErrRetriesExhausted = errors.New("resilience: retries exhausted")
	// ErrRetryDeadline: the next backoff would have ended after the
	// context's deadline, or (with RetryConfig.Latency) so near it that
	// the attempt would not fit, so the policy did not start it. The
	// *RetryError that carries it matches context.DeadlineExceeded too.
	ErrRetryDeadline = errors.New("resilience: next retry would pass the deadline")
	// ErrRetryBudget: the retry budget inside the policy (see
	// RetryBudget) refused the next retry, since retries to the
	// dependency were over its share of first attempts.
	ErrRetryBudget = errors.New("resilience: retry budget spent")
)

// Error describes the error.
func (e *RetryError) Error() string {
	attempts := "attempts"
	if e.Attempts == 1 {
		attempts = "attempt"
	}
	var why string
	switch {
	case e.Cause == ErrRetriesExhausted:
		why = "gave up"
	case e.Cause == ErrRetryDeadline:
		why = "stopped before the deadline"
	case e.Cause == ErrRetryBudget:
		why = "stopped by its budget"
	case e.Cause != nil:
		why = "stopped (" + e.Cause.Error() + ")"
	default:
		why = "stopped"
	}
	prefix := "resilience: retry"
	if e.Name != "" {
		prefix = fmt.Sprintf("resilience: retry %q", e.Name)
	}
	return fmt.Sprintf("%s %s after %d %s: %v", prefix, why, e.Attempts, attempts, e.Err)
}

// Is reports whether target is context.DeadlineExceeded for a policy that
// stopped before the deadline (Cause ErrRetryDeadline): the call ran out
// of time as surely as if it had waited for the deadline.
func (e *RetryError) Is(target error) bool {
	return target == context.DeadlineExceeded && e.Cause == ErrRetryDeadline
}

// Unwrap returns the last attempt's error and the cause, so that errors.Is
// finds either: errors.Is(err, ErrRetriesExhausted), or
// errors.Is(err, context.Canceled) when the caller gave up during a backoff.
func (e *RetryError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}

// Permanent marks err as not worth retrying: the retry policy returns it at
// once whatever its predicate says. errors.Is and errors.As see through the
// mark, and its message is err's. Errors marked with backoff/v4's
// backoff.Permanent are recognised too; Permanent(nil) is nil.
func Permanent(err error) error { return backoff.Permanent(err) }

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	_, ok := as[*backoff.PermanentError](err)
	return ok
}

// RetryAfter attaches a server's hint to err: the retry policy waits d
// before the next attempt instead of its own backoff (capped by
// MaxBackoff). Any error in the chain with a method
//
//	RetryAfter() time.Duration
//
// is taken as a hint in the same way. RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{err: err, after: d}
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e *retryAfterError) Error() string { return e.err.Error() }

func (e *retryAfterError) Unwrap() error { return e.err }

func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// retryAfterHint returns the first Retry-After hint in err's chain.
func retryAfterHint(err error) (time.Duration, bool) {
	if h, ok := as[interface{ RetryAfter() time.Duration }](err); ok {
		return h.RetryAfter(), true
	}
	return 0, false
}

// RetryObserver receives the events of a retry policy.
type RetryObserver struct {
	// Done is called as each call through the policy returns, with the
	// number of attempts made, from 1, and the final error, nil on success.
	// A call that panics is not reported. For each retry, see
	// RetryConfig.OnRetry.
	Done func(attempts int, err error)
}

// Observe adds o to the observers of r.
func (r *Retry) Observe(o RetryObserver) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.obs.Load(); old != nil {
		o = RetryObserver{Done: join2(old.Done, o.Done)}
	}
	r.obs.Store(&o)
}

// AtMostOnce returns a copy of ctx for a call that must not be made twice,
// such as an HTTP POST without an idempotency key: a Retry makes only the
// first attempt, whatever failed, a per-attempt time-out included. A stage
// of your own that sends calls again must check IsAtMostOnce. The other
// stages run as usual: a breaker still counts the failure. The mark goes
// with every context derived from ctx, so give it to the one call it is
// about, not to a request's whole context.
func AtMostOnce(ctx context.Context) context.Context {
	return context.WithValue(ctx, atMostOnceKey{}, true)
}

// IsAtMostOnce reports whether ctx was made by AtMostOnce, or derives from
// such a context: whether a stage of your own may send the call again.
func IsAtMostOnce(ctx context.Context) bool {
	once, _ := ctx.Value(atMostOnceKey{}).(bool)
	return once
}

type atMostOnceKey struct{}
