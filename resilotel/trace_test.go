package resilotel_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/resilotel"
)

// spanEvents returns the events of the one span recorded, each as its
// name and attributes.
func spanEvents(t *testing.T, rec *tracetest.SpanRecorder) []string {
	t.Helper()
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	var out []string
	for _, e := range spans[0].Events() {
		var b strings.Builder
		b.WriteString(e.Name)
		for _, a := range e.Attributes {
			fmt.Fprintf(&b, " %s=%s", a.Key, a.Value.String())
		}
		out = append(out, b.String())
	}
	return out
}

var errDown = errors.New("unavailable")

func fail(context.Context) (int, error) { return 0, errDown }
func ok(context.Context) (int, error)   { return 1, nil }

func TestTraceEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")

		timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "users", Duration: time.Second}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2, InitialBackoff: 100 * time.Millisecond, BackoffMultiplier: 2}))
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users", FailureThreshold: 2}))
		guard := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{timeout, retry, breaker}}))
		if err := resilotel.TraceEvents(guard); err != nil {
			t.Fatal(err)
		}

		ctx, span := tracer.Start(context.Background(), "GetUser")
		resilience.Do(ctx, guard, ok) // as usual: no event
		// Two failures open the breaker, whose rejection the retry does
		// not retry.
		_, err := resilience.Do(ctx, guard, fail)
		if !errors.Is(err, resilience.ErrOpen) {
			t.Fatalf("err %v, want the breaker open", err)
		}
		// The breaker open, a call that waits out the time limit.
		breaker.Reset()
		resilience.Do(ctx, guard, func(ctx context.Context) (int, error) { <-ctx.Done(); return 0, ctx.Err() })
		span.End()

		want := []string{
			"resilience.retry resilience.name=users resilience.stage=retry resilience.attempt=1 resilience.delay=0.1 error.type=*errors.errorString",
			"resilience.retry resilience.name=users resilience.stage=retry resilience.attempt=2 resilience.delay=0.2 error.type=*errors.errorString",
			"resilience.rejected resilience.name=users resilience.stage=breaker error.type=rejected",
			"resilience.retry.gave_up resilience.name=users resilience.stage=retry resilience.attempt=3 error.type=rejected",
			"resilience.timeout resilience.name=users resilience.stage=timeout error.type=timeout",
		}
		if got := spanEvents(t, rec); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("span events\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	})
}

func TestTraceEventsOfKeysAndChaos(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
		hosts := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts", MaxEjectedPercent: 100}))
		chaos := must(resilience.NewChaos(resilience.ChaosConfig{Name: "drill", Rate: 1, Latency: 20 * time.Millisecond}))
		if err := resilotel.TraceEvents(hosts, chaos); err != nil {
			t.Fatal(err)
		}
		hosts.Breaker("10.0.0.1:443").ForceOpen()
		ctx, span := tracer.Start(context.Background(), "call")
		resilience.Do(resilience.WithKey(ctx, "10.0.0.1:443"), hosts, ok)
		resilience.Do(ctx, chaos, ok)
		span.End()
		want := []string{
			"resilience.rejected resilience.name=hosts resilience.stage=keyed_breaker resilience.key=10.0.0.1:443 error.type=rejected",
			"resilience.chaos resilience.name=drill resilience.stage=chaos resilience.delay=0.02 error.type=chaos",
		}
		if got := spanEvents(t, rec); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("span events\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	})
}

// A retry budget's refusal is a rejection, and so is the retry it stops.
func TestTraceEventsOfABudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 3, NoBackoff: true}))
		budget := must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Name: "users", Ratio: 0.01, MinPerSecond: 0.01}))
		guard := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry, budget}}))
		if err := resilotel.TraceEvents(guard); err != nil {
			t.Fatal(err)
		}
		ctx, span := tracer.Start(context.Background(), "call")
		resilience.Do(ctx, guard, fail)
		span.End()
		want := []string{
			"resilience.rejected resilience.name=users resilience.stage=retry_budget resilience.attempt=1 error.type=rejected",
			"resilience.retry.gave_up resilience.name=users resilience.stage=retry resilience.attempt=1 error.type=rejected",
		}
		if got := spanEvents(t, rec); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("span events\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
		}
	})
}

