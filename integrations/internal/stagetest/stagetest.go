// Package stagetest builds the stages the integrations' tests put in a
// guard: a breaker that stays out of the way, a retry with short waits, and
// time limits whose observers record what they saw. A stage that cannot be
// built is a mistake in the test: these functions panic.
package stagetest

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Guard returns a guard named name of stages, in order.
func Guard(name string, stages ...resilience.Stage) *resilience.Guard {
	return must(resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: stages}))
}

// Breaker returns a breaker named name that opens only after 100 failures
// in a row, and probes after a minute: one that counts, and stays closed
// unless a test opens it.
func Breaker(name string) *resilience.Breaker {
	return must(resilience.NewBreaker(resilience.BreakerConfig{Name: name, FailureThreshold: 100, OpenTimeout: time.Minute}))
}

// Retry returns a retry named name of retries retries, the first after
// backoff, without jitter.
func Retry(name string, retries int, backoff time.Duration) *resilience.Retry {
	return must(resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: retries, InitialBackoff: backoff}))
}

// Timeouts is a Timeout stage and the results its observer was told of.
// Put the Timeout itself in a guard, not the Timeouts.
type Timeouts struct {
	*resilience.Timeout
	mu      sync.Mutex
	results []resilience.TimeoutResult
}

// Timeout returns a Timeout of d named name that records its results.
func Timeout(name string, d time.Duration) *Timeouts {
	x := &Timeouts{Timeout: must(resilience.NewTimeout(resilience.TimeoutConfig{Name: name, Duration: d}))}
	x.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
		x.mu.Lock()
		defer x.mu.Unlock()
		x.results = append(x.results, r)
	}})
	return x
}

// Got returns the results so far, in order.
func (x *Timeouts) Got() []resilience.TimeoutResult {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.results)
}

// Count returns how many results were r.
func (x *Timeouts) Count(r resilience.TimeoutResult) int {
	n := 0
	for _, got := range x.Got() {
		if got == r {
			n++
		}
	}
	return n
}

// Reset forgets the results so far.
func (x *Timeouts) Reset() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.results = nil
}

// CountingTimeout returns a Timeout of d named name whose time-outs are
// counted in expired, if it is not nil.
func CountingTimeout(name string, d time.Duration, expired *atomic.Int32) *resilience.Timeout {
	tm := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: name, Duration: d}))
	if expired != nil {
		tm.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
			if r == resilience.TimeoutExpired {
				expired.Add(1)
			}
		}})
	}
	return tm
}

// Hedges returns the hedges h sent and the calls a hedge won.
func Hedges(h *resilience.Hedge) (sent, won uint64) {
	for _, c := range h.Stats().Calls {
		switch c.Result {
		case "sent":
			sent = c.N
		case "won":
			won = c.N
		}
	}
	return sent, won
}
