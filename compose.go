package resilience

import (
	"context"
	"errors"
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
// For panics if a stage is nil, or if a RetryBudget does not sit right
// inside a Retry: a chain with a hole in it is a programming error, best
// found when the chain is built.
func For[T any](stages ...Stage) Policy[T] {
	var links []any
	for i, s := range stages {
		if isNil(s) {
			panic(fmt.Sprintf("resilience: For: stage %d is nil", i))
		}
		links = appendStage(links, s)
	}
	if err := checkBudgets(links); err != nil {
		panic("resilience: For: " + err.Error())
	}
	return (*chain[T])(newLinks(links))
}

// appendStage appends s to links, a Guard as the stages it holds.
func appendStage(links []any, s Stage) []any {
	if g, ok := s.(*Guard); ok {
		if g.links == nil {
			return append(links, notMade{errGuardNotMade})
		}
		for l := g.links; l != nil && l.link != nil; l = l.rest {
			links = append(links, l.link)
		}
		return links
	}
	return append(links, s)
}

// Do runs fn through the stage s (a Guard, a Breaker, a Retry, a Timeout, a
// Bulkhead, or a Stage of your own), the result type taken from fn:
//
//	u, err := resilience.Do(ctx, guard, func(ctx context.Context) (*User, error) {
//		return client.GetUser(ctx, req)
//	})
//
// It costs what For[T](s).Do does, without building the chain, and
// allocates nothing of its own for this package's stages. A nil s or fn is
// reported as an error.
func Do[T any](ctx context.Context, s Stage, fn Func[T]) (T, error) {
	var c chain[T]
	switch s := s.(type) {
	case *Guard:
		if s != nil {
			if s.links == nil {
				var zero T
				return zero, errGuardNotMade
			}
			return (*chain[T])(s.links).Do(ctx, fn)
		}
	case *Breaker:
		if s != nil {
			c.link = s
		}
	case *Retry:
		if s != nil {
			c.link = s
		}
	case *Timeout:
		if s != nil {
			c.link = s
		}
	case *Bulkhead:
		if s != nil {
			c.link = s
		}
	case *Throttler:
		if s != nil {
			c.link = s
		}
	case *RateLimiter:
		if s != nil {
			c.link = s
		}
	case *KeyedBreaker:
		if s != nil {
			c.link = s
		}
	case *Chaos:
		if s != nil {
			c.link = s
		}
	case *Pushback:
		if s != nil {
			c.link = s
		}
	case *Hedge:
		if s != nil {
			c.link = s
		}
	case *Latency:
		if s != nil {
			c.link = s
		}
	case *AdaptiveLimiter:
		if s != nil {
			c.link = s
		}
	default:
		if !isNil(s) {
			c.link = s
		}
	}
	if c.link == nil {
		var zero T
		return zero, errNilStage
	}
	return c.Do(ctx, fn)
}

var errNilStage = errors.New("resilience: Do called with a nil Stage")

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
// Compose panics if a policy is nil, or if a RetryBudget does not sit
// right inside a Retry.
func Compose[T any](policies ...Policy[T]) Policy[T] {
	var ls []any
	for i, p := range policies {
		if c, ok := p.(*chain[T]); ok {
			for l := (*links)(c); l != nil && l.link != nil; l = l.rest {
				ls = append(ls, l.link)
			}
			continue
		}
		if isNil(p) {
			panic(fmt.Sprintf("resilience: Compose: policy %d is nil", i))
		}
		ls = append(ls, p)
	}
	if err := checkBudgets(ls); err != nil {
		panic("resilience: Compose: " + err.Error())
	}
	return (*chain[T])(newLinks(ls))
}

// chain runs a call through a list of policies, the first outermost: it is
// a view, for one result type, of a list of links.
//
// A links is a linked list of suffixes: a list is its outermost policy,
// link, and the list of the policies inside it, rest. So Do dispatches its
// own link, the policy hands the call on to rest.Do, and a call through n
// policies is n+1 calls deep, no more.
//
// A link is one of this package's stages (*Breaker, *Retry, *Timeout,
// *Bulkhead), a *Fallback[T], any other Policy[T], or a Stage from outside
// the package; the empty list has a nil link. The
// links are dispatched with a type switch to generic functions rather than
// through an interface, and the rest of the chain travels as a small value
// (next) rather than a closure: that is what keeps a call through a chain
// of this package's policies free of allocations.
//
// The list itself does not depend on T, so one list of stages (a Guard's)
// serves calls of every result type: a *links converts to a *chain[T] for
// free, since the two have the same underlying type.
type chain[T any] links

type links struct {
	link any
	rest *links // nil for the innermost policy
	// lends: link is a *Bulkhead with a Timeout that abandons calls inside
	// it, so its slot must follow an abandoned call (see bulkheadDoLending).
	lends bool
}

func newLinks(ls []any) *links {
	c := &links{}
	abandons := false // a Timeout inside c abandons calls
	for i := len(ls) - 1; i >= 0; i-- {
		if c.link == nil {
			c.link = ls[i]
		} else {
			c = &links{link: ls[i], rest: c}
		}
		switch l := ls[i].(type) {
		case *Timeout:
			abandons = abandons || l.cfg.Abandon
		case *Bulkhead, family:
			c.lends = abandons
		}
	}
	return c
}

func (c *chain[T]) Do(ctx context.Context, fn Func[T]) (T, error) {
	if fn == nil {
		var zero T
		return zero, errNilFunc
	}
	n := next[T]{c: (*chain[T])(c.rest), fn: fn}
	switch l := c.link.(type) {
	case *Breaker:
		return breakerDo(l, ctx, n)
	case *Retry:
		return retryDo(l, ctx, n)
	case *Timeout:
		return timeoutDo(l, ctx, n)
	case *Bulkhead:
		if c.lends {
			return bulkheadDoLending(l, ctx, n)
		}
		return bulkheadDo(l, ctx, n)
	case *Throttler:
		return throttleDo(l, ctx, n)
	case *RateLimiter:
		return rateLimitDo(l, ctx, n)
	case *KeyedBreaker:
		return keyedDo(l, ctx, n)
	case *Chaos:
		return chaosDo(l, ctx, n)
	case *Pushback:
		return pushbackDo(l, ctx, n)
	case *Hedge:
		return hedgeDo(l, ctx, n)
	case *Latency:
		return latencyDo(l, ctx, n)
	case *AdaptiveLimiter:
		return limiterDo(l, ctx, n)
	case *Fallback[T]:
		return l.run(ctx, n)
	case *StaleCache[T]:
		return l.run(ctx, n)
	case *classifier:
		return classifyDo(l, ctx, n)
	case notMade:
		var zero T
		return zero, l.err
	case family:
		if l.self() == c.link {
			return familyDo(l, c.lends, ctx, n)
		}
		// A type of the user's embedding a Keyed: a stage of its own.
		return runStage(c.link.(Stage), ctx, n)
	case Policy[T]:
		// A policy from outside the package needs a Func: a closure per
		// call.
		return l.Do(ctx, n.call)
	case Stage:
		// So does a stage from outside, and a place for the result.
		return runStage(l, ctx, n)
	default: // the empty chain
		return fn(ctx)
	}
}

// next is the rest of a chain around fn; with no chain (inside the
// innermost policy, or outside any chain), fn alone. It travels by value,
// so running a chain builds no closures: each policy calls n.call, a static
// call, where it would call fn.
type next[T any] struct {
	c  *chain[T]
	fn Func[T]
}

// call runs the rest of the chain.
func (n next[T]) call(ctx context.Context) (T, error) {
	if n.c == nil {
		return n.fn(ctx)
	}
	return n.c.Do(ctx, n.fn)
}

// notMade stands in a chain for a stage that was used as its zero value,
// and fails every call with err.
type notMade struct{ err error }

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
