package resilotel_test

// The OpenTelemetry snippet of the repository's README.md, compiled and
// run here: resilotel is a module of its own, so the core's README test
// (readme_test.go at the root) finds the snippet in this file.

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
	"github.com/resilience-go/resilience/resilotel"
)

func readmeOTel(provider metric.MeterProvider) (*resilience.Guard, error) {
	m, err := resilotel.New(provider) // your MeterProvider, never the global one behind your back
	if err != nil {
		return nil, err
	}
	users := presets.GRPC()
	if err := m.Instrument(users); err != nil { // the same rules as metrics.Instrument
		return nil, err
	}
	if err := resilotel.TraceEvents(users); err != nil { // retries, rejections and time-outs on the call's span
		return nil, err
	}
	return users, nil
}

func Example_readme() {
	users, err := readmeOTel(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))
	if err != nil {
		panic(err)
	}
	rec := tracetest.NewSpanRecorder()
	ctx, span := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)).Tracer("readme").Start(context.Background(), "GetUser")
	users.Breaker().ForceOpen()
	_, err = resilience.Do(ctx, users, func(context.Context) (int, error) { return 1, nil })
	span.End()
	fmt.Println(errors.Is(err, resilience.ErrOpen), rec.Ended()[0].Events()[0].Name)
	// Output:
	// true resilience.rejected
}
