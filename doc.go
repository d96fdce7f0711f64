// Package resilience protects calls to other services with circuit
// breakers, timeouts, retries with exponential backoff and jitter,
// fallbacks and bulkheads, composed into one chain:
//
//	getUser := resilience.For[*User](timeout, retry, breaker) // the first is outermost
//	user, err := getUser.Do(ctx, func(ctx context.Context) (*User, error) { ... })
//
// # Stages and policies
//
// A Breaker, a Bulkhead, a Retry and a Timeout are stages: they hold the
// state and settings about a dependency, work for every result type, and
// are safe for concurrent use. Build one per dependency, once, with
// NewBreaker, NewBulkhead, NewRetry and NewTimeout; each reports every
// invalid field of its configuration as an error, so nothing fails later at
// call time.
//
// A Policy[T] runs calls that return T. For[T](stages...) makes one out of
// stages, and as many chains as you need, of any result types, can share a
// stage: a breaker opened by calls for users also stops calls for orders to
// the same backend. Typed policies (Fallback, your own PolicyFunc) join a
// chain with Compose.
//
// # Errors
//
// Rejections and timeouts are typed errors that errors.Is matches against
// sentinels: ErrOpen (an *OpenError, which says when the breaker will probe
// again), ErrBulkheadFull, ErrTimeout (which matches
// context.DeadlineExceeded too). A Retry that gives up returns a
// *RetryError with the number of attempts, unwrapping to the last error.
// Invalid configurations match ErrInvalidConfig.
//
// # Cost
//
// On the happy path a chain of this package's policies allocates nothing,
// and a circuit breaker in its default configuration neither locks nor
// reads the clock: see docs/PERFORMANCE.md.
//
// # Testing code that uses the package
//
// Every policy keeps time through the time package, so code built on it
// can be tested with testing/synctest: open timeouts, backoffs and
// deadlines then run on the bubble's fake clock, exactly and instantly.
package resilience
