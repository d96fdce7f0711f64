package resilience

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// TimeoutConfig configures a timeout policy.
type TimeoutConfig struct {
	// Name identifies the policy in errors and metrics.
	Name string

	// Duration is the time limit for a call. Required: there is no sensible
	// default for how long a dependency may take.
	Duration time.Duration

	// Abandon makes the policy return to the caller at the deadline even
	// if the call ignores its context. The call then runs on a goroutine of
	// its own and, if it outlives the deadline, is left to finish there, its
	// result dropped. Default false: cooperative, the call runs on the
	// caller's goroutine and must honour ctx.
	//
	// Abandoning costs a goroutine and a channel per call, and it bounds
	// the caller's wait, not the work: an abandoned call still holds its
	// connection and its memory until it returns, and the slot of any
	// Bulkhead around the Timeout in the same chain (For, Compose, a
	// Guard): the slot is given back when the call returns, not when the
	// caller does, so a bulkhead bounds the calls actually running. A
	// bulkhead in another chain that calls this one does not see the
	// abandoned call. A panic in an abandoned call cannot be handed to the caller,
	// who has gone, and crashes the program as any goroutine's panic does.
	// Use it for calls that cannot take a context, and prefer fixing them.
	Abandon bool
}

// Timeout is a timeout policy: it gives each call a context that ends after
// a fixed time.
//
// A call cut short returns a *TimeoutError, which matches ErrTimeout and
// context.DeadlineExceeded. A shorter deadline already on the caller's
// context wins, and when the caller's context ends first, the caller's
// error comes back unchanged: a timeout reports only its own deadline. A
// call that succeeds, even late, succeeds.
//
// By default the policy is cooperative: the call receives the context and
// must return when it ends; nothing runs on another goroutine. See
// TimeoutConfig.Abandon for calls that ignore their context.
//
// A Timeout is a Stage: use it in chains with For. It is safe for
// concurrent use. Make one with NewTimeout: the zero Timeout runs no call
// (Do returns an error matching ErrInvalidConfig that says so).
type Timeout struct {
	cfg TimeoutConfig
	obs atomic.Pointer[TimeoutObserver] // nil until Observe
	mu  sync.Mutex                      // held by Observe
	ev  events
}

// ObserveEvents adds f to the observers of t's events: EventTimeout when
// its time limit ends a call. It implements EventSource.
func (t *Timeout) ObserveEvents(f func(context.Context, Event)) { t.ev.add(f) }

// NewTimeout returns a timeout policy configured by cfg, or an error naming
// every invalid field of cfg.
func NewTimeout(cfg TimeoutConfig) (*Timeout, error) {
	ck := checker{typ: "TimeoutConfig"}
	ck.check(cfg.Duration > 0, "Duration", cfg.Duration, "must be positive")
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &Timeout{cfg: cfg}, nil
}

// Kind returns KindTimeout.
func (*Timeout) Kind() string { return KindTimeout }

// Run runs call under the timeout, as Do does: it is the timeout as a Stage for
// code that has only an error to pass through.
func (x *Timeout) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// Name returns the policy's name.
func (t *Timeout) Name() string { return t.cfg.Name }

// Duration returns the policy's time limit.
func (t *Timeout) Duration() time.Duration { return t.cfg.Duration }

// Abandons reports whether the policy returns at the deadline without
// waiting for the call (TimeoutConfig.Abandon).
func (t *Timeout) Abandons() bool { return t.cfg.Abandon }

// WithTimeout runs fn with a context that ends after d, cooperatively, with
// the error semantics of Timeout. A non-positive d is reported as an error
// without running fn.
func WithTimeout(ctx context.Context, d time.Duration, fn func(ctx context.Context) error) error {
	if fn == nil {
		return errNilFunc
	}
	_, err := WithTimeoutResult(ctx, d, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, fn(ctx)
	})
	return err
}

// WithTimeoutResult runs fn with a context that ends after d, cooperatively,
// with the error semantics of Timeout, and returns its result. A
// non-positive d is reported as an error without running fn.
func WithTimeoutResult[T any](ctx context.Context, d time.Duration, fn Func[T]) (T, error) {
	var zero T
	if fn == nil {
		return zero, errNilFunc
	}
	if d <= 0 {
		return zero, &ConfigError{Field: "TimeoutConfig.Duration", Value: d, Reason: "must be positive"}
	}
	v, _, err := timeoutCooperative(ctx, nil, "", d, next[T]{fn: fn})
	return v, err
}

