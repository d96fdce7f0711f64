// Command stdout exports a guard's OpenTelemetry metrics and span events
// through the SDK's stdout exporters: a breaker in front of a dependency
// that fails, opening, then a call turned away, all on the call's span.
// It needs nothing running and exits by itself:
//
//	go run ./resilotel/examples/stdout
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/resilotel"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "stdout:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx := context.Background()
	metricExporter, err := stdoutmetric.New(stdoutmetric.WithPrettyPrint())
	if err != nil {
		return err
	}
	// A periodic reader would export every minute; this one exports when
	// the provider shuts down.
	reader := sdkmetric.NewPeriodicReader(metricExporter)
	meters := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	traceExporter, err := stdouttrace.New(stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tracers := sdktrace.NewTracerProvider(sdktrace.WithSyncer(traceExporter))

	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "inventory", FailureThreshold: 3})
	if err != nil {
		return err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "inventory", MaxRetries: 2, NoBackoff: true})
	if err != nil {
		return err
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "inventory", Stages: []resilience.Stage{retry, breaker}})
	if err != nil {
		return err
	}
	m, err := resilotel.New(meters)
	if err != nil {
		return err
	}
	if err := m.Instrument(guard); err != nil {
		return err
	}
	if err := resilotel.TraceEvents(guard); err != nil {
		return err
	}

	// One request: three attempts fail and open the breaker; a second is
	// turned away.
	tracer := tracers.Tracer("example")
	ctx, span := tracer.Start(ctx, "reserve")
	down := errors.New("inventory unavailable")
	_, err = resilience.Do(ctx, guard, func(context.Context) (int, error) { return 0, down })
	fmt.Fprintln(os.Stderr, "first call:", err)
	_, err = resilience.Do(ctx, guard, func(context.Context) (int, error) { return 1, nil })
	fmt.Fprintln(os.Stderr, "second call:", err)
	span.End()
	if !errors.Is(err, resilience.ErrOpen) {
		return fmt.Errorf("the breaker did not open: %v", err)
	}

	if err := tracers.Shutdown(ctx); err != nil {
		return err
	}
	return meters.Shutdown(ctx) // exports the metrics once
}
