// Run: go run ./examples/database-timeout
//
// A database query under a time limit, with the database preset's breaker
// and no retries: a write that timed out may have committed, so it is never
// run again. The store here is a stand-in that honours its context as
// database/sql does; the preset gives real queries 10s, this example
// 100ms so that it ends quickly.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

type User struct {
	ID   int
	Name string
}

// store answers after latency, or gives up when ctx ends, as
// (*sql.DB).QueryRowContext does.
type store struct{ latency time.Duration }

func (s *store) UserByID(ctx context.Context, id int) (*User, error) {
	select {
	case <-time.After(s.latency):
		return &User{ID: id, Name: "ada"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func main() {
	ctx := context.Background()

	// The helper alone: a time limit on one query.
	fast := &store{latency: 5 * time.Millisecond}
	user, err := resilience.WithTimeoutResult(ctx, 100*time.Millisecond, func(ctx context.Context) (*User, error) {
		return fast.UserByID(ctx, 42)
	})
	fmt.Println("fast query:", user.Name, err)

	// The database preset, its time limit shortened for the example.
	cfg := presets.DatabaseConfig()
	cfg.Timeout.Duration = 100 * time.Millisecond
	db, err := cfg.Build()
	if err != nil {
		log.Fatal(err)
	}
	slow := &store{latency: time.Second} // a lock wait, say
	start := time.Now()
	_, err = resilience.Do(ctx, db, func(ctx context.Context) (*User, error) {
		return slow.UserByID(ctx, 42)
	})
	fmt.Printf("slow query: %v after %v\n", err, time.Since(start).Round(10*time.Millisecond))
	fmt.Println("is a timeout:", errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
}
