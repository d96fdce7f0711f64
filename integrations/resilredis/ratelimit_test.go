package resilredis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// The tests of this file hold the RateLimiter to its quota, shared by
// several limiters on one key, as several replicas would share it, against
// a redis-server on 127.0.0.1; and to its local share when that server is
// stopped, slow, or answers what the script does not.

// limiterClient returns a client for addr with the documented options.
func limiterClient(t *testing.T, addr string, hooks ...redis.Hook) *redis.Client {
	t.Helper()
	opt := documented(addr)
	opt.DialTimeout = time.Second
	rdb := redis.NewClient(opt)
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func newLimiter(t *testing.T, rdb redis.UniversalClient, cfg RateLimitConfig) *RateLimiter {
	t.Helper()
	l, err := NewRateLimiter(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// count returns the count of result in l's stats.
func count(l *RateLimiter, result string) uint64 {
	for _, c := range l.Stats().Calls {
		if c.Result == result {
			return c.N
		}
	}
	panic("no result " + result)
}

func redisUp(l *RateLimiter) bool { return l.Stats().Gauges[0].Value == 1 }

// errorLog keeps the first unexpected errors of many goroutines.
type errorLog struct {
	mu   sync.Mutex
	errs []error
	n    int
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if len(e.errs) < 5 {
		e.errs = append(e.errs, err)
	}
}

func (e *errorLog) check(t *testing.T) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > 0 {
		t.Errorf("%d calls returned an error other than the limiter's rejection; the first: %v", e.n, e.errs)
	}
}

// drive runs calls through l from workers goroutines until stop is
// closed, each pausing pause after a rejection, counting the calls that
// ran in ran and logging every error but a rejection.
func drive(l *RateLimiter, workers int, pause time.Duration, stop <-chan struct{}, ran *atomic.Int64, errs *errorLog, wg *sync.WaitGroup) {
	call := func(context.Context) error { ran.Add(1); return nil }
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := l.Run(context.Background(), call)
				if err != nil && !errors.Is(err, ErrRateLimited) {
					errs.add(err)
				}
				if err != nil && pause > 0 {
					time.Sleep(pause)
				}
			}
		}()
	}
}

// Three limiters on one key, each with its own client as three replicas
// would have, driven as fast as their goroutines can for 10s: together
// they admit the quota, within 5%.
func TestRateLimiterSharesOneQuota(t *testing.T) {
	srv := testserver.Redis(t)
	const (
		replicas = 3
		quota    = 200 // per second
		burst    = 20
		run      = 10 * time.Second
	)
	var limiters [replicas]*RateLimiter
	for i := range limiters {
		limiters[i] = newLimiter(t, limiterClient(t, srv.Addr), RateLimitConfig{
			Name: "api", Key: "shared-quota", Rate: quota, Burst: burst, Replicas: replicas,
			RedisTimeout: 500 * time.Millisecond, // this test is of the shared quota: no falling back under load
		})
	}
	var ran [replicas]atomic.Int64
	var errs errorLog
	var wg sync.WaitGroup
	stop := make(chan struct{})
	start := time.Now()
	for i, l := range limiters {
		drive(l, 2, 0, stop, &ran[i], &errs, &wg)
	}
	time.Sleep(run)
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	errs.check(t)

	var admitted, calls, local int64
	per := make([]int64, replicas)
	for i, l := range limiters {
		per[i] = ran[i].Load()
		admitted += per[i]
		calls += int64(count(l, "admitted") + count(l, "rejected") + count(l, "admitted_local") + count(l, "rejected_local"))
		local += int64(count(l, "admitted_local"))
	}
	rate := float64(admitted) / elapsed.Seconds()
	t.Logf("3 limiters on one key, quota %d/s (burst %d), %v: %d calls admitted of %d (%d by the local share), %v per limiter: %.1f/s combined, %+.2f%% of the quota",
		quota, burst, elapsed.Round(time.Millisecond), admitted, calls, local, per, rate, 100*(rate-quota)/quota)
	if math.Abs(rate-quota) > 0.05*quota {
		t.Errorf("combined admitted rate %.1f/s, want within 5%% of the quota, %d/s", rate, quota)
	}
	for i, n := range per {
		if n == 0 {
			t.Errorf("limiter %d admitted no call", i)
		}
	}
}

