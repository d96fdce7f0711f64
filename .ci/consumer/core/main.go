// Command coreconsumer makes a call through a preset and through a
// breaker of its own: what a service that needs the core alone builds.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	ctx := context.Background()
	n, err := resilience.Do(ctx, presets.Redis(), func(context.Context) (int, error) { return 42, nil })
	if err != nil || n != 42 {
		fmt.Fprintln(os.Stderr, "coreconsumer: through the preset:", n, err)
		os.Exit(1)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "backend", FailureThreshold: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "coreconsumer:", err)
		os.Exit(1)
	}
	boom := errors.New("boom")
	resilience.Do(ctx, breaker, func(context.Context) (int, error) { return 0, boom })
	_, err = resilience.Do(ctx, breaker, func(context.Context) (int, error) { return 1, nil })
	if !errors.Is(err, resilience.ErrOpen) {
		fmt.Fprintln(os.Stderr, "coreconsumer: want the breaker open after a failure, got", err)
		os.Exit(1)
	}
	fmt.Printf("through the preset: %d; the breaker is %s after one failure\n", n, breaker.State())
}
