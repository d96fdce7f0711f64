package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/deadline"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"

	"github.com/resilience-go/resilience"
)

// The behaviour scenarios: the same question put to every library, its
// answer checked against what docs/COMPARISON.md says. Each scenario runs
// on the fake clock of testing/synctest, except where a library keeps
// time on goroutines of its own (said in the answer).

const coolDown = time.Second // every breaker's open timeout

// cb is one library's circuit breaker, reduced to what the scenarios use.
type cb struct {
	call func(ctx context.Context, fn func(context.Context) error) error
	open func() bool // reports whether it is open (or rejecting)
}

// breakers builds, for each library, a breaker that opens after one
// failure, probes after coolDown, and admits one probe and closes after
// one success; hook, if not nil, is called on each state change, from
// wherever the library calls its hooks.
var breakers = []struct {
	name string
	make func(hook func(readState func() string)) cb
}{
	{"resilience", func(hook func(func() string)) cb {
		var b *resilience.Breaker
		cfg := resilience.BreakerConfig{FailureThreshold: 1, OpenTimeout: coolDown, SuccessThreshold: 1}
		if hook != nil {
			cfg.OnStateChange = func(resilience.StateChange) { hook(func() string { return b.State().String() }) }
		}
		b = must(resilience.NewBreaker(cfg))
		p := resilience.For[struct{}](b)
		return cb{
			call: func(ctx context.Context, fn func(context.Context) error) error {
				_, err := p.Do(ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
				return err
			},
			open: func() bool { return b.State() != resilience.Closed },
		}
	}},
	{"failsafe-go", func(hook func(func() string)) cb {
		var b circuitbreaker.CircuitBreaker[any]
		bb := circuitbreaker.NewBuilder[any]().WithFailureThreshold(1).WithDelay(coolDown).WithSuccessThreshold(1)
		if hook != nil {
			bb = bb.OnStateChanged(func(circuitbreaker.StateChangedEvent) { hook(func() string { return b.State().String() }) })
		}
		b = bb.Build()
		return cb{
			call: func(ctx context.Context, fn func(context.Context) error) error {
				return failsafe.With[any](b).WithContext(ctx).Run(func() error { return fn(ctx) })
			},
			open: func() bool { return !b.IsClosed() },
		}
	}},
	{"gobreaker", func(hook func(func() string)) cb {
		var b *gobreaker.CircuitBreaker[struct{}]
		st := gobreaker.Settings{MaxRequests: 1, Timeout: coolDown, ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 }}
		if hook != nil {
			st.OnStateChange = func(string, gobreaker.State, gobreaker.State) { hook(func() string { return b.State().String() }) }
		}
		b = gobreaker.NewCircuitBreaker[struct{}](st)
		return cb{
			call: func(ctx context.Context, fn func(context.Context) error) error {
				_, err := b.Execute(func() (struct{}, error) { return struct{}{}, fn(ctx) })
				return err
			},
			open: func() bool { return b.State() != gobreaker.StateClosed },
		}
	}},
	{"go-resiliency", func(hook func(func() string)) cb {
		b := breaker.New(1, 1, coolDown) // no state-change hook
		return cb{
			call: func(ctx context.Context, fn func(context.Context) error) error {
				return b.Run(func() error { return fn(ctx) })
			},
			open: func() bool { return b.GetState() != breaker.Closed },
		}
	}},
}

var errDown = errors.New("down")

func failing(context.Context) error { return errDown }

// tripAndWait opens b with one failure and waits out its cool-down.
// gobreaker probes only once its cool-down has strictly passed, the
// others when it has passed: wait 1ms more, for all.
func tripAndWait(b cb) {
	b.call(context.Background(), failing)
	time.Sleep(coolDown + time.Millisecond)
	synctest.Wait()
}

// settle lets the timers and goroutines a library left behind finish, so
// that the bubble can end.
func settle() { time.Sleep(2 * coolDown) }

// scenario is a question with the answer each library gives; want holds
// the answers docs/COMPARISON.md quotes, and right says which answer is
// the right one.
type scenario struct {
	name  string
	right string
	want  map[string]string
	run   func(t *testing.T, lib string) string
}

