package resilience

import "context"

// FallbackConfig configures a fallback policy for calls returning T.
type FallbackConfig[T any] struct {
	// Name names the policy, for the code that builds it. Nothing reads it
	// yet: a Fallback has no Name method, the errors it returns are the
	// call's or Func's own, and package metrics has no series for
	// fallbacks (count them in Func if you need to).
	Name string

	// Handle reports whether a failed call's error calls for the fallback.
	// Default: every error but an answer (see Answer). Whatever it says, a
	// call whose caller's context has ended returns its own error: there is
	// nobody to serve a stand-in to; and an answer, or an error a Guard's
	// Classify marked as ignored, is returned as it is. It must be safe for
	// concurrent use.
	Handle func(err error) bool

	// Func computes what to return instead, from the context and the
	// call's error; it may fail in turn. Required. It must be safe for
	// concurrent use.
	Func func(ctx context.Context, err error) (T, error)
}

// Fallback is a fallback policy: when a call fails with an error it
// handles, it returns what FallbackConfig.Func makes of the error instead: a
// cached value, a default, a degraded answer, or a better error.
//
// A fallback belongs outside the policies whose failures it covers: put it
// first in Compose. Inside a retry it would turn every failed attempt into
// a success, and inside a breaker it would hide failures from it.
//
// A Fallback is safe for concurrent use. Make one with NewFallback: the
// zero Fallback runs no call (Do returns an error matching
// ErrInvalidConfig that says so).
type Fallback[T any] struct {
	cfg FallbackConfig[T]
}

// NewFallback returns a fallback policy configured by cfg, or an error
// naming every invalid field of cfg.
func NewFallback[T any](cfg FallbackConfig[T]) (*Fallback[T], error) {
	ck := checker{typ: "FallbackConfig"}
	ck.check(cfg.Func != nil, "Func", "nil", "is required")
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &Fallback[T]{cfg: cfg}, nil
}

// Do runs fn and, if it fails with an error the policy handles, returns the
// fallback's result instead.
func (f *Fallback[T]) Do(ctx context.Context, fn Func[T]) (T, error) {
	if fn == nil {
		var zero T
		return zero, errNilFunc
	}
	return f.run(ctx, next[T]{fn: fn})
}

func (f *Fallback[T]) run(ctx context.Context, n next[T]) (T, error) {
	if f.cfg.Func == nil { // set by NewFallback, always
		var zero T
		return zero, errFallbackNotMade
	}
	v, err := n.call(ctx)
	if err == nil || ctx.Err() != nil || markOf(err) != Failure || (f.cfg.Handle != nil && !f.cfg.Handle(err)) {
		return v, err
	}
	return f.cfg.Func(ctx, err)
}
