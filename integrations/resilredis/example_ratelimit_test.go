package resilredis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilredis"
)

// A quota of 600 calls a minute to a partner's API, shared by the 3
// replicas of a service through Redis: each replica makes the same
// limiter, on the same Key. Should Redis be down, each replica admits its
// share, 200 a minute. This example needs a Redis server on
// 127.0.0.1:6379, so it has no Output line: go test compiles it but does
// not run it. The package's tests run the same limiter against a
// redis-server they start themselves.
func ExampleNewRateLimiter() {
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		MaxRetries:            -1,   // a retry would count the call twice against the quota
		DialerRetries:         1,    // and would not fit in RedisTimeout anyway
		ContextTimeoutEnabled: true, // so that RedisTimeout reaches the socket: required
	})
	defer rdb.Close()
	limiter, err := resilredis.NewRateLimiter(rdb, resilredis.RateLimitConfig{
		Name:     "partner-api",
		Rate:     600,
		Period:   time.Minute,
		Replicas: 3,
		MaxWait:  200 * time.Millisecond, // a call may wait this long for the quota
	})
	if err != nil {
		panic(err)
	}

	err = limiter.Run(context.Background(), func(ctx context.Context) error {
		return nil // the call to the partner's API
	})
	var limited *resilredis.RateLimitedError
	switch {
	case errors.As(err, &limited):
		// Matches resilience.ErrRejected too: the call did not run.
		fmt.Println("over the quota; retry in", limited.RetryAfter())
	case err != nil:
		fmt.Println("the call failed:", err) // never an error of Redis's
	default:
		fmt.Println("done")
	}

	// The limiter is a stage, for a guard with the others.
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "partner-api", Stages: []resilience.Stage{limiter}})
	if err != nil {
		panic(err)
	}
	_, err = resilience.Do(context.Background(), guard, func(ctx context.Context) (string, error) {
		return "answer", nil
	})
	fmt.Println(errors.Is(err, resilience.ErrRejected))
}
