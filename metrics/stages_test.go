package metrics_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

// limiter is a stage of a kind metrics knows nothing of: it admits a
// call while it has a token, and reports through resilience.Observable.
type limiter struct {
	name     string
	tokens   atomic.Int64
	admitted atomic.Uint64
	rejected atomic.Uint64
}

var errNoToken = errors.Join(resilience.ErrRejected, errors.New("limiter: no token"))

func (l *limiter) Name() string { return l.name }
func (*limiter) Kind() string   { return "limiter" }
func (l *limiter) Run(ctx context.Context, call func(context.Context) error) error {
	if l.tokens.Add(-1) < 0 {
		l.tokens.Add(1)
		l.rejected.Add(1)
		return errNoToken
	}
	l.admitted.Add(1)
	return call(ctx)
}

func (l *limiter) Stats() resilience.Stats {
	return resilience.Stats{
		Calls: []resilience.Count{
			{Result: "admitted", N: l.admitted.Load()},
			{Result: "rejected", N: l.rejected.Load()},
		},
		Gauges: []resilience.Gauge{{Name: "tokens", Help: "Tokens left.", Value: float64(l.tokens.Load())}},
	}
}

func newLimiter(name string, tokens int64) *limiter {
	l := &limiter{name: name}
	l.tokens.Store(tokens)
	return l
}

// TestObservableStageHasSeries: a stage of any kind that implements
// Observable gets resilience_<kind>_calls_total and its gauges, at zero
// from the start, alone or inside a guard, next to the built-in series.
func TestObservableStageHasSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	alone := newLimiter("alone", 1)
	inner := newLimiter("inner", 2)
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "g"}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "g", Stages: []resilience.Stage{inner, plain{}, b}}))
	if err := m.Instrument(alone, g); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP resilience_limiter_calls_total Calls through limiter stages, by how they ended.
