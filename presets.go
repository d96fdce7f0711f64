package resilience

import (
	"context"
	"errors"
)

// Preset is a tuned set of configs for one kind of dependency: a time limit
// for the whole call, retries, and a circuit breaker. Package presets holds
// one for each common kind (gRPC, databases, Redis, external HTTP, Kafka,
// object storage); start from one of those, change what your measurements
// say, and Build it:
//
//	cfg := presets.RedisConfig()
//	cfg.Name = "sessions"
//	cfg.Breaker.OpenTimeout = 5 * time.Second
//	sessions, err := cfg.Build()
//
// A Preset is a plain value: copying it copies the configs, and nothing is
// shared until Build.
type Preset struct {
	// Name names the dependency. Build gives it to each policy whose config
	// has no name of its own, so errors and metrics say which dependency
	// they are about.
	Name string

	// Timeout limits the whole call, retries and the waits between them
	// included: the caller's budget for the dependency.
	Timeout TimeoutConfig

	// Retry configures retries of failed attempts. Nil: never retry.
	Retry *RetryConfig

	// Breaker configures the circuit breaker each attempt goes through.
	Breaker BreakerConfig
}

// Build makes the policies of p, ready to guard calls to one dependency, or
// returns an error naming every invalid field of every config.
func (p Preset) Build() (*Guard, error) {
	g := &Guard{name: p.Name}
	var errs []error
	var err error

	p.Timeout.Name = or(p.Timeout.Name, p.Name)
	if g.timeout, err = NewTimeout(p.Timeout); err != nil {
		errs = append(errs, err)
	}
	if p.Retry != nil {
		rc := *p.Retry
		rc.Name = or(rc.Name, p.Name)
		if g.retry, err = NewRetry(rc); err != nil {
			errs = append(errs, err)
		}
	}
	p.Breaker.Name = or(p.Breaker.Name, p.Name)
	if g.breaker, err = NewBreaker(p.Breaker); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	ls := []any{g.timeout}
	if g.retry != nil {
		ls = append(ls, g.retry)
	}
	g.links = newLinks(append(ls, g.breaker))
	return g, nil
}

// Guard is the set of policies that protects calls to one dependency, built
// from a Preset. It runs a call as
//
//	Timeout → Retry → Breaker → call
//
// The time limit is outermost, so it bounds what the caller waits, retries
// and backoff included; the retry policy does not start an attempt it
// could not finish in time. Every attempt goes through the breaker, so the
// breaker counts each failure the dependency gives, and when it opens in
// the middle of a call, the next attempt is rejected and, rejections never
// being retried, the retrying stops: no retry storm against a dependency
// known to be down.
//
// A Guard is a Stage: run a call through it with Do, or make it a
// Policy[T] with For, alone or among other stages. Its state (the breaker's
// window, above all) is shared by every call, whatever its result type, so
// build one Guard per dependency and use it everywhere:
//
//	users := presets.GRPC()
//	u, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) { ... })
//	n, err := resilience.Do(ctx, users, func(ctx context.Context) (int, error) { ... })
//
// A Guard is safe for concurrent use. Make one with Preset.Build or a
// function of package presets: the zero Guard runs no call (Do returns an
// error matching ErrInvalidConfig that says so).
type Guard struct {
	name    string
	timeout *Timeout
	retry   *Retry
	breaker *Breaker
	links   *links
}

// Kind returns KindGuard.
func (*Guard) Kind() string { return KindGuard }

// Run runs call under the guard, as Do does: it is the guard as a Stage for
// code that has only an error to pass through.
func (x *Guard) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// Name returns the name of the guarded dependency.
func (g *Guard) Name() string { return g.name }

// Timeout returns the guard's time limit.
func (g *Guard) Timeout() *Timeout { return g.timeout }

// Retry returns the guard's retry policy, or nil if it never retries.
func (g *Guard) Retry() *Retry { return g.retry }

// Breaker returns the guard's circuit breaker: read its state, force it
// open, or share it with other chains.
func (g *Guard) Breaker() *Breaker { return g.breaker }
