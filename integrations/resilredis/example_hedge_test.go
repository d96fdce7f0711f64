package resilredis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilredis"
)

// standIn answers GET and INCR in place of a Redis server, so that the
// example runs without one: the first attempt of each command is slow
// (500ms), a hedge is not.
type standIn struct{ visits int64 }

func (*standIn) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *standIn) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if resilience.Attempt(ctx) == 1 {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		switch cmd := cmd.(type) {
		case *redis.StringCmd: // GET
			cmd.SetVal("ada")
		case *redis.IntCmd: // INCR
			s.visits++
			cmd.SetVal(s.visits)
		}
		return nil
	}
}

func (*standIn) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A Hedge in the guard: a GET still unanswered after 20ms is sent again,
// and the first answer taken; an INCR, a write, is never sent twice at
// once, however slow. A stand-in answers in place of a server, its first
// attempts slow, so that the example runs without one.
func ExampleHook_hedge() {
	hedge, err := resilience.NewHedge(resilience.HedgeConfig{
		Name:     "sessions",
		Delay:    20 * time.Millisecond, // or Latency, with a quantile of the recent answers
		NoBudget: true,                  // for the example; by default hedges add at most 5% to the calls
	})
	if err != nil {
		panic(err)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "sessions"})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{
		Name:   "sessions",
		Stages: []resilience.Stage{hedge, breaker}, // each hedge an attempt the breaker counts
	})
	if err != nil {
		panic(err)
	}
	hook, err := resilredis.NewHook(resilredis.Config{Guard: guard})
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	defer rdb.Close()
	rdb.AddHook(hook)
	rdb.AddHook(&standIn{})

	ctx := context.Background()
	start := time.Now()
	name, err := rdb.Get(ctx, "session:42").Result()
	fmt.Println(name, err, time.Since(start) < 250*time.Millisecond, "hedges sent:", hedge.Stats().Calls[0].N)

	start = time.Now()
	visits, err := rdb.Incr(ctx, "visits").Result()
	fmt.Println(visits, err, time.Since(start) >= 500*time.Millisecond, "hedges sent:", hedge.Stats().Calls[0].N)
	// Output:
	// ada <nil> true hedges sent: 1
	// 1 <nil> true hedges sent: 1
}
