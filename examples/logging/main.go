// Run: go run ./examples/logging
//
// A guard's own log lines through log/slog, as JSON: a dependency that
// fails, a breaker that opens, a storm of rejected calls that takes one
// line a second (the next line saying how many it left out), and the
// breaker closing again once the dependency is back. It needs nothing
// running and stops by itself after about three seconds.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "logging:", err)
		os.Exit(1)
	}
}

func run() error {
	logger := slog.New(slog.NewJSONHandler(os.Stdout, nil))

	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name: "payments", FailureThreshold: 3, SuccessThreshold: 1, OpenTimeout: 2 * time.Second,
	})
	if err != nil {
		return err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "payments", MaxRetries: 1, InitialBackoff: 10 * time.Millisecond})
	if err != nil {
		return err
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "payments", Stages: []resilience.Stage{retry, breaker}})
	if err != nil {
		return err
	}
	// The one line: lines about the same stage and event at most once a
	// second here (10s by default).
	if err := resilience.LogEvents(resilience.LogConfig{Logger: logger, Interval: time.Second}, guard); err != nil {
		return err
	}

	var down atomic.Bool
	down.Store(true)
	charge := func(context.Context) (string, error) {
		if down.Load() {
			return "", errors.New("payments: connection refused")
		}
		return "charged", nil
	}
	ctx := context.Background()
	deadline := time.Now().Add(3 * time.Second)
	back := time.Now().Add(2 * time.Second)
	calls, rejected := 0, 0
	for time.Now().Before(deadline) {
		if time.Now().After(back) {
			down.Store(false)
		}
		if _, err := resilience.Do(ctx, guard, charge); errors.Is(err, resilience.ErrRejected) {
			rejected++
		}
		calls++
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "%d calls, %d rejected by the open breaker; the breaker ends %s\n", calls, rejected, breaker.State())
	if breaker.State() != resilience.Closed {
		return fmt.Errorf("the breaker ended %s, not closed", breaker.State())
	}
	return nil
}
