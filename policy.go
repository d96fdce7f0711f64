package resilience

import (
	"context"
	"errors"
)

// Func is a call to protect: it receives the context to honour and returns
// a result or an error.
type Func[T any] func(ctx context.Context) (T, error)

// Policy runs calls under some protection: a circuit breaker, a timeout,
// retries, a fallback, a concurrency limit, or a chain of those (see
// Compose and For).
//
// Do runs fn at most as the policy allows and returns its result, or the
// policy's own error (a rejection, a timeout, ...). Policies from this
// package are safe for concurrent use, and Do never panics on its own
// account; a panic in fn is let through after the policy has released
// whatever it holds.
type Policy[T any] interface {
	Do(ctx context.Context, fn Func[T]) (T, error)
}

// PolicyFunc adapts an ordinary function to Policy, so that a policy can be
// written in a few lines and placed in a chain:
//
//	logged := resilience.PolicyFunc[*User](func(ctx context.Context, next resilience.Func[*User]) (*User, error) {
//		u, err := next(ctx)
//		if err != nil {
//			log.Printf("get user: %v", err)
//		}
//		return u, err
//	})
//
// next runs the rest of the chain (or, outside a chain, the protected call
// itself); the function decides whether, when and how often to call it.
//
// A chain holding a PolicyFunc allocates one small closure per call for
// next; chains of this package's policies alone allocate nothing.
type PolicyFunc[T any] func(ctx context.Context, next Func[T]) (T, error)

// Do calls f(ctx, fn).
func (f PolicyFunc[T]) Do(ctx context.Context, fn Func[T]) (T, error) {
	if fn == nil {
		var zero T
		return zero, errNilFunc
	}
	return f(ctx, fn)
}

var errNilFunc = errors.New("resilience: Do called with a nil Func")
