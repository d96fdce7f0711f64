package resilredis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilredis"
	"github.com/resilience-go/resilience/presets"
)

// Every command and pipeline of a go-redis client through the Redis
// preset. This example needs a Redis server on 127.0.0.1:6379, so it has
// no Output line: go test compiles it but does not run it. The package's
// tests run the same wiring against a redis-server they start themselves.
func ExampleNewHook() {
	guard := presets.Redis() // one guard per Redis server or cluster
	hook, err := resilredis.NewHook(resilredis.Config{Guard: guard})
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		MaxRetries:            -1,   // the guard retries, with backoff and its breaker: go-redis must not
		DialerRetries:         1,    // nor dial again itself
		ContextTimeoutEnabled: true, // so that the guard's time limit reaches the socket
	})
	defer rdb.Close()
	rdb.AddHook(hook)

	ctx := context.Background()
	session, err := rdb.Get(ctx, "session:42").Result()
	switch {
	case errors.Is(err, redis.Nil):
		fmt.Println("no session") // an answer: neither retried nor counted against the breaker
	case errors.Is(err, resilience.ErrRejected):
		fmt.Println("Redis is down; not asking it") // refused at once by a stage: here, the open breaker
	case err != nil:
		fmt.Println("failed:", err) // after the preset's 2 retries, for a read
	default:
		fmt.Println("session", session)
	}
}

// Attach checks that the client leaves retrying to the guard and honours
// its time limits, then adds the hook: a client with go-redis's defaults
// is refused, the error naming each option to set.
func ExampleAttach() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"}) // go-redis's defaults
	defer rdb.Close()
	err := resilredis.Attach(rdb, resilredis.Config{Guard: presets.Redis()})
	for _, option := range []string{"MaxRetries", "DialerRetries", "ContextTimeoutEnabled"} {
		fmt.Println(option, strings.Contains(fmt.Sprint(err), "Options."+option))
	}

	rdb = redis.NewClient(&redis.Options{
		Addr:                  "127.0.0.1:6379",
		MaxRetries:            -1,
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	})
	defer rdb.Close()
	fmt.Println(resilredis.Attach(rdb, resilredis.Config{Guard: presets.Redis()}))
	// Output:
	// MaxRetries true
	// DialerRetries true
	// ContextTimeoutEnabled true
	// <nil>
}

// A Redis Cluster with one breaker per node: a node that fails opens its
// own breaker, and the commands for the other nodes' slots go on. The
// example needs a cluster on 127.0.0.1:7000, so go test compiles it but
// does not run it; TestClusterBreakerPerNode runs the same wiring against
// three redis-servers in cluster mode.
func ExampleAttachCluster() {
	p := presets.RedisConfig()
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{} // one breaker per node, at most 10% of them open
	guard, err := p.Build()
	if err != nil {
		panic(err)
	}
	opt := &redis.ClusterOptions{
		Addrs:                 []string{"127.0.0.1:7000"},
		DialerRetries:         1,
		ContextTimeoutEnabled: true,
	}
	if err := resilredis.AttachCluster(opt, resilredis.Config{Guard: guard}); err != nil {
		panic(err)
	}
	rdb := redis.NewClusterClient(opt)
	defer rdb.Close()

	err = rdb.Set(context.Background(), "session:42", "alice", 0).Err()
	var open *resilience.OpenError
	if errors.As(err, &open) {
		fmt.Println("the node of this slot is cut off:", open.Key) // the node's address
	}
}
