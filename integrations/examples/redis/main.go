// Run: cd integrations && go run ./examples/redis -addr 127.0.0.1:6379
//
// A go-redis client guarded by the Redis preset through resilredis.Attach.
// A missing key (redis.Nil) is an answer, not a failure; with the breaker
// forced open, commands fail at once without reaching the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilredis"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "the Redis server's `host:port`")
	flag.Parse()

	guard := presets.Redis()
	// The guard retries, so go-redis retries neither commands nor dials;
	// and it honours deadlines. Attach checks these options.
	rdb := redis.NewClient(&redis.Options{Addr: *addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	defer rdb.Close()
	if err := resilredis.Attach(rdb, resilredis.Config{Guard: guard}); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	if err := rdb.Set(ctx, "example:greeting", "hello", 0).Err(); err != nil {
		log.Fatalf("SET: %v", err)
	}
	v, err := rdb.Get(ctx, "example:greeting").Result()
	fmt.Printf("GET example:greeting = %q, %v\n", v, err)

	for range 5 {
		err = rdb.Get(ctx, "example:missing").Err()
	}
	fmt.Printf("GET example:missing five times: %v; breaker %v (a missing key is an answer)\n", err, guard.Breaker().State())

	guard.Breaker().ForceOpen()
	err = rdb.Get(ctx, "example:greeting").Err()
	fmt.Printf("GET with the breaker forced open: ErrOpen %v: %v\n", errors.Is(err, resilience.ErrOpen), err)
	guard.Breaker().Reset()
	rdb.Del(ctx, "example:greeting")
}
