package resilience

import (
	"context"
	"fmt"
	"reflect"
)

// For returns a policy for calls that return T, running them through the
// given stages, the first outermost:
//
//	getUser := resilience.For[*User](timeout, retry, breaker)
//	u, err := getUser.Do(ctx, func(ctx context.Context) (*User, error) { ... })
//
// For[*User](timeout, retry, breaker) runs the timeout around the retries
// around the breaker around the call. The stages keep their state: a
// For[[]Order](breaker) elsewhere trips and recovers with the same breaker.
// Building a policy is cheap, and so is running one: a chain of stages
// allocates nothing per call on its happy path.
//
// Go has no generic methods, so the result type is fixed here, once per
// chain, rather than on each stage.
//
// For panics if a stage is nil: a chain with a hole in it is a programming
// error, best found when the chain is built.
func For[T any](stages ...Stage) Policy[T] {
	c := &chain[T]{links: make([]any, 0, len(stages))}
	for i, s := range stages {
		if isNil(s) {
			panic(fmt.Sprintf("resilience: For: stage %d is nil", i))
		}
		c.links = append(c.links, s)
	}
	return c
}

// Compose returns a policy that runs calls through the given policies, the
// first outermost: Compose(a, b, c).Do(ctx, fn) runs a around b around c
// around fn. Use it to join typed policies (Fallback, PolicyFunc, your own)
// with chains made by For:
//
//	withCache := resilience.Compose(fallback, resilience.For[*User](timeout, retry, breaker))
//
// Chains passed to Compose are flattened into the new one, so nesting costs
// nothing at call time.
//
// Compose panics if a policy is nil.
func Compose[T any](policies ...Policy[T]) Policy[T] {
	c := &chain[T]{}
	for i, p := range policies {
		switch p := p.(type) {
		case *chain[T]:
			c.links = append(c.links, p.links...)
		default:
			if isNil(p) {
				panic(fmt.Sprintf("resilience: Compose: policy %d is nil", i))
			}
			c.links = append(c.links, p)
		}
	}
	return c
}

// chain runs a call through its links, the first outermost. A link is a
// Stage (*Breaker, *Bulkhead, *Retry, *Timeout), a *Fallback[T], or any
// other Policy[T].
//
// The links are dispatched with a type switch to generic functions rather
// than through an interface, and the rest of the chain travels as a small
// value (next) rather than a closure: that is what keeps a call through a
// chain of this package's policies free of allocations.
type chain[T any] struct {
	links []any
}

func (c *chain[T]) Do(ctx context.Context, fn Func[T]) (T, error) {
	if fn == nil {
		var zero T
		return zero, errNilFunc
	}
	if len(c.links) == 0 {
		return fn(ctx)
	}
	return c.run(ctx, next[T]{c: c, fn: fn})
}

// next is the rest of a chain, from link i on, around fn; with no chain
// (past the last link, or outside any chain), fn alone. It travels by
// value, so running a chain builds no closures: each policy calls n.call, a
// static call, where it would call fn.
type next[T any] struct {
	c  *chain[T]
	i  int
	fn Func[T]
}

// call runs the rest of the chain.
func (n next[T]) call(ctx context.Context) (T, error) {
	if n.c == nil {
		return n.fn(ctx)
	}
	return n.c.run(ctx, n)
}

// run runs link n.i and, through it, the rest of the chain.
func (c *chain[T]) run(ctx context.Context, n next[T]) (T, error) {
	rest := next[T]{fn: n.fn}
	if n.i+1 < len(c.links) {
		rest.c, rest.i = c, n.i+1
	}
	switch l := c.links[n.i].(type) {
	case *Breaker:
		return breakerDo(l, ctx, rest)
	case *Retry:
		return retryDo(l, ctx, rest)
	case *Timeout:
		if l.cfg.Abandon {
			return timeoutAbandon(ctx, l.cfg, rest)
		}
		return timeoutCooperative(ctx, l.cfg.Name, l.cfg.Duration, rest)
	case *Bulkhead:
		return bulkheadDo(l, ctx, rest)
	case *Fallback[T]:
		return l.run(ctx, rest)
	case Policy[T]:
		// A policy from outside the package needs a Func: the one place a
		// chain allocates, a closure per call.
		return l.Do(ctx, rest.call)
	default:
		panic(fmt.Sprintf("resilience: unexpected link %T", l)) // unreachable: For and Compose admit no other kind
	}
}

// isNil reports whether v is nil or holds a nil pointer or func: a chain is
// built rarely, so reflection is affordable here.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Interface, reflect.Map, reflect.Slice, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
