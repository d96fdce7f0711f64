package resilredis

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
)

// calls counts how a breaker's calls ended.
type calls struct {
	mu sync.Mutex
	n  map[resilience.CallResult]int
}

func observe(b *resilience.Breaker) *calls {
	c := &calls{n: map[resilience.CallResult]int{}}
	b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[r]++
	}})
	return c
}

func (c *calls) get(r resilience.CallResult) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[r]
}

// documentedClient returns a client for addr with the options the package
// documents, guarded by g.
func documentedClient(t *testing.T, addr string, g *resilience.Guard) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	hook, err := NewHook(Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	rdb.AddHook(hook)
	return rdb
}

// A blocking command waits as long as it asked the server to, beyond the
// guard's limits (presets.Redis: 2s per attempt, 5s in all), and one that
// ends empty at its own timeout is an answer: three idle BLPOPs of 3s
// leave the breaker closed, with no failure counted.
func TestIdleBlockingCommandsAreAnswers(t *testing.T) {
	srv := testserver.Redis(t)
	g := presets.Redis()
	seen := observe(g.Breaker())
	rdb := documentedClient(t, srv.Addr, g)
	for i := range 3 {
		start := time.Now()
		err := rdb.BLPop(t.Context(), 3*time.Second, "empty").Err()
		took := time.Since(start)
		if err != redis.Nil {
			t.Errorf("BLPOP %d on an empty list: %v, want redis.Nil at its own 3s timeout", i+1, err)
		}
		if took < 2900*time.Millisecond || took > 4*time.Second {
			t.Errorf("BLPOP %d returned after %v, want about 3s", i+1, took)
		}
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v after three idle BLPOPs, want closed", s)
	}
	if n := seen.get(resilience.CallFailed); n != 0 {
		t.Errorf("the breaker counted %d failures, want 0", n)
	}
	if n := seen.get(resilience.CallSucceeded); n != 3 {
		t.Errorf("the breaker counted %d successes, want 3", n)
	}
}

// A blocking command returns what is pushed while it waits.
func TestBlockingCommandGetsWhatIsPushed(t *testing.T) {
	srv := testserver.Redis(t)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	rdb := documentedClient(t, srv.Addr, presets.Redis())
	time.AfterFunc(time.Second, func() { direct.RPush(context.Background(), "queue", "job") })
	start := time.Now()
	v, err := rdb.BLPop(t.Context(), 3*time.Second, "queue").Result()
	if err != nil || len(v) != 2 || v[1] != "job" {
		t.Errorf("BLPOP: %q, %v; want [queue job]", v, err)
	}
	if took := time.Since(start); took < 900*time.Millisecond || took > 2*time.Second {
		t.Errorf("BLPOP returned after %v, want about 1s", took)
	}
}

// A blocking command that fails is a failure as any other: against no
// server, BLPOP fails to dial, is retried (it never left the client), and
// each attempt counts against the breaker, which opens.
func TestBlockingCommandAgainstNoServerFails(t *testing.T) {
	g := presets.Redis()
	seen := observe(g.Breaker())
	rdb := documentedClient(t, "127.0.0.1:"+itoa(testserver.FreePort(t)), g)
	err := rdb.BLPop(t.Context(), 3*time.Second, "queue").Err()
	var op interface{ Timeout() bool }
	if err == nil || err == redis.Nil || errors.As(err, &op) && op.Timeout() {
		t.Errorf("BLPOP with no server: %v, want the dial error", err)
	}
	if n := seen.get(resilience.CallFailed); n != 3 {
		t.Errorf("the breaker counted %d failures, want 3, one per attempt", n)
	}
	if s := g.Breaker().State(); s != resilience.Open {
		t.Errorf("breaker %v after 3 failures in a row, want open", s)
	}
}

// shortGuard is Timeout(total) → Retry → Breaker → Timeout(per attempt),
// its limits well below the waits of the blocking commands the tests send.
func shortGuard(total, attempt time.Duration) (*resilience.Guard, *calls) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "redis", FailureThreshold: 3, OpenTimeout: time.Minute}))
	g := newGuard(newTimeout("total", total).Timeout, newRetry(2), b, newTimeout("attempt", attempt).Timeout)
	return g, observe(b)
}

