// Package bench compares resilience with the Go libraries people would
// pick instead, on the same workloads in the same run: failsafe-go,
// sony/gobreaker, eapache/go-resiliency, afex/hystrix-go, avast/retry-go
// and cenkalti/backoff. It is a module of its own, so that the library
// never depends on its peers.
//
// Everything here is tests: benchmarks (bench_test.go), a load scenario
// (load_test.go) and behaviour scenarios (behaviour_test.go). The script
// run in this directory runs them all and prints the tables that
// docs/BENCHMARKS.md and docs/COMPARISON.md quote.
package bench
