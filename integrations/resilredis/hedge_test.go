package resilredis

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// The tests of this file hold the Hook to the rule of hedging: only a
// read-only command is hedged, each attempt on a command of its own, the
// winner's reply copied into the caller's; everything else runs once at a
// time.

func newHedge(delay time.Duration) *resilience.Hedge {
	return must(resilience.NewHedge(resilience.HedgeConfig{Name: "redis", Delay: delay, NoBudget: true}))
}

// slowFirst returns a chaos stage that holds the first attempt of every
// command back by d before sending it, and leaves the hedges alone; its
// wait ends with the attempt's context.
func slowFirst(d time.Duration) *resilience.Chaos {
	return must(resilience.NewChaos(resilience.ChaosConfig{
		Rate: 1, NoError: true, Latency: d,
		Match: func(ctx context.Context) bool { return resilience.Attempt(ctx) == 1 },
	}))
}

// ended is a hook inside the guard's that counts the attempts that have
// returned, and runs before, if set, ahead of each with its context.
type ended struct {
	n      atomic.Int32
	before func(ctx context.Context, cmd redis.Cmder)
	after  func(ctx context.Context, cmd redis.Cmder) // as each returns
}

func (e *ended) DialHook(next redis.DialHook) redis.DialHook { return next }
func (e *ended) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if setup(cmd) {
			return next(ctx, cmd)
		}
		defer e.n.Add(1)
		if e.before != nil {
			e.before(ctx, cmd)
		}
		err := next(ctx, cmd)
		if e.after != nil {
			e.after(ctx, cmd)
		}
		return err
	}
}
func (e *ended) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && setup(cmds[0]) {
			return next(ctx, cmds)
		}
		defer e.n.Add(1)
		return next(ctx, cmds)
	}
}

// waitEnded waits until n attempts have returned: a hedge's loser goes on
// after the caller has its answer.
func waitEnded(t *testing.T, e *ended, n int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := testserver.WaitFor(ctx, func() bool { return e.n.Load() >= n }); err != nil {
		t.Fatalf("%d attempts returned, want %d: %v", e.n.Load(), n, err)
	}
}

