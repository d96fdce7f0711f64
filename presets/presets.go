// Package presets holds tuned policies for the dependencies services call
// most: internal gRPC services, databases, Redis, external HTTP APIs, Kafka
// and object storage.
//
// Each preset comes two ways. GRPC() and its siblings return a Guard ready
// to use; GRPCConfig() and its siblings return the same settings as a
// resilience.Preset, plain values to read and change before building:
//
//	users := presets.GRPC()
//	u, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) {
//		return client.GetUser(ctx, req)
//	})
//
// A Guard holds a circuit breaker, the state about one dependency: make one
// per dependency, once, and share it between every call to it, whatever
// their result types. Two calls of GRPC() make two independent guards.
//
// The values:
//
//	preset          timeout  breaker                    retry      per attempt
//	gRPC            30s      5 failures, 60s cooldown   3 retries  10s
//	database        10s      10 failures, 30s cooldown  none       none
//	Redis           5s       3 failures, 15s cooldown   2 retries  2s
//	external HTTP   60s      5 failures, 120s cooldown  5 retries  20s
//	                         (a breaker per host)
//	Kafka           5s       5 failures, 30s cooldown   3 retries  2s
//	object storage  120s     5 failures, 60s cooldown   5 retries  none
//
// and, for all of them, a breaker that also opens at an error rate of 50%
// over the last 100 calls (once 20 are in) and closes after 2 successful
// probes, and retries that wait 100ms, doubling up to 10s, each wait
// jittered by ±30%, within a retry budget: all calls' retries together
// stay under 20% of their first attempts, plus 10 a second, over the last
// 10s (resilience.RetryBudget), so that a dependency failing every call
// sees about 1.2 attempts per call, not 4 or 6. Set RetryBudget to nil
// on the config to turn the budget off. The presets that retry also keep
// a model of the dependency's latency over the last 10s
// (resilience.Latency, innermost), by which a retry is not started when
// the call's deadline could not fit it (less time left after its wait
// than the median answer takes): the call ends at once, with its last
// error, rather than send an attempt its deadline will cut. Set Latency
// to nil for retries that decide by their wait alone. No preset hedges
// (see resilience.Hedge and Preset.Hedge): hedging sends more calls, and
// which calls may run twice at once is the service's to say. The timeout bounds the whole call, retries included;
// the per-attempt limit, inside the breaker, cuts an attempt that hangs so
// that the breaker counts it and a retry gets the rest of the time. See
// resilience.Guard for the order the policies run in, and why, and
// docs/DECISIONS.md for each per-attempt value.
//
// The gRPC, external HTTP and object storage presets, whose dependencies
// say when to come back (grpc-retry-pushback-ms, Retry-After), also hold
// a resilience.Pushback, right inside the retry budget: such a hint then
// holds off every call to the dependency for the period it names (at
// most a minute), not only the next retry of the call it came with, and
// a call during the period is refused at once with a
// *resilience.PushbackError, never retried. The breaker inside it never
// sees those calls. Set Pushback to nil on the config for hints that set
// only the next retry's wait. The database, Redis and Kafka presets have
// none: their clients send no such hints.
//
// The object storage preset has no per-attempt limit: a transfer's time
// grows with the object's size, and a fixed cut would fail every large
// object on every attempt, sending it again each time.
//
// What counts as a failure: the gRPC preset reads the status code of
// grpc-go's errors (see ClassifyGRPC), so a NotFound is an answer, neither
// retried nor counted against the breaker. The other presets count every
// error but the caller's cancellation as a failure, retried and counted:
// with plain Do, mark a business error ("not found", a validation error)
// with resilience.Answer, or set Classify on the config. The integrations
// (resilgrpc, resilhttp, resilsql, resilredis) classify their client's
// errors themselves, and are the way to use these presets with those
// clients.
//
// The database preset never retries: a write that timed out may have been
// committed, and running it again may do it twice. Retry idempotent reads
// yourself, with a Retry inside the guard's time limit, if you need to.
package presets

import (
	"time"

	"github.com/resilience-go/resilience"
)

// Settings shared by every preset.
const (
	SuccessThreshold   = 2                      // successful probes that close a breaker
	ErrorRateThreshold = 0.5                    // failure rate that opens a breaker
	WindowSize         = 100                    // calls in a breaker's window
	MinCalls           = 20                     // calls in the window before its rate counts
	InitialBackoff     = 100 * time.Millisecond // wait before the first retry
	MaxBackoff         = 10 * time.Second       // longest wait between retries
	BackoffMultiplier  = 2.0                    // growth of the wait per retry

	RetryBudgetRatio        = 0.2              // retries allowed per first attempt, all calls together
	RetryBudgetMinPerSecond = 10               // retries allowed each second whatever the ratio
	RetryBudgetWindow       = 10 * time.Second // how far back a retry budget counts

	MaxKeys           = resilience.DefaultMaxKeys           // hosts with a breaker of their own, in the presets with one per host
	MaxEjectedPercent = resilience.DefaultMaxEjectedPercent // share of those hosts that may be open at once
)