# TYPE resilience_limiter_calls_total counter
resilience_limiter_calls_total{name="alone",result="admitted"} 0
resilience_limiter_calls_total{name="alone",result="rejected"} 0
resilience_limiter_calls_total{name="inner",result="admitted"} 0
resilience_limiter_calls_total{name="inner",result="rejected"} 0
# HELP resilience_limiter_tokens Tokens left.
# TYPE resilience_limiter_tokens gauge
resilience_limiter_tokens{name="alone"} 1
resilience_limiter_tokens{name="inner"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resilience_limiter_calls_total", "resilience_limiter_tokens"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resilience.Do(context.Background(), g, ok)
	}
	resilience.Do(context.Background(), alone, ok)
	want = `
# HELP resilience_limiter_calls_total Calls through limiter stages, by how they ended.
# TYPE resilience_limiter_calls_total counter
resilience_limiter_calls_total{name="alone",result="admitted"} 1
resilience_limiter_calls_total{name="alone",result="rejected"} 0
resilience_limiter_calls_total{name="inner",result="admitted"} 2
resilience_limiter_calls_total{name="inner",result="rejected"} 1
# HELP resilience_limiter_tokens Tokens left.
# TYPE resilience_limiter_tokens gauge
resilience_limiter_tokens{name="alone"} 0
resilience_limiter_tokens{name="inner"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resilience_limiter_calls_total", "resilience_limiter_tokens"); err != nil {
		t.Fatal(err)
	}
	// The breaker after the limiter saw the two admitted calls.
	if got := closedSuccesses(t, m, "g"); got != 2 {
		t.Errorf("breaker successes %v, want 2", got)
	}
}

// badStats reports what its fields say.
type badStats struct {
	kind, name string
	stats      resilience.Stats
}

func (s *badStats) Name() string            { return s.name }
func (s *badStats) Kind() string            { return s.kind }
func (s *badStats) Stats() resilience.Stats { return s.stats }
func (s *badStats) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

// TestInstrumentChecksObservableStages: what would make bad or clashing
// series is an error that says what is wrong, and nothing is registered.
func TestInstrumentChecksObservableStages(t *testing.T) {
	good := resilience.Stats{Calls: []resilience.Count{{Result: "ok"}}}
	var nilLimiter *limiter
	for _, tc := range []struct {
		name   string
		stages []resilience.Stage
		want   string
	}{
		{"plain alone", []resilience.Stage{plain{}}, `stage "plain" of kind "plain" (metrics_test.plain) has nothing to report: implement resilience.Observable`},
		{"typed nil", []resilience.Stage{nilLimiter}, "nil *metrics_test.limiter"},
		{"kind not a word", []resilience.Stage{&badStats{"Rate-Limit", "x", good}}, `its kind names its series`},
		{"no name", []resilience.Stage{&badStats{"x", "", good}}, `has no name`},
		{"bad result", []resilience.Stage{&badStats{"x", "x", resilience.Stats{Calls: []resilience.Count{{Result: "Not OK"}}}}}, `result "Not OK"`},
		{"result twice", []resilience.Stage{&badStats{"x", "x", resilience.Stats{Calls: []resilience.Count{{Result: "ok"}, {Result: "ok"}}}}}, `result "ok": each`},
		{"gauge calls_total", []resilience.Stage{&badStats{"x", "x", resilience.Stats{Gauges: []resilience.Gauge{{Name: "calls_total"}}}}}, `gauge "calls_total"`},
		{"nothing", []resilience.Stage{&badStats{"x", "x", resilience.Stats{}}}, "reports no count and no gauge"},
		{"same kind and name", []resilience.Stage{newLimiter("l", 1), newLimiter("l", 1)}, `two stages of kind limiter named "l"`},
		{"a built-in kind", []resilience.Stage{&badStats{"timeout", "x", good}}, `the kind "timeout" is this library's own`},
		{"clash with a built-in series", []resilience.Stage{&badStats{"circuit", "x", resilience.Stats{Gauges: []resilience.Gauge{{Name: "breaker_state"}}}}}, `registering the series of kind "circuit"`},
		{"two new stages of a kind that differ", []resilience.Stage{&badStats{"x", "a", good}, &badStats{"x", "b", resilience.Stats{Calls: []resilience.Count{{Result: "ok"}, {Result: "no"}}}}}, "every stage of a kind must report the same"},
		{"two uncomparable stages named alike", []resilience.Stage{tagged{tags: []string{"a"}}, tagged{tags: []string{"a"}}}, `two stages of kind tagged named "t"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			m := must(metrics.New(reg))
			err := m.Instrument(tc.stages...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if !strings.HasPrefix(mf.GetName(), "resilience_circuit") && len(mf.GetMetric()) > 0 {
					t.Errorf("after a failed Instrument, %s has series", mf.GetName())
				}
			}
		})
	}

	// Stages of one kind must report alike.
	m := must(metrics.New(prometheus.NewRegistry()))
	if err := m.Instrument(newLimiter("a", 1)); err != nil {
		t.Fatal(err)
	}
	other := &badStats{"limiter", "b", good}
	if err := m.Instrument(other); err == nil || !strings.Contains(err.Error(), "every stage of a kind must report the same") {
		t.Errorf("a limiter reporting other results: %v", err)
	}
	if err := m.Instrument(newLimiter("a", 1)); err == nil || !strings.Contains(err.Error(), `another stage of kind "limiter" named "a"`) {
		t.Errorf("a second limiter named a: %v", err)
	}
}

// tagged is a stage of a type that cannot be compared.
type tagged struct{ tags []string }

func (tagged) Name() string { return "t" }
func (tagged) Kind() string { return "tagged" }
func (tagged) Stats() resilience.Stats {
	return resilience.Stats{Calls: []resilience.Count{{Result: "ok"}}}
}
func (tagged) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

// reentrant's Stats instruments another stage: Instrument must read it
// without holding its lock.
type reentrant struct {
	m     *metrics.Metrics
	other resilience.Stage
}

func (reentrant) Name() string { return "r" }
func (reentrant) Kind() string { return "reentrant" }
func (r *reentrant) Stats() resilience.Stats {
	if r.other != nil {
		other := r.other
		r.other = nil
		if err := r.m.Instrument(other); err != nil {
			panic(err)
		}
	}
	return resilience.Stats{Calls: []resilience.Count{{Result: "ok"}}}
}
func (*reentrant) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

func TestInstrumentReadsStagesOutsideItsLock(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	done := make(chan error, 1)
	go func() { done <- m.Instrument(&reentrant{m: m, other: newLimiter("inner", 1)}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Instrument deadlocked: it called Stats under its own lock")
	}
}

// TestOverloadStagesHaveSeries: the retry budget of every preset that
// retries, a throttler and a rate limiter have their series as soon as
// their guard is instrumented, with no code of their own here.
func TestOverloadStagesHaveSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	cfg := presets.ExternalHTTPConfig()
	cfg.Retry.NoBackoff, cfg.Retry.InitialBackoff, cfg.Retry.BackoffMultiplier, cfg.Retry.Jitter = true, 0, 0, false
	g := must(cfg.Build())
	throttle := must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "search"}))
	limit := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "search", Rate: 1, Burst: 1}))
	if err := m.Instrument(g, throttle, limit); err != nil {
		t.Fatal(err)
	}
	// One call that fails on every attempt: 1 first attempt, and retries
	// from the budget's floor of 10 a second over its 10s window.
	resilience.Do(context.Background(), g, func(context.Context) (int, error) { return 0, errors.New("down") })
	resilience.Do(context.Background(), throttle, ok)
	resilience.Do(context.Background(), limit, ok)
	resilience.Do(context.Background(), limit, ok)
	want := `
# HELP resilience_retry_budget_calls_total Calls through retry_budget stages, by how they ended.
# TYPE resilience_retry_budget_calls_total counter
resilience_retry_budget_calls_total{name="external-http",result="first"} 1
resilience_retry_budget_calls_total{name="external-http",result="refused"} 0
resilience_retry_budget_calls_total{name="external-http",result="retried"} 5
# HELP resilience_throttle_calls_total Calls through throttle stages, by how they ended.
# TYPE resilience_throttle_calls_total counter
resilience_throttle_calls_total{name="search",result="admitted"} 1
resilience_throttle_calls_total{name="search",result="rejected"} 0
# HELP resilience_rate_limit_calls_total Calls through rate_limit stages, by how they ended.
# TYPE resilience_rate_limit_calls_total counter
resilience_rate_limit_calls_total{name="search",result="admitted"} 1
resilience_rate_limit_calls_total{name="search",result="rejected"} 1
resilience_rate_limit_calls_total{name="search",result="waited"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"resilience_retry_budget_calls_total", "resilience_throttle_calls_total", "resilience_rate_limit_calls_total"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"resilience_retry_budget_retries_left", "resilience_throttle_reject_probability", "resilience_rate_limit_tokens"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series, %v; want 1", name, n, err)
		}
	}
}

