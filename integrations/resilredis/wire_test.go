package resilredis

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
)

// TestWireCountsAttempts: the guard's Wire counts each command and each
// attempt of it sent, here against an address where nothing listens: 2
// commands, retried twice each.
func TestWireCountsAttempts(t *testing.T) {
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "cache", Stages: []resilience.Stage{retry}}))
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	defer rdb.Close()
	if err := Attach(rdb, Config{Guard: g}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rdb.Get(ctx, "k")
	rdb.Get(ctx, "k")
	st := Wire(g).Stats()
	if calls, attempts := st.Calls[0].N, st.Calls[1].N; calls != 2 || attempts != 6 {
		t.Errorf("Wire: %d calls, %d attempts; want 2 and 6", calls, attempts)
	}
}
