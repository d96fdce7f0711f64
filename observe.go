package resilience

import "strconv"

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

// BulkheadObserver receives the events of a bulkhead. How many slots are
// in use is a read of InUse, at any time, and needs no event.
type BulkheadObserver struct {
	// Rejected is called each time Acquire, or a call through the
	// bulkhead, is turned away because no slot came free in time.
	// TryAcquire's failures are not reported: the caller asked only
	// whether a slot was free.
	Rejected func()
}

// Observe adds o to the observers of b.
func (b *Bulkhead) Observe(o BulkheadObserver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.obs.Load(); old != nil {
		o = BulkheadObserver{Rejected: join0(old.Rejected, o.Rejected)}
	}
	b.obs.Store(&o)
}

// join0, join1 and join2 return a function calling f then g, either of
// which may be nil.
func join0(f, g func()) func() {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func() { f(); g() }
}

func join1[A any](f, g func(A)) func(A) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A) { f(a); g(a) }
}

func join2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

// or2 returns f if it is not nil, else g.
func or2[F any](f, g F) F {
	if isNil(f) {
		return g
	}
	return f
}
