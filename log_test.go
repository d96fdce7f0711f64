package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// lines is a slog.Handler that keeps each record as one line of text:
// its level, message and attributes, in order.
type lines struct {
	level slog.Level
	mu    *sync.Mutex
	got   *[]string
	tags  *[]any
}

func newLines(level slog.Level) lines {
	return lines{level: level, mu: new(sync.Mutex), got: new([]string), tags: new([]any)}
}

func (h lines) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h lines) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h lines) WithGroup(string) slog.Handler                { return h }
func (h lines) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.got = append(*h.got, b.String())
	*h.tags = append(*h.tags, ctx.Value(callTag{}))
	return nil
}

func (h lines) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := *h.got
	*h.got, *h.tags = nil, nil
	return g
}

func wantLines(t *testing.T, h lines, want ...string) {
	t.Helper()
	got := h.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("logged\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestLogStateChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newLines(slog.LevelInfo)
		b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users", FailureThreshold: 2, SuccessThreshold: 1, OpenTimeout: time.Minute}))
		if err := resilience.Log(slog.New(h), b); err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		resilience.Do(ctx, b, answering(errDown))
		resilience.Do(ctx, b, answering(errDown))
		time.Sleep(time.Minute)
		synctest.Wait() // the breaker's timer moves it to half-open
		resilience.Do(ctx, b, answering(nil))
		synctest.Wait() // state changes are reported from the goroutine that made them, in order
		wantLines(t, h,
			"WARN resilience: circuit breaker open dependency=users stage=breaker from=closed to=open",
			"INFO resilience: circuit breaker half-open dependency=users stage=breaker from=open to=half-open",
			"INFO resilience: circuit breaker closed dependency=users stage=breaker from=half-open to=closed",
		)
	})
}

// A storm of rejections gives one line per interval, which says how many
// it left out; each stage and each type of event is limited on its own.
func TestLogLimitsRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newLines(slog.LevelInfo)
		b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))
		bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "pool", MaxConcurrent: 1}))
		if err := resilience.Log(slog.New(h), b, bh); err != nil {
			t.Fatal(err)
		}
		b.ForceOpen()
		h.take() // the state change
		ctx := context.WithValue(context.Background(), callTag{}, "call")
		for range 1000 {
			resilience.Do(ctx, b, answering(nil))
			time.Sleep(time.Millisecond)
		}
		resilience.Do(ctx, bh, func(ctx context.Context) (int, error) { return resilience.Do(ctx, bh, answering(nil)) })
		time.Sleep(resilience.DefaultLogInterval - time.Second) // the interval since the first rejection
		resilience.Do(ctx, b, answering(nil))
		rejected := `WARN resilience: call rejected dependency=users stage=breaker error=resilience: circuit breaker "users" is forced open`
		h.mu.Lock()
		tags := append([]any(nil), *h.tags...)
		h.mu.Unlock()
		wantLines(t, h,
			rejected,
			`WARN resilience: call rejected dependency=pool stage=bulkhead error=resilience: bulkhead "pool" is full (1 calls in flight)`,
			rejected+" suppressed=999",
		)
		for i, tag := range tags {
			if tag != "call" {
				t.Errorf("line %d logged with the context of %v, want the call's", i, tag)
			}
		}
	})
}

func TestLogEveryEventWithANegativeInterval(t *testing.T) {
	h := newLines(slog.LevelInfo)
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))
	if err := resilience.LogEvents(resilience.LogConfig{Logger: slog.New(h), Interval: -1}, b); err != nil {
		t.Fatal(err)
	}
	b.ForceOpen()
	h.take()
	for range 5 {
		resilience.Do(context.Background(), b, answering(nil))
	}
	if got := h.take(); len(got) != 5 {
		t.Errorf("%d lines for 5 rejections: %q", len(got), got)
	}
}

func TestLogRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newLines(slog.LevelDebug)
		retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 1, InitialBackoff: 100 * time.Millisecond}))
		if err := resilience.Log(slog.New(h), retry); err != nil {
			t.Fatal(err)
		}
		resilience.Do(context.Background(), retry, answering(errDown))
		wantLines(t, h,
			"DEBUG resilience: retrying dependency=users stage=retry attempt=1 delay=100ms error=unavailable",
			"WARN resilience: retry gave up dependency=users stage=retry attempt=2 error=resilience: retry \"users\" gave up after 2 attempts: unavailable cause=resilience: retries exhausted",
		)
	})
}

func TestLogKeyedBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newLines(slog.LevelInfo)
		k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts", MaxEjectedPercent: 100}))
		if err := resilience.Log(slog.New(h), k); err != nil {
			t.Fatal(err)
		}
		k.Breaker("a").ForceOpen()
		k.Breaker("b").ForceOpen() // within the interval: left out
		resilience.Do(resilience.WithKey(context.Background(), "a"), k, answering(nil))
		synctest.Wait()
		wantLines(t, h,
			"WARN resilience: circuit breaker open dependency=hosts stage=keyed_breaker key=a from=closed to=open",
			`WARN resilience: call rejected dependency=hosts stage=keyed_breaker key=a error=resilience: circuit breaker "hosts" for key "a" is forced open`,
		)
		// A key closing is not held back by keys opening, nor the other
		// way round; the next key to open says how many were left out.
		k.Breaker("b").Reset()
		synctest.Wait()
		wantLines(t, h, "INFO resilience: circuit breaker closed dependency=hosts stage=keyed_breaker key=b from=open to=closed")
		time.Sleep(resilience.DefaultLogInterval)
		k.Breaker("c").ForceOpen()
		synctest.Wait()
		wantLines(t, h, "WARN resilience: circuit breaker open dependency=hosts stage=keyed_breaker key=c from=closed to=open suppressed=1")
	})
}

// Under a storm from many goroutines at once, every rejection is either
// logged or counted in a later line: none is lost.
func TestLogLosesNoCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newLines(slog.LevelInfo)
		b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))
		if err := resilience.Log(slog.New(h), b); err != nil {
			t.Fatal(err)
		}
		b.ForceOpen()
		h.take()
		const goroutines, each = 8, 500
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for i := range each {
					resilience.Do(context.Background(), b, answering(nil))
					if i%100 == 0 {
						time.Sleep(3 * time.Second) // some lines go out, most are counted
					}
				}
			})
		}
		wg.Wait()
		time.Sleep(resilience.DefaultLogInterval)
		resilience.Do(context.Background(), b, answering(nil)) // the line that counts the rest
		total := 0
		for _, line := range h.take() {
			total++
			if _, n, ok := strings.Cut(line, " suppressed="); ok {
				var k int
				fmt.Sscan(n, &k)
				total += k
			}
		}
		if want := goroutines*each + 1; total != want {
			t.Errorf("%d rejections logged or counted, want %d", total, want)
		}
	})
}

// With the logger's level above the events', nothing is built: a
// rejection, like a call through a closed breaker, allocates nothing.
func TestLogAboveTheLevelCostsNothing(t *testing.T) {
	h := newLines(slog.LevelError)
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"}))
	if err := resilience.Log(slog.New(h), b); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ok := answering(nil)
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, b, ok) }); n != 0 {
		t.Errorf("a call through a closed breaker with a logger allocates %v times, want 0", n)
	}
	b.ForceOpen()
	if n := testing.AllocsPerRun(1000, func() { resilience.Do(ctx, b, ok) }); n != 0 {
		t.Errorf("a rejection below the logger's level allocates %v times, want 0", n)
	}
	if got := h.take(); len(got) != 0 {
		t.Errorf("logged %q at level Error", got)
	}
}

func TestLogErrors(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	err := resilience.Log(nil, b)
	if !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "LogConfig.Logger") {
		t.Errorf("nil logger: %v, want an invalid-config error naming LogConfig.Logger", err)
	}
	err = resilience.Log(slog.New(newLines(slog.LevelInfo)), b, plain{})
	if err == nil || !strings.Contains(err.Error(), "reports no events") {
		t.Errorf("a stage with no events: %v", err)
	}
}

// Log a guard's state changes, rejections and retries given up through a
// logger of your own.
func ExampleLog() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // for the example's output to be the same every run
			}
			return a
		},
	}))
	breaker, _ := resilience.NewBreaker(resilience.BreakerConfig{Name: "users", FailureThreshold: 1})
	guard, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{breaker}})
	if err := resilience.Log(logger, guard); err != nil {
		panic(err)
	}
	ctx := context.Background()
	resilience.Do(ctx, guard, func(context.Context) (int, error) { return 0, errors.New("unavailable") })
	resilience.Do(ctx, guard, func(context.Context) (int, error) { return 1, nil })
	// Output:
	// level=WARN msg="resilience: circuit breaker open" dependency=users stage=breaker from=closed to=open
	// level=WARN msg="resilience: call rejected" dependency=users stage=breaker error="resilience: circuit breaker \"users\" is open; next probe in 1m0s"
}
