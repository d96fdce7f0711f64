package resilredis

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// Two chaos hooks on one client (say one for latency, one for errors):
// each lets through only the set-up commands of its own calls, so the
// inner one faults as configured. (Before, any hook's mark turned the
// inner one off.)
func TestChaosHooksStack(t *testing.T) {
	srv := testserver.Redis(t)
	rdb := redis.NewClient(documented(srv.Addr))
	t.Cleanup(func() { rdb.Close() })
	outer := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0, Seed: 1}))
	boom := errors.New("inner chaos")
	inner := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: boom}))
	rdb.AddHook(ChaosHook(outer))
	rdb.AddHook(ChaosHook(inner))
	err := rdb.Get(t.Context(), "missing").Err()
	if err != boom {
		t.Errorf("inner chaos at rate 1: GET returned %v, want %v; inner stats %+v", err, boom, inner.Stats().Calls)
	}
}

// A faulted pipeline sets the fault on every command; a retried one
// that then succeeds leaves no stale fault on its commands.
func TestChaosHookPipelineErrors(t *testing.T) {
	srv := testserver.Redis(t)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: ErrTimeoutFault}))
	rdb := redis.NewClient(documented(srv.Addr))
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(ChaosHook(chaos))
	cmds, err := rdb.Pipelined(t.Context(), func(p redis.Pipeliner) error {
		p.Get(t.Context(), "a")
		p.Get(t.Context(), "b")
		return nil
	})
	if err != ErrTimeoutFault {
		t.Fatalf("pipeline: %v", err)
	}
	for i, c := range cmds {
		if c.Err() != ErrTimeoutFault {
			t.Errorf("cmd %d: %v", i, c.Err())
		}
	}

	g := newGuard(must(resilience.NewRetry(resilience.RetryConfig{Name: "redis", MaxRetries: 3, NoBackoff: true})))
	ch2 := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.5, Seed: 3, Err: ErrTimeoutFault}))
	rdb2, _ := guardedClient(t, srv.Addr, g, false)
	rdb2.AddHook(ChaosHook(ch2))
	rdb2.Set(t.Context(), "k", "v", 0)
	for i := range 50 {
		cmds, err := rdb2.Pipelined(t.Context(), func(p redis.Pipeliner) error {
			p.Get(t.Context(), "k")
			p.Get(t.Context(), "k")
			return nil
		})
		if err != nil {
			continue
		}
		for j, c := range cmds {
			if c.Err() != nil || c.(*redis.StringCmd).Val() != "v" {
				t.Fatalf("pipeline %d cmd %d after a retry: %v %q", i, j, c.Err(), c.(*redis.StringCmd).Val())
			}
		}
	}
}

// Injected latency cut by a per-attempt limit is retried, as a slow
// server's attempt is.
func TestChaosHookLatencyIsASlowServer(t *testing.T) {
	srv := testserver.Redis(t)
	per := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "attempt", Duration: 30 * time.Millisecond}))
	g := newGuard(must(resilience.NewRetry(resilience.RetryConfig{Name: "redis", MaxRetries: 2, NoBackoff: true})), per)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, NoError: true, Latency: time.Second}))
	rdb, _ := guardedClient(t, srv.Addr, g, false)
	rdb.AddHook(ChaosHook(chaos))
	err := rdb.Get(t.Context(), "k").Err()
	if w := Wire(g).Stats().Calls; w[1].N != 3 {
		t.Errorf("attempts %d (err %v), want 3", w[1].N, err)
	}
}
