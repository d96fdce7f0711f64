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

	// Pushback, if set, makes a dependency's Retry-After hints hold for
	// every call to it for the period they name, not only for the next
	// retry of the call they came with (see Pushback): it sits right
	// inside the Retry and its RetryBudget, outside the Breaker, so that
	// every attempt meets the period and waits, or is refused without
	// reaching the breaker. Unlike RetryBudget, it is built with Retry
	// nil too: a period holds calls off whether or not they retry. Its
	// Name defaults to Name. The presets of package presets whose
	// dependencies send such hints (gRPC, external HTTP, object storage)
	// set it to the defaults: a call during a period is refused at once,
	// and no hint sets a period longer than a minute. With
	// BreakerPerKey, each key has a Pushback of its own (a Keyed family,
	// as many keys at most as the breakers' MaxKeys), so that one host's
	// hint holds off the calls to that host alone. Nil: a hint sets only
	// the wait before the next retry.
	Pushback *PushbackConfig

	// Hedge, if set, sends a second copy of a call that is slower than
	// usual and takes the first answer (see Hedge): it sits inside the
	// Retry and its RetryBudget, outside the Pushback and the Breaker, so
	// that each hedge is an attempt the breaker counts, a hint any
	// attempt brings back holds off the later hedges, and a period of
	// pushback refuses them. With Latency set and no Latency of its own, its
	// delay can be a quantile of the guard's model (set Quantile). Only
	// calls that may run twice at once are hedged: the integrations mark
	// the others. Its Name defaults to Name. No preset of package presets
	// sets it: hedging sends more calls, which a dependency's owner
	// should choose, knowing which calls are idempotent.
	Hedge *HedgeConfig

	// Latency, if set, gives the guard a model of the dependency's
	// latency (see Latency), innermost, timing each attempt's answer: the
	// Retry does not start an attempt the deadline cannot fit
	// (RetryConfig.Latency), and a Hedge may take its delay from it. Its
	// Name defaults to Name. Every preset of package presets that retries
	// sets it to the defaults (the last 10s of answers). Nil: none, and
	// the retry decides by its wait alone.
	Latency *LatencyConfig

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
// runs a call as Timeout → Retry → RetryBudget → Hedge → Pushback →
// Breaker → AttemptTimeout → Latency → call (see Guard), leaving out the
// Retry, the RetryBudget, the Hedge, the Pushback, the AttemptTimeout and
// the Latency when they are nil (and the RetryBudget when the Retry is);
// with BreakerPerKey, the Breaker is a KeyedBreaker and the Pushback a
// Keyed family of them.
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
	var lat *Latency // made first, for the Retry's config
	if p.Latency != nil {
		lc := *p.Latency
		lc.Name = or(lc.Name, p.Name)
		if l, err := NewLatency(lc); err != nil {
			errs = append(errs, err)
		} else {
			lat = l
		}
	}
	if p.Retry != nil {
		rc := *p.Retry
		rc.Name = or(rc.Name, p.Name)
		if rc.Latency == nil && lat != nil {
			rc.Latency = lat // retries the deadline cannot fit are not started
		}
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
	if p.Hedge != nil {
		hc := *p.Hedge
		hc.Name = or(hc.Name, p.Name)
		if hc.Latency == nil && hc.Quantile != 0 {
			hc.Latency = lat // a quantile of the guard's model; without one, NewHedge says so
		}
		if h, err := NewHedge(hc); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, h)
		}
	}
	if p.Pushback != nil {
		pc := *p.Pushback
		pc.Name = or(pc.Name, p.Name)
		if p.BreakerPerKey != nil {
			// A Pushback per key, as the breakers are: keyed alike, by
			// the key the integrations put in the call's context.
			if _, err := NewPushback(pc); err != nil {
				errs = append(errs, err)
			} else if k, err := NewKeyed(KeyedConfig{Name: pc.Name, MaxKeys: p.BreakerPerKey.MaxKeys}, func(string) (*Pushback, error) {
				return NewPushback(pc)
			}); err != nil {
				errs = append(errs, err)
			} else {
				stages = append(stages, k)
			}
		} else if pb, err := NewPushback(pc); err != nil {
			errs = append(errs, err)
		} else {
			stages = append(stages, pb)
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
	if lat != nil {
		stages = append(stages, lat)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return NewGuard(GuardConfig{Name: p.Name, Stages: stages, Classify: p.Classify})
}
