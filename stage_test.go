package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// counting is a stage written outside the package: it counts the calls it
// runs, and refuses every call while closed is set.
type counting struct {
	name   string
	calls  atomic.Int64
	closed atomic.Bool
}

// errCountingClosed is counting's refusal: it matches ErrRejected.
type errCountingClosed struct{}

func (errCountingClosed) Error() string        { return "counting stage closed" }
func (errCountingClosed) Is(target error) bool { return target == resilience.ErrRejected }

func (c *counting) Name() string { return c.name }
func (*counting) Kind() string   { return "counting" }
func (c *counting) Run(ctx context.Context, call func(context.Context) error) error {
	if c.closed.Load() {
		return errCountingClosed{}
	}
	c.calls.Add(1)
	return call(ctx)
}

// TestUserStage: a stage written outside the package sits in For and Do
// like a built-in one, is shared by chains of every result type, passes
// the result through, and its rejection is never retried.
func TestUserStage(t *testing.T) {
	ctx := context.Background()
	c := &counting{name: "users"}
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Millisecond}))
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))

	if v, err := resilience.Do(ctx, c, func(context.Context) (string, error) { return "ok", nil }); v != "ok" || err != nil {
		t.Errorf("Do = %q, %v; want ok, nil", v, err)
	}
	ints := resilience.For[int](retry, c, breaker)
	if v, err := ints.Do(ctx, func(context.Context) (int, error) { return 7, errBoom }); v != 7 || !errors.Is(err, errBoom) {
		t.Errorf("For[int] = %v, %v; want 7 and the call's error", v, err)
	}
	if got := c.calls.Load(); got != 5 {
		t.Errorf("%d calls through the stage, want 5 (1 by Do, 4 attempts)", got)
	}
	c.closed.Store(true)
	_, err := ints.Do(ctx, ok)
	if !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("closed stage: err = %v, want a match for ErrRejected", err)
	}
	if got := c.calls.Load(); got != 5 {
		t.Errorf("a rejection was retried: %d calls", got)
	}

	var nilStage *counting
	if _, err := resilience.Do(ctx, resilience.Stage(nilStage), ok); err == nil {
		t.Error("Do with a typed nil stage of a user's type: no error")
	}
	if n := testing.AllocsPerRun(100, func() { resilience.Do(ctx, c, ok) }); n > 2 {
		t.Errorf("a call through a user stage allocates %v times, want at most 2", n)
	}
}

// TestStageRun: each built-in stage runs a call that returns only an error
// through Run, as Do would.
func TestStageRun(t *testing.T) {
	ctx := context.Background()
	for _, s := range conformanceStages() {
		if _, user := s.(*counting); user {
			continue // Run of a user's stage is the user's
		}
		t.Run(s.Kind(), func(t *testing.T) {
			ran := 0
			if err := s.Run(ctx, func(context.Context) error { ran++; return nil }); err != nil || ran != 1 {
				t.Errorf("Run: ran %d times, err %v; want once, nil", ran, err)
			}
			if err := s.Run(ctx, nil); err == nil {
				t.Error("Run with a nil call: no error")
			}
		})
	}
}

// conformanceStages returns one of each kind of stage, fresh: a new stage
// joins the conformance tests with one line here, with the kind it must
// report.
func conformanceStages() []resilience.Stage {
	var stages []resilience.Stage
	for _, c := range conformanceTable() {
		stages = append(stages, c.stage)
	}
	return stages
}

type conformance struct {
	kind  string
	stage resilience.Stage
	// observe, if set, adds an observer to the stage and returns how many
	// calls it has seen; reject, if set, makes the stage refuse calls
	// until the function it returns is called.
	observe func(resilience.Stage) func() int
	reject  func(resilience.Stage) func()
	// observed is how many calls the observer sees in the test: 29, and
	// the panicking call too where the observer reports panics.
	observed int
}

func observeBreaker(b *resilience.Breaker) func() int {
	var n atomic.Int64
	b.Observe(resilience.BreakerObserver{Call: func(resilience.State, resilience.CallResult) { n.Add(1) }})
	return func() int { return int(n.Load()) }
}

func rejectBreaker(b *resilience.Breaker) func() {
	b.ForceOpen()
	return b.Reset
}

// statsObserver observes an Observable stage through its Stats: the calls
// it counted with the given result.
func statsObserver(result string) func(resilience.Stage) func() int {
	return func(s resilience.Stage) func() int {
		count := func() int {
			for _, c := range s.(resilience.Observable).Stats().Calls {
				if c.Result == result {
					return int(c.N)
				}
			}
			return -1
		}
		before := count()
		return func() int { return count() - before }
	}
}

