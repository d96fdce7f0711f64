package resilredis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// The tests of this file hold the Hook to the guard it is given, any
// guard: every stage runs, in order, per-attempt time limits, bulkheads and
// all, against a redis-server on 127.0.0.1.

// must returns v, and panics on err: a stage of these tests that cannot
// be built is a mistake in the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// timeouts is a Timeout stage and the results its observer was told of.
type timeouts = stagetest.Timeouts

func newTimeout(name string, d time.Duration) *timeouts { return stagetest.Timeout(name, d) }

func newGuard(stages ...resilience.Stage) *resilience.Guard {
	return stagetest.Guard("redis", stages...)
}

func newRetry(retries int) *resilience.Retry {
	return stagetest.Retry("redis", retries, time.Millisecond)
}

func newBreaker() *resilience.Breaker { return stagetest.Breaker("redis") }

// guardedClient returns a client for addr guarded by g, its read timeout longer
// than the guards' limits, so that these cut the commands, and the counter
// of the attempts that reach go-redis.
func guardedClient(t *testing.T, addr string, g *resilience.Guard, retryWrites bool) (*redis.Client, *attempts) {
	t.Helper()
	hook, err := NewHook(Config{Guard: g, RetryWrites: retryWrites})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true,
		ReadTimeout: 10 * time.Second, DialTimeout: time.Second,
	})
	t.Cleanup(func() { rdb.Close() })
	a := new(attempts)
	rdb.AddHook(hook)
	rdb.AddHook(a)
	return rdb, a
}

// slowProxy returns a proxy to a new redis-server, and a client to its
// direct address.
func slowProxy(t *testing.T) (*faultproxy.Proxy, *redis.Client) {
	t.Helper()
	srv := testserver.Redis(t)
	proxy, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { direct.Close() })
	return proxy, direct
}

// The guard's Timeout stage ends each command that outlives it, so that
// its observers, and the timeout metrics built on them, count every
// time-out, and the error is the stage's own.
func TestTimeoutsAreCountedByTheGuardsTimeout(t *testing.T) {
	proxy, _ := slowProxy(t)
	total := newTimeout("total", 100*time.Millisecond)
	rdb, _ := guardedClient(t, proxy.Addr(), newGuard(total.Timeout, newBreaker()), false)
	proxy.SetDelay(600 * time.Millisecond)
	for i := range 2 {
		err := rdb.Get(t.Context(), "k").Err()
		var te *resilience.TimeoutError
		if !errors.As(err, &te) || te.Name != "total" {
			t.Fatalf("GET %d through a 600ms delay: %v; want the *TimeoutError of the stage \"total\"", i+1, err)
		}
	}
	want := []resilience.TimeoutResult{resilience.TimeoutExpired, resilience.TimeoutExpired}
	if got := total.Got(); !slices.Equal(got, want) {
		t.Errorf("the Timeout stage saw %v, want %v", got, want)
	}
}

// Timeout(total) → Retry → Breaker → Timeout(per attempt), with the
// answers on the client's one open connection delayed: the per-attempt
// limit cuts the first attempt, the retry runs the command again on a new
// connection, and it succeeds well within the total limit.
func TestPerAttemptTimeoutRetriesAHungAttempt(t *testing.T) {
	proxy, direct := slowProxy(t)
	direct.Set(t.Context(), "k", "v", 0)
	total := newTimeout("total", 5*time.Second)
	attempt := newTimeout("attempt", 200*time.Millisecond)
	rdb, a := guardedClient(t, proxy.Addr(), newGuard(total.Timeout, newRetry(2), newBreaker(), attempt.Timeout), false)
	if err := rdb.Ping(t.Context()).Err(); err != nil { // one open connection
		t.Fatal(err)
	}
	proxy.SlowExisting(600 * time.Millisecond)
	a.n.Store(0)
	total.Reset()
	attempt.Reset()

	start := time.Now()
	v, err := rdb.Get(t.Context(), "k").Result()
	took := time.Since(start)
	if err != nil || v != "v" {
		t.Errorf("GET: %q, %v; want the retry to get \"v\"", v, err)
	}
	if n := a.n.Load(); n != 2 {
		t.Errorf("GET: %d attempts, want 2", n)
	}
	want := []resilience.TimeoutResult{resilience.TimeoutExpired, resilience.TimeoutSucceeded}
	if got := attempt.Got(); !slices.Equal(got, want) {
		t.Errorf("per-attempt limit: %v, want %v", got, want)
	}
	if got := total.Got(); !slices.Equal(got, want[1:]) {
		t.Errorf("total limit: %v, want %v", got, want[1:])
	}
	if took >= 5*time.Second {
		t.Errorf("took %v, beyond the 5s total limit", took)
	}
}

