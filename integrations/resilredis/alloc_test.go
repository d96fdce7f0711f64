//go:build !race

package resilredis

// Allocation counts mean nothing under the race detector, which allocates
// (and empties sync.Pools): these tests are built without it.

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// A guard without a Hedge pays nothing for hedging: a read, a write and a
// pipeline cost what they cost before the Hook learnt to hedge
// (maxHookAllocs), over a next hook that does no I/O. With a Hedge in the
// guard, a write pays for its Unhedged mark alone.
func TestHookAllocs(t *testing.T) {
	ctx := context.Background()
	get, incr := redis.NewStringCmd(ctx, "get", "k"), redis.NewIntCmd(ctx, "incr", "k")
	count := func(t *testing.T, g *resilience.Guard) (read, write, pipeline float64) {
		hook, err := NewHook(Config{Guard: g})
		if err != nil {
			t.Fatal(err)
		}
		process := hook.ProcessHook(func(context.Context, redis.Cmder) error { return nil })
		pipe := hook.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { return nil })
		cmds := []redis.Cmder{get}
		return testing.AllocsPerRun(1000, func() { process(ctx, get) }),
			testing.AllocsPerRun(1000, func() { process(ctx, incr) }),
			testing.AllocsPerRun(1000, func() { pipe(ctx, cmds) })
	}
	read, write, pipeline := count(t, presets.Redis())
	if read > maxHookAllocs || write > maxHookAllocs || pipeline > maxHookAllocs {
		t.Errorf("without a Hedge: %v allocations per GET, %v per INCR, %v per pipeline; want at most %d", read, write, pipeline, maxHookAllocs)
	}

	p := presets.RedisConfig()
	hedge := must(resilience.NewHedge(resilience.HedgeConfig{Delay: time.Hour}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "redis", Stages: []resilience.Stage{must(p.Build()), hedge}})) // where it sits does not matter here
	hread, hwrite, hpipeline := count(t, g)
	t.Logf("with a Hedge: %v allocations per GET (a copy of the command, its goroutine), %v per INCR, %v per pipeline", hread, hwrite, hpipeline)
	if hwrite > write+1 || hpipeline > pipeline+1 {
		t.Errorf("with a Hedge: %v allocations per INCR, %v per pipeline; want at most one more than the %v and %v without", hwrite, hpipeline, write, pipeline)
	}
	if hread <= read {
		t.Errorf("with a Hedge: %v allocations per GET, no more than without: was it hedged?", hread)
	}
}

// maxHookAllocs is what the Hook allocates for a command through the Redis
// preset, sent once, with Go 1.26: the guard's stages and the call's
// closure.
const maxHookAllocs = 16
