package resilience_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

func TestInvalidConfigNamesTheField(t *testing.T) {
	nan := math.NaN()
	breaker := func(cfg resilience.BreakerConfig) func() error {
		return func() error { _, err := resilience.NewBreaker(cfg); return err }
	}
	retry := func(cfg resilience.RetryConfig) func() error {
		return func() error { _, err := resilience.NewRetry(cfg); return err }
	}
	timeout := func(cfg resilience.TimeoutConfig) func() error {
		return func() error { _, err := resilience.NewTimeout(cfg); return err }
	}
	bulkhead := func(cfg resilience.BulkheadConfig) func() error {
		return func() error { _, err := resilience.NewBulkhead(cfg); return err }
	}
	for _, tc := range []struct {
		name  string
		build func() error
		field string
	}{
		{"negative failure threshold", breaker(resilience.BreakerConfig{FailureThreshold: -2}), "BreakerConfig.FailureThreshold"},
		{"error rate below 0", breaker(resilience.BreakerConfig{ErrorRateThreshold: -0.1}), "BreakerConfig.ErrorRateThreshold"},
		{"error rate above 1", breaker(resilience.BreakerConfig{ErrorRateThreshold: 1.5}), "BreakerConfig.ErrorRateThreshold"},
		{"error rate NaN", breaker(resilience.BreakerConfig{ErrorRateThreshold: nan}), "BreakerConfig.ErrorRateThreshold"},
		{"negative min calls", breaker(resilience.BreakerConfig{MinCalls: -1}), "BreakerConfig.MinCalls"},
		{"min calls over the default window", breaker(resilience.BreakerConfig{MinCalls: 101}), "BreakerConfig.MinCalls"},
		{"min calls over the window", breaker(resilience.BreakerConfig{WindowSize: 10, MinCalls: 11}), "BreakerConfig.MinCalls"},
		{"negative window size", breaker(resilience.BreakerConfig{WindowSize: -1}), "BreakerConfig.WindowSize"},
		{"both window kinds", breaker(resilience.BreakerConfig{WindowSize: 10, WindowPeriod: time.Second}), "BreakerConfig.WindowSize"},
		{"negative window period", breaker(resilience.BreakerConfig{WindowPeriod: -time.Second}), "BreakerConfig.WindowPeriod"},
		{"window period too short for its buckets", breaker(resilience.BreakerConfig{WindowPeriod: 5, WindowBuckets: 10}), "BreakerConfig.WindowPeriod"},
		{"negative buckets", breaker(resilience.BreakerConfig{WindowPeriod: time.Second, WindowBuckets: -1}), "BreakerConfig.WindowBuckets"},
		{"too many buckets", breaker(resilience.BreakerConfig{WindowPeriod: time.Second, WindowBuckets: 1001}), "BreakerConfig.WindowBuckets"},
		{"buckets without a period", breaker(resilience.BreakerConfig{WindowBuckets: 10}), "BreakerConfig.WindowBuckets"},
		{"negative open timeout", breaker(resilience.BreakerConfig{OpenTimeout: -time.Second}), "BreakerConfig.OpenTimeout"},
		{"negative success threshold", breaker(resilience.BreakerConfig{SuccessThreshold: -1}), "BreakerConfig.SuccessThreshold"},
		{"huge success threshold", breaker(resilience.BreakerConfig{SuccessThreshold: math.MaxInt32 + 1}), "BreakerConfig.SuccessThreshold"},
		{"negative half-open probes", breaker(resilience.BreakerConfig{HalfOpenProbes: -1}), "BreakerConfig.HalfOpenProbes"},
		{"huge half-open probes", breaker(resilience.BreakerConfig{HalfOpenProbes: math.MaxInt32 + 1}), "BreakerConfig.HalfOpenProbes"},
		{"negative slow-call threshold", breaker(resilience.BreakerConfig{SlowCallThreshold: -time.Second}), "BreakerConfig.SlowCallThreshold"},
		{"slow-call rate below 0", breaker(resilience.BreakerConfig{SlowCallThreshold: time.Second, SlowCallRateThreshold: -0.5}), "BreakerConfig.SlowCallRateThreshold"},
		{"slow-call rate above 1", breaker(resilience.BreakerConfig{SlowCallThreshold: time.Second, SlowCallRateThreshold: 2}), "BreakerConfig.SlowCallRateThreshold"},
		{"slow-call rate NaN", breaker(resilience.BreakerConfig{SlowCallThreshold: time.Second, SlowCallRateThreshold: nan}), "BreakerConfig.SlowCallRateThreshold"},
		{"slow-call rate without a threshold", breaker(resilience.BreakerConfig{SlowCallRateThreshold: 0.5}), "BreakerConfig.SlowCallRateThreshold"},

		{"negative max retries", retry(resilience.RetryConfig{MaxRetries: -1}), "RetryConfig.MaxRetries"},
		{"negative initial backoff", retry(resilience.RetryConfig{InitialBackoff: -time.Second}), "RetryConfig.InitialBackoff"},
		{"negative max backoff", retry(resilience.RetryConfig{MaxBackoff: -time.Second}), "RetryConfig.MaxBackoff"},
		{"max backoff below initial", retry(resilience.RetryConfig{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}), "RetryConfig.MaxBackoff"},
		{"max backoff below the default initial", retry(resilience.RetryConfig{MaxBackoff: time.Millisecond}), "RetryConfig.MaxBackoff"},
		{"multiplier below 1", retry(resilience.RetryConfig{BackoffMultiplier: 0.5}), "RetryConfig.BackoffMultiplier"},
		{"negative multiplier", retry(resilience.RetryConfig{BackoffMultiplier: -2}), "RetryConfig.BackoffMultiplier"},
		{"infinite multiplier", retry(resilience.RetryConfig{BackoffMultiplier: math.Inf(1)}), "RetryConfig.BackoffMultiplier"},
		{"NaN multiplier", retry(resilience.RetryConfig{BackoffMultiplier: nan}), "RetryConfig.BackoffMultiplier"},

		{"no timeout duration", timeout(resilience.TimeoutConfig{}), "TimeoutConfig.Duration"},
		{"negative timeout duration", timeout(resilience.TimeoutConfig{Duration: -time.Second}), "TimeoutConfig.Duration"},

		{"no bulkhead limit", bulkhead(resilience.BulkheadConfig{}), "BulkheadConfig.MaxConcurrent"},
		{"negative bulkhead limit", bulkhead(resilience.BulkheadConfig{MaxConcurrent: -1}), "BulkheadConfig.MaxConcurrent"},
		{"negative bulkhead wait", bulkhead(resilience.BulkheadConfig{MaxConcurrent: 1, MaxWait: -time.Second}), "BulkheadConfig.MaxWait"},

		{"fallback without a func", func() error {
			_, err := resilience.NewFallback(resilience.FallbackConfig[int]{})
			return err
		}, "FallbackConfig.Func"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build()
			if !errors.Is(err, resilience.ErrInvalidConfig) {
				t.Fatalf("error %v, want one matching ErrInvalidConfig", err)
			}
			var ce *resilience.ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v, want a *ConfigError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "resilience: ") {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestInvalidConfigReportsEveryField(t *testing.T) {
	_, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: -2, OpenTimeout: -1, ErrorRateThreshold: 2})
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *resilience.ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	want := []string{"BreakerConfig.FailureThreshold", "BreakerConfig.ErrorRateThreshold", "BreakerConfig.OpenTimeout"}
	if diff := testcheck.Diff(want, fields); diff != "" {
		t.Errorf("fields reported (-want +got):\n%s", diff)
	}
}

func TestValidEdgeConfigs(t *testing.T) {
	for name, build := range map[string]func() error{
		"zero breaker": func() error { _, err := resilience.NewBreaker(resilience.BreakerConfig{}); return err },
		"rate 1, MinCalls = WindowSize": func() error {
			_, err := resilience.NewBreaker(resilience.BreakerConfig{ErrorRateThreshold: 1, WindowSize: 5, MinCalls: 5})
			return err
		},
		"small window, default MinCalls": func() error {
			_, err := resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 3})
			return err
		},
		"time window, 1000 buckets": func() error {
			_, err := resilience.NewBreaker(resilience.BreakerConfig{WindowPeriod: time.Second, WindowBuckets: 1000})
			return err
		},
		"slow calls": func() error {
			_, err := resilience.NewBreaker(resilience.BreakerConfig{SlowCallThreshold: time.Second, SlowCallRateThreshold: 1})
			return err
		},
		"zero retry":       func() error { _, err := resilience.NewRetry(resilience.RetryConfig{}); return err },
		"constant backoff": func() error { _, err := resilience.NewRetry(resilience.RetryConfig{BackoffMultiplier: 1}); return err },
		"bulkhead, no wait": func() error {
			_, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
			return err
		},
		"1ns timeout": func() error { _, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: 1}); return err },
		"fallback with func": func() error {
			_, err := resilience.NewFallback(resilience.FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return 0, nil }})
			return err
		},
	} {
		if err := build(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
