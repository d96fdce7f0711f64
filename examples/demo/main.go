// Command demo shows the resilience policies at work against a flaky
// backend it starts itself on 127.0.0.1: healthy, then failing, then slow,
// then healthy again. The same traffic goes straight to the backend and
// through an http.Client whose Transport is resilhttp.Transport with the
// external-HTTP preset, scaled down (timeout, retry, circuit breaker, a
// limit per attempt), and the demo prints the first failed attempts of
// each phase and each state change of the breaker as they happen, a line
// a second for each side, and a summary. An epilogue puts three hosts
// behind one client, one failing every call, through a breaker per host
// (the preset's default) and through one shared breaker, and prints what
// each host's calls saw. A second, a slow tail, has the backend answer 2%
// of requests in 50ms and the rest in 1ms, sends the same calls through
// the guard and through the same guard with a resilience.Hedge (a GET
// still unanswered after the p95 of recent answers is sent again), and
// prints each side's p50, p99 and slowest call and the requests it cost.
// A third, overload, offers a server of 4 workers three times what they
// can serve, with nothing in front of its handler and with a
// resilience.AdaptiveLimiter through resilhttp.Shed, and prints the
// share of capacity each serves within the callers' deadline and the
// latency of what it serves.
// Run it with
//
//	go run ./examples/demo
//
// and see -help for the scenario's knobs. With -metrics 127.0.0.1:9090 it
// also serves the chain's Prometheus metrics at /metrics while it runs;
// with -log it also prints the library's own log lines (log/slog).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"

	"github.com/resilience-go/resilience"
)

func main() {
	cfg := defaultConfig()
	flag.DurationVar(&cfg.Phase, "phase", cfg.Phase, "length of each of the four phases")
	flag.Float64Var(&cfg.FailureRate, "failure-rate", cfg.FailureRate, "share of calls that fail, from 0 to 1, while the backend is failing")
	flag.DurationVar(&cfg.Slow, "slow", cfg.Slow, "how long each call takes while the backend is slow")
	flag.IntVar(&cfg.Rate, "rate", cfg.Rate, "calls per second, sent both directly and through the chain")
	flag.IntVar(&cfg.Clients, "clients", cfg.Clients, "concurrent callers on each side")
	flag.StringVar(&cfg.Metrics, "metrics", "", "serve Prometheus metrics on this address (127.0.0.1:9090, say) while the demo runs")
	flag.BoolVar(&cfg.Log, "log", false, "also print the library's own log lines (log/slog, through resilience.LogEvents), rate-limited")
	flag.Parse()

	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	rep, err := run(ctx, cfg, network{Listener: ln, Dial: (&net.Dialer{}).DialContext}, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if rep.Final != resilience.Closed {
		fmt.Fprintf(os.Stderr, "demo: the breaker ended %s, not closed: give the last phase more time than the breaker's 1s cooldown\n", rep.Final)
		os.Exit(1)
	}
}