func conformanceTable() []conformance {
	timeoutObserver := func(s resilience.Stage) func() int {
		var n atomic.Int64
		s.(*resilience.Timeout).Observe(resilience.TimeoutObserver{Done: func(resilience.TimeoutResult) { n.Add(1) }})
		return func() int { return int(n.Load()) }
	}
	guardBreaker := func(s resilience.Stage) *resilience.Breaker { return s.(*resilience.Guard).Breaker() }
	return []conformance{
		{"breaker", must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"})),
			func(s resilience.Stage) func() int { return observeBreaker(s.(*resilience.Breaker)) },
			func(s resilience.Stage) func() { return rejectBreaker(s.(*resilience.Breaker)) }, 30},
		{"bulkhead", must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "bh", MaxConcurrent: 2})), nil,
			func(s resilience.Stage) func() {
				b := s.(*resilience.Bulkhead)
				for range b.MaxConcurrent() {
					if !b.TryAcquire() {
						panic("bulkhead: no slot free")
					}
				}
				return func() {
					for range b.MaxConcurrent() {
						b.Release()
					}
				}
			}, 0},
		{"retry", must(resilience.NewRetry(resilience.RetryConfig{Name: "r", MaxRetries: 2, InitialBackoff: time.Millisecond})),
			func(s resilience.Stage) func() int {
				var n atomic.Int64
				s.(*resilience.Retry).Observe(resilience.RetryObserver{Done: func(int, error) { n.Add(1) }})
				return func() int { return int(n.Load()) }
			}, nil, 29},
		{"timeout", must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "t", Duration: time.Minute})), timeoutObserver, nil, 29},
		{"timeout", must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "ta", Duration: time.Minute, Abandon: true})), timeoutObserver, nil, 29},
		{"guard", must(resilience.Preset{Name: "g", Timeout: resilience.TimeoutConfig{Duration: time.Minute}}.Build()),
			func(s resilience.Stage) func() int { return observeBreaker(guardBreaker(s)) },
			func(s resilience.Stage) func() { return rejectBreaker(guardBreaker(s)) }, 30},
		{"guard", must(resilience.NewGuard(resilience.GuardConfig{Name: "ga", Stages: []resilience.Stage{
			must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "ga", Duration: time.Minute})),
			must(resilience.NewRetry(resilience.RetryConfig{Name: "ga", MaxRetries: 2, InitialBackoff: time.Millisecond})),
			must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "ga", MaxConcurrent: 2})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "ga"})),
			must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "ga.attempt", Duration: time.Second})),
			&counting{name: "ga"},
		}})),
			func(s resilience.Stage) func() int { return observeBreaker(guardBreaker(s)) },
			func(s resilience.Stage) func() { return rejectBreaker(guardBreaker(s)) }, 30},
		{"keyed_breaker", must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "kb"})),
			func(s resilience.Stage) func() int {
				k := s.(*resilience.KeyedBreaker)
				count := func() (n int) {
					for _, c := range k.Stats().Calls[:4] { // every result but "capped"
						n += int(c.N)
					}
					return n
				}
				before := count()
				return func() int { return count() - before }
			},
			func(s resilience.Stage) func() { return rejectBreaker(s.(*resilience.KeyedBreaker).Breaker("")) }, 30},
		{"throttle", must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "th"})), statsObserver("admitted"), nil, 30},
		{"chaos", must(resilience.NewChaos(resilience.ChaosConfig{Name: "ch"})), statsObserver("passed"), nil, 30},
		// A Hedge whose delay no call reaches sends no hedge: each call
		// runs once, as through no stage.
		{"hedge", must(resilience.NewHedge(resilience.HedgeConfig{Name: "hd", Delay: time.Minute})), statsObserver("sent"), nil, 0},
		// A Latency records the calls the dependency answered: the 3 after
		// the panic and the last, not the panicking nor the cancelled ones.
		{"latency", must(resilience.NewLatency(resilience.LatencyConfig{Name: "lat"})), statsObserver("recorded"), nil, 4},
		{"keyed_bulkhead", must(resilience.NewKeyed(resilience.KeyedConfig{Name: "kbh"}, func(string) (*resilience.Bulkhead, error) {
			return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "kbh", MaxConcurrent: 2})
		})), statsObserver("calls"),
			func(s resilience.Stage) func() {
				b := must(s.(*resilience.Keyed[*resilience.Bulkhead]).Stage(""))
				for range b.MaxConcurrent() {
					if !b.TryAcquire() {
						panic("keyed bulkhead: no slot free")
					}
				}
				return func() {
					for range b.MaxConcurrent() {
						b.Release()
					}
				}
			}, 30},
		// A rate limiter turns away a call whose context has ended without
		// taking a token: it sees the panicking call, the 3 after it and
		// the last.
		{"rate_limit", must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "rl", Rate: 1e9})), statsObserver("admitted"), nil, 5},
		// A Pushback with no period in force lets every call through, the
		// panicking one and the cancelled ones included. It has no reject:
		// nothing ends a period but time, and this test runs on the real
		// clock.
		{"pushback", must(resilience.NewPushback(resilience.PushbackConfig{Name: "pb"})), statsObserver("passed"), nil, 30},
		{"guard", must(resilience.NewGuard(resilience.GuardConfig{Name: "gc", Stages: []resilience.Stage{
			must(resilience.NewRetry(resilience.RetryConfig{Name: "gc", MaxRetries: 2, InitialBackoff: time.Millisecond})),
			must(resilience.NewRetryBudget(resilience.RetryBudgetConfig{Name: "gc"})),
			must(resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "gc", Rate: 1e9})),
			must(resilience.NewThrottler(resilience.ThrottlerConfig{Name: "gc"})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "gc"})),
		}})),
			func(s resilience.Stage) func() int { return observeBreaker(guardBreaker(s)) },
			func(s resilience.Stage) func() { return rejectBreaker(guardBreaker(s)) }, 5}, // the rate limiter stops the cancelled calls
		// An adaptive limiter admits every call, the panicking one and
		// the cancelled ones included; full, it refuses the next.
		{"adaptive_limiter", must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "al", InitialLimit: 2})), statsObserver("admitted"),
			func(s resilience.Stage) func() {
				l := s.(*resilience.AdaptiveLimiter)
				var held []resilience.LimiterPermit
				for range l.Limit() {
					held = append(held, must(l.Acquire(context.Background())))
				}
				return func() {
					for i := range held {
						held[i].Release()
					}
				}
			}, 30},
		{"counting", &counting{name: "c"},
			func(s resilience.Stage) func() int {
				c := s.(*counting)
				before := c.calls.Load()
				return func() int { return int(c.calls.Load() - before) }
			},
			func(s resilience.Stage) func() {
				c := s.(*counting)
				c.closed.Store(true)
				return func() { c.closed.Store(false) }
			}, 30},
	}
}