// With the server stopped mid-run, each limiter admits its local share,
// Rate/Replicas, no call fails, and Redis is asked only after each
// back-off; with the server back, the limiters go back to the shared
// quota.
//
// The local limiter is a token bucket, exact: over a window in which its
// workers keep asking (each offers some 500 calls a second against a
// share of 50), it admits the share's rate times the window, plus the
// tokens it held when the window opened (at most its burst, 5), less
// those it holds when the window closes. So each limiter's count is held
// to its share within its burst plus 5% for the edges of the window, which
// the test reads between calls.
func TestRateLimiterLocalShareWhileRedisIsDown(t *testing.T) {
	srv := testserver.Redis(t)
	const (
		replicas = 3
		quota    = 150 // per second: 50 each while Redis is down
		burst    = 15  // 5 each
		share    = float64(quota) / replicas
	)
	var limiters [replicas]*RateLimiter
	for i := range limiters {
		limiters[i] = newLimiter(t, limiterClient(t, srv.Addr), RateLimitConfig{
			Name: "api", Rate: quota, Burst: burst, Replicas: replicas,
			// A stopped server refuses connections at once: the time limit
			// only keeps a loaded machine from passing for a slow Redis.
			RedisTimeout: time.Second, RedisBackoff: 200 * time.Millisecond,
		})
	}
	var ran [replicas]atomic.Int64
	var errs errorLog
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, l := range limiters {
		drive(l, 2, time.Millisecond, stop, &ran[i], &errs, &wg)
	}
	defer func() {
		close(stop)
		wg.Wait()
		errs.check(t)
	}()
	// snapshot returns the calls each limiter ran, and those its quota
	// judged, in Redis and locally.
	snapshot := func() (at time.Time, n, shared, local [replicas]int64) {
		for i, l := range limiters {
			n[i] = ran[i].Load()
			shared[i] = int64(count(l, "admitted") + count(l, "rejected"))
			local[i] = int64(count(l, "admitted_local") + count(l, "rejected_local"))
		}
		return time.Now(), n, shared, local
	}

	time.Sleep(time.Second) // on the shared quota
	for i, l := range limiters {
		if !redisUp(l) || count(l, "admitted") == 0 {
			t.Fatalf("limiter %d before the stop: redis_up %v, %d admitted by the shared quota; want up, some", i, redisUp(l), count(l, "admitted"))
		}
	}

	srv.Stop()
	time.Sleep(200 * time.Millisecond) // every limiter has found out
	from, n0, shared0, local0 := snapshot()
	time.Sleep(3 * time.Second)
	to, n1, shared1, local1 := snapshot()
	window := to.Sub(from).Seconds()
	for i, l := range limiters {
		n := float64(n1[i] - n0[i])
		want := share * window
		t.Logf("limiter %d with redis-server stopped: %.0f calls admitted in %.2fs, %.1f/s; its share %.1f/s", i, n, window, n/window, share)
		if math.Abs(n-want) > burst/replicas+0.05*want {
			t.Errorf("limiter %d admitted %.0f calls in %.2fs with Redis down, want its share, %.0f, within %d + 5%%", i, n, window, want, burst/replicas)
		}
		if redisUp(l) {
			t.Errorf("limiter %d: redis_up 1 with redis-server stopped", i)
		}
		if shared1[i] != shared0[i] {
			t.Errorf("limiter %d: %d calls judged by the shared quota with redis-server stopped", i, shared1[i]-shared0[i])
		}
		if local1[i] == local0[i] {
			t.Errorf("limiter %d: no call judged by the local share with redis-server stopped", i)
		}
	}

	srv.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := testserver.WaitFor(ctx, func() bool {
		for _, l := range limiters {
			if !redisUp(l) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("the limiters did not go back to Redis once it was restarted: %v", err)
	}
	from, n0, shared0, local0 = snapshot()
	time.Sleep(time.Second)
	to, n1, shared1, local1 = snapshot()
	window = to.Sub(from).Seconds()
	var admitted int64
	for i := range limiters {
		admitted += n1[i] - n0[i]
		if shared1[i] == shared0[i] || local1[i] != local0[i] {
			t.Errorf("limiter %d with redis-server back: %d calls judged by the shared quota, %d locally; want some, none",
				i, shared1[i]-shared0[i], local1[i]-local0[i])
		}
	}
	rate := float64(admitted) / window
	t.Logf("with redis-server back: %d calls admitted in %.2fs, %.1f/s combined; the quota %d/s", admitted, window, rate, quota)
	if rate < 0.9*quota || rate > 1.1*quota+burst/window {
		t.Errorf("with redis-server back: %.1f calls/s combined, want the quota, %d/s", rate, quota)
	}
}

// replyHook answers the limiter's script commands itself, with err or,
// if err is nil, with val.
type replyHook struct {
	val any
	err error
}

func (h replyHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h replyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "evalsha", "eval":
			if h.err != nil {
				cmd.SetErr(h.err)
				return h.err
			}
			cmd.(*redis.Cmd).SetVal(h.val)
			return nil
		}
		return next(ctx, cmd)
	}
}
func (h replyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A Redis that answers anything but the script's answer is a Redis that
// cannot be reached: the limiter admits its local share, and no call
// fails. Once Redis answers again, after the back-off, the limiter is back
// on the shared quota.
func TestRateLimiterDecidesLocallyOnGarbage(t *testing.T) {
	srv := testserver.Redis(t)
	direct := limiterClient(t, srv.Addr)
	const key = "garbage"
	for _, tc := range []struct {
		name  string
		setup func(ctx context.Context) error // on the server, under the key
		hook  redis.Hook                      // on the limiter's client
	}{
		{name: "a string at the key", setup: func(ctx context.Context) error { return direct.Set(ctx, "rate:"+key, "not a time", 0).Err() }},
		{name: "a hash at the key", setup: func(ctx context.Context) error { return direct.HSet(ctx, "rate:"+key, "f", "v").Err() }},
		{name: "an error for every script", hook: replyHook{err: redis.ErrClosed}},
		{name: "a server error for every script", hook: replyHook{err: errors.New("ERR something went wrong")}},
		{name: "a reply of another type", hook: replyHook{val: "OK"}},
		{name: "an array too short", hook: replyHook{val: []any{int64(1)}}},
		{name: "an array of other types", hook: replyHook{val: []any{"1", "2", int64(3), int64(4)}}},
		{name: "a refusal with no wait", hook: replyHook{val: []any{int64(0), int64(0), "-1", "-1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			direct.Del(ctx, "rate:"+key)
			var hooks []redis.Hook
			if tc.hook != nil {
				hooks = append(hooks, tc.hook)
			}
			if tc.setup != nil {
				if err := tc.setup(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// 10 calls a minute, 2 replicas: a local share of 5, all burst.
			l := newLimiter(t, limiterClient(t, srv.Addr, hooks...), RateLimitConfig{
				Key: key, Rate: 10, Period: time.Minute, Replicas: 2, RedisBackoff: 50 * time.Millisecond,
			})
			ran := 0
			for i := range 8 {
				err := l.Run(ctx, func(context.Context) error { ran++; return nil })
				var rl *RateLimitedError
				switch {
				case i < 5 && err != nil:
					t.Errorf("call %d: %v, want it admitted by the local share", i, err)
				case i >= 5 && (!errors.As(err, &rl) || !rl.Local || !errors.Is(err, resilience.ErrRejected)):
					t.Errorf("call %d: %v, want the local share's rejection", i, err)
				case i >= 5 && (rl.RetryAfter() <= 0 || rl.RetryAfter() > 12*time.Second):
					t.Errorf("call %d: retry after %v, want up to the local share's 12s between calls", i, rl.RetryAfter())
				}
			}
			if ran != 5 || count(l, "admitted_local") != 5 || count(l, "rejected_local") != 3 || redisUp(l) {
				t.Errorf("%d calls ran, stats %+v; want 5 admitted and 3 rejected locally, redis_up 0", ran, l.Stats())
			}
			if tc.setup == nil {
				return
			}
			direct.Del(ctx, "rate:"+key) // Redis answers again
			time.Sleep(70 * time.Millisecond)
			if err := l.Run(ctx, func(context.Context) error { return nil }); err != nil || !redisUp(l) || count(l, "admitted") != 1 {
				t.Errorf("with the key cleared, after the back-off: %v, stats %+v; want admitted by the shared quota, redis_up 1", err, l.Stats())
			}
		})
	}
}

// A slow Redis: every call returns within RedisTimeout, decided by the
// local share, and only one call at a time, once per back-off, waits for
// Redis; with Redis fast again, the limiter is back on the shared quota.
func TestRateLimiterFallsBackWithinRedisTimeout(t *testing.T) {
	srv := testserver.Redis(t)
	proxy, err := faultproxy.New(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	const timeout = 50 * time.Millisecond
	l := newLimiter(t, limiterClient(t, proxy.Addr()), RateLimitConfig{
		Key: "slow", Rate: 100000, Replicas: 1, RedisTimeout: timeout, RedisBackoff: 100 * time.Millisecond,
	})
	ctx := t.Context()
	if err := l.Run(ctx, func(context.Context) error { return nil }); err != nil || count(l, "admitted") != 1 {
		t.Fatalf("a call with Redis fast: %v, stats %+v", err, l.Stats())
	}

	proxy.SetDelay(time.Second)
	var (
		wg      sync.WaitGroup
		slowest atomic.Int64
		slow    atomic.Int64 // calls that waited for Redis
		errs    errorLog
	)
	end := time.Now().Add(time.Second)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				start := time.Now()
				if err := l.Run(ctx, func(context.Context) error { return nil }); err != nil {
					errs.add(err)
				}
				d := time.Since(start)
				if d >= timeout/2 {
					slow.Add(1)
				}
				for {
					old := slowest.Load()
					if int64(d) <= old || slowest.CompareAndSwap(old, int64(d)) {
						break
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	errs.check(t)
	t.Logf("Redis 1s slow, RedisTimeout %v: slowest call %v; %d calls waited for Redis in 1s; stats %+v",
		timeout, time.Duration(slowest.Load()), slow.Load(), l.Stats())
	// Under the race detector on two shared cores, a timer can fire late.
	if d := time.Duration(slowest.Load()); d > timeout+200*time.Millisecond {
		t.Errorf("slowest call %v with RedisTimeout %v", d, timeout)
	}
	// The four workers' calls in flight when Redis turned slow, then one
	// after each back-off of 70ms to 130ms, which waits 50ms: 4 + 5 to 8
	// in a second. Four workers each asking after every back-off would
	// wait four times as often.
	if n := slow.Load(); n < 2 || n > 13 {
		t.Errorf("%d calls waited for Redis in 1s, want those in flight and then one after each back-off, 2 to 13", n)
	}
	if count(l, "admitted_local") == 0 || redisUp(l) {
		t.Errorf("stats with Redis slow: %+v; want calls admitted locally, redis_up 0", l.Stats())
	}

	proxy.SetDelay(0)
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	admitted := count(l, "admitted")
	if err := testserver.WaitFor(wait, func() bool {
		l.Run(ctx, func(context.Context) error { return nil })
		return redisUp(l) && count(l, "admitted") > admitted
	}); err != nil {
		t.Errorf("with Redis fast again: %v; stats %+v", err, l.Stats())
	}
}

// Over the quota, a call told to come back within MaxWait, and before its
// context's deadline, waits and is admitted; otherwise it is rejected at
// once, told when to come back. The same holds of the local share.
func TestRateLimiterMaxWait(t *testing.T) {
	srv := testserver.Redis(t)
	closed := "127.0.0.1:" + itoa(testserver.FreePort(t))
	for _, tc := range []struct {
		name  string
		addr  string
		local bool
	}{{"shared", srv.Addr, false}, {"local", closed, true}} {
		t.Run(tc.name, func(t *testing.T) {
			// One call every 100ms, no burst.
			cfg := RateLimitConfig{Key: "wait-" + tc.name, Rate: 10, Burst: 1, Replicas: 1, MaxWait: 300 * time.Millisecond}
			l := newLimiter(t, limiterClient(t, tc.addr), cfg)
			ctx := t.Context()
			ok := func(context.Context) error { return nil }
			if err := l.Run(ctx, ok); err != nil {
				t.Fatalf("first call: %v", err)
			}
			start := time.Now()
			if err := l.Run(ctx, ok); err != nil {
				t.Errorf("second call, 100ms to wait under a MaxWait of 300ms: %v", err)
			}
			if d := time.Since(start); d < 50*time.Millisecond {
				t.Errorf("second call admitted after %v, want it to wait for the quota, about 100ms", d)
			}

			short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
			defer cancel()
			start = time.Now()
			err := l.Run(short, ok)
			var rl *RateLimitedError
			if !errors.As(err, &rl) || rl.Local != tc.local || rl.Key != cfg.Key {
				t.Errorf("a call whose deadline comes before the quota admits it: %v, want a rejection (local %v)", err, tc.local)
			} else if rl.RetryAfter() <= 0 || rl.RetryAfter() > 100*time.Millisecond {
				t.Errorf("rejection: retry after %v, want up to 100ms", rl.RetryAfter())
			}
			if d := time.Since(start); d > 25*time.Millisecond && short.Err() != nil {
				t.Errorf("the rejection took %v: it waited for a call it could not make", d)
			}

			canceled, cancel := context.WithCancel(ctx)
			time.AfterFunc(20*time.Millisecond, cancel)
			before := l.Stats()
			if err := l.Run(canceled, ok); !errors.Is(err, context.Canceled) {
				t.Errorf("a call canceled while waiting: %v, want context.Canceled", err)
			}
			if got := count(l, "canceled"); got != 1 {
				t.Errorf("canceled count %d, want 1; stats before %+v, after %+v", got, before, l.Stats())
			}

			noWait := newLimiter(t, limiterClient(t, tc.addr), RateLimitConfig{Key: cfg.Key, Rate: 10, Burst: 1, Replicas: 1})
			time.Sleep(120 * time.Millisecond) // a call's worth
			noWait.Run(ctx, ok)
			start = time.Now()
			if err := noWait.Run(ctx, ok); !errors.Is(err, ErrRateLimited) {
				t.Errorf("MaxWait 0, over the quota: %v, want a rejection", err)
			}
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("MaxWait 0: the rejection took %v", d)
			}
		})
	}
}

// The limiter as a stage: a nil call and a nil or zero limiter are errors,
// a panic goes on up the stack, a call whose context has ended returns the
// context's error without drawing on the quota, and a rejection in a guard
// is not retried.
func TestRateLimiterIsAStage(t *testing.T) {
	srv := testserver.Redis(t)
	l := newLimiter(t, limiterClient(t, srv.Addr), RateLimitConfig{Name: "stage", Rate: 3, Period: time.Minute, Replicas: 1})
	var _ resilience.Observable = l
	ctx := t.Context()
	ok := func(context.Context) error { return nil }
	if l.Kind() != KindFleetRateLimit || l.Name() != "stage" || l.Key() != "stage" {
		t.Errorf("kind %q, name %q, key %q", l.Kind(), l.Name(), l.Key())
	}
	if err := l.Run(ctx, nil); err == nil {
		t.Error("Run with a nil call: no error")
	}
	if err := (*RateLimiter)(nil).Run(ctx, ok); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("a nil RateLimiter: %v, want an error matching ErrInvalidConfig", err)
	}
	if err := new(RateLimiter).Run(ctx, ok); !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "NewRateLimiter") {
		t.Errorf("a zero RateLimiter: %v, want an error matching ErrInvalidConfig naming NewRateLimiter", err)
	}
	if _, err := resilience.Do(ctx, resilience.Stage(l), func(context.Context) (int, error) { return 1, nil }); err != nil {
		t.Fatalf("Do: %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "call panicked" {
				t.Errorf("recovered %v, want the call's panic", r)
			}
		}()
		l.Run(ctx, func(context.Context) error { panic("call panicked") })
	}()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for range 10 {
		if err := l.Run(ended, func(ctx context.Context) error { return ctx.Err() }); !errors.Is(err, context.Canceled) {
			t.Fatalf("ended context: %v, want context.Canceled", err)
		}
	}
	if count(l, "admitted") != 2 || count(l, "canceled") != 10 || !redisUp(l) {
		t.Errorf("stats %+v; want 2 admitted, 10 canceled, redis_up 1", l.Stats())
	}
	// The quota's third call, then a rejection that no retry repeats.
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "stage", MaxRetries: 3, InitialBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "stage", Stages: []resilience.Stage{retry, l}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	for i := range 2 {
		_, err := resilience.Do(ctx, g, func(context.Context) (int, error) { calls++; return 1, nil })
		if want := i == 1; errors.Is(err, ErrRateLimited) != want || errors.Is(err, resilience.ErrRateLimited) != want || errors.Is(err, resilience.ErrRejected) != want {
			t.Errorf("call %d through a guard: %v", i, err)
		}
	}
	if calls != 1 || count(l, "rejected") != 1 {
		t.Errorf("%d calls ran, %d rejected; want 1 and 1: a rejection is not retried", calls, count(l, "rejected"))
	}
	var rl *RateLimitedError
	if _, err := resilience.Do(ctx, g, func(context.Context) (int, error) { return 1, nil }); !errors.As(err, &rl) ||
		!strings.Contains(err.Error(), `"stage"`) || !strings.Contains(err.Error(), "retry in") || rl.RetryAfter() <= 0 {
		t.Errorf("rejection: %v, want one naming the limiter and saying when to retry", err)
	}
	for _, c := range l.Stats().Calls {
		for _, r := range c.Result {
			if (r < 'a' || r > 'z') && r != '_' {
				t.Errorf("result %q is not a lowercase word", c.Result)
			}
		}
	}
}

// NewRateLimiter names every invalid field, and each option of the client
// that would keep RedisTimeout from holding; it never panics.
func TestNewRateLimiterChecksItsConfig(t *testing.T) {
	good := RateLimitConfig{Name: "api", Rate: 100, Replicas: 3}
	rdb := redis.NewClient(documented("127.0.0.1:1"))
	defer rdb.Close()
	deaf := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer deaf.Close()
	deafCluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer deafCluster.Close()
	deafRing := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": "127.0.0.1:1"}})
	defer deafRing.Close()
	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		tune   func(*RateLimitConfig)
		want   []string // the fields named, none for a good config
	}{
		{"good", rdb, func(*RateLimitConfig) {}, nil},
		{"Key alone", rdb, func(c *RateLimitConfig) { c.Name, c.Key = "", "k" }, nil},
		{"no Name nor Key", rdb, func(c *RateLimitConfig) { c.Name = "" }, []string{"RateLimitConfig.Key"}},
		{"Rate 0", rdb, func(c *RateLimitConfig) { c.Rate = 0 }, []string{"RateLimitConfig.Rate"}},
		{"Rate negative", rdb, func(c *RateLimitConfig) { c.Rate = -1 }, []string{"RateLimitConfig.Rate"}},
		{"Period negative", rdb, func(c *RateLimitConfig) { c.Period = -time.Second }, []string{"RateLimitConfig.Period"}},
		{"Burst negative", rdb, func(c *RateLimitConfig) { c.Burst = -1 }, []string{"RateLimitConfig.Burst"}},
		{"Replicas 0", rdb, func(c *RateLimitConfig) { c.Replicas = 0 }, []string{"RateLimitConfig.Replicas"}},
		{"MaxWait negative", rdb, func(c *RateLimitConfig) { c.MaxWait = -1 }, []string{"RateLimitConfig.MaxWait"}},
		{"RedisTimeout negative", rdb, func(c *RateLimitConfig) { c.RedisTimeout = -1 }, []string{"RateLimitConfig.RedisTimeout"}},
		{"RedisBackoff negative", rdb, func(c *RateLimitConfig) { c.RedisBackoff = -1 }, []string{"RateLimitConfig.RedisBackoff"}},
		{"all of them", nil, func(c *RateLimitConfig) {
			*c = RateLimitConfig{Rate: -1, Period: -1, Burst: -1, Replicas: -1, MaxWait: -1, RedisTimeout: -1, RedisBackoff: -1}
		},
			[]string{"RateLimitConfig.Key", "RateLimitConfig.Rate", "RateLimitConfig.Period", "RateLimitConfig.Burst", "RateLimitConfig.Replicas",
				"RateLimitConfig.MaxWait", "RateLimitConfig.RedisTimeout", "RateLimitConfig.RedisBackoff", "client"}},
		{"nil client", nil, func(*RateLimitConfig) {}, []string{"client"}},
		{"nil *redis.Client", (*redis.Client)(nil), func(*RateLimitConfig) {}, []string{"client"}},
		{"a client deaf to deadlines", deaf, func(*RateLimitConfig) {}, []string{"Options.ContextTimeoutEnabled"}},
		{"a cluster client deaf to deadlines", deafCluster, func(*RateLimitConfig) {}, []string{"Options.ContextTimeoutEnabled"}},
		{"a ring deaf to deadlines", deafRing, func(*RateLimitConfig) {}, []string{"Options.ContextTimeoutEnabled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.tune(&cfg)
			l, err := NewRateLimiter(tc.client, cfg)
			if tc.want == nil {
				if err != nil || l == nil {
					t.Fatalf("NewRateLimiter: %v", err)
				}
				return
			}
			if l != nil || !errors.Is(err, resilience.ErrInvalidConfig) {
				t.Fatalf("NewRateLimiter: %v, %v; want nil and an error matching ErrInvalidConfig", l, err)
			}
			var named []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *resilience.ConfigError
				if !errors.As(e, &ce) {
					t.Errorf("%v is not a *resilience.ConfigError", e)
					continue
				}
				named = append(named, ce.Field)
			}
			if fmt.Sprint(named) != fmt.Sprint(tc.want) {
				t.Errorf("fields named %v, want %v; error: %v", named, tc.want, err)
			}
		})
	}
}

// The defaults, and the local share they give.
func TestRateLimiterDefaults(t *testing.T) {
	rdb := redis.NewClient(documented("127.0.0.1:1"))
	defer rdb.Close()
	for _, tc := range []struct {
		cfg       RateLimitConfig
		perSecond float64
		burst     int
	}{
		{RateLimitConfig{Name: "a", Rate: 300, Replicas: 3}, 100, 100},
		{RateLimitConfig{Name: "b", Rate: 100, Burst: 10, Replicas: 4}, 25, 2},
		{RateLimitConfig{Name: "c", Rate: 60, Period: time.Minute, Burst: 2, Replicas: 5}, 0.2, 1},
		{RateLimitConfig{Name: "d", Rate: 1, Replicas: 3}, 1.0 / 3, 1},
	} {
		l := must(NewRateLimiter(rdb, tc.cfg))
		if got := float64(l.local.Limit()); math.Abs(got-tc.perSecond) > 1e-9 || l.local.Burst() != tc.burst {
			t.Errorf("%+v: local share %v/s, burst %d; want %v/s, %d", tc.cfg, got, l.local.Burst(), tc.perSecond, tc.burst)
		}
		if l.limit.Period == 0 || l.limit.Burst == 0 || l.timeout != DefaultRateLimitRedisTimeout || l.backoff != DefaultRateLimitRedisBackoff {
			t.Errorf("%+v: defaults not set: %+v, timeout %v, backoff %v", tc.cfg, l.limit, l.timeout, l.backoff)
		}
	}
}

// panicHook panics as a bug in a client hook of the user's would.
type panicHook struct{}

func (panicHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (panicHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		var p *int
		return errors.New(strconv.Itoa(*p)) // a nil pointer
	}
}
func (panicHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A panic in the client's own hooks is not Redis answering garbage: it
// goes on up to the caller, where only redis_rate's reading of a reply of
// the wrong shape is taken for a Redis that cannot be reached.
func TestRateLimiterLetsAHookPanic(t *testing.T) {
	l := newLimiter(t, limiterClient(t, "127.0.0.1:1", panicHook{}), RateLimitConfig{Key: "panics", Rate: 10, Replicas: 1})
	defer func() {
		if r := recover(); r == nil {
			t.Error("a nil pointer in a client hook did not reach the caller")
		}
	}()
	l.Run(context.Background(), func(context.Context) error { return nil })
}

// A RateLimiter's rejections are events, as a core stage's are, by the
// shared quota and by the local share alike, so that resilience.Log and
// resilotel.TraceEvents see them.
func TestRateLimiterReportsRejections(t *testing.T) {
	type tag struct{}
	ctx := context.WithValue(t.Context(), tag{}, "call")
	check := func(t *testing.T, l *RateLimiter, local bool) {
		t.Helper()
		var (
			mu  sync.Mutex
			got []resilience.Event
		)
		if err := resilience.ObserveEvents(func(ctx context.Context, e resilience.Event) {
			mu.Lock()
			defer mu.Unlock()
			if ctx.Value(tag{}) != "call" {
				t.Errorf("an event without the call's context")
			}
			got = append(got, e)
		}, l); err != nil {
			t.Fatal(err)
		}
		ok := func(context.Context) error { return nil }
		l.Run(ctx, ok)
		err := l.Run(ctx, ok)
		var rl *RateLimitedError
		if !errors.As(err, &rl) || rl.Local != local {
			t.Fatalf("second call: %v, want a rejection (local %v)", err, local)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 1 || got[0].Type != resilience.EventRejected || got[0].Kind != KindFleetRateLimit || got[0].Name != l.Name() || got[0].Err != err {
			t.Errorf("events %+v, want the one rejection", got)
		}
	}
	t.Run("shared quota", func(t *testing.T) {
		srv := testserver.Redis(t)
		check(t, newLimiter(t, limiterClient(t, srv.Addr), RateLimitConfig{Name: "events", Rate: 1, Period: time.Minute, Replicas: 1}), false)
	})
	t.Run("local share", func(t *testing.T) {
		check(t, newLimiter(t, limiterClient(t, "127.0.0.1:1"), RateLimitConfig{Name: "events-local", Rate: 1, Period: time.Minute, Replicas: 1}), true)
	})
}
