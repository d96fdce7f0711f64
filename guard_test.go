package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// preset is a small valid preset for the tests of this file.
func preset() resilience.Preset {
	return resilience.Preset{
		Name:    "dep",
		Timeout: resilience.TimeoutConfig{Duration: time.Second},
		Retry:   &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: 10 * time.Millisecond},
		Breaker: resilience.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Minute},
	}
}

func TestPresetBuildNamesItsPolicies(t *testing.T) {
	g := must(preset().Build())
	if g.Name() != "dep" || g.Timeout().Name() != "dep" || g.Retry().Name() != "dep" || g.Breaker().Name() != "dep" {
		t.Errorf("names: guard %q, timeout %q, retry %q, breaker %q; want dep for all",
			g.Name(), g.Timeout().Name(), g.Retry().Name(), g.Breaker().Name())
	}
	if g.Timeout().Duration() != time.Second || g.Timeout().Abandons() {
		t.Errorf("Timeout(): %v, abandons %v; want 1s, cooperative", g.Timeout().Duration(), g.Timeout().Abandons())
	}
	ab := preset()
	ab.Timeout.Abandon = true
	if !must(ab.Build()).Timeout().Abandons() {
		t.Error("Timeout().Abandons() = false with TimeoutConfig.Abandon set")
	}

	p := preset()
	p.Breaker.Name = "own"
	if g := must(p.Build()); g.Breaker().Name() != "own" {
		t.Errorf("a config's own name was replaced: %q", g.Breaker().Name())
	}
	p.Retry = nil
	if g := must(p.Build()); g.Retry() != nil {
		t.Errorf("Retry() = %v for a preset without retries, want nil", g.Retry())
	}

	// A per-attempt limit goes innermost, named after the dependency
	// unless it has a name of its own.
	p.AttemptTimeout = &resilience.TimeoutConfig{Duration: time.Millisecond}
	ss := must(p.Build()).Stages()
	if at, ok := ss[len(ss)-1].(*resilience.Timeout); !ok || at.Name() != "dep.attempt" || at.Duration() != time.Millisecond {
		t.Errorf("innermost stage %v, want the 1ms Timeout dep.attempt", ss[len(ss)-1])
	}
	p.AttemptTimeout.Name = "mine"
	if ss := must(p.Build()).Stages(); ss[len(ss)-1].Name() != "mine" {
		t.Errorf("the attempt limit's own name was replaced: %q", ss[len(ss)-1].Name())
	}
}

func TestPresetBuildReportsEveryBadConfig(t *testing.T) {
	p := preset()
	p.Timeout.Duration = 0
	p.Retry.BackoffMultiplier = 0.5
	p.Breaker.ErrorRateThreshold = 2
	p.AttemptTimeout = &resilience.TimeoutConfig{Duration: -time.Second}
	g, err := p.Build()
	if g != nil || !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Fatalf("Build = %v, %v; want nil and ErrInvalidConfig", g, err)
	}
	for _, field := range []string{"TimeoutConfig.Duration", "RetryConfig.BackoffMultiplier", "BreakerConfig.ErrorRateThreshold", "Preset.AttemptTimeout.Duration -1s"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}

// TestGuardOrder: the time limit covers the retries, every attempt goes
// through the breaker, and a breaker that opens stops the retrying.
func TestGuardOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := must(preset().Build())
		attempts := 0
		start := time.Now()
		_, err := resilience.Do(context.Background(), g, func(ctx context.Context) (int, error) {
			attempts++
			return 0, errBoom
		})
		// Three attempts, all failures, open the breaker (threshold 3).
		var re *resilience.RetryError
		if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, errBoom) {
			t.Fatalf("err = %v, want a RetryError after 3 attempts wrapping boom", err)
		}
		if attempts != 3 || g.Breaker().State() != resilience.Open {
			t.Fatalf("attempts = %d, state %v; want 3, Open", attempts, g.Breaker().State())
		}
		if d := time.Since(start); d != 30*time.Millisecond {
			t.Errorf("took %v, want 30ms of backoff (10ms + 20ms)", d)
		}

		// Open: the first attempt is rejected and not retried.
		attempts = 0
		if _, err := resilience.Do(context.Background(), g, ok); !errors.Is(err, resilience.ErrOpen) || attempts != 0 {
			t.Errorf("while open: err = %v, attempts %d; want ErrOpen, 0", err, attempts)
		}

		// The time limit bounds the whole call, backoff included.
		p := preset()
		p.Name = "slow"
		p.Timeout.Duration = 15 * time.Millisecond
		slow := must(p.Build())
		start = time.Now()
		_, err = resilience.Do(context.Background(), slow, fail)
		// A 10ms wait fits in 15ms; the next, 20ms, does not, so the second
		// failure is the last.
		if !errors.As(err, &re) || re.Attempts != 2 || !errors.Is(err, resilience.ErrRetryDeadline) || !errors.Is(err, errBoom) {
			t.Errorf("err = %v, want a RetryError after 2 attempts, stopped by the deadline", err)
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("took %v, want 10ms", d)
		}
	})
}

