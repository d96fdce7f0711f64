package metrics_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

// Instrument a preset's guard on a registry of your own, make a call
// through it, and read one of the series it produced, as a scrape would.
func Example() {
	registry := prometheus.NewRegistry() // never the global one unless you pass it
	m, err := metrics.New(registry)
	if err != nil {
		panic(err)
	}
	users := presets.GRPC() // its timeout, retry and breaker are all named "grpc"
	if err := m.Instrument(users); err != nil {
		panic(err)
	}

	name, err := resilience.Do(context.Background(), users, func(ctx context.Context) (string, error) {
		return "ada", nil
	})
	fmt.Println(name, err)

	families, err := registry.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() != "resilience_circuit_breaker_calls_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() { // sorted by name
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if ls := strings.Join(labels, ","); ls == `name="grpc",result="success",state="closed"` {
				fmt.Printf("%s{%s} %v\n", f.GetName(), ls, s.GetCounter().GetValue())
			}
		}
	}
	// Output:
	// ada <nil>
	// resilience_circuit_breaker_calls_total{name="grpc",result="success",state="closed"} 1
}
