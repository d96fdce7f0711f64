// Command demo shows a chain of resilience policies at work against a
// dependency that is healthy, then fails, then recovers. It needs nothing
// but Go:
//
//	go run ./examples/demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
)

func main() {
	phase := flag.Duration("phase", 600*time.Millisecond, "length of each phase of the scenario")
	rate := flag.Duration("every", 5*time.Millisecond, "time between calls")
	flag.Parse()
	if err := run(*phase, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var errUnavailable = errors.New("backend unavailable")

// backend is a stand-in dependency whose health the scenario switches.
type backend struct{ failing atomic.Bool }

func (b *backend) get(ctx context.Context) (string, error) {
	if b.failing.Load() {
		return "", errUnavailable
	}
	return "ok", nil
}

func run(phase, every time.Duration) error {
	start := time.Now()
	stamp := func() string { return fmt.Sprintf("%6.3fs", time.Since(start).Seconds()) }

	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name:             "backend",
		FailureThreshold: 5,
		OpenTimeout:      phase / 3,
		SuccessThreshold: 2,
		OnStateChange: func(c resilience.StateChange) {
			fmt.Printf("%s  breaker %q: %v -> %v\n", stamp(), c.Name, c.From, c.To)
		},
	})
	if err != nil {
		return err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond, Jitter: true})
	if err != nil {
		return err
	}
	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	get := resilience.For[string](timeout, retry, breaker)

	b := &backend{}
	var ok, failed, rejected int
	for _, p := range []struct {
		name    string
		failing bool
	}{{"healthy", false}, {"failing", true}, {"recovered", false}} {
		fmt.Printf("%s  backend is %s\n", stamp(), p.name)
		b.failing.Store(p.failing)
		for end := time.Now().Add(phase); time.Now().Before(end); time.Sleep(every) {
			_, err := get.Do(context.Background(), b.get)
			switch {
			case err == nil:
				ok++
			case errors.Is(err, resilience.ErrOpen):
				rejected++
			default:
				failed++
			}
		}
	}
	fmt.Printf("\n%-10s %6s\n%-10s %6d\n%-10s %6d\n%-10s %6d\n", "calls", "count", "succeeded", ok, "failed", failed, "rejected", rejected)
	if breaker.State() != resilience.Closed {
		return fmt.Errorf("breaker ended %v, want closed", breaker.State())
	}
	return nil
}