// Every blocking command of the server waits its own time, beyond the
// guard's limits, and an empty answer at its timeout is not a failure.
func TestEveryBlockingCommandWaitsItsOwnTime(t *testing.T) {
	srv := testserver.Redis(t)
	setup := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer setup.Close()
	if err := setup.XGroupCreateMkStream(t.Context(), "stream", "group", "$").Err(); err != nil {
		t.Fatal(err)
	}
	g, seen := shortGuard(300*time.Millisecond, 200*time.Millisecond)
	rdb := documentedClient(t, srv.Addr, g)
	const wait = time.Second
	for _, tc := range []struct {
		name string
		cmd  func(ctx context.Context) error
	}{
		{"BLPOP", func(ctx context.Context) error { return rdb.BLPop(ctx, wait, "l1").Err() }},
		{"BRPOP", func(ctx context.Context) error { return rdb.BRPop(ctx, wait, "l2").Err() }},
		{"BRPOPLPUSH", func(ctx context.Context) error { return rdb.Do(ctx, "brpoplpush", "l3", "l4", 1).Err() }},
		{"BLMOVE", func(ctx context.Context) error { return rdb.BLMove(ctx, "l5", "l6", "LEFT", "RIGHT", wait).Err() }},
		{"BLMPOP", func(ctx context.Context) error { return rdb.BLMPop(ctx, wait, "left", 1, "l7").Err() }},
		{"BZPOPMIN", func(ctx context.Context) error { return rdb.BZPopMin(ctx, wait, "z1").Err() }},
		{"BZPOPMAX", func(ctx context.Context) error { return rdb.BZPopMax(ctx, wait, "z2").Err() }},
		{"BZMPOP", func(ctx context.Context) error { return rdb.BZMPop(ctx, wait, "min", 1, "z3").Err() }},
		{"XREAD BLOCK", func(ctx context.Context) error {
			return rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"stream", "$"}, Block: wait}).Err()
		}},
		{"XREADGROUP BLOCK", func(ctx context.Context) error {
			return rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "group", Consumer: "c", Streams: []string{"stream", ">"}, Block: wait}).Err()
		}},
		{"WAIT", func(ctx context.Context) error { return rdb.Wait(ctx, 1, wait).Err() }}, // no replica: 0 after 1s
		{"BLPOP by Do", func(ctx context.Context) error { return rdb.Do(ctx, "BLPOP", "l8", "1").Err() }},
		{"XREAD BLOCK by Do", func(ctx context.Context) error {
			return rdb.Do(ctx, "XREAD", "BLOCK", "1000", "STREAMS", "stream", "$").Err()
		}},
		{"a pipeline of BLPOP", func(ctx context.Context) error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error { return p.BLPop(ctx, wait, "l9").Err() })
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := tc.cmd(t.Context())
			took := time.Since(start)
			if err != nil && err != redis.Nil {
				t.Errorf("%v, want its empty answer at its own timeout", err)
			}
			if took < wait-100*time.Millisecond || took > wait+time.Second {
				t.Errorf("returned after %v, want about %v", took, wait)
			}
		})
	}
	t.Cleanup(func() {
		if n := seen.get(resilience.CallFailed); n != 0 {
			t.Errorf("the breaker counted %d failures, want 0", n)
		}
	})
}

// A blocking command that waits forever (timeout 0, BLOCK 0) has no time
// limit of the guard's: only the caller's context ends it, and a caller
// giving up before the server was due to answer is not a failure of the
// server.
func TestBlockingForeverHasOnlyTheCallersLimit(t *testing.T) {
	srv := testserver.Redis(t)
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer direct.Close()
	g, seen := shortGuard(300*time.Millisecond, 200*time.Millisecond)
	rdb := documentedClient(t, srv.Addr, g)

	time.AfterFunc(time.Second, func() { direct.RPush(context.Background(), "queue", "job") })
	if v, err := rdb.BLPop(t.Context(), 0, "queue").Result(); err != nil || len(v) != 2 {
		t.Errorf("BLPOP 0: %q, %v; want the job pushed after 1s", v, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"stream", "$"}, Block: 0}).Err()
	if took := time.Since(start); !isTimeout(err) || took < 600*time.Millisecond || took > time.Second {
		t.Errorf("XREAD BLOCK 0 under a 700ms context: %v after %v, want the context's time-out, at 700ms", err, took)
	}

	// So is one that would wait longer than its caller does.
	ctx, cancel = context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := rdb.BLPop(ctx, 2*time.Second, "queue").Err(); !isTimeout(err) {
		t.Errorf("BLPOP 2s under a 500ms context: %v, want the context's time-out", err)
	}
	if n := seen.get(resilience.CallFailed); n != 0 {
		t.Errorf("the breaker counted %d failures, want 0", n)
	}
	if n := seen.get(resilience.CallIgnored); n != 2 {
		t.Errorf("the breaker ignored %d calls, want 2, the commands their callers gave up on", n)
	}
}

