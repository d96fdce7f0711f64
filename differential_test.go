package resilience_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// TestDoAndAllowAgree feeds the same random calls to two breakers, one
// through Do and one through Allow and Permit.Done, and checks after every
// step that they agree on their state, rates and transitions: the two
// paths of the breaker are written apart, for speed, and must be one
// machine. The calls succeed, fail, are cancelled by their caller, panic,
// run slow, and overlap transitions (a call admitted in one period ends in
// another); time moves through open timeouts and half-open probes.
func TestDoAndAllowAgree(t *testing.T) {
	configs := map[string]resilience.BreakerConfig{
		"count": {FailureThreshold: 3, WindowSize: 10, MinCalls: 5, OpenTimeout: time.Second, SuccessThreshold: 2, HalfOpenProbes: 2},
		"slow":  {FailureThreshold: 4, WindowSize: 10, MinCalls: 4, OpenTimeout: time.Second, SlowCallThreshold: 50 * time.Millisecond, SlowCallRateThreshold: 0.5},
		"time":  {FailureThreshold: 3, WindowPeriod: 2 * time.Second, MinCalls: 4, OpenTimeout: time.Second, SuccessThreshold: 1},
	}
	for name, cfg := range configs {
		for seed := range uint64(40) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { differential(t, cfg, seed) })
			})
		}
	}
}

type outcomeKind int

const (
	succeeds outcomeKind = iota
	fails
	cancelled
	panics
)

func differential(t *testing.T, cfg resilience.BreakerConfig, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var mu sync.Mutex
	changes := map[string][]string{}
	newB := func(path string) *resilience.Breaker {
		c := cfg
		c.OnStateChange = func(sc resilience.StateChange) {
			mu.Lock()
			changes[path] = append(changes[path], fmt.Sprintf("%v->%v at %v", sc.From, sc.To, sc.At.UnixNano()))
			mu.Unlock()
		}
		return must(resilience.NewBreaker(c))
	}
	viaDo, viaAllow := newB("do"), newB("allow")
	doPolicy := resilience.For[int](viaDo)

	// call runs one call through each breaker at once, so that both see
	// the same instants; release, if not nil, holds both calls until it is
	// closed.
	call := func(kind outcomeKind, took time.Duration, release chan struct{}) {
		ctx := context.Background()
		if kind == cancelled {
			c, cancel := context.WithCancel(ctx)
			cancel()
			ctx = c
		}
		body := func(ctx context.Context) error {
			if release != nil {
				<-release
			}
			time.Sleep(took)
			switch kind {
			case fails:
				return errBoom
			case cancelled:
				return ctx.Err()
			}
			return nil
		}
		go func() {
			defer func() { recover() }()
			doPolicy.Do(ctx, func(ctx context.Context) (int, error) {
				err := body(ctx)
				if kind == panics {
					panic("call panicked")
				}
				return 0, err
			})
		}()
		go func() {
			pm, err := viaAllow.Allow(ctx)
			if err != nil {
				return
			}
			err = body(ctx)
			if kind == panics {
				err = errBoom // what the chain counts a panic as
			}
			pm.Done(err)
		}()
	}

	var held []chan struct{}
	for step := range 150 {
		switch r := rng.IntN(10); {
		case r < 6:
			took := time.Duration(rng.IntN(4)) * 30 * time.Millisecond
			call(outcomeKind(rng.IntN(4)), took, nil)
		case r < 7:
			release := make(chan struct{})
			held = append(held, release)
			call(outcomeKind(rng.IntN(2)), 0, release)
		case r < 8 && len(held) > 0:
			i := rng.IntN(len(held))
			close(held[i])
			held = append(held[:i], held[i+1:]...)
		default:
			time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		synctest.Wait()
		time.Sleep(200 * time.Millisecond) // let every call end
		synctest.Wait()
		if a, b := viaDo.State(), viaAllow.State(); a != b {
			t.Fatalf("step %d: state %v through Do, %v through Allow", step, a, b)
		}
		if a, b := viaDo.ErrorRate(), viaAllow.ErrorRate(); a != b {
			t.Fatalf("step %d: error rate %v through Do, %v through Allow", step, a, b)
		}
		if a, b := viaDo.SlowCallRate(), viaAllow.SlowCallRate(); a != b {
			t.Fatalf("step %d: slow-call rate %v through Do, %v through Allow", step, a, b)
		}
		mu.Lock()
		diff := testcheck.Diff(changes["do"], changes["allow"])
		mu.Unlock()
		if diff != "" {
			t.Fatalf("step %d: transitions (-Do +Allow):\n%s", step, diff)
		}
	}
	for _, release := range held {
		close(release)
	}
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(changes["do"]) == 0 {
		t.Errorf("no transition in 150 steps: the sequence did not exercise the breaker")
	}
}