// A GET whose first attempt the server is slow to answer: the answers on
// the client's one open connection are held back, so the hedge, sent after
// 20ms on a new connection, answers first. The caller gets the hedge's
// value at once; the first attempt, which lost, reads its own answer
// later, with another value, into a command of its own: the caller's
// command keeps the winner's.
func TestHedgedGetTakesTheFasterAttempt(t *testing.T) {
	proxy, direct := slowProxy(t)
	if err := direct.Set(t.Context(), "k", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	hedge := newHedge(20 * time.Millisecond)
	g := newGuard(hedge)
	rdb, sent := guardedClient(t, proxy.Addr(), g, false)
	if err := rdb.Ping(t.Context()).Err(); err != nil { // one open connection
		t.Fatal(err)
	}
	e := &ended{before: func(ctx context.Context, cmd redis.Cmder) {
		if resilience.Attempt(ctx) == 2 {
			// The first attempt's answer, "old", is on its way back,
			// held by the proxy: the hedge reads another value.
			if err := direct.Set(ctx, "k", "new", 0).Err(); err != nil {
				t.Error(err)
			}
		}
	}}
	var loser atomic.Value
	e.after = func(ctx context.Context, cmd redis.Cmder) {
		if resilience.Attempt(ctx) == 1 {
			loser.Store(cmd.(*redis.StringCmd).Val())
		}
	}
	rdb.AddHook(e)
	proxy.SlowExisting(time.Second)
	sent.n.Store(0)

	start := time.Now()
	cmd := rdb.Get(t.Context(), "k")
	took := time.Since(start)
	if v, err := cmd.Result(); v != "new" || err != nil {
		t.Fatalf("GET: %q, %v; want the hedge's \"new\"", v, err)
	}
	if took > 500*time.Millisecond {
		t.Errorf("GET took %v, want the hedge's answer, well before the first attempt's 1s", took)
	}
	if s, w := stagetest.Hedges(hedge); s != 1 || w != 1 {
		t.Errorf("the Hedge sent %d hedges, %d won; want 1 and 1", s, w)
	}
	if n := sent.n.Load(); n != 2 {
		t.Errorf("%d attempts reached go-redis, want 2", n)
	}
	waitEnded(t, e, 2)
	if v := loser.Load(); v != "old" {
		t.Errorf("the first attempt read %q into its command, want \"old\"", v)
	}
	if v := cmd.Val(); v != "new" {
		t.Errorf("once the first attempt's answer came, the caller's command holds %q, want \"new\"", v)
	}
	if w := Wire(g).Stats().Calls; w[0].N != 2 || w[1].N != 3 {
		t.Errorf("wire %+v; want 2 calls (PING, GET) and 3 attempts, the hedge among them", w)
	}
}

// Every command type the Hook hedges, each read's first attempt slowed,
// against a real server: the caller's command holds what the server
// answers a client without a hook, the hedge's answer, and the call does
// not wait for the first attempt. A type left out of copyReply would not
// be hedged (and hedged would be 0).
func TestHedgedReadOfEachType(t *testing.T) {
	srv := testserver.Redis(t)
	ctx := t.Context()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { direct.Close() })
	setup := []func() error{
		func() error { return direct.Set(ctx, "s", "text", time.Hour).Err() },
		func() error { return direct.RPush(ctx, "l", "a", "b", "a").Err() },
		func() error { return direct.SAdd(ctx, "set", "m").Err() },
		func() error { return direct.HSet(ctx, "h", "f", "1", "g", "2").Err() },
		func() error {
			return direct.ZAdd(ctx, "z", redis.Z{Score: 1.5, Member: "a"}, redis.Z{Score: 2, Member: "b"}).Err()
		},
		func() error {
			return direct.XAdd(ctx, &redis.XAddArgs{Stream: "x", ID: "1-1", Values: []any{"f", "v"}}).Err()
		},
		func() error { return direct.SetBit(ctx, "bits", 3, 1).Err() },
	}
	for _, f := range setup {
		if err := f(); err != nil {
			t.Fatal(err)
		}
	}

	hedge := newHedge(10 * time.Millisecond)
	rdb, _ := guardedClient(t, srv.Addr, newGuard(hedge), false)
	e := &ended{}
	rdb.AddHook(e)
	rdb.AddHook(ChaosHook(slowFirst(5 * time.Second)))

	cases := []struct {
		name string
		cmd  func(c *redis.Client) redis.Cmder
	}{
		{"Cmd", func(c *redis.Client) redis.Cmder { return c.Do(ctx, "get", "s") }},
		{"StringCmd", func(c *redis.Client) redis.Cmder { return c.Get(ctx, "s") }},
		{"StringCmd nil", func(c *redis.Client) redis.Cmder { return c.Get(ctx, "missing") }},
		{"StatusCmd", func(c *redis.Client) redis.Cmder { return c.Type(ctx, "h") }},
		{"IntCmd", func(c *redis.Client) redis.Cmder { return c.LLen(ctx, "l") }},
		{"BoolCmd", func(c *redis.Client) redis.Cmder { return c.SIsMember(ctx, "set", "m") }},
		{"FloatCmd", func(c *redis.Client) redis.Cmder { return c.ZScore(ctx, "z", "a") }},
		{"DurationCmd", func(c *redis.Client) redis.Cmder { return c.TTL(ctx, "s") }},
		{"TimeCmd", func(c *redis.Client) redis.Cmder { return c.Time(ctx) }},
		{"SliceCmd", func(c *redis.Client) redis.Cmder { return c.MGet(ctx, "s", "missing") }},
		{"StringSliceCmd", func(c *redis.Client) redis.Cmder { return c.LRange(ctx, "l", 0, -1) }},
		{"IntSliceCmd", func(c *redis.Client) redis.Cmder { return c.LPosCount(ctx, "l", "a", 0, redis.LPosArgs{}) }},
		{"FloatSliceCmd", func(c *redis.Client) redis.Cmder { return c.ZMScore(ctx, "z", "a", "b") }},
		{"BoolSliceCmd", func(c *redis.Client) redis.Cmder { return c.SMIsMember(ctx, "set", "m", "n") }},
		{"MapStringStringCmd", func(c *redis.Client) redis.Cmder { return c.HGetAll(ctx, "h") }},
		{"ZSliceCmd", func(c *redis.Client) redis.Cmder { return c.ZRangeWithScores(ctx, "z", 0, -1) }},
		{"ScanCmd", func(c *redis.Client) redis.Cmder { return c.HScan(ctx, "h", 0, "", 10) }},
		{"XMessageSliceCmd", func(c *redis.Client) redis.Cmder { return c.XRange(ctx, "x", "-", "+") }},
	}
	covered := map[reflect.Type]bool{}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.cmd(direct)
			start := time.Now()
			got := tc.cmd(rdb)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %v: the hedge's answer was not taken", took)
			}
			covered[reflect.TypeOf(got)] = true
			if !hedgeable(got) {
				t.Fatalf("%T is not hedgeable", got)
			}
			if !errors.Is(got.Err(), want.Err()) {
				t.Errorf("err %v, want %v", got.Err(), want.Err())
			}
			switch g, w := got, want; tc.name {
			case "TimeCmd": // the server's clock moves on
				if g, w := g.(*redis.TimeCmd).Val(), w.(*redis.TimeCmd).Val(); w.Sub(g).Abs() > time.Minute {
					t.Errorf("TIME %v, want about %v", g, w)
				}
			case "DurationCmd": // and so does the key's TTL
				if g, w := g.(*redis.DurationCmd).Val(), w.(*redis.DurationCmd).Val(); g < time.Hour-time.Minute || g > w {
					t.Errorf("TTL %v, want about %v", g, w)
				}
			default:
				if g, w := got.String(), want.String(); g != w {
					t.Errorf("the caller's command is %q, want %q", g, w)
				}
			}
			if s, _ := stagetest.Hedges(hedge); s != uint64(i+1) {
				t.Errorf("%d hedges sent after %d commands, want one each", s, i+1)
			}
		})
		waitEnded(t, e, int32(2*(i+1))) // the slowed first attempt, cancelled, has returned
	}
	if len(covered) != 17 {
		t.Errorf("%d command types covered, want the 17 copyReply knows", len(covered))
	}
}

