package resilotel_test

import (
	"context"
	"errors"
	"fmt"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
	"github.com/resilience-go/resilience/resilotel"
)

// Instrument a preset's guard on a MeterProvider of your own, make calls
// through it, and read what a collection gives.
func Example() {
	reader := sdkmetric.NewManualReader() // in a service, your exporter's reader
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := resilotel.New(provider)
	if err != nil {
		panic(err)
	}
	users := presets.GRPC() // its stages are named "grpc"
	if err := m.Instrument(users); err != nil {
		panic(err)
	}
	ctx := context.Background()
	resilience.Do(ctx, users, func(context.Context) (int, error) { return 1, nil })
	users.Breaker().ForceOpen()
	_, err = resilience.Do(ctx, users, func(context.Context) (int, error) { return 1, nil })
	fmt.Println(errors.Is(err, resilience.ErrOpen))

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, mt := range rm.ScopeMetrics[0].Metrics {
		if mt.Name != "resilience.circuit_breaker.calls" {
			continue
		}
		for _, p := range mt.Data.(metricdata.Sum[int64]).DataPoints {
			if p.Value > 0 {
				state, _ := p.Attributes.Value("resilience.state")
				result, _ := p.Attributes.Value("resilience.result")
				fmt.Println(state.AsString(), result.AsString(), p.Value)
			}
		}
	}
	// Unordered output:
	// true
	// closed success 1
	// open rejected 1
}
