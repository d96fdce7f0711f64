package resilredis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/faulttest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	redis.SetLogger(quiet{}) // the pool logs every failed dial, which these tests cause on purpose
	goleak.VerifyTestMain(m)
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// attempts is a hook inside the guard's that counts the commands that
// reach go-redis, leaving out those that set up a new connection.
type attempts struct{ n atomic.Int32 }

func setup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "select", "auth":
		return true
	}
	return false
}

func (a *attempts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (a *attempts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !setup(cmd) {
			a.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (a *attempts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !setup(cmds[0]) {
			a.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// client returns a go-redis client for addr guarded by a Redis preset whose
// times are scaled down, and the counter of attempts.
func client(t *testing.T, addr string, retryWrites bool, tune func(*resilience.Preset)) (*redis.Client, *resilience.Guard, *attempts) {
	t.Helper()
	p := presets.RedisConfig()
	p.Retry.InitialBackoff = 10 * time.Millisecond
	p.Breaker.OpenTimeout = time.Second
	if tune != nil {
		tune(&p)
	}
	g, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	hook, err := NewHook(Config{Guard: g, RetryWrites: retryWrites})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true,
		ReadTimeout: 200 * time.Millisecond, DialTimeout: time.Second,
	})
	t.Cleanup(func() { rdb.Close() })
	a := new(attempts)
	rdb.AddHook(hook)
	rdb.AddHook(a)
	return rdb, g, a
}

func TestNewHookNeedsGuard(t *testing.T) {
	if _, err := NewHook(Config{}); err == nil || !strings.Contains(err.Error(), "Guard") {
		t.Errorf("NewHook without a guard: err = %v, want one naming Guard", err)
	}
	p := presets.RedisConfig()
	p.Timeout.Abandon = true
	g, _ := p.Build()
	if _, err := NewHook(Config{Guard: g}); err == nil || !strings.Contains(err.Error(), "Abandon") {
		t.Errorf("NewHook with a guard that abandons calls: err = %v, want one naming Abandon", err)
	}
}

func TestIsFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{redis.Nil, false},
		{errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), true},
		{context.DeadlineExceeded, true},
		{redis.ErrPoolTimeout, true},
	} {
		if got := IsFailure(tc.err); got != tc.want {
			t.Errorf("IsFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Answers from a working server, a missing key and a wrong command
// included, never count against it and are never retried.
func TestAnswersAreSuccesses(t *testing.T) {
	srv := testserver.Redis(t)
	rdb, g, a := client(t, srv.Addr, false, nil)
	ctx := t.Context()

	if err := rdb.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, "greeting").Result(); err != nil || v != "hello" {
		t.Fatalf("GET greeting = %q, %v", v, err)
	}
	a.n.Store(0)
	for range 10 {
		if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
			t.Fatalf("GET missing: err = %v, want redis.Nil itself", err)
		}
		err := rdb.LPush(ctx, "greeting", "x").Err()
		var rerr redis.Error
		if !errors.As(err, &rerr) || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
			t.Fatalf("LPUSH on a string: err = %v, want the server's WRONGTYPE", err)
		}
	}
	if n := a.n.Load(); n != 20 {
		t.Errorf("%d attempts for 20 commands: answers were retried", n)
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v after 20 answers, want closed", s)
	}

	// A pipeline with a missing key is a success too.
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "greeting")
		p.Get(ctx, "missing")
		return nil
	})
	if err != redis.Nil || len(cmds) != 2 || cmds[0].(*redis.StringCmd).Val() != "hello" {
		t.Errorf("pipeline: %v, %v", cmds, err)
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v after a pipeline, want closed", s)
	}
}

// Through a proxy that delays the answers on the client's one open
// connection past its read timeout: a read is retried, on a new
// connection, and succeeds; a write that reached the server is not
// retried, because it was applied; with RetryWrites it is, and it is
// applied twice.
func TestWritesThatReachedTheServerAreNotRetried(t *testing.T) {
	srv := testserver.Redis(t)
	proxy, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	ctx := t.Context()
	slowClient := func(retryWrites bool) (*redis.Client, *attempts) {
		rdb, _, a := client(t, proxy.Addr(), retryWrites, nil)
		if err := rdb.Ping(ctx).Err(); err != nil { // one open connection
			t.Fatal(err)
		}
		proxy.SlowExisting(300 * time.Millisecond)
		a.n.Store(0)
		return rdb, a
	}

	direct.Set(ctx, "k", "v", 0)
	rdb, a := slowClient(false)
	if v, err := rdb.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Errorf("GET on a slow connection: %q, %v; want the retry to succeed", v, err)
	}
	if n := a.n.Load(); n != 2 {
		t.Errorf("GET: %d attempts, want 2", n)
	}

	for _, tc := range []struct {
		retryWrites bool
		want        int // attempts of INCR, and so its value
	}{{false, 1}, {true, 2}} {
		direct.Del(ctx, "counter")
		rdb, a := slowClient(tc.retryWrites)
		err := rdb.Incr(ctx, "counter").Err()
		if n := a.n.Load(); int(n) != tc.want {
			t.Errorf("RetryWrites %v: INCR made %d attempts (err %v), want %d", tc.retryWrites, n, err, tc.want)
		}
		if tc.retryWrites == (err != nil) {
			t.Errorf("RetryWrites %v: INCR returned %v", tc.retryWrites, err)
		}
		time.Sleep(400 * time.Millisecond) // the delayed answer lands; the server applied INCR long before
		if v, err := direct.Get(ctx, "counter").Int(); err != nil || v != tc.want {
			t.Errorf("RetryWrites %v: counter = %d, %v; want %d", tc.retryWrites, v, err, tc.want)
		}
	}
}