// What is not a read-only command of a type the Hook copies runs once at a
// time, under resilience.Unhedged, however slow: a write (INCR runs once,
// and the counter moves by one), a pipeline of reads, a blocking read, and
// a read of a type the Hook does not copy.
func TestOnlyCopyableReadsAreHedged(t *testing.T) {
	srv := testserver.Redis(t)
	ctx := t.Context()
	direct := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { direct.Close() })
	if err := direct.Set(ctx, "n", 10, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := direct.XAdd(ctx, &redis.XAddArgs{Stream: "x", ID: "1-1", Values: []any{"f", "v"}}).Err(); err != nil {
		t.Fatal(err)
	}
	hedge := newHedge(5 * time.Millisecond)
	rdb, sent := guardedClient(t, srv.Addr, newGuard(hedge), false)
	rdb.AddHook(ChaosHook(slowFirst(100 * time.Millisecond)))

	for _, tc := range []struct {
		name  string
		run   func() error
		check func(t *testing.T)
	}{
		{"INCR", func() error { return rdb.Incr(ctx, "n").Err() }, func(t *testing.T) {
			if n, err := direct.Get(ctx, "n").Int(); n != 11 || err != nil {
				t.Errorf("the counter is %d (%v) after one INCR from 10, want 11", n, err)
			}
		}},
		{"SET", func() error { return rdb.Set(ctx, "k", "v", 0).Err() }, nil},
		{"pipeline of reads", func() error {
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, "n")
				p.Get(ctx, "k")
				return nil
			})
			return err
		}, nil},
		{"MULTI/EXEC", func() error {
			_, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, "n")
				return nil
			})
			return err
		}, nil},
		{"BLPOP", func() error {
			if err := rdb.BLPop(ctx, 200*time.Millisecond, "empty").Err(); err != redis.Nil {
				return fmt.Errorf("BLPOP: %v, want redis.Nil at its timeout", err)
			}
			return nil
		}, nil},
		{"XREAD, an XStreamSliceCmd", func() error {
			s, err := rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{"x", "0"}, Block: -1}).Result()
			if err == nil && (len(s) != 1 || len(s[0].Messages) != 1) {
				return fmt.Errorf("XREAD: %v", s)
			}
			return err
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent.n.Store(0)
			start := time.Now()
			if err := tc.run(); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took < 100*time.Millisecond {
				t.Errorf("took %v: an attempt other than the slowed first answered", took)
			}
			if s, _ := stagetest.Hedges(hedge); s != 0 {
				t.Errorf("%d hedges sent, want none", s)
			}
			if n := sent.n.Load(); n != 1 {
				t.Errorf("%d attempts reached go-redis, want 1", n)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	if hedgeable(redis.NewXStreamSliceCmd(ctx)) || hedgeable(redis.NewGeoPosCmd(ctx)) {
		t.Error("a type copyReply does not copy is hedgeable")
	}
}

