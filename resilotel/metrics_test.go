package resilotel_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
	"github.com/resilience-go/resilience/resilotel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func collect(t *testing.T, r *sdkmetric.ManualReader) metricdata.ScopeMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 1 {
		t.Fatalf("%d scopes, want 1", len(rm.ScopeMetrics))
	}
	return rm.ScopeMetrics[0]
}

func set(kv ...attribute.KeyValue) attribute.Set { return attribute.NewSet(kv...) }

func name(n string) attribute.KeyValue   { return attribute.String("resilience.name", n) }
func state(s string) attribute.KeyValue  { return attribute.String("resilience.state", s) }
func result(r string) attribute.KeyValue { return attribute.String("resilience.result", r) }

func counter(n int64, kv ...attribute.KeyValue) metricdata.DataPoint[int64] {
	return metricdata.DataPoint[int64]{Attributes: set(kv...), Value: n}
}

func sum(name, desc, unit string, points ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: unit, Data: metricdata.Sum[int64]{
		Temporality: metricdata.CumulativeTemporality, IsMonotonic: true, DataPoints: points,
	}}
}

func gauge(name, desc, unit string, points ...metricdata.DataPoint[int64]) metricdata.Metrics {
	return metricdata.Metrics{Name: name, Description: desc, Unit: unit, Data: metricdata.Gauge[int64]{DataPoints: points}}
}