// A write that could not reach the server is retried: it cannot have been
// applied.
func TestWritesThatNeverLeftAreRetried(t *testing.T) {
	rdb, g, a := client(t, "127.0.0.1:"+itoa(testserver.FreePort(t)), false, func(p *resilience.Preset) { p.Breaker.FailureThreshold = 100 })
	err := rdb.Incr(t.Context(), "counter").Err()
	if err == nil || errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("INCR with no server: err = %v, want the dial error", err)
	}
	if n := a.n.Load(); n != 3 {
		t.Errorf("INCR with no server: %d attempts, want 3", n)
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v, want closed below its threshold", s)
	}
}

func TestOpenBreakerRejects(t *testing.T) {
	srv := testserver.Redis(t)
	rdb, g, a := client(t, srv.Addr, false, nil)
	g.Breaker().ForceOpen()
	if err := rdb.Get(t.Context(), "k").Err(); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("GET with the breaker open: err = %v, want ErrOpen", err)
	}
	if n := a.n.Load(); n != 0 {
		t.Errorf("%d attempts reached go-redis with the breaker open", n)
	}
}

// The fault test: redis-server stops in the middle of a load of 8
// goroutines, and comes back.
func TestFaultRedisStops(t *testing.T) {
	srv := testserver.Redis(t)
	rdb, g, _ := client(t, srv.Addr, false, nil)
	var n atomic.Int64
	rep := faulttest.Run(t, faulttest.Outage{
		Breaker:   g.Breaker(),
		Threshold: presets.RedisConfig().Breaker.FailureThreshold,
		Call: func(ctx context.Context) error {
			k := "key" + itoa(int(n.Add(1)%100))
			if err := rdb.Set(ctx, k, "v", 0).Err(); err != nil {
				return err
			}
			return rdb.Get(ctx, k).Err()
		},
		Stop:  srv.Stop,
		Start: srv.Start,
	})
	t.Logf("fault: redis-server stopped under load (preset redis, open timeout scaled to 1s): %v", rep)
}

// The slow-server test: a proxy adds latency. Calls slower than the
// slow-call threshold open the breaker although they succeed; calls slower
// than the time limit are cut at it.
func TestFaultRedisSlow(t *testing.T) {
	srv := testserver.Redis(t)
	proxy, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	rdb, g, _ := client(t, proxy.Addr(), false, func(p *resilience.Preset) {
		p.Timeout.Duration = 150 * time.Millisecond
		p.Retry = nil
		p.Breaker.SlowCallThreshold = 20 * time.Millisecond
		p.Breaker.SlowCallRateThreshold = 0.5
		p.Breaker.WindowSize = 20
		p.Breaker.MinCalls = 10
	})
	ctx := t.Context()
	rdb.Set(ctx, "k", "v", 0)

	proxy.SetDelay(40 * time.Millisecond) // slow, within the time limit
	calls := 0
	for g.Breaker().State() == resilience.Closed && calls < 50 {
		if err := rdb.Get(ctx, "k").Err(); err != nil {
			t.Fatalf("a slow GET failed: %v", err)
		}
		calls++
	}
	if s := g.Breaker().State(); s != resilience.Open {
		t.Fatalf("breaker %v after %d slow successes, want open", s, calls)
	}
	slowRate := g.Breaker().SlowCallRate()

	g.Breaker().Reset()
	proxy.SetDelay(time.Second) // slower than the time limit
	start := time.Now()
	err = rdb.Get(ctx, "k").Err()
	took := time.Since(start)
	if !errors.Is(err, resilience.ErrTimeout) {
		t.Fatalf("GET through a 1s delay: err = %v, want ErrTimeout", err)
	}
	if took >= 900*time.Millisecond {
		t.Errorf("GET through a 1s delay returned after %v: not cut at the 150ms limit", took)
	}
	t.Logf("fault: redis slowed by 40ms per answer: breaker open after %d successful calls, slow-call rate %.2f; "+
		"slowed by 1s: call cut by the 150ms limit after %v", calls, slowRate, took.Round(time.Millisecond))
}

func itoa(i int) string { return strconv.Itoa(i) }