// timeoutDo runs the rest of a chain under t.
func timeoutDo[T any](t *Timeout, ctx context.Context, n next[T]) (T, error) {
	var (
		v   T
		err error
		r   TimeoutResult
	)
	if t.cfg.Duration <= 0 {
		return v, errTimeoutNotMade
	}
	if t.cfg.Abandon {
		v, r, err = timeoutAbandon(ctx, t.cfg, n)
	} else {
		v, r, err = timeoutCooperative(ctx, t, t.cfg.Name, t.cfg.Duration, n)
	}
	if o := t.obs.Load(); o != nil && o.Done != nil && r != timeoutNotRun {
		o.Done(r)
	}
	if r == TimeoutExpired && t.ev.on() {
		t.ev.emit(ctx, Event{Type: EventTimeout, Kind: KindTimeout, Name: t.cfg.Name, Err: err})
	}
	return v, err
}

// timeoutCooperative runs n with a context that ends after d, and says how
// the call ended; t is the stage it runs for, nil for WithTimeout.
func timeoutCooperative[T any](ctx context.Context, t *Timeout, name string, d time.Duration, n next[T]) (T, TimeoutResult, error) {
	if deadline, ok := ctx.Deadline(); ok && sooner(deadline, d) {
		// The caller's deadline comes first: it ends the call, and a timer
		// of ours would never fire. The call runs under ctx itself, with
		// the same results: the caller's error, unchanged, when its
		// deadline passes.
		v, err := n.call(ctx)
		if err == nil {
			return v, TimeoutSucceeded, nil
		}
		return v, timeoutResult(ctx, ctx, err), err
	}
	tctx, cancel := context.WithTimeout(ctx, d)
	kept := false
	defer func() {
		if !kept { // a panic too ends the context, and stops its timer
			cancel()
		}
	}()
	v, err := n.call(tctx)
	kept = holdFrom(ctx).keep(t, cancel)
	r := timeoutResult(ctx, tctx, err)
	if r == TimeoutExpired {
		var zero T
		return zero, r, &TimeoutError{Name: name, Limit: d, Err: err}
	}
	return v, r, err
}

// timeoutResult classifies the end of a call made with tctx, derived from
// the caller's ctx. Ours is the deadline that ended a failed call only if
// the caller's context is still live; even after cancel, tctx.Err() is
// DeadlineExceeded only if the deadline had passed.
//
// A call may also fail because of the deadline a moment before the
// context's timer fires: a client that sets its socket's deadline from
// the context's, as go-redis does, returns its own time-out error at the
// deadline. Once the deadline has passed, that failure is a time-out too.
func timeoutResult(ctx, tctx context.Context, err error) TimeoutResult {
	switch {
	case err == nil:
		return TimeoutSucceeded
	case ctx.Err() != nil:
		return TimeoutCanceled
	case tctx.Err() == context.DeadlineExceeded:
		return TimeoutExpired
	}
	deadline, ok := tctx.Deadline()
	if !ok {
		return TimeoutFailed
	}
	// A retry inside stopped early because its next wait would pass our
	// deadline (not a shorter one, set inside): the call ran out of time
	// before the deadline came.
	if !time.Now().Before(deadline) || stoppedBefore(err, deadline) {
		if theirs, ok := ctx.Deadline(); ok && !theirs.After(deadline) {
			return TimeoutCanceled // the caller's own deadline, not ours
		}
		return TimeoutExpired
	}
	return TimeoutFailed
}

// stoppedBefore reports whether err says that a retry stopped because its
// next wait would have passed deadline.
func stoppedBefore(err error, deadline time.Time) bool {
	re, ok := as[*RetryError](err)
	return ok && re.Cause == ErrRetryDeadline && re.deadline.Equal(deadline)
}

// result is what an abandoned-mode call hands back to its caller.
type result[T any] struct {
	v        T
	err      error
	panicked bool
	panicVal any
}

// States of an abandoned-mode call, decided once by a compare-and-swap
// between the caller (giving up) and the call's goroutine (finishing).
const (
	callRunning int32 = iota
	callFinished
	callAbandoned
)

var errGoexit = errors.New("resilience: call ended with runtime.Goexit")