// TestManualReader drives a breaker Closed -> Open -> HalfOpen -> Closed,
// a retry (a deadline stopping it once), a timeout, a bulkhead rejection
// and a rate limiter's rejection, and compares every instrument the SDK
// collects with what they did, exactly.
func TestManualReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		m := must(resilotel.New(provider))

		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users", FailureThreshold: 2, SuccessThreshold: 1, OpenTimeout: 30 * time.Second}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2, InitialBackoff: time.Second}))
		timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "users", Duration: time.Second}))
		bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "pool", MaxConcurrent: 1}))
		limiter := must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "api", Rate: 1, Burst: 1}))
		if err := m.Instrument(breaker, retry, timeout, bulkhead, limiter); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		down := errors.New("unavailable")

		// The breaker: two failures open it; a call while open is
		// rejected; after 30s it probes, and a success closes it.
		resilience.Do(ctx, breaker, fail)
		resilience.Do(ctx, breaker, fail)
		resilience.Do(ctx, breaker, ok)
		time.Sleep(30 * time.Second)
		synctest.Wait()
		resilience.Do(ctx, breaker, ok)
		synctest.Wait()

		// The retry: a call that fails once, then succeeds; one that
		// fails three times; one that fails once with its deadline 100ms
		// away, which the first wait, 1s, would pass: the retry is not
		// started.
		n := 0
		resilience.Do(ctx, retry, func(context.Context) (int, error) {
			if n++; n == 1 {
				return 0, down
			}
			return 1, nil
		})
		resilience.Do(ctx, retry, fail)
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		start := time.Now()
		if _, err := resilience.Do(dctx, retry, fail); !errors.Is(err, resilience.ErrRetryDeadline) || time.Since(start) != 0 {
			t.Errorf("a retry whose wait would pass the deadline: %v after %v, want ErrRetryDeadline at once", err, time.Since(start))
		}
		cancel()

		// The timeout: a call in time, one cut off.
		resilience.Do(ctx, timeout, ok)
		resilience.Do(ctx, timeout, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })

		// The bulkhead turns away a second call while one runs; the
		// limiter, a second call in the same second.
		resilience.Do(ctx, bulkhead, func(ctx context.Context) (int, error) { return resilience.Do(ctx, bulkhead, ok) })
		resilience.Do(ctx, limiter, ok)
		resilience.Do(ctx, limiter, ok)

		users := name("users")
		want := metricdata.ScopeMetrics{
			Scope: metricdataScope(),
			Metrics: []metricdata.Metrics{
				sum("resilience.circuit_breaker.calls", "Calls through circuit breakers, by the state they arrived in and how they ended.", "{call}",
					counter(0, users, state("closed"), result("success")),
					counter(2, users, state("closed"), result("failure")),
					counter(0, users, state("closed"), result("ignored")),
					counter(1, users, state("open"), result("rejected")),
					counter(1, users, state("half-open"), result("success")),
					counter(0, users, state("half-open"), result("failure")),
					counter(0, users, state("half-open"), result("ignored")),
					counter(0, users, state("half-open"), result("rejected")),
				),
				gauge("resilience.circuit_breaker.state", "Current state of circuit breakers: 1 for the state they are in, 0 for the others.", "{state}",
					counter(1, users, state("closed")), counter(0, users, state("open")), counter(0, users, state("half-open"))),
				sum("resilience.circuit_breaker.transitions", "State transitions of circuit breakers.", "{transition}",
					counter(1, users, attribute.String("resilience.from", "closed"), attribute.String("resilience.to", "open")),
					counter(1, users, attribute.String("resilience.from", "open"), attribute.String("resilience.to", "half-open")),
					counter(0, users, attribute.String("resilience.from", "open"), attribute.String("resilience.to", "closed")),
					counter(0, users, attribute.String("resilience.from", "half-open"), attribute.String("resilience.to", "open")),
					counter(1, users, attribute.String("resilience.from", "half-open"), attribute.String("resilience.to", "closed")),
				),
				{
					Name: "resilience.circuit_breaker.open.duration", Unit: "s",
					Description: "How long circuit breakers stayed away from closed, from opening until closed again.",
					Data: metricdata.Histogram[float64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[float64]{{
						Attributes: set(users), Count: 1, Sum: 30,
						Bounds:       resilotel.OpenDurationBuckets,
						BucketCounts: []uint64{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0},
						Min:          metricdata.NewExtrema(30.0), Max: metricdata.NewExtrema(30.0),
					}}},
				},
				sum("resilience.timeout.operations", "Calls under timeout policies, by how they ended.", "{call}",
					counter(1, users, result("success")), counter(0, users, result("error")),
					counter(1, users, result("timeout")), counter(0, users, result("canceled"))),
				{
					Name: "resilience.retry.attempts", Unit: "{attempt}",
					Description: "Attempts made by retry policies per call, by whether the call finally succeeded.",
					Data: metricdata.Histogram[int64]{Temporality: metricdata.CumulativeTemporality, DataPoints: []metricdata.HistogramDataPoint[int64]{
						{
							Attributes: set(users, result("success")), Count: 1, Sum: 2,
							Bounds: resilotel.RetryAttemptsBuckets, BucketCounts: []uint64{0, 1, 0, 0, 0, 0, 0, 0, 0},
							Min: metricdata.NewExtrema[int64](2), Max: metricdata.NewExtrema[int64](2),
						},
						{
							Attributes: set(users, result("failure")), Count: 2, Sum: 4,
							Bounds: resilotel.RetryAttemptsBuckets, BucketCounts: []uint64{1, 0, 1, 0, 0, 0, 0, 0, 0},
							Min: metricdata.NewExtrema[int64](1), Max: metricdata.NewExtrema[int64](3),
						},
					}},
				},
				sum("resilience.retry.deadline_skipped", "Retries not started because the call's deadline could not fit them: the wait before them, or (with RetryConfig.Latency) the wait and the attempt's predicted latency.", "{attempt}",
					counter(1, users)),
				gauge("resilience.bulkhead.in_use", "Calls running in bulkheads.", "{call}", counter(0, name("pool"))),
				gauge("resilience.bulkhead.max_concurrent", "Calls bulkheads let run at once.", "{call}", counter(1, name("pool"))),
				sum("resilience.bulkhead.rejections", "Calls turned away by bulkheads.", "{call}", counter(1, name("pool"))),
				sum("resilience.rate_limit.calls", "Calls through rate_limit stages, by how they ended.", "{call}",
					counter(1, name("api"), result("admitted")), counter(0, name("api"), result("waited")), counter(1, name("api"), result("rejected"))),
				{
					Name: "resilience.rate_limit.tokens", Description: limiter.Stats().Gauges[0].Help,
					Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Attributes: set(name("api")), Value: 0}}},
				},
			},
		}
		metricdatatest.AssertEqual(t, want, collect(t, reader), metricdatatest.IgnoreTimestamp())
		if err := provider.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	if _, err := resilotel.New(nil); err == nil || !strings.Contains(err.Error(), "nil metric.MeterProvider") {
		t.Errorf("New(nil): %v", err)
	}
	var typedNil *sdkmetric.MeterProvider
	if _, err := resilotel.New(typedNil); err == nil {
		t.Error("New with a nil *MeterProvider: no error")
	}
}

