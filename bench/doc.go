// Package bench compares resilience with the Go libraries people would
// pick instead, on the same workloads in the same run: failsafe-go,
// sony/gobreaker, eapache/go-resiliency, afex/hystrix-go, avast/retry-go
// and cenkalti/backoff. It is a module of its own, so that the library
// never depends on its peers.
//
// Everything here is tests: benchmarks (bench_test.go), a load scenario
// (load_test.go), behaviour scenarios (behaviour_test.go), retry
// amplification and throttling across loopback servers
// (amplification_test.go), breakers per host (keyed_test.go), hedged
// requests (tail_test.go) and servers under overload (overload_test.go).
// The script
// run in this directory runs them all and prints the tables that
// docs/BENCHMARKS.md and docs/COMPARISON.md quote.
package bench