// TestStageConformance holds every kind of stage, built-in or not, to the
// same contract: a nil call is an error; the stage has its name and kind;
// a panic in the call goes on up the stack and leaves the stage working;
// a call whose context has ended returns the context's error and leaves
// the stage as it was. goleak (TestMain) finds any goroutine left behind.
// A new stage joins the table in conformanceTable.
func TestStageConformance(t *testing.T) {
	for _, c := range conformanceTable() {
		s := c.stage
		t.Run(fmt.Sprintf("%s/%s", s.Kind(), s.Name()), func(t *testing.T) {
			ctx := context.Background()
			if s.Kind() != c.kind {
				t.Errorf("Kind() = %q, want %q", s.Kind(), c.kind)
			}
			if s.Name() == "" {
				t.Error("Name() is empty")
			}
			if _, err := resilience.Do[int](ctx, s, nil); err == nil {
				t.Error("Do with a nil func: no error")
			}
			// A nil stage of its type is an error, not a panic, in Do and
			// in a Guard.
			if rt := reflect.TypeOf(s); rt.Kind() == reflect.Pointer {
				typedNil := reflect.Zero(rt).Interface().(resilience.Stage)
				if _, err := resilience.Do(ctx, typedNil, ok); err == nil {
					t.Errorf("Do with a nil %T: no error", s)
				}
				if _, err := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{typedNil}}); err == nil {
					t.Errorf("NewGuard with a nil %T: no error", s)
				}
			}
			p := resilience.For[int](s)
			seen := func() int { return -1 }
			if c.observe != nil {
				seen = c.observe(s)
			}

			func() {
				defer func() {
					if r := recover(); r != "call panicked" {
						t.Errorf("recovered %v, want the call's panic", r)
					}
				}()
				p.Do(ctx, func(context.Context) (int, error) { panic("call panicked") })
				t.Error("the panic did not reach the caller")
			}()
			for i := range 3 { // more calls than a bulkhead has slots: each was given back
				if v, err := p.Do(ctx, ok); v != 1 || err != nil {
					t.Fatalf("call %d after a panic: %v, %v; want 1, nil", i, v, err)
				}
			}

			b, isBreaker := s.(*resilience.Breaker)
			var rate float64
			if isBreaker {
				rate = b.ErrorRate()
			}
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			for range 25 { // enough to open a breaker, were they failures
				if _, err := p.Do(cctx, func(ctx context.Context) (int, error) { return 0, ctx.Err() }); !errors.Is(err, context.Canceled) {
					t.Fatalf("ended context: err = %v, want context.Canceled", err)
				}
			}
			if isBreaker && (b.State() != resilience.Closed || b.ErrorRate() != rate) {
				t.Errorf("breaker after cancelled calls: %v, error rate %v; want closed, %v as before them", b.State(), b.ErrorRate(), rate)
			}
			if v, err := p.Do(ctx, ok); v != 1 || err != nil {
				t.Errorf("after calls with an ended context: %v, %v; want 1, nil: the stage's state changed", v, err)
			}
			if c.observe != nil {
				// The 3 calls after the panic, the 25 cancelled ones and the
				// last; the observers that report panics saw one more.
				if n := seen(); n != c.observed {
					t.Errorf("the observer saw %d calls, want %d", n, c.observed)
				}
			}
			if c.reject != nil {
				undo := c.reject(s)
				calls := 0
				_, err := p.Do(ctx, func(context.Context) (int, error) { calls++; return 1, nil })
				undo()
				if !errors.Is(err, resilience.ErrRejected) || calls != 0 {
					t.Errorf("refused call: err %v after %d calls; want an error matching ErrRejected, no call", err, calls)
				}
				if v, err := p.Do(ctx, ok); v != 1 || err != nil {
					t.Errorf("after the refusal: %v, %v; want 1, nil", v, err)
				}
			}
		})
	}
}