func timeoutAbandon[T any](ctx context.Context, cfg TimeoutConfig, n next[T]) (T, TimeoutResult, error) {
	var zero T
	// The bulkhead slots this call runs in go with it to its goroutine,
	// and stay there if it is abandoned (see slotOwner).
	mine := ownerFrom(ctx)
	if err := mine.reclaim(ctx); err != nil {
		return zero, timeoutNotRun, err // no slot for the call: it was never made
	}
	tctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel() // once we return, an abandoned call is told to stop
	theirs := mine.lend()
	gctx := tctx
	if theirs != nil {
		gctx = context.WithValue(tctx, slotOwnerKey{}, theirs)
	}
	var (
		state atomic.Int32
		done  = make(chan result[T], 1)
	)
	go func() {
		var r result[T]
		returned := false
		defer func() {
			if !returned {
				if p := recover(); p != nil {
					r.panicked, r.panicVal = true, p
				} else {
					r.err = errGoexit
				}
			}
			if state.CompareAndSwap(callRunning, callFinished) {
				done <- r // buffered: never blocks
				return
			}
			theirs.release() // abandoned: the slots are ours to give back
			if r.panicked {
				panic(r.panicVal) // nobody is waiting to receive it
			}
		}()
		r.v, r.err = n.call(gctx)
		returned = true
	}()

	select {
	case r := <-done:
		mine.takeBack(theirs)
		return r.finish(ctx, tctx, cfg)
	case <-tctx.Done():
		if !state.CompareAndSwap(callRunning, callAbandoned) {
			// The call finished as the deadline passed: take its result.
			r := <-done
			mine.takeBack(theirs)
			return r.finish(ctx, tctx, cfg)
		}
		if err := ctx.Err(); err != nil {
			return zero, TimeoutCanceled, err
		}
		return zero, TimeoutExpired, &TimeoutError{Name: cfg.Name, Limit: cfg.Duration}
	}
}

// finish turns the result of a call that ran to its end into the policy's
// answer, re-raising its panic on the caller's goroutine.
func (r result[T]) finish(ctx, tctx context.Context, cfg TimeoutConfig) (T, TimeoutResult, error) {
	if r.panicked {
		panic(r.panicVal)
	}
	res := timeoutResult(ctx, tctx, r.err)
	if res == TimeoutExpired {
		var zero T
		return zero, res, &TimeoutError{Name: cfg.Name, Limit: cfg.Duration, Err: r.err}
	}
	return r.v, res, r.err
}

// TimeoutError is the error of a call cut short by a timeout. It matches
// ErrTimeout and context.DeadlineExceeded, and unwraps to the error the
// call itself returned, if any.
type TimeoutError struct {
	// Name is the timeout policy's name (TimeoutConfig.Name); empty for
	// WithTimeout and WithTimeoutResult.
	Name string
	// Limit is the time limit that was exceeded.
	Limit time.Duration
	// Err is what the call returned once its context ended; nil when the
	// call was abandoned at the deadline (TimeoutConfig.Abandon).
	Err error
}