func isTimeout(err error) bool {
	var to interface{ Timeout() bool }
	return errors.As(err, &to) && to.Timeout()
}

// A blocking command that outlives its own timeout by more than the
// guard's limits is cut, with the error of the guard's Timeout stage,
// lengthened by the command's wait.
func TestBlockingCommandIsCutPastItsWait(t *testing.T) {
	proxy, _ := slowProxy(t)
	g, _ := shortGuard(time.Second, 200*time.Millisecond)
	rdb := documentedClient(t, proxy.Addr(), g)
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	proxy.SlowExisting(3 * time.Second)
	start := time.Now()
	err := rdb.BLPop(t.Context(), time.Second, "queue").Err()
	took := time.Since(start)
	var te *resilience.TimeoutError
	if !errors.As(err, &te) || te.Name != "attempt" || te.Limit != 1200*time.Millisecond {
		t.Errorf("BLPOP 1s through a 3s delay: %v, want the *TimeoutError of \"attempt\", its limit 1.2s", err)
	}
	if took < 1100*time.Millisecond || took > 1700*time.Millisecond {
		t.Errorf("BLPOP returned after %v, want about 1.2s", took)
	}
}

func TestBlockingWait(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args   []any
		wait   time.Duration
		blocks bool
	}{
		{[]any{"get", "k"}, 0, false},
		{[]any{"blpop", "a", "b", int64(3)}, 3 * time.Second, true},
		{[]any{"BLPOP", "a", "0.5"}, 500 * time.Millisecond, true},
		{[]any{"brpop", "a", 2.5}, 2500 * time.Millisecond, true},
		{[]any{"blpop", "a", []byte("0")}, 0, true},
		{[]any{"blpop", "a", "-1"}, 0, false}, // an error of the server's
		{[]any{"blpop", "a", "soon"}, 0, false},
		{[]any{"blpop"}, 0, false},
		{[]any{"brpoplpush", "a", "b", 4}, 4 * time.Second, true},
		{[]any{"blmove", "a", "b", "left", "right", uint(1)}, time.Second, true},
		{[]any{"blmpop", int64(2), 1, "a", "left"}, 2 * time.Second, true},
		{[]any{"bzmpop", "1.5", 1, "a", "min"}, 1500 * time.Millisecond, true},
		{[]any{"bzpopmin", "a", 1}, time.Second, true},
		{[]any{"bzpopmax", "a", 1}, time.Second, true},
		{[]any{"wait", 1, int64(1500)}, 1500 * time.Millisecond, true},
		{[]any{"waitaof", 1, 0, 250}, 250 * time.Millisecond, true},
		{[]any{"xread", "count", 1, "streams", "s", "$"}, 0, false},
		{[]any{"xread", "count", 1, "block", int64(2000), "streams", "s", "$"}, 2 * time.Second, true},
		{[]any{"XREAD", "BLOCK", "0", "STREAMS", "s", "$"}, 0, true},
		{[]any{"xread", "streams", "block", "$"}, 0, false}, // a stream named block
		{[]any{"xreadgroup", "group", "g", "block", "streams", "s", ">"}, 0, false},
		{[]any{"xreadgroup", "group", "g", "c", "block", 100, "streams", "s", ">"}, 100 * time.Millisecond, true},
		{[]any{"blpop", "a", "nan"}, 0, false},
		{[]any{"blpop", "a", "inf"}, 0, false},
		{[]any{"blpop", "a", int64(10 * time.Second)}, 0, true}, // 1e10 seconds: past a Duration, forever
		{[]any{"xread", "block", "9300000000000", "streams", "s", "$"}, 0, true},
	} {
		wait, blocks := blockingWait(redis.NewCmd(ctx, tc.args...))
		if wait != tc.wait || blocks != tc.blocks {
			t.Errorf("blockingWait%v = %v, %v; want %v, %v", tc.args, wait, blocks, tc.wait, tc.blocks)
		}
	}
}