// With tracing and slog attached, the span not recording and the log
// level above the events', the closed breaker path allocates nothing,
// and neither does a rejection.
func TestTraceEventsNotRecordingCostNothing(t *testing.T) {
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("test")
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2, NoBackoff: true}))
	guard := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry, breaker}}))
	if err := resilotel.TraceEvents(guard); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
	if err := resilience.Log(quiet, guard); err != nil {
		t.Fatal(err)
	}
	ctx, span := tracer.Start(context.Background(), "GetUser")
	defer span.End()
	if span.IsRecording() {
		t.Fatal("the span records")
	}
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, guard, ok) }); n != 0 {
		t.Errorf("a call through a closed breaker allocates %v times, want 0", n)
	}
	breaker.ForceOpen()
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, guard, ok) }); n != 0 {
		t.Errorf("a rejection, not recorded, allocates %v times, want 0", n)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestTraceEventsErrors(t *testing.T) {
	err := resilotel.TraceEvents(nil)
	if err == nil || !strings.Contains(err.Error(), "resilotel: TraceEvents") || !strings.Contains(err.Error(), "stage 0 is nil") {
		t.Errorf("nil stage: %v", err)
	}
	if err := resilotel.TraceEvents(&resilience.Guard{}); err == nil {
		t.Error("a zero Guard: no error")
	}
}

// Put what a guard does to a call on the call's span.
func ExampleTraceEvents() {
	rec := tracetest.NewSpanRecorder() // in a service, the exporter of your TracerProvider
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("example")

	retry, _ := resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 1, NoBackoff: true})
	guard, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry}})
	if err := resilotel.TraceEvents(guard); err != nil {
		panic(err)
	}
	ctx, span := tracer.Start(context.Background(), "GetUser")
	resilience.Do(ctx, guard, func(context.Context) (int, error) { return 0, errors.New("unavailable") })
	span.End()

	for _, e := range rec.Ended()[0].Events() {
		attrs := attribute.NewSet(e.Attributes...)
		attempt, _ := attrs.Value("resilience.attempt")
		fmt.Println(e.Name, "attempt", attempt.AsInt64())
	}
	// Output:
	// resilience.retry attempt 1
	// resilience.retry.gave_up attempt 2
}

// An AdaptiveLimiter's refusal is a rejection of its kind, and its
// counts and gauges are instruments of that kind.
func TestAdaptiveLimiter(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tracer := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("test")
	reader := sdkmetric.NewManualReader()
	m := must(resilotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	lim := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", MinLimit: 1, MaxLimit: 1, InitialLimit: 1}))
	if err := m.Instrument(lim); err != nil {
		t.Fatal(err)
	}
	if err := resilotel.TraceEvents(lim); err != nil {
		t.Fatal(err)
	}
	permit, err := lim.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tracer.Start(context.Background(), "call")
	if _, err := resilience.Do(ctx, lim, ok); !errors.Is(err, resilience.ErrLimitExceeded) {
		t.Fatalf("a call past the limit: %v, want ErrLimitExceeded", err)
	}
	span.End()
	permit.Release()
	want := []string{"resilience.rejected resilience.name=api resilience.stage=adaptive_limiter error.type=rejected"}
	if got := spanEvents(t, rec); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("span events\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	got := map[string]float64{}
	for _, mt := range collect(t, reader).Metrics {
		switch d := mt.Data.(type) {
		case metricdata.Sum[int64]:
			for _, p := range d.DataPoints {
				r, _ := p.Attributes.Value("resilience.result")
				got[mt.Name+" "+r.AsString()] = float64(p.Value)
			}
		case metricdata.Gauge[float64]:
			for _, p := range d.DataPoints {
				got[mt.Name] = p.Value
			}
		}
	}
	for name, v := range map[string]float64{
		"resilience.adaptive_limiter.calls admitted": 1,
		"resilience.adaptive_limiter.calls waited":   0,
		"resilience.adaptive_limiter.calls rejected": 1,
		"resilience.adaptive_limiter.limit":          1,
		"resilience.adaptive_limiter.inflight":       0,
		"resilience.adaptive_limiter.queued":         0,
	} {
		if g, found := got[name]; !found || g != v {
			t.Errorf("%s = %v (reported: %v), want %v", name, g, found, v)
		}
	}
	if _, found := got["resilience.adaptive_limiter.baseline_seconds"]; !found {
		t.Errorf("no resilience.adaptive_limiter.baseline_seconds in %v", got)
	}
}
