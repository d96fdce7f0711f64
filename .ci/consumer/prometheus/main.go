// Command prometheusconsumer instruments a preset on a registry of its
// own and makes a call through it: what a service on Prometheus builds.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	registry := prometheus.NewRegistry()
	m, err := metrics.New(registry)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prometheusconsumer:", err)
		os.Exit(1)
	}
	users := presets.GRPC()
	if err := m.Instrument(users); err != nil {
		fmt.Fprintln(os.Stderr, "prometheusconsumer:", err)
		os.Exit(1)
	}
	if _, err := resilience.Do(context.Background(), users, func(context.Context) (int, error) { return 42, nil }); err != nil {
		fmt.Fprintln(os.Stderr, "prometheusconsumer:", err)
		os.Exit(1)
	}
	families, err := registry.Gather()
	if err != nil || len(families) == 0 {
		fmt.Fprintln(os.Stderr, "prometheusconsumer: gathered", len(families), "families:", err)
		os.Exit(1)
	}
	fmt.Printf("%d metric families after one call\n", len(families))
}
