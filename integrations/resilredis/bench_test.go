package resilredis

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience/presets"
)

// The cost of the hook on a command that succeeds at once, with a next
// hook that does no I/O.
func BenchmarkHook(b *testing.B) {
	hook, err := NewHook(Config{Guard: presets.Redis()})
	if err != nil {
		b.Fatal(err)
	}
	next := func(context.Context, redis.Cmder) error { return nil }
	guarded := hook.ProcessHook(next)
	cmd := redis.NewStringCmd(context.Background(), "get", "k")
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		fn   redis.ProcessHook
	}{{"direct", next}, {"guarded", guarded}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.fn(ctx, cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
