package resilience

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Sentinel errors, for errors.Is. The policies return richer typed errors
// (OpenError, TimeoutError, ...) that match these.
var (
	// ErrRejected matches every refusal by a stage of this package to run
	// a call: a circuit breaker open or out of probes (ErrOpen), a bulkhead
	// full (ErrBulkheadFull), and every stage that admits calls to come.
	// The call did not run, so it is safe to try elsewhere, and it is never
	// retried: retrying into a rejection only adds load where there is too
	// much already.
	ErrRejected = errors.New("resilience: call rejected")

	// ErrOpen matches the rejection of a call by a circuit breaker that is
	// open, or half-open with all its probes in flight.
	ErrOpen = errors.New("resilience: circuit breaker is open")

	// ErrBulkheadFull matches the rejection of a call by a bulkhead that had
	// no free slot within its wait limit.
	ErrBulkheadFull = errors.New("resilience: bulkhead is full")

	// ErrTimeout matches the error of a call cut short by a timeout policy.
	// Such errors match context.DeadlineExceeded too.
	ErrTimeout = errors.New("resilience: timeout")

	// ErrInvalidConfig matches every configuration error reported by the
	// constructors (see ConfigError).
	ErrInvalidConfig = errors.New("resilience: invalid configuration")
)

// OpenError is the error of a call rejected by a circuit breaker. It
// matches ErrOpen and ErrRejected.
//
// An OpenError is built once per open period and shared by every call the
// breaker rejects in that period, so rejecting costs no allocation; treat it
// as read-only.
type OpenError struct {
	// Name is the breaker's name (BreakerConfig.Name).
	Name string
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
	switch {
	case e.State == HalfOpen:
		return fmt.Sprintf("resilience: circuit breaker %q is half-open and all its probes are in flight", e.Name)
	case e.Until.IsZero():
		return fmt.Sprintf("resilience: circuit breaker %q is forced open", e.Name)
	default:
		return fmt.Sprintf("resilience: circuit breaker %q is open; next probe in %v", e.Name, e.RetryAfter())
	}
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

// BulkheadFullError is the error of a call rejected by a bulkhead. It
// matches ErrBulkheadFull and ErrRejected. Each bulkhead builds its own once; treat it as
// read-only.
type BulkheadFullError struct {
	// Name is the bulkhead's name (BulkheadConfig.Name).
	Name string
	// MaxConcurrent is the bulkhead's limit.
	MaxConcurrent int
}

// Error describes the error.
func (e *BulkheadFullError) Error() string {
	return fmt.Sprintf("resilience: bulkhead %q is full (%d calls in flight)", e.Name, e.MaxConcurrent)
}

// Is reports whether target is ErrBulkheadFull or ErrRejected.
func (e *BulkheadFullError) Is(target error) bool {
	return target == ErrBulkheadFull || target == ErrRejected
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
	// Cause says why the policy stopped: ErrRetriesExhausted, ErrRetryDeadline,
	// or the caller's context error when it ended during a backoff.
	Cause error

	deadline time.Time // with ErrRetryDeadline: the deadline the policy stopped before
}

// Reasons a retry policy stops, found in RetryError.Cause.
var (
	// ErrRetriesExhausted: every retry allowed by MaxRetries was made.
	ErrRetriesExhausted = errors.New("resilience: retries exhausted")
	// ErrRetryDeadline: the next backoff would have ended after the
	// context's deadline, so the policy did not wait for it. The
	// *RetryError that carries it matches context.DeadlineExceeded too.
	ErrRetryDeadline = errors.New("resilience: next retry would pass the deadline")
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
	var p *backoff.PermanentError
	return errors.As(err, &p)
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

func (e *retryAfterError) Error() string             { return e.err.Error() }
func (e *retryAfterError) Unwrap() error             { return e.err }
func (e *retryAfterError) RetryAfter() time.Duration { return e.after }

// retryAfterHint returns the first Retry-After hint in err's chain.
func retryAfterHint(err error) (time.Duration, bool) {
	var h interface{ RetryAfter() time.Duration }
	if errors.As(err, &h) {
		return h.RetryAfter(), true
	}
	return 0, false
}

// ConfigError reports an invalid field in a policy's configuration. It
// matches ErrInvalidConfig. Constructors join one ConfigError per invalid
// field, so that every problem is reported at once.
type ConfigError struct {
	// Field is the field's name, qualified by its struct:
	// "BreakerConfig.FailureThreshold".
	Field string
	// Value is the value found there.
	Value any
	// Reason says what the value must be.
	Reason string
}

// Error describes the error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("resilience: invalid %s %v: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// notMadeError is the error of a stage used as its zero value rather than
// made by its constructor. It matches ErrInvalidConfig.
type notMadeError struct{ typ, ctor string }

func (e *notMadeError) Error() string {
	return "resilience: a zero " + e.typ + " cannot run calls: make it with " + e.ctor
}

func (e *notMadeError) Is(target error) bool { return target == ErrInvalidConfig }

var (
	errBreakerNotMade  error = &notMadeError{"Breaker", "NewBreaker"}
	errRetryNotMade    error = &notMadeError{"Retry", "NewRetry"}
	errTimeoutNotMade  error = &notMadeError{"Timeout", "NewTimeout"}
	errBulkheadNotMade error = &notMadeError{"Bulkhead", "NewBulkhead"}
	errGuardNotMade    error = &notMadeError{"Guard", "Preset.Build or a preset"}
	errFallbackNotMade error = &notMadeError{"Fallback", "NewFallback"}
)

// isNotMade reports whether err says that a stage was used as its zero
// value: no retry will make it work.
func isNotMade(err error) bool {
	var e *notMadeError
	return errors.As(err, &e)
}

// checker collects the ConfigErrors of one configuration.
type checker struct {
	typ  string
	errs []error
}

func (c *checker) check(ok bool, field string, value any, reason string) {
	if !ok {
		c.errs = append(c.errs, &ConfigError{Field: c.typ + "." + field, Value: value, Reason: reason})
	}
}

func (c *checker) err() error { return errors.Join(c.errs...) }