func TestInstrumentErrors(t *testing.T) {
	m := must(resilotel.New(noop.NewMeterProvider()))
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	if err := m.Instrument(b); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		stages []resilience.Stage
		want   string
	}{
		{"nil stage", []resilience.Stage{nil}, "nil stage"},
		{"nil breaker", []resilience.Stage{(*resilience.Breaker)(nil)}, "nil breaker"},
		{"zero guard", []resilience.Stage{&resilience.Guard{}}, "zero resilience.Guard"},
		{"unnamed", []resilience.Stage{must(resilience.NewRetry(resilience.RetryConfig{}))}, "has no name"},
		{"a second breaker named b", []resilience.Stage{must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))}, `another breaker named "b"`},
		{"two limiters named alike", []resilience.Stage{
			must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "l", Rate: 1})),
			must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "l", Rate: 2})),
		}, `two stages of kind rate_limit named "l"`},
		{"nothing to report", []resilience.Stage{quiet{}}, "has nothing to report"},
		{"nil guard", []resilience.Stage{(*resilience.Guard)(nil)}, "nil *resilience.Guard"},
		{"two breakers named alike", []resilience.Stage{
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "c"})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "c"})),
		}, `two stages of kind breaker named "c"`},
		{"an unnamed stage of its own kind", []resilience.Stage{&shifty{kind: "mine"}}, "has no name"},
		{"the breakers' namespace", []resilience.Stage{&shifty{kind: "circuit_breaker", name: "x"}}, "names the breakers' instruments"},
		{"a library kind", []resilience.Stage{&shifty{kind: "bulkhead", name: "x"}}, "this library's own stage's"},
		{"a name too long", []resilience.Stage{&shifty{kind: strings.Repeat("k", 250), name: "x"}}, "longer than the 255 characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := m.Instrument(c.stages...); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err %v, want one saying %q", err, c.want)
			}
		})
	}
	// Instrumenting again does nothing; so does a guard's second time.
	if err := m.Instrument(b); err != nil {
		t.Errorf("the same breaker again: %v", err)
	}
	g := presets.GRPC()
	if err := m.Instrument(g); err != nil {
		t.Fatal(err)
	}
	if err := m.Instrument(g); err != nil {
		t.Errorf("the same guard again: %v", err)
	}
}

// A failed Instrument changes nothing: neither a stage it refuses (the
// breaker before the nil stage has no instruments) nor a meter refusing an
// instrument (the kind made before the refused one has none).
func TestInstrumentAllOrNothing(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := refusing{sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)), "resilience.bad.level"}
	m := must(resilotel.New(provider))
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	good := &shifty{kind: "good", name: "g", results: []string{"ok"}, gauges: []string{"level"}}
	bad := &shifty{kind: "bad", name: "x", results: []string{"ok"}, gauges: []string{"level"}}
	if err := m.Instrument(b, good, nil); err == nil || !strings.Contains(err.Error(), "nil stage") {
		t.Fatalf("Instrument with a nil stage: %v", err)
	}
	if err := m.Instrument(b, good, bad); err == nil || !strings.Contains(err.Error(), `the instruments of kind "bad": refused`) {
		t.Fatalf("Instrument with an instrument the meter refuses: %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if len(rm.ScopeMetrics) != 0 {
		t.Fatalf("after the failed Instruments, instruments report: %v", rm.ScopeMetrics)
	}
	// The failed call fixed nothing of kind good either: a stage of it
	// may report other gauges.
	other := &shifty{kind: "good", name: "g", results: []string{"ok"}, gauges: []string{"depth"}}
	if err := m.Instrument(b, other); err != nil {
		t.Fatal(err)
	}
	points := map[string]int{}
	for _, mt := range collect(t, reader).Metrics {
		switch d := mt.Data.(type) {
		case metricdata.Sum[int64]:
			points[mt.Name] = len(d.DataPoints)
		case metricdata.Gauge[int64]:
			points[mt.Name] = len(d.DataPoints)
		case metricdata.Gauge[float64]:
			points[mt.Name] = len(d.DataPoints)
		}
	}
	want := map[string]int{
		"resilience.circuit_breaker.calls": 8, "resilience.circuit_breaker.state": 3, "resilience.circuit_breaker.transitions": 5,
		"resilience.good.calls": 1, "resilience.good.depth": 1,
	}
	if !maps.Equal(points, want) {
		t.Errorf("points after instrumenting again: %v, want %v", points, want)
	}
}

// refusing is a MeterProvider whose meters refuse to make the gauge named
// refuse.
type refusing struct {
	metric.MeterProvider
	refuse string
}

func (p refusing) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return refusingMeter{p.MeterProvider.Meter(name, opts...), p.refuse}
}

type refusingMeter struct {
	metric.Meter
	refuse string
}

func (m refusingMeter) Float64ObservableGauge(name string, opts ...metric.Float64ObservableGaugeOption) (metric.Float64ObservableGauge, error) {
	if name == m.refuse {
		return nil, errors.New("refused")
	}
	return m.Meter.Float64ObservableGauge(name, opts...)
}