// Error describes the error.
func (e *TimeoutError) Error() string {
	msg := "resilience: timed out after " + e.Limit.String()
	if e.Name != "" {
		msg = fmt.Sprintf("resilience: timeout %q: timed out after %v", e.Name, e.Limit)
	}
	if e.Err != nil && e.Err != context.DeadlineExceeded {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is ErrTimeout or context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Unwrap returns the error the call returned.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, as net.Error and context.DeadlineExceeded do.
func (e *TimeoutError) Timeout() bool { return true }

// TimeoutResult is how a call under a Timeout ended, as reported to
// TimeoutObserver.Done.
type TimeoutResult uint8

const (
	TimeoutSucceeded TimeoutResult = iota // returned without error
	TimeoutFailed                         // returned an error of its own, in time
	TimeoutExpired                        // cut short by the policy's deadline
	TimeoutCanceled                       // ended by the caller's context

	timeoutNotRun // the call never started: no observer hears of it
)

var timeoutResultNames = [...]string{"success", "error", "timeout", "canceled"}

// String returns "success", "error", "timeout" or "canceled".
func (r TimeoutResult) String() string {
	if int(r) < len(timeoutResultNames) {
		return timeoutResultNames[r]
	}
	return "TimeoutResult(" + strconv.Itoa(int(r)) + ")"
}

// TimeoutObserver receives the events of a timeout policy.
type TimeoutObserver struct {
	// Done is called as each call through the policy returns. A call that
	// panics is not reported.
	Done func(TimeoutResult)
}

// Observe adds o to the observers of t. Calls made with the WithTimeout
// helpers have no policy, and no observers.
func (t *Timeout) Observe(o TimeoutObserver) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.obs.Load(); old != nil {
		o = TimeoutObserver{Done: join1(old.Done, o.Done)}
	}
	t.obs.Store(&o)
}

// Hold returns a copy of ctx under which the Timeout stages of s (s
// itself, or those of a Guard) leave their contexts open after the call
// returns, their deadlines still running, until release is called: for a
// call whose result is read after it returns (an HTTP response's body,
// SQL rows, a stream), which the end of its context would cut off. Each
// of those time limits then bounds the reading of the result too, as
// http.Client.Timeout bounds reading the body. A Hedge of s leaves open
// in the same way the context of the attempt whose result it returns
// (the others it cancels):
//
//	held, release := resilience.Hold(ctx, guard)
//	rows, err := resilience.Do(held, guard, query)
//	if err != nil {
//		release()
//		return err
//	}
//	defer release() // after the rows are read
//
// Only the stages of s are held: a Timeout of another chain, run inside
// the call on the same context, ends its context as usual. Call release
// once the result is read or dropped, and at once if there is none (the
// call failed); it is safe to call more than once, and from any
// goroutine. A Timeout in abandon mode does not hold
// (TimeoutConfig.Abandon). The integrations use Hold; code of your own
// needs it only for such results.
func Hold(ctx context.Context, s Stage) (held context.Context, release func()) {
	h := &holder{}
	switch s := s.(type) {
	case *Timeout, *Hedge:
		h.stages = []Stage{s}
	case *Guard:
		if s != nil {
			for _, st := range s.stages {
				switch st.(type) {
				case *Timeout, *Hedge:
					h.stages = append(h.stages, st)
				}
			}
		}
	}
	return context.WithValue(ctx, holdKey{}, h), h.release
}

type holdKey struct{}

// holder keeps the cancel functions of the time limits a held call ran
// under, and of the attempt of a hedged call whose result it returned,
// until release.
type holder struct {
	stages   []Stage // the stages held (Timeouts, Hedges); set once, read without the lock
	mu       sync.Mutex
	cancels  []context.CancelFunc
	released bool
}

// holdFrom returns ctx's holder, or nil.
func holdFrom(ctx context.Context) *holder {
	h, _ := ctx.Value(holdKey{}).(*holder)
	return h
}

// keep takes cancel, of a context of s, to be called on release, and
// reports whether it did; a nil holder, one already released, or one that
// does not hold s takes nothing.
func (h *holder) keep(s Stage, cancel context.CancelFunc) bool {
	if h == nil || isNil(s) || !slices.Contains(h.stages, s) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return false
	}
	h.cancels = append(h.cancels, cancel)
	return true
}

func (h *holder) release() {
	h.mu.Lock()
	cancels := h.cancels
	h.cancels, h.released = nil, true
	h.mu.Unlock()
	for _, c := range cancels {
		c()
	}
}

// sooner reports whether deadline comes less than d from now, as
// time.Until(deadline) < d does, mostly without reading the clock (which
// costs more than the rest of a Timeout's check): clockFloor is a moment
// already past, so a deadline less than d after it is certainly less than
// d from now. Only when that does not settle it is the clock read, and
// the floor moved up to now. The comparison is made on the monotonic
// clock; a deadline that has no monotonic reading (made from a wall
// time) is compared with time.Until.
func sooner(deadline time.Time, d time.Duration) bool {
	if deadline == deadline.Round(0) { // no monotonic reading
		return time.Until(deadline) < d
	}
	at := deadline.Sub(clockBase)
	if at-time.Duration(clockFloor.Load()) < d {
		return true
	}
	n := time.Now()
	if n == n.Round(0) {
		// No monotonic reading: a synctest bubble's fake clock, which
		// says nothing about the process's; decide, and keep no floor.
		return deadline.Sub(n) < d
	}
	now := n.Sub(clockBase)
	clockFloor.Store(int64(now)) // a racing store of an earlier moment is still a moment past
	return at-now < d
}

var (
	clockBase  = time.Now() // with a monotonic reading
	clockFloor atomic.Int64 // a moment already past, as time since clockBase
)
