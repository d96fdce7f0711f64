package metrics_test

// The metrics snippet of the repository's README.md, compiled and run
// here: package metrics is a module of its own, so the core's README test
// (readme_test.go at the root) finds the snippet in this file.

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

func readmeMetrics(registry *prometheus.Registry, mux *http.ServeMux) error {
	m, err := metrics.New(registry) // your registry: nothing goes to the global one unless you pass it
	if err != nil {
		return err
	}
	users := presets.GRPC()
	if err := m.Instrument(users); err != nil { // one line per dependency
		return err
	}
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	return nil
}

func Example_readme() {
	registry := prometheus.NewRegistry()
	fmt.Println(readmeMetrics(registry, http.NewServeMux()), testutil.CollectAndCount(registry, "resilience_circuit_breaker_state"))
	// Output:
	// <nil> 3
}
