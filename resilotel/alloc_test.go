//go:build !race

package resilotel_test

// Allocation counts mean nothing under the race detector, which allocates
// (and empties sync.Pools): this test is built without it, and CI runs it
// so (.ci/run, the coverage step).

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
	"github.com/resilience-go/resilience/resilotel"
)

// Once instrumented on the SDK, a closed breaker's successful call
// allocates nothing: its observer adds one to an atomic, with an
// attribute set made when it was instrumented. A call through a preset's
// guard (its timeouts, retry, budget and breaker) allocates no more than
// it does bare: the retry histogram's attribute set is made once too.
func TestInstrumentedCallAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	m := must(resilotel.New(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))

	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "alone"}))
	if err := m.Instrument(breaker); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, breaker, ok) }); n != 0 {
		t.Errorf("a call through an instrumented closed breaker allocates %v times, want 0", n)
	}

	bare := presets.GRPC()
	bareAllocs := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, bare, ok) })
	guard := presets.GRPC()
	if err := m.Instrument(guard); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, guard, ok) }); n != bareAllocs {
		t.Errorf("a call through an instrumented preset allocates %v times, %v bare", n, bareAllocs)
	}

	// Collecting does not change it: the counters were read, not reset.
	collect(t, reader)
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, breaker, ok) }); n != 0 {
		t.Errorf("after a collection, a call through the closed breaker allocates %v times, want 0", n)
	}
}
