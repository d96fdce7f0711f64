package resilience

import (
	"context"
	"errors"
	"strconv"
)

// The failure model, shared by every stage: the end of a call is a
// Success (no error, or an error that is the dependency's answer), a
// Failure (the dependency failed; worth another attempt), a
// PermanentFailure (it failed; another attempt would fail too) or Ignored
// (it says nothing about the dependency, as when the caller gave up).
//
// A breaker counts Success and Failure, a retry tries a Failure again,
// and a fallback stands in for a Failure or a PermanentFailure. One
// Classify function, given to a Guard (GuardConfig.Classify), tells all
// the stages of the guard at once: the guard marks each error the call
// returns with its outcome (see Answer and Permanent), and every stage's
// default understands the marks.

// Outcome is how the end of a call counts.
type Outcome int8

// The outcomes a Classify function can report.
const (
	// Success: the call did what was asked, or the dependency answered
	// with an error that is an answer (a "not found", a refused payment).
	// It counts towards closing a breaker, and is not retried.
	Success Outcome = iota
	// Failure: the dependency failed. It counts towards opening a
	// breaker, and is retried.
	Failure
	// Ignored counts as neither: the call is forgotten, as if it had never
	// been let through (its permit is returned all the same), and it is
	// not retried.
	Ignored
	// PermanentFailure: the dependency failed, and trying again would fail
	// the same way. It counts towards opening a breaker, as a Failure does,
	// and is not retried.
	PermanentFailure
)

// String returns "success", "failure", "ignored" or "permanent failure".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignored:
		return "ignored"
	case PermanentFailure:
		return "permanent failure"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// DefaultClassify is the classification a breaker uses when its config has
// none: no error, or an error marked with Answer, is a Success; a
// context.Canceled error while ctx, the context the call was made with, is
// done is Ignored, since a caller who gave up says nothing about the
// dependency, and so is an error a Guard's Classify marked Ignored; so is
// a refusal by a stage inside the breaker (the error itself matching
// ErrRejected: a key's open breaker in a KeyedBreaker, a full bulkhead, a
// throttler), since that call never reached the dependency; every other
// error is a Failure, a deadline exceeded included, and a RetryError
// whose last attempt was refused (its earlier attempts did reach the
// dependency).
func DefaultClassify(ctx context.Context, err error) Outcome {
	switch {
	case err == nil:
		return Success
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return Ignored
	case isRefusal(err):
		return Ignored
	}
	switch markOf(err) {
	case Success:
		return Success
	case Ignored:
		return Ignored
	}
	return Failure
}

// Answer marks err as the dependency's answer rather than its failure: a
// breaker counts it as a success, a retry does not try again, and a
// fallback leaves it alone, while the caller gets err (errors.Is and
// errors.As see through the mark, and its message is err's). Answer(nil)
// is nil.
func Answer(err error) error {
	if err == nil {
		return nil
	}
	return &markedError{err: err, as: Success}
}

// IsAnswer reports whether err, or an error it wraps, was marked with
// Answer, or classified Success by a Guard's Classify.
func IsAnswer(err error) bool { return markOf(err) == Success }

// markedError is an error marked with the outcome it counts as.
type markedError struct {
	err error
	as  Outcome // Success or Ignored
}

func (e *markedError) Error() string { return e.err.Error() }
func (e *markedError) Unwrap() error { return e.err }

// markOf returns the outcome err is marked with, or Failure for an
// unmarked error.
func markOf(err error) Outcome {
	if m, ok := as[*markedError](err); ok {
		return m.as
	}
	return Failure
}

// mark marks err with the outcome o, as a Guard does with its Classify.
func mark(err error, o Outcome) error {
	switch {
	case err == nil || o == Failure:
		return err
	case o == PermanentFailure:
		return Permanent(err)
	case o == Success || o == Ignored:
		return &markedError{err: err, as: o}
	}
	return err // an Outcome out of range: the default, Failure
}

// classifier is the innermost link of a Guard with a Classify: it marks
// each error the rest of the chain returns with its outcome, so that every
// stage of the guard counts it the same way.
type classifier struct {
	classify func(context.Context, error) Outcome
}

func classifyDo[T any](c *classifier, ctx context.Context, n next[T]) (T, error) {
	v, err := n.call(ctx)
	if err != nil {
		err = mark(err, c.classify(ctx, err))
	}
	return v, err
}

// isRefusal reports whether err itself, not an error it wraps, is a
// stage's refusal to run a call: ErrRejected, or an error whose own Is
// matches it, as every refusal of this package's stages does. A refusal
// wrapped in a RetryError ended a call whose earlier attempts ran.
func isRefusal(err error) bool {
	if err == ErrRejected {
		return true
	}
	r, ok := err.(interface{ Is(error) bool })
	return ok && r.Is(ErrRejected)
}