// TestGuardSharedAcrossTypes: one guard, two result types, one breaker.
func TestGuardSharedAcrossTypes(t *testing.T) {
	p := preset()
	p.Retry = nil
	g := must(p.Build())
	ints := resilience.For[int](g)
	strs := resilience.For[string](g)
	for range 3 {
		ints.Do(context.Background(), fail)
	}
	if _, err := strs.Do(context.Background(), func(context.Context) (string, error) { return "x", nil }); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("string chain after three int failures: err = %v, want ErrOpen", err)
	}
	if _, err := resilience.Do(context.Background(), g, func(context.Context) ([]byte, error) { return nil, nil }); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("Do with a third type: err = %v, want ErrOpen", err)
	}
}

func TestDoEveryStage(t *testing.T) {
	ctx := context.Background()
	stages := map[string]resilience.Stage{
		"guard":    must(preset().Build()),
		"breaker":  must(resilience.NewBreaker(resilience.BreakerConfig{})),
		"retry":    must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1})),
		"timeout":  must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second})),
		"abandon":  must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second, Abandon: true})),
		"bulkhead": must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})),
	}
	for name, s := range stages {
		if v, err := resilience.Do(ctx, s, ok); v != 1 || err != nil {
			t.Errorf("%s: Do = %v, %v; want 1, nil", name, v, err)
		}
		if _, err := resilience.Do[int](ctx, s, nil); err == nil {
			t.Errorf("%s: Do with a nil func: no error", name)
		}
	}
	var nilBreaker *resilience.Breaker
	var nilGuard *resilience.Guard
	for name, s := range map[string]resilience.Stage{"nil": nil, "nil breaker": nilBreaker, "nil guard": nilGuard} {
		if _, err := resilience.Do(ctx, s, ok); err == nil || !strings.Contains(err.Error(), "nil Stage") {
			t.Errorf("%s: err = %v, want an error about a nil Stage", name, err)
		}
	}
}

// TestForFlattensGuards: a guard among other stages is its own stages, in
// order.
func TestForFlattensGuards(t *testing.T) {
	var log []string
	g := must(preset().Build())
	p := resilience.Compose(tracer[int]("outer", &log), resilience.For[int](g), tracer[int]("inner", &log))
	p.Do(context.Background(), ok)
	if got := strings.Join(log, ", "); got != "enter outer, enter inner, leave inner, leave outer" {
		t.Errorf("order: %s", got)
	}
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	held := resilience.For[int](g, bulkhead)
	var inUse int
	held.Do(context.Background(), func(context.Context) (int, error) { inUse = bulkhead.InUse(); return 0, nil })
	if inUse != 1 {
		t.Errorf("bulkhead after a guard in For: InUse during the call = %d, want 1", inUse)
	}
}

// TestNewGuardRunsItsStagesInOrder: a guard of any shape runs a call
// through its stages in the order given, a per-attempt timeout inside the
// retries, a bulkhead and a stage of the user's own among them.
func TestNewGuardRunsItsStagesInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []string
		total := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "total", Duration: 30 * time.Second}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "r", MaxRetries: 2}))
		attempt := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "attempt", Duration: time.Second}))
		bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "bh", MaxConcurrent: 1}))
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
		user := &counting{name: "c"}
		g := must(resilience.NewGuard(resilience.GuardConfig{
			Name:   "users",
			Stages: []resilience.Stage{total, retry, bulkhead, breaker, user, attempt},
		}))
		if g.Timeout() != total || g.Retry() != retry || g.Breaker() != breaker {
			t.Error("Timeout, Retry and Breaker are not the guard's outermost of each")
		}
		if got := len(g.Stages()); got != 6 {
			t.Errorf("%d stages, want 6", got)
		}
		// A hung attempt is cut by the per-attempt limit and retried within
		// the total.
		n := 0
		start := time.Now()
		v, err := resilience.Do(context.Background(), g, func(ctx context.Context) (int, error) {
			n++
			log = append(log, fmt.Sprintf("attempt %d in use %d", n, bulkhead.InUse()))
			if n < 3 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return 7, nil
		})
		if v != 7 || err != nil {
			t.Fatalf("Do = %v, %v; want 7, nil", v, err)
		}
		// 1s, 100ms backoff, 1s, 200ms backoff, then the third succeeds.
		if got := time.Since(start); got != 2300*time.Millisecond {
			t.Errorf("took %v, want 2.3s: two attempts cut at 1s each", got)
		}
		if got := user.calls.Load(); got != 3 {
			t.Errorf("the user's stage ran %d calls, want 3", got)
		}
		want := "attempt 1 in use 1, attempt 2 in use 1, attempt 3 in use 1"
		if got := strings.Join(log, ", "); got != want {
			t.Errorf("log %q, want %q", got, want)
		}
	})
}

func TestNewGuardReportsBadStages(t *testing.T) {
	var nilBreaker *resilience.Breaker
	for _, tc := range []struct {
		name   string
		stages []resilience.Stage
		field  string
	}{
		{"none", nil, "GuardConfig.Stages"},
		{"nil", []resilience.Stage{nil}, "GuardConfig.Stages[0]"},
		{"typed nil", []resilience.Stage{must(resilience.NewRetry(resilience.RetryConfig{})), nilBreaker}, "GuardConfig.Stages[1]"},
		{"zero guard", []resilience.Stage{&resilience.Guard{}}, "GuardConfig.Stages[0]"},
	} {
		_, err := resilience.NewGuard(resilience.GuardConfig{Stages: tc.stages})
		var ce *resilience.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: err = %v, want a ConfigError naming %s", tc.name, err, tc.field)
		}
	}
}