// A pipeline waits the sum of its blocking commands' waits: the server
// serves them one after the other.
func TestPipelineWaitIsTheSum(t *testing.T) {
	ctx := context.Background()
	cmds := []redis.Cmder{
		redis.NewCmd(ctx, "blpop", "a", 2),
		redis.NewCmd(ctx, "get", "k"),
		redis.NewCmd(ctx, "blpop", "b", 3),
	}
	if wait, blocks := pipelineWait(cmds); wait != 5*time.Second || !blocks {
		t.Errorf("pipelineWait = %v, %v; want 5s, true", wait, blocks)
	}
	cmds = append(cmds, redis.NewCmd(ctx, "blpop", "c", int64(math.MaxInt64/int64(time.Second))))
	if wait, blocks := pipelineWait(cmds); wait != 0 || !blocks {
		t.Errorf("pipelineWait past a Duration = %v, %v; want forever (0, true)", wait, blocks)
	}
}

// While the breaker is not closed, a blocking command is refused at once
// and never sent: an idle consumer must not hold one of the probes of a
// half-open breaker, which find out whether the server is back. A short
// command probes, and once the breaker is closed, a blocking command is
// sent as usual.
func TestBlockingCommandsWaitForTheBreakerToClose(t *testing.T) {
	srv := testserver.Redis(t)
	p := presets.RedisConfig()
	p.Breaker.FailureThreshold = 1
	p.Breaker.OpenTimeout = 50 * time.Millisecond
	p.Breaker.SuccessThreshold = 1
	g := must(p.Build())
	rdb, sent := guardedClient(t, srv.Addr, g, false)
	// State reports HalfOpen from the instant the open time has passed, a
	// moment before the breaker's timer makes the move and lets a probe
	// through: wait for the move itself.
	halfOpen := make(chan struct{})
	g.Breaker().Observe(resilience.BreakerObserver{StateChange: func(c resilience.StateChange) {
		if c.To == resilience.HalfOpen {
			close(halfOpen)
		}
	}})
	permit, err := g.Breaker().Allow(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	permit.Done(errors.New("down")) // open, for 50ms
	select {
	case <-halfOpen:
	case <-time.After(10 * time.Second):
		t.Fatal("the breaker did not move to half-open")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = rdb.BLPop(ctx, 0, "empty").Err()
	if !errors.Is(err, resilience.ErrRejected) || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("BLPOP while the breaker is half-open: %v after %v, want a rejection at once", err, time.Since(start))
	}
	if n := sent.n.Load(); n != 0 {
		t.Errorf("%d commands reached go-redis, want none", n)
	}
	if err := rdb.Get(t.Context(), "k").Err(); err != redis.Nil {
		t.Errorf("GET, the probe: %v, want redis.Nil", err)
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Fatalf("after the probe the breaker is %v, want closed", s)
	}
	if err := rdb.BLPop(t.Context(), 100*time.Millisecond, "empty").Err(); err != redis.Nil {
		t.Errorf("BLPOP once the breaker is closed: %v, want redis.Nil", err)
	}
}

// A pipeline of blocking commands waits the sum of their waits: two BLPOPs
// of 1s under a per-attempt limit of 500ms are both answered, empty, with
// no failure counted.
func TestPipelinedBlockingCommandsWaitTheirSum(t *testing.T) {
	srv := testserver.Redis(t)
	p := presets.RedisConfig()
	p.AttemptTimeout.Duration = 500 * time.Millisecond
	g := must(p.Build())
	seen := observe(g.Breaker())
	rdb, _ := guardedClient(t, srv.Addr, g, false)
	cmds, err := rdb.Pipelined(t.Context(), func(pipe redis.Pipeliner) error {
		pipe.BLPop(t.Context(), time.Second, "empty-a")
		pipe.BLPop(t.Context(), time.Second, "empty-b")
		return nil
	})
	if err != redis.Nil || len(cmds) != 2 {
		t.Fatalf("pipeline: %v, %d commands; want redis.Nil for both", err, len(cmds))
	}
	for i, c := range cmds {
		if c.Err() != redis.Nil {
			t.Errorf("command %d: %v, want redis.Nil", i, c.Err())
		}
	}
	if n := seen.get(resilience.CallFailed); n != 0 {
		t.Errorf("the breaker counted %d failures, want 0", n)
	}
}
