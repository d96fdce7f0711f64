package presets_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

type User struct{ Name string }

type Order struct{ ID int }

// client stands for a generated gRPC client.
type client struct{ calls int }

func (c *client) GetUser(ctx context.Context, id int) (*User, error) {
	c.calls++
	if c.calls == 1 {
		return nil, errors.New("unavailable") // a transient failure, retried
	}
	return &User{Name: "ada"}, nil
}

func (c *client) ListOrders(ctx context.Context, user string) ([]Order, error) {
	return []Order{{ID: 1}, {ID: 2}}, nil
}

func ExampleGRPC() {
	client := &client{}
	users := presets.GRPC() // one guard per backend, shared by every call to it

	ctx := context.Background()
	user, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, 42)
	})
	if err != nil {
		panic(err)
	}
	orders, err := resilience.Do(ctx, users, func(ctx context.Context) ([]Order, error) {
		return client.ListOrders(ctx, user.Name)
	})
	fmt.Println(user.Name, len(orders), err, users.Breaker().State())
	// Output: ada 2 <nil> closed
}

func ExampleRedisConfig() {
	cfg := presets.RedisConfig()
	cfg.Name = "sessions"                            // names the policies in errors and metrics
	cfg.Breaker.OpenTimeout = 5 * time.Second        // probe sooner than the preset's 15s
	cfg.Retry.InitialBackoff = 20 * time.Millisecond // a cache answers fast or not at all
	sessions, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	fmt.Println(sessions.Name(), sessions.Timeout().Duration())
	// Output: sessions 5s
}

func ExampleDatabase() {
	db := presets.Database()
	attempts := 0
	_, err := resilience.Do(context.Background(), db, func(ctx context.Context) (int64, error) {
		attempts++ // an INSERT, say: never run twice
		return 0, errors.New("connection reset")
	})
	fmt.Println(attempts, err)
	// Output: 1 connection reset
}
