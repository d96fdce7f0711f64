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
// # Presets
//
// Package presets holds tuned policies for common dependencies (gRPC,
// databases, Redis, external HTTP, Kafka, object storage). A Preset is
// their settings; Preset.Build makes a Guard, a stage holding a timeout, a
// retry and a breaker for one dependency. Do runs a call through any stage,
// taking the result type from the function:
//
//	users := presets.GRPC()
//	u, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) { ... })
//
// # Observing
//
// Each stage reports what it does to observers, structs of optional
// functions in the manner of net/http/httptrace (BreakerObserver,
// RetryObserver, TimeoutObserver, BulkheadObserver), added with its Observe
// method. Package metrics fills them in with Prometheus collectors. An
// observer is called after the event it reports, with no lock held; some
// are called on every call, so they must be cheap and safe for concurrent
// use. A stage may have several observers, called in the order they were
// added; an observer cannot be removed.
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
