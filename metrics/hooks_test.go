package metrics_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
)

// TestHooksMayUseMetricsDuringAScrape: a state-change hook that calls
// Instrument, Reset and State runs while other goroutines scrape without
// pause. Scraping reads each breaker's state; if that read could make a
// transition (TestBreakerStateOnlyReads checks that it does not), or if
// the collector held its lock while reading, the hook would run under
// that lock and its Instrument would wait for it forever.
func TestHooksMayUseMetricsDuringAScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := must(metrics.New(reg))
	var b *resilience.Breaker
	var extra int
	reset := make(chan struct{}, 1)
	b = must(resilience.NewBreaker(resilience.BreakerConfig{
		Name: "hooked", FailureThreshold: 1, OpenTimeout: time.Microsecond,
		OnStateChange: func(c resilience.StateChange) {
			extra++ // hooks run one at a time
			t := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: fmt.Sprint("t", extra), Duration: time.Second}))
			if err := m.Instrument(t); err != nil {
				panic(err)
			}
			_ = b.State()
			if c.To == resilience.HalfOpen {
				b.Reset()
				reset <- struct{}{}
			}
		},
	}))
	if err := m.Instrument(b); err != nil {
		t.Fatal(err)
	}
	p := resilience.For[int](b)

	stop := make(chan struct{})
	var scrapers sync.WaitGroup
	for range 2 {
		scrapers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := reg.Gather(); err != nil {
					panic(err)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 300 {
			p.Do(context.Background(), fail) // opens; the timer moves it to half-open, the hook resets it
			<-reset
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("deadlock: the open, half-open, reset cycles did not finish while scrapes ran")
	}
	close(stop)
	scrapers.Wait()
}

// TestInstrumentZeroStages: instrumenting a stage used as its zero value
// is an error, not a panic.
func TestInstrumentZeroStages(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	for _, s := range []resilience.Stage{&resilience.Breaker{}, &resilience.Retry{}, &resilience.Timeout{}, &resilience.Bulkhead{}, &resilience.Guard{}} {
		if err := m.Instrument(s); err == nil {
			t.Errorf("Instrument(zero %T): no error", s)
		}
	}
}

// plain is a stage of a kind metrics has no series for.
type plain struct{}

func (plain) Name() string { return "plain" }
func (plain) Kind() string { return "plain" }
func (plain) Run(ctx context.Context, call func(context.Context) error) error {
	return call(ctx)
}

// TestInstrumentGuardOfAnyShape: Instrument takes a guard of any shape,
// instruments the stages it has series for and leaves the others out.
func TestInstrumentGuardOfAnyShape(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "any"}))
	bh := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "any", MaxConcurrent: 1}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "any", Stages: []resilience.Stage{bh, plain{}, b}}))
	if err := m.Instrument(g); err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	resilience.Do(context.Background(), g, ok)
	if got := closedSuccesses(t, m, "any"); got != 1 {
		t.Errorf("closed successes of the guard's breaker: %v, want 1", got)
	}
	if err := m.Instrument(plain{}); err == nil {
		t.Error("Instrument of a stage of an unknown kind, alone: no error")
	}
}
