package resilience

import (
	"errors"
	"fmt"
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
	_, ok := as[*notMadeError](err)
	return ok
}

// as is errors.As without its allocation, for the checks a failed call
// makes on every attempt: it returns the first error of err's tree, depth
// first, that is a T. At an error with an As method it hands over to
// errors.As, which asks that method as well.
func as[T any](err error) (T, bool) {
	var zero T
	for err != nil {
		if t, ok := err.(T); ok {
			return t, true
		}
		if _, ok := err.(interface{ As(any) bool }); ok {
			t := new(T)
			if errors.As(err, t) {
				return *t, true
			}
			return zero, false // errors.As has looked at the rest too
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if t, ok := as[T](e); ok {
					return t, true
				}
			}
			return zero, false
		default:
			return zero, false
		}
	}
	return zero, false
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
