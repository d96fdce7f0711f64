// Run: go run ./examples/grpc-client
//
// A gRPC client call guarded by the gRPC preset: a 30s limit for the whole
// call, 3 retries, and a circuit breaker shared by every method of the
// backend. The client here is a stand-in with the shape of a generated one,
// so the example runs without a server; the grpc integration module wraps a
// real *grpc.ClientConn the same way.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

type GetUserRequest struct{ ID int }

type User struct {
	ID   int
	Name string
}

// UsersClient has the shape of a generated gRPC client.
type UsersClient interface {
	GetUser(ctx context.Context, req *GetUserRequest) (*User, error)
	CountUsers(ctx context.Context) (int, error)
}

var errUnavailable = errors.New("rpc error: code = Unavailable desc = connection refused")

// flakyUsers fails its first calls, as a backend does while it restarts.
type flakyUsers struct{ failures int }

func (c *flakyUsers) GetUser(ctx context.Context, req *GetUserRequest) (*User, error) {
	if c.failures > 0 {
		c.failures--
		return nil, errUnavailable
	}
	return &User{ID: req.ID, Name: "ada"}, nil
}

func (c *flakyUsers) CountUsers(ctx context.Context) (int, error) { return 1, nil }

func main() {
	var client UsersClient = &flakyUsers{failures: 2}

	// One guard for the backend, made once and shared by every method.
	cfg := presets.GRPCConfig()
	cfg.Name = "users"
	cfg.Retry.InitialBackoff /= 10 // only to keep the example quick
	users, err := cfg.Build()
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	user, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, &GetUserRequest{ID: 42})
	})
	if err != nil {
		log.Fatal(err)
	}
	n, err := resilience.Do(ctx, users, func(ctx context.Context) (int, error) {
		return client.CountUsers(ctx)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("user %d is %s, %d user(s) in all; breaker %s, error rate %.0f%%\n",
		user.ID, user.Name, n, users.Breaker().State(), 100*users.Breaker().ErrorRate())
}
