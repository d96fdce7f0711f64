// Package outcome carries the end of a client's call through the
// policies of a Guard, the same way in every integration.
//
// The call handed to the guard returns nil for an answer the backend gave
// on purpose (so the breaker counts a success and the retry stops), a
// *Failure for a failure, and resilience.Permanent of one for a failure
// that must not be retried. What the client returned is kept aside, and
// Result hands it back to the caller, or the policies' own error when they
// ended the call.
package outcome

import (
	"context"
	"errors"
	"strings"

	"github.com/resilience-go/resilience"
)

// Failure is a failed attempt's error, as the policies see it. It unwraps
// to the client's error and, when the caller ended the call, to the
// context's error, so that the breaker ignores it and the retry stops.
type Failure struct {
	Err    error
	CtxErr error
}

func (f *Failure) Error() string { return f.Err.Error() }

func (f *Failure) Unwrap() []error {
	if f.CtxErr == nil {
		return []error{f.Err}
	}
	return []error{f.Err, f.CtxErr}
}

// Result is what the caller gets, from err, which the policies returned,
// and answered, which the client's last attempt returned: answered when
// the policies ran the call to its end, the policies' error (an open
// breaker, a time-out, a full bulkhead) when they ended it.
func Result(err, answered error) error {
	if err == nil {
		return answered
	}
	var f *Failure
	if !errors.Is(err, resilience.ErrTimeout) && errors.As(err, &f) {
		return f.Err
	}
	return err
}

// Check returns an error, prefixed by pkg and naming field, if g cannot
// guard an integration's calls: it is nil, the zero Guard, or one of its
// time limits abandons calls: an abandoned call goes on after the caller
// has returned, writing into the reply, command or connection the caller
// already has back, so the integrations need the default, cooperative
// mode, in which a call ends with its context. A guard of any shape will
// do otherwise: per-attempt time limits, bulkheads, stages of the user's
// own, with or without a breaker or a retry.
func Check(pkg, field string, g *resilience.Guard) error {
	if g == nil {
		return errors.New(pkg + ": " + field + " is nil: build a guard with resilience.NewGuard or a preset")
	}
	if len(g.Stages()) == 0 {
		return errors.New(pkg + ": " + field + " is a zero resilience.Guard: build it with resilience.NewGuard or a preset")
	}
	for _, s := range g.Stages() {
		if t, ok := s.(*resilience.Timeout); ok && t.Abandons() {
			return errors.New(pkg + ": " + field + ": the time limit " + quote(t.Name()) + " abandons calls (TimeoutConfig.Abandon); " +
				"an abandoned call would go on using what the caller already has back: use the default, cooperative mode")
		}
	}
	return nil
}

func quote(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return `"` + name + `"`
}

// Run runs call through every stage of g, in order, as every integration
// does: its time limits (their observers count each time-out), retries,
// bulkheads, breakers and the user's own stages. once marks a call that
// must not be sent twice (a write, a request that is not idempotent): no
// stage repeats it (see resilience.AtMostOnce).
func Run[T any](ctx context.Context, g *resilience.Guard, once bool, call resilience.Func[T]) (T, error) {
	if once {
		ctx = resilience.AtMostOnce(ctx)
	}
	return resilience.Do(ctx, g, call)
}

// RunHeld is Run for a call whose result is read after it returns (an
// HTTP body, SQL rows, a stream): the contexts of g's time limits stay
// open until release is called, so that they bound the reading too (see
// resilience.Hold). Call release once the result is read or dropped; it
// is safe to call more than once. RunHeld has already called it when the
// call failed and nothing is handed back: a caller that keeps a result
// of a failed call (an HTTP response with a 5xx status) must use
// RunHeldAlways.
func RunHeld[T any](ctx context.Context, g *resilience.Guard, once bool, call resilience.Func[T]) (v T, release func(), err error) {
	v, release, err = RunHeldAlways(ctx, g, once, call)
	if err != nil {
		release()
	}
	return v, release, err
}

// RunHeldAlways is RunHeld that leaves release to the caller on every
// path, errors included.
// A panic in call releases the time limits before it goes on up.
func RunHeldAlways[T any](ctx context.Context, g *resilience.Guard, once bool, call resilience.Func[T]) (T, func(), error) {
	held, release := resilience.Hold(ctx, g)
	returned := false
	defer func() {
		if !returned {
			release()
		}
	}()
	v, err := Run(held, g, once, call)
	returned = true
	return v, release, err
}

// Keyed reports whether g holds a stage that reads a call's key: a
// *resilience.KeyedBreaker, or a resilience.Keyed family (of kind
// "keyed_..."). An integration applies a key the user configured
// (resilredis, resilsql Config.Key) only then: a key costs a context and
// its value per call. The keys an integration makes up itself (a host, a
// target) are for a KeyedBreaker alone, so that a caller's key (a tenant)
// reaches a Keyed family.
func Keyed(g *resilience.Guard) bool {
	if g.KeyedBreaker() != nil {
		return true
	}
	for _, s := range g.Stages() {
		if strings.HasPrefix(s.Kind(), "keyed_") {
			return true
		}
	}
	return false
}

// Hedge returns the Hedge among g's stages, nested guards' included, or
// nil: a guard with one may run a call's attempts at the same time, which
// the integrations must make safe (and a resilience.Keyed family refuses
// to hold one). Each integration looks once, when it is made.
func Hedge(g *resilience.Guard) *resilience.Hedge {
	if g == nil {
		return nil
	}
	for _, s := range g.Stages() {
		switch s := s.(type) {
		case *resilience.Hedge:
			return s
		case *resilience.Guard:
			if h := Hedge(s); h != nil {
				return h
			}
		}
	}
	return nil
}
