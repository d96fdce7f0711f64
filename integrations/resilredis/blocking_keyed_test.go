package resilredis_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilredis"
)

// A guard with a whole-dependency Breaker outside a KeyedBreaker (the
// two-level shape the KeyedBreaker's doc recommends): while the node's own
// breaker is half-open, a blocking command is refused before it is sent,
// as with one breaker, and is not the node's probe. (Before, only the
// outer breaker was looked at.)
func TestBlockingCommandsWaitForBothBreakers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outer, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "all", FailureThreshold: 100})
		if err != nil {
			t.Fatal(err)
		}
		keyed, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{MaxEjectedPercent: 100,
			Breaker: resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		g, err := resilience.NewGuard(resilience.GuardConfig{Name: "redis", Stages: []resilience.Stage{outer, keyed}})
		if err != nil {
			t.Fatal(err)
		}
		h, err := resilredis.NewHook(resilredis.Config{Guard: g, Key: "node-1:6379"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		sent := 0
		process := h.ProcessHook(func(ctx context.Context, cmd redis.Cmder) error {
			sent++
			if cmd.Name() == "get" {
				return io.EOF
			}
			return nil
		})
		process(ctx, redis.NewStringCmd(ctx, "get", "k")) // the node fails: its breaker opens
		b, _ := keyed.Lookup("node-1:6379")
		if b == nil || b.State() != resilience.Open {
			t.Fatalf("node breaker %v", b)
		}
		time.Sleep(2 * time.Second)
		if b.State() != resilience.HalfOpen {
			t.Fatalf("node breaker %v, want half-open", b.State())
		}
		sent = 0
		err = process(ctx, redis.NewStringSliceCmd(ctx, "blpop", "q", 5))
		if sent != 0 || !errors.Is(err, resilience.ErrRejected) {
			t.Errorf("BLPOP while the node's breaker is half-open: sent %d, err %v; want refused before it is sent", sent, err)
		}
	})
}