// A write cut by a per-attempt limit may have been applied: without
// RetryWrites it is sent once, and the server counts it once; with it, it
// is sent again.
func TestWriteIsSentOnceUnderAPerAttemptTimeout(t *testing.T) {
	proxy, direct := slowProxy(t)
	for _, tc := range []struct {
		retryWrites bool
		want        int // attempts of INCR, and so its value
	}{{false, 1}, {true, 2}} {
		direct.Del(t.Context(), "counter")
		proxy.SlowExisting(0)
		attempt := newTimeout("attempt", 200*time.Millisecond)
		g := newGuard(newTimeout("total", 5*time.Second).Timeout, newRetry(2), newBreaker(), attempt.Timeout)
		rdb, a := guardedClient(t, proxy.Addr(), g, tc.retryWrites)
		if err := rdb.Ping(t.Context()).Err(); err != nil {
			t.Fatal(err)
		}
		proxy.SlowExisting(600 * time.Millisecond)
		a.n.Store(0)

		err := rdb.Incr(t.Context(), "counter").Err()
		var te *resilience.TimeoutError
		if tc.retryWrites {
			if err != nil {
				t.Errorf("RetryWrites: INCR: %v, want the retry on a new connection to succeed", err)
			}
		} else if !errors.As(err, &te) || te.Name != "attempt" {
			t.Errorf("INCR: %v, want the per-attempt limit's *TimeoutError", err)
		}
		if n := a.n.Load(); int(n) != tc.want {
			t.Errorf("RetryWrites %v: INCR made %d attempts, want %d", tc.retryWrites, n, tc.want)
		}
		// The proxy delays the answers only: the server ran every INCR it was sent.
		if v, err := direct.Get(t.Context(), "counter").Int(); err != nil || v != tc.want {
			t.Errorf("RetryWrites %v: counter = %d, %v; want %d", tc.retryWrites, v, err, tc.want)
		}
	}
}

// Any guard will do, with or without a breaker or a retry; nil and the
// zero Guard are refused, naming the field.
func TestAnyGuardIsAccepted(t *testing.T) {
	srv := testserver.Redis(t)
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "redis", MaxConcurrent: 4}))
	for _, tc := range []struct {
		name   string
		stages []resilience.Stage
	}{
		{"a Timeout alone", []resilience.Stage{newTimeout("total", 5*time.Second).Timeout}},
		{"a Retry and a Bulkhead", []resilience.Stage{newRetry(2), bulkhead}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, _ := guardedClient(t, srv.Addr, newGuard(tc.stages...), false)
			if err := rdb.Set(t.Context(), "k", tc.name, 0).Err(); err != nil {
				t.Fatal(err)
			}
			if v, err := rdb.Get(t.Context(), "k").Result(); err != nil || v != tc.name {
				t.Errorf("GET: %q, %v; want %q", v, err, tc.name)
			}
			if err := rdb.Get(t.Context(), "missing").Err(); err != redis.Nil {
				t.Errorf("GET missing: %v, want redis.Nil itself", err)
			}
		})
	}
	for _, tc := range []struct {
		name  string
		guard *resilience.Guard
		want  string
	}{{"nil", nil, "nil"}, {"zero", &resilience.Guard{}, "zero"}} {
		_, err := NewHook(Config{Guard: tc.guard})
		if err == nil || !strings.Contains(err.Error(), "Config.Guard") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewHook with a %s guard: err = %v, want one naming Config.Guard", tc.name, err)
		}
	}
}

// A bulkhead in the guard bounds the commands in flight: while a blocking
// command holds the only slot, the next is refused without being sent,
// with the bulkhead's error, and is not retried.
func TestBulkheadBoundsConcurrentCommands(t *testing.T) {
	srv := testserver.Redis(t)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "redis", MaxConcurrent: 1}))
	rdb, a := guardedClient(t, srv.Addr, newGuard(newRetry(2), bulkhead), false)
	sent := make(chan struct{})
	rdb.AddHook(onCommand{"blpop", sent}) // inside the guard's hook: the slot is taken

	popped := make(chan error, 1)
	go func() { popped <- rdb.BLPop(t.Context(), 5*time.Second, "queue").Err() }()
	<-sent

	err := rdb.Get(t.Context(), "k").Err()
	if !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Errorf("GET with the bulkhead full: %v; want an error matching ErrRejected and ErrBulkheadFull", err)
	}
	if n := a.n.Load(); n != 1 {
		t.Errorf("%d commands reached go-redis, want 1, BLPOP", n)
	}
	direct.LPush(t.Context(), "queue", "job")
	if err := <-popped; err != nil {
		t.Errorf("BLPOP: %v", err)
	}
	if n := bulkhead.InUse(); n != 0 {
		t.Errorf("%d slots in use once both commands are done", n)
	}
}

// onCommand is a hook that closes sent when the command named name is
// about to be sent.
type onCommand struct {
	name string
	sent chan struct{}
}

func (o onCommand) DialHook(next redis.DialHook) redis.DialHook { return next }
func (o onCommand) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == o.name {
			close(o.sent)
		}
		return next(ctx, cmd)
	}
}
func (o onCommand) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
