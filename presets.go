package resilience

import (
	"context"
	"errors"
	"reflect"
)

// Preset is a tuned set of configs for one kind of dependency: a time limit
// for the whole call, retries, a circuit breaker, and a time limit for each
// attempt. Package presets holds
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

	// RetryBudget, if set, bounds the retries of all calls together (see
	// RetryBudget): it sits right inside the Retry. With Retry nil there
	// is nothing to bound, and Build leaves it out, so that setting Retry
	// to nil is all it takes to turn retries off. Its Name defaults to
	// Name. Every preset of package presets that retries
	// sets it to the defaults (retries up to 20% of first attempts, plus
	// 10 a second); set it to nil to let every call make all its retries
	// whatever the others do.
	RetryBudget *RetryBudgetConfig

	// Breaker configures the circuit breaker each attempt goes through.
	Breaker BreakerConfig

	// BreakerPerKey, if set, gives each key its own breaker, configured by
	// Breaker: Build makes a KeyedBreaker of them, with MaxKeys,
	// MaxEjectedPercent and OnCapped from here (leave its Breaker field
	// zero; its Name defaults to Breaker's). The key is the one WithKey
	// put in the call's context; the integrations set it (a resilhttp
	// Transport to the request's host). Guard.KeyedBreaker returns the
	// family, and Guard.Breaker nil. presets.ExternalHTTPConfig sets it:
	// one failing host of an API, or one of the many a client calls, is
	// cut off alone. Nil: one breaker for every call.
	BreakerPerKey *KeyedBreakerConfig

	// AttemptTimeout, if set, limits each attempt, inside the breaker: an
	// attempt that hangs is cut short, counted as a failure by the
	// breaker, and retried while Timeout leaves time for it. Its Name
	// defaults to Name + ".attempt", so that its series differ from the
	// total's. Nil: an attempt may take all the time the total leaves.
	// Where the result is read after the call returns (an HTTP body
	// through resilhttp, SQL rows through resilsql), the limit bounds that
	// reading too: size it for the largest response, or leave it out.
	AttemptTimeout *TimeoutConfig

	// Classify, if set, says how the end of each attempt counts, for every
	// stage of the guard at once (see GuardConfig.Classify). Default: the
	// stages' own defaults, under which every error but the caller's
	// cancellation is a Failure, retried and counted by the breaker; so a
	// "not found" from the dependency would be retried and would open the
	// breaker. The integrations (resilgrpc, resilhttp, resilsql,
	// resilredis) classify their client's errors themselves.
	Classify func(ctx context.Context, err error) Outcome
}

// Build makes the policies of p, ready to guard calls to one dependency, or
// returns an error naming every invalid field of every config. The guard
// runs a call as Timeout → Retry → RetryBudget → Breaker → AttemptTimeout
// → call (see Guard), leaving out the Retry, the RetryBudget and the
// AttemptTimeout when they are nil; with BreakerPerKey, the Breaker is a
// KeyedBreaker.
func (p Preset) Build() (*Guard, error) {
	var (
		stages []Stage
		errs   []error
	)
	p.Timeout.Name = or(p.Timeout.Name, p.Name)
	if t, err := NewTimeout(p.Timeout); err != nil {
		errs = append(errs, err)
	} else {
		stages = append(stages, t)
	}
	if p.Retry != nil {
		rc := *p.Retry
		rc.Name = or(rc.Name, p.Name)
		if r, err := NewRetry(rc); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, r)
		}
	}
	if p.RetryBudget != nil && p.Retry != nil {
		bc := *p.RetryBudget
		bc.Name = or(bc.Name, p.Name)
		if b, err := NewRetryBudget(bc); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, b)
		}
	}
	p.Breaker.Name = or(p.Breaker.Name, p.Name)
	if p.BreakerPerKey != nil {
		kc := *p.BreakerPerKey
		if !reflect.ValueOf(kc.Breaker).IsZero() {
			errs = append(errs, &ConfigError{Field: "Preset.BreakerPerKey.Breaker", Value: "set", Reason: "must be left zero: each key's breaker is configured by Preset.Breaker"})
		}
		kc.Breaker = p.Breaker
		if k, err := NewKeyedBreaker(kc); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, k)
		}
	} else if b, err := NewBreaker(p.Breaker); err != nil {
		errs = append(errs, err)
	} else {
		stages = append(stages, b)
	}
	if p.AttemptTimeout != nil {
		ac := *p.AttemptTimeout
		if ac.Name == "" && p.Name != "" {
			ac.Name = p.Name + ".attempt"
		}
		ck := checker{typ: "Preset.AttemptTimeout"}
		ck.check(ac.Duration > 0, "Duration", ac.Duration, "must be positive")
		if err := ck.err(); err != nil {
			errs = append(errs, err)
		} else if t, err := NewTimeout(ac); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, t)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return NewGuard(GuardConfig{Name: p.Name, Stages: stages, Classify: p.Classify})
}