// config builds a preset from the values that differ between presets;
// retries < 0 means no retry policy at all, attempt 0 no per-attempt limit.
func config(name string, timeout time.Duration, failures int, cooldown time.Duration, retries int, attempt time.Duration) resilience.Preset {
	p := resilience.Preset{
		Name:    name,
		Timeout: resilience.TimeoutConfig{Duration: timeout},
		Breaker: resilience.BreakerConfig{
			FailureThreshold:   failures,
			OpenTimeout:        cooldown,
			SuccessThreshold:   SuccessThreshold,
			ErrorRateThreshold: ErrorRateThreshold,
			WindowSize:         WindowSize,
			MinCalls:           MinCalls,
		},
	}
	if attempt > 0 {
		p.AttemptTimeout = &resilience.TimeoutConfig{Duration: attempt}
	}
	if retries >= 0 {
		p.Retry = &resilience.RetryConfig{
			MaxRetries:        retries,
			InitialBackoff:    InitialBackoff,
			MaxBackoff:        MaxBackoff,
			BackoffMultiplier: BackoffMultiplier,
			Jitter:            true,
		}
		p.RetryBudget = &resilience.RetryBudgetConfig{
			Ratio:        RetryBudgetRatio,
			MinPerSecond: RetryBudgetMinPerSecond,
			Window:       RetryBudgetWindow,
		}
		p.Latency = &resilience.LatencyConfig{}
	}
	return p
}

const noRetry = -1

// GRPCConfig returns the preset for calls to internal gRPC services: 30s
// for the whole call, a breaker that opens after 5 failures in a row and
// probes after 60s, 3 retries, and 10s for each attempt. It classifies
// gRPC status codes (ClassifyGRPC): a NotFound or an InvalidArgument is an
// answer, neither retried nor counted against the breaker. A server's
// grpc-retry-pushback-ms holds off every call for the period it names (a
// resilience.Pushback, refusing calls at once), up to a minute.
func GRPCConfig() resilience.Preset {
	p := config("grpc", 30*time.Second, 5, 60*time.Second, 3, 10*time.Second)
	p.Classify = ClassifyGRPC
	p.Pushback = &resilience.PushbackConfig{}
	return p
}

// DatabaseConfig returns the preset for database queries: 10s, a breaker
// that opens after 10 failures in a row and probes after 30s, and no
// retries, since writes are not idempotent.
func DatabaseConfig() resilience.Preset {
	return config("database", 10*time.Second, 10, 30*time.Second, noRetry, 0)
}

// RedisConfig returns the preset for Redis and other caches: 5s, a breaker
// that opens after 3 failures in a row and probes after 15s, 2 retries,
// and 2s for each attempt.
func RedisConfig() resilience.Preset {
	return config("redis", 5*time.Second, 3, 15*time.Second, 2, 2*time.Second)
}

// ExternalHTTPConfig returns the preset for third-party HTTP APIs: 60s, a
// breaker per host that opens after 5 failures in a row and probes after
// 120s, 5 retries, and 20s for each attempt. The breakers are a
// resilience.KeyedBreaker (BreakerPerKey), one per scheme, host and port
// a resilhttp Transport sends to, up to 10,000 hosts, at most 10% of them
// open at once (one always may): a client that calls many hosts (webhooks,
// a crawler, regional endpoints) loses only the failing ones. Set
// BreakerPerKey to nil for one breaker over every host. A Retry-After
// holds off the calls to its host for the period it names (a
// resilience.Pushback per host, refusing calls at once), up to a minute:
// one host's Retry-After holds off no other host.
func ExternalHTTPConfig() resilience.Preset {
	p := config("external-http", 60*time.Second, 5, 120*time.Second, 5, 20*time.Second)
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{MaxKeys: MaxKeys, MaxEjectedPercent: MaxEjectedPercent}
	p.Pushback = &resilience.PushbackConfig{}
	return p
}

// KafkaConfig returns the preset for Kafka producers: 5s, a breaker that
// opens after 5 failures in a row and probes after 30s, 3 retries, and 2s
// for each attempt.
func KafkaConfig() resilience.Preset {
	return config("kafka", 5*time.Second, 5, 30*time.Second, 3, 2*time.Second)
}

// ObjectStorageConfig returns the preset for S3 and other object stores:
// 120s, a breaker that opens after 5 failures in a row and probes after
// 60s, 5 retries, and no per-attempt limit (see the package doc). Object
// stores are HTTP services, and a Retry-After on a 503 or a 429 holds off every call for the period it names (a
// resilience.Pushback, refusing calls at once), up to a minute.
func ObjectStorageConfig() resilience.Preset {
	p := config("object-storage", 120*time.Second, 5, 60*time.Second, 5, 0)
	p.Pushback = &resilience.PushbackConfig{}
	return p
}

// GRPC returns a new Guard with the GRPCConfig settings.
func GRPC() *resilience.Guard { return build(GRPCConfig()) }

// Database returns a new Guard with the DatabaseConfig settings.
func Database() *resilience.Guard { return build(DatabaseConfig()) }

// Redis returns a new Guard with the RedisConfig settings.
func Redis() *resilience.Guard { return build(RedisConfig()) }

// ExternalHTTP returns a new Guard with the ExternalHTTPConfig settings.
func ExternalHTTP() *resilience.Guard { return build(ExternalHTTPConfig()) }

// Kafka returns a new Guard with the KafkaConfig settings.
func Kafka() *resilience.Guard { return build(KafkaConfig()) }

// ObjectStorage returns a new Guard with the ObjectStorageConfig settings.
func ObjectStorage() *resilience.Guard { return build(ObjectStorageConfig()) }

// build builds a preset of this package, whose values are fixed and
// checked by the tests: an error here is a bug in this file.
func build(p resilience.Preset) *resilience.Guard {
	g, err := p.Build()
	if err != nil {
		panic("presets: " + err.Error())
	}
	return g
}
