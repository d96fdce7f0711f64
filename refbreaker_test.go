package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// refBreaker is the circuit breaker of a count-based window written the
// plain way, every step under one mutex, from the rules the docs state:
// the reference the lock-free Breaker is held to (TestBreakerMatchesReference)
// and measured against (BenchmarkBreakerVsReference), as the window is.
// It covers the untimed configuration: FailureThreshold, ErrorRateThreshold
// over the last WindowSize outcomes once MinCalls are in, OpenTimeout,
// HalfOpenProbes and SuccessThreshold.
type refBreaker struct {
	failureThreshold int
	errorRate        float64
	size, minCalls   int
	openTimeout      time.Duration
	successThreshold int
	probes           int

	mu          sync.Mutex
	state       resilience.State
	ring        []bool // failure of the last outcomes, len(ring) == size
	recorded    int    // outcomes recorded since the window was emptied
	failures    int    // failures among the last min(recorded, size)
	consecutive int
	openedAt    time.Time
	successes   int // successful probes since half-open
	inFlight    int // probes admitted and not done
}

func newRefBreaker(cfg resilience.BreakerConfig) *refBreaker {
	r := &refBreaker{
		failureThreshold: cfg.FailureThreshold,
		errorRate:        cfg.ErrorRateThreshold,
		size:             cfg.WindowSize,
		minCalls:         cfg.MinCalls,
		openTimeout:      cfg.OpenTimeout,
		successThreshold: cfg.SuccessThreshold,
		probes:           cfg.HalfOpenProbes,
	}
	if r.probes == 0 {
		r.probes = r.successThreshold
	}
	r.ring = make([]bool, r.size)
	return r
}

// State returns the state at now.
func (r *refBreaker) State(now time.Time) resilience.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick(now)
	return r.state
}

// tick moves an open breaker whose timeout has passed to half-open.
func (r *refBreaker) tick(now time.Time) {
	if r.state == resilience.Open && !now.Before(r.openedAt.Add(r.openTimeout)) {
		r.state, r.successes, r.inFlight = resilience.HalfOpen, 0, 0
	}
}

// Allow reports whether a call may run at now.
func (r *refBreaker) Allow(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick(now)
	switch r.state {
	case resilience.Closed:
		return true
	case resilience.HalfOpen:
		if r.inFlight < r.probes {
			r.inFlight++
			return true
		}
	}
	return false
}

// Done records the outcome of a call Allow let through, in the state it
// was let through in.
func (r *refBreaker) Done(now time.Time, failure bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.state {
	case resilience.Closed:
		slot := r.recorded % r.size
		if r.recorded >= r.size && r.ring[slot] {
			r.failures--
		}
		r.ring[slot] = failure
		r.recorded++
		if failure {
			r.failures++
			r.consecutive++
			if r.consecutive >= r.failureThreshold {
				r.open(now)
				return
			}
		} else {
			r.consecutive = 0
		}
		total := min(r.recorded, r.size)
		if total >= r.minCalls && r.failures > 0 && float64(r.failures)/float64(total) >= r.errorRate {
			r.open(now)
		}
	case resilience.HalfOpen:
		r.inFlight--
		if failure {
			r.open(now)
			return
		}
		if r.successes++; r.successes >= r.successThreshold {
			r.state = resilience.Closed
			r.recorded, r.failures, r.consecutive = 0, 0, 0
			clear(r.ring)
		}
	}
}

func (r *refBreaker) open(now time.Time) {
	r.state, r.openedAt = resilience.Open, now
}

// randomBreakerConfig returns an untimed configuration with every field
// set, as refBreaker needs.
func randomBreakerConfig(rng *rand.Rand) resilience.BreakerConfig {
	size := 1 + rng.IntN(40)
	success := 1 + rng.IntN(3)
	return resilience.BreakerConfig{
		FailureThreshold:   1 + rng.IntN(8),
		ErrorRateThreshold: []float64{0.25, 0.5, 0.75, 1}[rng.IntN(4)],
		WindowSize:         size,
		MinCalls:           1 + rng.IntN(size),
		OpenTimeout:        time.Second,
		SuccessThreshold:   success,
		HalfOpenProbes:     success + rng.IntN(2),
	}
}

// TestBreakerMatchesReference runs random sequences of outcomes, with time
// passing between them, through a Breaker and through refBreaker, and
// checks that both let the same calls through and are in the same state
// after every call, on the fake clock.
func TestBreakerMatchesReference(t *testing.T) {
	for seed := range uint64(60) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, 9))
				cfg := randomBreakerConfig(rng)
				b := must(resilience.NewBreaker(cfg))
				ref := newRefBreaker(cfg)
				p := resilience.For[int](b)
				errDown := errors.New("down")
				failRate := rng.Float64()
				for step := range 400 {
					if rng.IntN(10) == 0 {
						time.Sleep([]time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second}[rng.IntN(4)])
						synctest.Wait() // the open timeout's timer, if it fired
					}
					failure := rng.Float64() < failRate
					ran := false
					p.Do(context.Background(), func(context.Context) (int, error) {
						ran = true
						if failure {
							return 0, errDown
						}
						return 1, nil
					})
					now := time.Now()
					allowed := ref.Allow(now)
					if allowed {
						ref.Done(now, failure)
					}
					if ran != allowed {
						t.Fatalf("%+v, step %d: the breaker ran the call: %v, the reference: %v", cfg, step, ran, allowed)
					}
					if got, want := b.State(), ref.State(now); got != want {
						t.Fatalf("%+v, step %d (failure %v): state %v, the reference's %v", cfg, step, failure, got, want)
					}
				}
			})
		})
	}
}

// BenchmarkBreakerVsReference: a closed breaker's call, through the
// lock-free Breaker and through refBreaker's mutex, from every goroutine
// of -cpu: what the lock-free design is worth as cores are added
// (run with -cpu 1,2,4).
func BenchmarkBreakerVsReference(b *testing.B) {
	cfg := resilience.BreakerConfig{FailureThreshold: 5, ErrorRateThreshold: 0.5, WindowSize: 100, MinCalls: 20, OpenTimeout: time.Minute, SuccessThreshold: 2}
	b.Run("impl=lock-free", func(b *testing.B) {
		p := resilience.For[int](must(resilience.NewBreaker(cfg)))
		ctx := context.Background()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				p.Do(ctx, noop)
			}
		})
	})
	b.Run("impl=mutex", func(b *testing.B) {
		ref := newRefBreaker(cfg)
		now := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ref.Allow(now) {
					noop(context.Background())
					ref.Done(now, false)
				}
			}
		})
	})
}