// TestAdaptiveLimiterHasSeries: the adaptive limiter's calls and its
// gauges, as docs/METRICS.md lists them.
func TestAdaptiveLimiterHasSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", InitialLimit: 1}))
	if err := m.Instrument(l); err != nil {
		t.Fatal(err)
	}
	p := must(l.Acquire(context.Background()))
	resilience.Do(context.Background(), l, ok) // rejected: the one slot is taken
	want := `
# HELP resilience_adaptive_limiter_calls_total Calls through adaptive_limiter stages, by how they ended.
# TYPE resilience_adaptive_limiter_calls_total counter
resilience_adaptive_limiter_calls_total{name="api",result="admitted"} 1
resilience_adaptive_limiter_calls_total{name="api",result="rejected"} 1
resilience_adaptive_limiter_calls_total{name="api",result="waited"} 0
# HELP resilience_adaptive_limiter_inflight Calls the adaptive limiter admitted that are running.
# TYPE resilience_adaptive_limiter_inflight gauge
resilience_adaptive_limiter_inflight{name="api"} 1
# HELP resilience_adaptive_limiter_limit How many calls the adaptive limiter lets run at once.
# TYPE resilience_adaptive_limiter_limit gauge
resilience_adaptive_limiter_limit{name="api"} 1
# HELP resilience_adaptive_limiter_queued Calls waiting for a slot of the adaptive limiter.
# TYPE resilience_adaptive_limiter_queued gauge
resilience_adaptive_limiter_queued{name="api"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"resilience_adaptive_limiter_calls_total", "resilience_adaptive_limiter_inflight", "resilience_adaptive_limiter_limit", "resilience_adaptive_limiter_queued"); err != nil {
		t.Fatal(err)
	}
	p.Release()
	if n, err := testutil.GatherAndCount(reg, "resilience_adaptive_limiter_baseline_seconds"); err != nil || n != 1 {
		t.Errorf("resilience_adaptive_limiter_baseline_seconds: %d series, %v; want 1", n, err)
	}
}