// A stage whose Stats changes shape after it was instrumented has its
// points left out, and an error to the SDK's error handler, never to a
// caller; the other stages of its kind are reported all the same.
func TestStatsChangingShape(t *testing.T) {
	var handled []string
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { handled = append(handled, err.Error()) }))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })

	reader := sdkmetric.NewManualReader()
	m := must(resilotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	steady := &shifty{kind: "mine", name: "steady", results: []string{"ok"}, gauges: []string{"level"}}
	moving := &shifty{kind: "mine", name: "moving", results: []string{"ok"}, gauges: []string{"level"}}
	if err := m.Instrument(steady, moving); err != nil {
		t.Fatal(err)
	}
	moving.results = []string{"fine"}
	moving.gauges = []string{"level", "depth"}
	want := metricdata.ScopeMetrics{
		Scope: metricdataScope(),
		Metrics: []metricdata.Metrics{
			sum("resilience.mine.calls", "Calls through mine stages, by how they ended.", "{call}", counter(1, name("steady"), result("ok"))),
			{
				Name: "resilience.mine.level", Description: "The level of mine stages.",
				Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Attributes: set(name("steady")), Value: 1}}},
			},
		},
	}
	metricdatatest.AssertEqual(t, want, collect(t, reader), metricdatatest.IgnoreTimestamp())
	if len(handled) != 1 || !strings.Contains(handled[0], `stage "moving" of kind "mine" changed the results or gauges`) {
		t.Errorf("errors handled: %q", handled)
	}

	handled = nil
	moving.gauges = []string{"depth"}
	metricdatatest.AssertEqual(t, metricdata.ScopeMetrics{
		Scope: metricdataScope(),
		Metrics: []metricdata.Metrics{
			sum("resilience.mine.calls", "Calls through mine stages, by how they ended.", "{call}", counter(1, name("steady"), result("ok"))),
			{
				Name: "resilience.mine.level", Description: "The level of mine stages.",
				Data: metricdata.Gauge[float64]{DataPoints: []metricdata.DataPoint[float64]{{Attributes: set(name("steady")), Value: 1}}},
			},
		},
	}, collect(t, reader), metricdatatest.IgnoreTimestamp())
	if len(handled) != 2 || !strings.Contains(handled[0], `reported result "fine" where it had reported "ok"`) || !strings.Contains(handled[1], `reported gauge "depth" where it had reported "level"`) {
		t.Errorf("errors handled: %q", handled)
	}
}

// shifty is a stage of its own kind whose Stats reports what its fields
// say, each count and gauge at 1. Tests change them between collections,
// never during one.
type shifty struct {
	kind, name      string
	results, gauges []string
}

func (s *shifty) Name() string { return s.name }
func (s *shifty) Kind() string { return s.kind }
func (s *shifty) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}
func (s *shifty) Stats() resilience.Stats {
	var st resilience.Stats
	for _, r := range s.results {
		st.Calls = append(st.Calls, resilience.Count{Result: r, N: 1})
	}
	for _, g := range s.gauges {
		st.Gauges = append(st.Gauges, resilience.Gauge{Name: g, Value: 1})
	}
	if st.Calls == nil && st.Gauges == nil {
		st.Calls = []resilience.Count{{Result: "ok"}}
	}
	return st
}

// quiet is a stage that reports nothing.
type quiet struct{}

func (quiet) Name() string { return "quiet" }
func (quiet) Kind() string { return "quiet" }
func (quiet) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

// A preset's guard gives the instruments of each of its stages, and a
// collection before any call reports each of them at zero.
func TestPresetGuardFromTheStart(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m := must(resilotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err := m.Instrument(presets.GRPC()); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, mt := range collect(t, reader).Metrics {
		switch d := mt.Data.(type) {
		case metricdata.Sum[int64]:
			got[mt.Name] = len(d.DataPoints)
		case metricdata.Gauge[int64]:
			got[mt.Name] = len(d.DataPoints)
		case metricdata.Gauge[float64]:
			got[mt.Name] = len(d.DataPoints)
		}
	}
	for inst, points := range map[string]int{
		"resilience.circuit_breaker.calls":       8,
		"resilience.circuit_breaker.state":       3,
		"resilience.circuit_breaker.transitions": 5,
		"resilience.timeout.operations":          8, // its total and per-attempt timeouts
		"resilience.retry_budget.calls":          3,
		"resilience.retry.deadline_skipped":      1,
	} {
		if got[inst] != points {
			t.Errorf("%s: %d points before any call, want %d (all: %v)", inst, got[inst], points, got)
		}
	}
}

func metricdataScope() instrumentation.Scope {
	return instrumentation.Scope{Name: resilotel.ScopeName, Version: resilotel.Version}
}

// Neither the core nor the Prometheus module requires OpenTelemetry: a
// service that does not import this module never builds it. (.ci/modules
// checks the module graph of programs outside the repository too.)
func TestOpenTelemetryStaysInThisModule(t *testing.T) {
	for _, gomod := range []string{"../go.mod", "../metrics/go.mod"} {
		b, err := os.ReadFile(gomod)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require")); len(f) > 0 && strings.HasPrefix(f[0], "go.opentelemetry.io/") {
				t.Errorf("%s requires %s", gomod, strings.TrimSpace(line))
			}
		}
	}
}

