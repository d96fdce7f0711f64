package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resilience-go/resilience"
)

// TestZeroValuesNeverPanic runs a call through the zero value of every
// stage, alone with Do, in a chain with For and inside a Guard-shaped
// chain, and checks that each answers with an error naming the
// constructor to use, and that the call did not run unprotected.
func TestZeroValuesNeverPanic(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name  string
		stage func() resilience.Stage
		ctor  string
	}{
		{"Breaker", func() resilience.Stage { return &resilience.Breaker{} }, "NewBreaker"},
		{"Retry", func() resilience.Stage { return &resilience.Retry{} }, "NewRetry"},
		{"Timeout", func() resilience.Stage { return &resilience.Timeout{} }, "NewTimeout"},
		{"Bulkhead", func() resilience.Stage { return &resilience.Bulkhead{} }, "NewBulkhead"},
		{"Guard", func() resilience.Stage { return &resilience.Guard{} }, "Preset.Build"},
		{"AdaptiveLimiter", func() resilience.Stage { return &resilience.AdaptiveLimiter{} }, "NewAdaptiveLimiter"},
	}
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5}))
	for _, tc := range cases {
		ways := map[string]func(s resilience.Stage, fn resilience.Func[int]) (int, error){
			"Do": func(s resilience.Stage, fn resilience.Func[int]) (int, error) { return resilience.Do(ctx, s, fn) },
			"For": func(s resilience.Stage, fn resilience.Func[int]) (int, error) {
				return resilience.For[int](s).Do(ctx, fn)
			},
			"For among others": func(s resilience.Stage, fn resilience.Func[int]) (int, error) {
				b := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
				return resilience.For[int](b, s).Do(ctx, fn)
			},
			"inside a retry": func(s resilience.Stage, fn resilience.Func[int]) (int, error) {
				tries := 0
				v, err := resilience.Compose(resilience.For[int](retry), resilience.PolicyFunc[int](func(ctx context.Context, next resilience.Func[int]) (int, error) {
					tries++
					return next(ctx)
				}), resilience.For[int](s)).Do(ctx, fn)
				if tries != 1 {
					return v, fmt.Errorf("%d attempts, want 1: the error of a zero stage is retried: %w", tries, err)
				}
				return v, err
			},
		}
		for way, run := range ways {
			t.Run(tc.name+"/"+way, func(t *testing.T) {
				ran := false
				_, err := run(tc.stage(), func(context.Context) (int, error) { ran = true; return 1, nil })
				if ran {
					t.Errorf("the zero %s ran the call", tc.name)
				}
				if !errors.Is(err, resilience.ErrInvalidConfig) {
					t.Errorf("err = %v, want an error matching ErrInvalidConfig", err)
				}
				if err == nil || !strings.Contains(err.Error(), tc.ctor) {
					t.Errorf("err = %v, want it to name %s", err, tc.ctor)
				}
			})
		}
	}
}

// TestZeroBreakerMethods: every method of a zero Breaker answers without
// panicking, and the two-step API refuses it.
func TestZeroBreakerMethods(t *testing.T) {
	var b resilience.Breaker
	if got := b.State(); got != resilience.Closed {
		t.Errorf("State() = %v, want closed", got)
	}
	if got := b.ErrorRate(); got != 0 {
		t.Errorf("ErrorRate() = %v, want 0", got)
	}
	if got := b.SlowCallRate(); got != 0 {
		t.Errorf("SlowCallRate() = %v, want 0", got)
	}
	b.ForceOpen()
	b.Disable()
	b.Reset()
	b.Observe(resilience.BreakerObserver{})
	pm, err := b.Allow(context.Background())
	if !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("Allow: err = %v, want an error matching ErrInvalidConfig", err)
	}
	pm.Done(nil)
}

// TestZeroBulkheadMethods: the zero Bulkhead has no slots; Acquire says
// why rather than returning a nil *BulkheadFullError.
func TestZeroBulkheadMethods(t *testing.T) {
	var b resilience.Bulkhead
	if b.TryAcquire() {
		t.Error("TryAcquire on a zero Bulkhead took a slot")
	}
	err := b.Acquire(context.Background())
	if err == nil || !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("Acquire: err = %v, want an error matching ErrInvalidConfig", err)
	}
	_ = err.Error() // a typed nil here would panic
	if got := b.InUse(); got != 0 {
		t.Errorf("InUse() = %d, want 0", got)
	}
	if got := b.Name(); got != "" {
		t.Errorf("Name() = %q, want empty", got)
	}
}

// TestZeroFallback: the zero Fallback runs no call and says why.
func TestZeroFallback(t *testing.T) {
	var f resilience.Fallback[int]
	ran := false
	_, err := f.Do(context.Background(), func(context.Context) (int, error) { ran = true; return 0, errBoom })
	if ran || !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "NewFallback") {
		t.Errorf("zero Fallback: ran %v, err %v; want no call and an error naming NewFallback", ran, err)
	}
	_, err = resilience.Compose[int](&f).Do(context.Background(), ok)
	if !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero Fallback in Compose: err %v, want an error matching ErrInvalidConfig", err)
	}
}