// With a Hedge in the guard, Timeout(total) → Retry → Hedge → Breaker →
// Timeout(per attempt), a hung first attempt that the hedge does not
// reach in time (its delay is longer than the per-attempt limit) is cut
// by the limit as before: a failure, counted by the breaker and retried,
// not taken for an attempt that lost. The one it left reading in the
// background ends on its own.
func TestHedgedReadCutByThePerAttemptLimit(t *testing.T) {
	proxy, direct := slowProxy(t)
	if err := direct.Set(t.Context(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	attempt := newTimeout("attempt", 200*time.Millisecond)
	hedge := newHedge(time.Hour)
	breaker := newBreaker()
	counted := observe(breaker)
	g := newGuard(newTimeout("total", 5*time.Second).Timeout, newRetry(2), hedge, breaker, attempt.Timeout)
	rdb, sent := guardedClient(t, proxy.Addr(), g, false)
	if err := rdb.Ping(t.Context()).Err(); err != nil { // one open connection
		t.Fatal(err)
	}
	e := &ended{}
	rdb.AddHook(e)
	proxy.SlowExisting(600 * time.Millisecond)
	sent.n.Store(0)
	attempt.Reset()

	v, err := rdb.Get(t.Context(), "k").Result()
	if err != nil || v != "v" {
		t.Fatalf("GET: %q, %v; want the retry to get \"v\"", v, err)
	}
	if n := sent.n.Load(); n != 2 {
		t.Errorf("%d attempts, want 2: the first cut, the retry", n)
	}
	want := []resilience.TimeoutResult{resilience.TimeoutExpired, resilience.TimeoutSucceeded}
	if got := attempt.Got(); !reflect.DeepEqual(got, want) {
		t.Errorf("per-attempt limit: %v, want %v", got, want)
	}
	if f, ok := counted.get(resilience.CallFailed), counted.get(resilience.CallSucceeded)-1; f != 1 || ok != 1 { // the PING's success before
		t.Errorf("the breaker counted %d failures and %d successes, want the cut attempt's 1 and the retry's 1", f, ok)
	}
	if s, _ := stagetest.Hedges(hedge); s != 0 {
		t.Errorf("%d hedges sent, want none", s)
	}
	waitEnded(t, e, 2)
}

// A panic in a hook under the guard's, in a hedged read's attempt, goes up
// the caller's goroutine, as it does for a command that is not hedged.
func TestPanicInAHedgedAttempt(t *testing.T) {
	srv := testserver.Redis(t)
	rdb, _ := guardedClient(t, srv.Addr, newGuard(newHedge(time.Hour)), false)
	rdb.AddHook(&ended{before: func(ctx context.Context, cmd redis.Cmder) {
		if cmd.Name() == "get" {
			panic("boom")
		}
	}})
	defer func() {
		if pv := recover(); pv != "boom" {
			t.Errorf("recovered %v, want the hook's panic", pv)
		}
	}()
	rdb.Get(t.Context(), "k")
	t.Error("GET returned: the panic was lost")
}