// resilience.retry.deadline_skipped is 0 for every retry policy from the
// first collection, and counts the calls a policy ended with its own
// ErrRetryDeadline: the wait alone too long for the deadline, or (with
// RetryConfig.Latency) the wait and the attempt's predicted latency. An
// outer policy does not count a nested one's stop, whether it gives up
// for another cause wrapping it or returns it as it is.
func TestRetryDeadlineSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader := sdkmetric.NewManualReader()
		m := must(resilotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		lat := must(resilience.NewLatency(resilience.LatencyConfig{Name: "dep", MinSamples: 10}))
		for range 20 {
			lat.Record(80 * time.Millisecond) // a median of 80ms
		}
		model := must(resilience.NewRetry(resilience.RetryConfig{Name: "model", MaxRetries: 3, NoBackoff: true, Latency: lat}))
		inner := must(resilience.NewRetry(resilience.RetryConfig{Name: "inner", MaxRetries: 3, InitialBackoff: time.Second}))
		outer := must(resilience.NewRetry(resilience.RetryConfig{Name: "outer", MaxRetries: 1, NoBackoff: true}))
		strict := must(resilience.NewRetry(resilience.RetryConfig{Name: "strict", MaxRetries: 1, NoBackoff: true,
			Retryable: func(err error) bool { return !errors.Is(err, context.DeadlineExceeded) }}))
		if err := m.Instrument(model, inner, outer, strict); err != nil {
			t.Fatal(err)
		}
		skipped := func() map[string]int64 {
			got := map[string]int64{}
			for _, mt := range collect(t, reader).Metrics {
				if mt.Name == "resilience.retry.deadline_skipped" {
					for _, p := range mt.Data.(metricdata.Sum[int64]).DataPoints {
						v, _ := p.Attributes.Value("resilience.name")
						got[v.AsString()] = p.Value
					}
				}
			}
			return got
		}
		if got, want := skipped(), map[string]int64{"model": 0, "inner": 0, "outer": 0, "strict": 0}; !maps.Equal(got, want) {
			t.Errorf("before any call: %v, want %v", got, want)
		}

		ctx := context.Background()
		// model: after an 80ms failure, 20ms are left, under the 80ms
		// the dependency takes: no retry.
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := resilience.Do(dctx, model, func(context.Context) (int, error) {
			time.Sleep(80 * time.Millisecond)
			return 0, errors.New("unavailable")
		})
		cancel()
		if re, ok := errors.AsType[*resilience.RetryError](err); !ok || re.Cause != resilience.ErrRetryDeadline || re.Attempts != 1 {
			t.Errorf("model, 20ms left for an 80ms attempt: %v, want ErrRetryDeadline after 1 attempt", err)
		}
		// outer retries inner's stop (its 1s wait 100ms before the
		// deadline), which stops again, and gives up with its retries
		// used up, wrapping it; strict returns inner's stop as it is.
		dctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = resilience.For[int](outer, inner).Do(dctx, fail)
		cancel()
		if re, ok := errors.AsType[*resilience.RetryError](err); !ok || re.Name != "outer" || re.Cause != resilience.ErrRetriesExhausted || !errors.Is(err, resilience.ErrRetryDeadline) {
			t.Errorf("outer over inner: %v, want outer's ErrRetriesExhausted wrapping inner's ErrRetryDeadline", err)
		}
		dctx, cancel = context.WithTimeout(ctx, 100*time.Millisecond)
		_, err = resilience.For[int](strict, inner).Do(dctx, fail)
		cancel()
		if re, ok := errors.AsType[*resilience.RetryError](err); !ok || re.Name != "inner" || re.Cause != resilience.ErrRetryDeadline {
			t.Errorf("strict over inner: %v, want inner's ErrRetryDeadline as it is", err)
		}
		if got, want := skipped(), map[string]int64{"model": 1, "inner": 3, "outer": 0, "strict": 0}; !maps.Equal(got, want) {
			t.Errorf("after the calls: %v, want %v", got, want)
		}
	})
}
