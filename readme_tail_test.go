package resilience_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

func readmeHedge(timeout *resilience.Timeout, retry *resilience.Retry, breaker *resilience.Breaker) (*resilience.Guard, error) {
	latency, err1 := resilience.NewLatency(resilience.LatencyConfig{Name: "search"}) // the last 10s of answers
	hedge, err2 := resilience.NewHedge(resilience.HedgeConfig{
		Name:     "search",
		Latency:  latency,
		Quantile: 0.95,                  // a second copy once a call is slower than 95% of answers
		MinDelay: 2 * time.Millisecond,  // never sooner
		Delay:    10 * time.Millisecond, // until the model has seen enough answers
	}) // its budget: at most 5% more calls
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	// The hedge goes inside the retry, outside the breaker: each copy is an
	// attempt the breaker counts. The latency model times each answer.
	return resilience.NewGuard(resilience.GuardConfig{Name: "search", Stages: []resilience.Stage{
		timeout, retry, hedge, breaker, latency,
	}})
}

// TestREADMEHedge runs the guard of the README's "Cutting the tail": a
// dependency that answers 98% of calls in 1ms and 2% in 50ms; once the
// model has its answers, a slow call is answered by its hedge within
// a few ms, and the hedges stay within the budget.
func TestREADMEHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		search, err := readmeHedge(
			must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "search", Duration: time.Second})),
			must(resilience.NewRetry(resilience.RetryConfig{Name: "search", MaxRetries: 1, NoBackoff: true})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "search"})))
		if err != nil {
			t.Fatal(err)
		}
		var requests atomic.Int64
		call := func(ctx context.Context) (int, error) {
			n := requests.Add(1)
			d := time.Millisecond
			if n%50 == 0 {
				d = 50 * time.Millisecond // 2% of requests
			}
			select {
			case <-time.After(d):
				return 1, nil
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		const calls = 5000
		var slowest time.Duration
		for i := range calls {
			start := time.Now()
			if _, err := resilience.Do(context.Background(), search, call); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); i >= 1000 && took > slowest {
				slowest = took
			}
		}
		if slowest > 5*time.Millisecond {
			t.Errorf("the slowest call after the first 1000 took %v, want a hedge's few ms, not the 50ms tail", slowest)
		}
		if extra := float64(requests.Load()-calls) / calls; extra > 0.05 {
			t.Errorf("%.2f%% extra requests, want at most the budget's 5%%", 100*extra)
		}
		synctest.Wait()
	})
}
