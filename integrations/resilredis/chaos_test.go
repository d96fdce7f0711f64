package resilredis

import (
	"errors"
	"net"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// A chaos hook inside the guard's, against a real redis-server: a
// made-up read time-out is what a real one is to the guard: a GET is
// retried, a write is not (it may have been applied), each attempt is
// counted on the wire, and the connection set-up goes untouched.
func TestChaosHookUnderTheGuard(t *testing.T) {
	srv := testserver.Redis(t)
	if !errors.As(ErrTimeoutFault, new(net.Error)) || !ErrTimeoutFault.(net.Error).Timeout() {
		t.Fatal("ErrTimeoutFault is not a net.Error time-out")
	}
	g := newGuard(must(resilience.NewRetry(resilience.RetryConfig{Name: "redis", MaxRetries: 2, NoBackoff: true})))
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.5, Seed: 3, Err: ErrTimeoutFault}))
	rdb, sent := guardedClient(t, srv.Addr, g, false)
	rdb.AddHook(ChaosHook(chaos))
	const calls = 200
	failed := 0
	for range calls {
		if err := rdb.Get(t.Context(), "missing").Err(); err != redis.Nil {
			if err != ErrTimeoutFault {
				t.Fatalf("a failed GET: %v, want the made-up time-out", err)
			}
			failed++
		}
	}
	injected := int(chaos.Stats().Calls[1].N)
	if injected < 100 || injected > 250 || failed == 0 || failed > 50 {
		t.Errorf("%d GETs: %d failed every attempt, %d faults injected; want them retried", calls, failed, injected)
	}
	if w := Wire(g).Stats().Calls; w[0].N != calls || int(w[1].N) != calls-failed+injected {
		t.Errorf("wire %+v; want %d calls, and an attempt for each served or faulted", w, calls)
	}
	t.Logf("%d GETs: %d attempts faulted and retried, %d failed every attempt; %d reached go-redis", calls, injected, failed, sent.n.Load())

	// A write is not sent again after a made-up time-out: it may have
	// been applied.
	if err := chaos.SetRate(1); err != nil {
		t.Fatal(err)
	}
	before := chaos.Stats().Calls[1].N
	if err := rdb.Incr(t.Context(), "n").Err(); err != ErrTimeoutFault {
		t.Errorf("INCR: %v", err)
	}
	if n := chaos.Stats().Calls[1].N - before; n != 1 {
		t.Errorf("INCR faulted %d times, want once: no retry of a write", n)
	}
}

// A nil chaos stage is an error on the command, not a panic.
func TestChaosHookNil(t *testing.T) {
	srv := testserver.Redis(t)
	rdb := redis.NewClient(documented(srv.Addr))
	t.Cleanup(func() { rdb.Close() })
	rdb.AddHook(ChaosHook(nil))
	if err := rdb.Ping(t.Context()).Err(); err == nil {
		t.Error("a nil chaos stage: no error")
	}
}
