package resilience

import (
	"context"
	"sync/atomic"
)

// Attempt returns which attempt of a call is running on ctx, from 1: 1 for
// the first attempt (and for a context no Retry ran), 2 for the first
// retry, and so on. A Retry sets it on the context of each attempt it
// makes from the second on. With nested retries, the innermost Retry that
// has retried is read: an inner Retry's first attempt, made for the
// outer's second, reads 2, since it is sent for the second time. The
// attempts of one call from the second on share one context, whose number
// moves on with each: a context kept from an earlier attempt (by work the
// attempt left running) reads the attempt running now.
//
// The integrations send it with each request (resilhttp as the
// Resilience-Attempt header, resilgrpc as grpc-previous-rpc-attempts), so
// that a server can tell a retry from a first call: see CallerAttempt.
func Attempt(ctx context.Context) int {
	if a, ok := ctx.Value(attemptKey{}).(*attemptCtx); ok {
		return int(a.n.Load())
	}
	return 1
}

// attemptKey is the context key of the attempt number a Retry sets.
type attemptKey struct{}

// attemptCtx is the context of a retried call's attempts from the second
// on: the caller's context, with the number of the attempt running now.
// One is made per call that fails, and its number moves on with each
// attempt, so retrying costs one allocation however many attempts there
// are. The first attempt runs on the caller's context itself.
type attemptCtx struct {
	context.Context
	n atomic.Int32
}

func (c *attemptCtx) Value(key any) any {
	if key == (attemptKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// WithCallerAttempt returns a copy of ctx that says which attempt of its
// caller the request being served is (n from 1), as a server reads it off
// the request: resilhttp's and resilgrpc's server sides set it for their
// handlers. It is not Attempt: a call the handler makes in turn starts at
// attempt 1 of its own.
func WithCallerAttempt(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, callerAttemptKey{}, n)
}

// CallerAttempt returns the attempt number set by WithCallerAttempt, or 0
// when the caller sent none.
func CallerAttempt(ctx context.Context) int {
	n, _ := ctx.Value(callerAttemptKey{}).(int)
	return n
}

type callerAttemptKey struct{}

// Overloaded marks err as the dependency's answer that it is overloaded
// (an HTTP 429 or 503, a gRPC RESOURCE_EXHAUSTED or UNAVAILABLE): a
// Failure like any other for the breaker and the retry, and the answer an
// adaptive Throttler counts as a request the dependency did not accept.
// The integrations mark their clients' overload answers; errors.Is and
// errors.As see through the mark, and its message is err's. Overloaded(nil)
// is nil.
func Overloaded(err error) error {
	if err == nil {
		return nil
	}
	return &overloadedError{err: err}
}

// IsOverloaded reports whether err, or an error it wraps, was marked with
// Overloaded.
func IsOverloaded(err error) bool {
	_, ok := as[*overloadedError](err)
	return ok
}

type overloadedError struct{ err error }

func (e *overloadedError) Error() string { return e.err.Error() }
func (e *overloadedError) Unwrap() error { return e.err }

// GaveUp reports whether err says that a Retry gave up on its dependency:
// it retried and its retries were used up (ErrRetriesExhausted after more
// than one attempt), or its budget refused a retry (ErrRetryBudget). A
// server whose call to its own dependency ends so should tell its callers
// not to retry (resilhttp and resilgrpc say how): the retries that could
// help have been made, one hop down, and more from above would only
// multiply them. A Retry with MaxRetries 0 never gives up in this sense:
// it made no retry, so retrying from above is the only retrying there is.
func GaveUp(err error) bool {
	for err != nil {
		re, ok := as[*RetryError](err)
		if !ok {
			return false
		}
		if re.Cause == ErrRetryBudget || re.Cause == ErrRetriesExhausted && re.Attempts > 1 {
			return true
		}
		err = re.Err // a Retry's error may wrap an inner Retry's
	}
	return false
}
