// Command consumer calls a flaky server on 127.0.0.1 through resilhttp
// with the ExternalHTTP preset, instrumented by metrics, and checks that
// the retry answered and that the breaker's calls were counted.
package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "consumer:", err)
		os.Exit(1)
	}
}

func run() error {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()

	registry := prometheus.NewRegistry()
	m, err := metrics.New(registry)
	if err != nil {
		return err
	}
	guard := presets.ExternalHTTP()
	if err := m.Instrument(guard); err != nil {
		return err
	}
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Guard: guard})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: transport}
	defer client.CloseIdleConnections()

	resp, err := client.Get(srv.URL)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		return fmt.Errorf("GET answered %d %q, want 200 \"ok\" after a retry", resp.StatusCode, body)
	}
	if n := requests.Load(); n != 2 {
		return fmt.Errorf("the server saw %d requests, want 2: a 503, then the retry", n)
	}

	families, err := registry.Gather()
	if err != nil {
		return err
	}
	var calls float64
	for _, f := range families {
		// The preset has a breaker per host: a KeyedBreaker, whose calls
		// are resilience_keyed_breaker_calls_total.
		if f.GetName() == "resilience_keyed_breaker_calls_total" {
			for _, s := range f.GetMetric() {
				calls += s.GetCounter().GetValue()
			}
		}
	}
	if calls != 2 {
		return fmt.Errorf("resilience_keyed_breaker_calls_total sums to %v, want 2", calls)
	}
	fmt.Printf("GET %s: %d %q after %d attempts; the breaker counted %v calls\n",
		srv.Listener.Addr(), resp.StatusCode, body, requests.Load(), calls)
	return nil
}