var scenarios = []scenario{
	{
		name:  "a half-open probe panics: does the breaker let probes through again?",
		right: "recovers",
		want: map[string]string{
			"resilience": "recovers", "failsafe-go": "stuck: rejects every call", "gobreaker": "recovers", "go-resiliency": "recovers",
			"hystrix-go": "n/a: not run; hystrix runs the call on a goroutine of its own, where a panic cannot be recovered",
		},
		run: func(t *testing.T, lib string) (got string) {
			synctest.Test(t, func(t *testing.T) {
				b := breakerOf(lib, nil)
				tripAndWait(b)
				func() {
					defer func() { recover() }()
					b.call(context.Background(), func(context.Context) error { panic("probe panics") })
				}()
				got = "stuck: rejects every call"
				for range 3 { // three more cool-downs
					time.Sleep(coolDown + time.Millisecond)
					synctest.Wait()
					if b.call(context.Background(), func(context.Context) error { return nil }) == nil {
						got = "recovers"
						break
					}
				}
				settle()
			})
			return got
		},
	},
	{
		name:  "500 callers at once on a half-open breaker that admits 1 probe: how many calls run?",
		right: "1",
		want: map[string]string{
			"resilience": "1", "failsafe-go": "1", "gobreaker": "1", "go-resiliency": "500",
			"hystrix-go": "n/a: opens only from metrics its own goroutines gather",
		},
		run: func(t *testing.T, lib string) (got string) {
			synctest.Test(t, func(t *testing.T) {
				b := breakerOf(lib, nil)
				tripAndWait(b)
				var running atomic.Int64
				release := make(chan struct{})
				var wg sync.WaitGroup
				for range 500 {
					wg.Go(func() {
						b.call(context.Background(), func(context.Context) error {
							running.Add(1)
							<-release
							return nil
						})
					})
				}
				synctest.Wait() // every caller is rejected or inside the call
				got = fmt.Sprint(running.Load())
				close(release)
				wg.Wait()
				settle()
			})
			return got
		},
	},
	{
		name:  "the caller cancels 5 calls in a row: does the breaker open?",
		right: "no: not counted",
		want: map[string]string{
			"resilience": "no: not counted", "failsafe-go": "yes: counted as failures", "gobreaker": "yes: counted as failures", "go-resiliency": "yes: counted as failures",
			"hystrix-go": "n/a: opens only from metrics its own goroutines gather",
		},
		run: func(t *testing.T, lib string) (got string) {
			synctest.Test(t, func(t *testing.T) {
				b := breakerOf(lib, nil)
				for range 5 {
					ctx, cancel := context.WithCancel(context.Background())
					b.call(ctx, func(ctx context.Context) error {
						cancel() // the caller gives up while the call runs
						return ctx.Err()
					})
				}
				got = "no: not counted"
				if b.open() {
					got = "yes: counted as failures"
				}
				settle()
			})
			return got
		},
	},
	{
		name:  "a state-change hook reads the breaker's state: does the call return?",
		right: "returns",
		want: map[string]string{
			"resilience": "returns", "failsafe-go": "returns", "gobreaker": "deadlock: the hook runs under the breaker's lock",
			"go-resiliency": "n/a: no state-change hook", "hystrix-go": "n/a: no state-change hook",
		},
		run: func(t *testing.T, lib string) string {
			// A goroutine stuck on a mutex is not idle to synctest, so this one
			// waits on the real clock, a second at most.
			var hooked atomic.Bool
			b := breakerOf(lib, func(state func() string) {
				state()
				hooked.Store(true)
			})
			done := make(chan struct{})
			go func() {
				b.call(context.Background(), failing) // opens: the hook runs
				close(done)
			}()
			select {
			case <-done:
				if !hooked.Load() {
					return "hook not called"
				}
				return "returns"
			case <-time.After(time.Second):
				return "deadlock: the hook runs under the breaker's lock" // the goroutine stays stuck
			}
		},
	},
	{
		name:  "a 100ms timeout around a call that ignores its context and takes 1s: when does the caller get control back?",
		right: "100ms",
		want: map[string]string{
			"resilience": "1s (cooperative, the default); 100ms with Abandon", "failsafe-go": "1s", "gobreaker": "n/a: no timeout",
			"go-resiliency": "100ms", "hystrix-go": "100ms (real clock)",
		},
		run: func(t *testing.T, lib string) (got string) {
			stubborn := func(context.Context) error { time.Sleep(time.Second); return nil }
			measure := func(call func()) time.Duration {
				start := time.Now()
				call()
				return time.Since(start).Round(10 * time.Millisecond)
			}
			switch lib {
			case "gobreaker":
				return "n/a: no timeout"
			case "hystrix-go":
				// hystrix keeps time on goroutines of its own, started outside
				// any bubble: real clock, with a stubborn call of 300ms.
				hystrix.ConfigureCommand("stubborn", hystrix.CommandConfig{Timeout: 100, MaxConcurrentRequests: 10})
				d := measure(func() {
					hystrix.Do("stubborn", func() error { time.Sleep(300 * time.Millisecond); return nil }, nil)
				})
				if d >= 100*time.Millisecond && d < 300*time.Millisecond {
					return "100ms (real clock)"
				}
				return fmt.Sprintf("%v (real clock)", d)
			}
			synctest.Test(t, func(t *testing.T) {
				switch lib {
				case "resilience":
					co := resilience.For[struct{}](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: 100 * time.Millisecond})))
					ab := resilience.For[struct{}](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: 100 * time.Millisecond, Abandon: true})))
					wrap := func(ctx context.Context) (struct{}, error) { return struct{}{}, stubborn(ctx) }
					dc := measure(func() { co.Do(context.Background(), wrap) })
					da := measure(func() { ab.Do(context.Background(), wrap) })
					got = fmt.Sprintf("%v (cooperative, the default); %v with Abandon", dc, da)
					time.Sleep(time.Second) // let the abandoned call finish
				case "failsafe-go":
					fs := failsafe.With[any](timeout.New[any](100 * time.Millisecond))
					got = fmt.Sprint(measure(func() { fs.Run(func() error { return stubborn(nil) }) }))
				case "go-resiliency":
					dl := deadline.New(100 * time.Millisecond)
					got = fmt.Sprint(measure(func() { dl.Run(func(<-chan struct{}) error { return stubborn(nil) }) }))
					time.Sleep(time.Second) // let the abandoned call finish
				}
			})
			return got
		},
	},
}

