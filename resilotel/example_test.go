package resilotel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
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
	// The breaker's calls that happened, and the state it is in. The SDK
	// gives the points of an instrument in no set order: sort them.
	var lines []string
	for _, mt := range rm.ScopeMetrics[0].Metrics {
		var points []metricdata.DataPoint[int64]
		switch mt.Name {
		case "resilience.circuit_breaker.calls":
			points = mt.Data.(metricdata.Sum[int64]).DataPoints
		case "resilience.circuit_breaker.state":
			points = mt.Data.(metricdata.Gauge[int64]).DataPoints
		}
		for _, p := range points {
			if p.Value > 0 {
				lines = append(lines, fmt.Sprintf("%s %s = %d", mt.Name, p.Attributes.Encoded(attribute.DefaultEncoder()), p.Value))
			}
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	// Output:
	// true
	// resilience.circuit_breaker.calls resilience.name=grpc,resilience.result=rejected,resilience.state=open = 1
	// resilience.circuit_breaker.calls resilience.name=grpc,resilience.result=success,resilience.state=closed = 1
	// resilience.circuit_breaker.state resilience.name=grpc,resilience.state=open = 1
}