var libraries = []string{"resilience", "failsafe-go", "gobreaker", "go-resiliency", "hystrix-go"}

// breakerOf makes the named library's breaker.
func breakerOf(lib string, hook func(func() string)) cb {
	for _, b := range breakers {
		if b.name == lib {
			return b.make(hook)
		}
	}
	panic("no breaker for " + lib)
}

// TestBehaviour puts every scenario to every library and checks each
// answer against the one docs/COMPARISON.md quotes; ours must be right.
// With BEHAVIOUR_TABLE=FILE it also writes the table, in markdown.
func TestBehaviour(t *testing.T) {
	var table strings.Builder
	table.WriteString("| scenario | " + strings.Join(libraries, " | ") + " |\n|---|" + strings.Repeat("---|", len(libraries)) + "\n")
	for _, sc := range scenarios {
		row := []string{sc.name}
		for _, lib := range libraries {
			got := sc.want[lib]
			if !strings.HasPrefix(got, "n/a") { // n/a: the library cannot be asked
				t.Run(lib, func(t *testing.T) { got = sc.run(t, lib) })
			}
			if got != sc.want[lib] {
				t.Errorf("%s\n%s: got %q, want %q", sc.name, lib, got, sc.want[lib])
			}
			if lib == "resilience" && !strings.HasPrefix(got, sc.right) && !strings.Contains(got, sc.right+" with") {
				t.Errorf("%s\nours is wrong: %q, want %q", sc.name, got, sc.right)
			}
			mark := "✗ "
			if strings.HasPrefix(got, sc.right) || strings.Contains(got, sc.right+" with") {
				mark = "✓ "
			}
			if strings.HasPrefix(got, "n/a") {
				mark = ""
			}
			row = append(row, mark+got)
		}
		table.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	if path := os.Getenv("BEHAVIOUR_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
