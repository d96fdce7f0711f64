package resilience_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// A dependency that answers in 80ms and fails the first attempt, called
// with a 100ms deadline: a retry knowing the dependency's latency starts
// no second attempt, which the deadline would cut 20ms in; one that does
// not starts it, and it is cut.
func TestRetrySkipsAnAttemptTheDeadlineCannotFit(t *testing.T) {
	for _, withModel := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			lat := must(resilience.NewLatency(resilience.LatencyConfig{Name: "dep", MinSamples: 10}))
			for range 20 {
				lat.Record(80 * time.Millisecond)
			}
			cfg := resilience.RetryConfig{Name: "dep", MaxRetries: 3, NoBackoff: true}
			if withModel {
				cfg.Latency = lat
			}
			retry := must(resilience.NewRetry(cfg))
			attempts := 0
			call := func(ctx context.Context) (int, error) {
				attempts++
				select {
				case <-time.After(80 * time.Millisecond):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
				if attempts == 1 {
					return 0, errBoom
				}
				return 1, nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := resilience.Do(ctx, retry, call)
			var re *resilience.RetryError
			if !errors.As(err, &re) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("model %v: %v, want a RetryError matching DeadlineExceeded", withModel, err)
			}
			if withModel {
				if attempts != 1 || re.Cause != resilience.ErrRetryDeadline || time.Since(start) != 80*time.Millisecond || !errors.Is(re.Err, errBoom) {
					t.Errorf("with the model: %d attempts, cause %v, after %v, last error %v; want 1 attempt, ErrRetryDeadline at 80ms with the first attempt's error", attempts, re.Cause, time.Since(start), re.Err)
				}
			} else if attempts != 2 || time.Since(start) != 100*time.Millisecond {
				t.Errorf("without the model: %d attempts, ended after %v; want a second attempt cut at 100ms", attempts, time.Since(start))
			}
		})
	}
}

// With too few samples the model says nothing, and the retry behaves as
// it does without one; with a deadline far enough, it retries.
func TestRetryDeadlineWithoutDataOrWithTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{MinSamples: 50}))
		lat.Record(80 * time.Millisecond)
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 1, NoBackoff: true, Latency: lat}))
		attempts := 0
		call := func(ctx context.Context) (int, error) {
			attempts++
			time.Sleep(10 * time.Millisecond)
			if attempts == 1 {
				return 0, errBoom
			}
			return 1, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if v, err := resilience.Do(ctx, retry, call); err != nil || v != 1 || attempts != 2 {
			t.Errorf("no data: %d, %v after %d attempts; want the retry's success", v, err, attempts)
		}
		for range 60 {
			lat.Record(10 * time.Millisecond)
		}
		attempts = 0
		ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel2()
		if v, err := resilience.Do(ctx2, retry, call); err != nil || v != 1 || attempts != 2 {
			t.Errorf("time enough: %d, %v after %d attempts; want the retry's success", v, err, attempts)
		}
	})
}

// A hedge whose call has less time left than the dependency's median
// answer is not sent, and is counted as "deadline".
func TestHedgeSkipsAHedgeTheDeadlineCannotFit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{MinSamples: 10}))
		// p20 5ms, the hedge's delay; p50 50ms, more than the 35ms the
		// call has left when the hedge is due.
		for range 10 {
			lat.Record(5 * time.Millisecond)
		}
		for range 20 {
			lat.Record(50 * time.Millisecond)
		}
		h := must(resilience.NewHedge(resilience.HedgeConfig{Latency: lat, Quantile: 0.2, NoBudget: true}))
		if d, ok := h.Delay(); !ok || d < 4900*time.Microsecond || d > 5100*time.Microsecond {
			t.Fatalf("Delay() = %v, %v; want about 5ms", d, ok)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
		defer cancel()
		s := &slowAttempts{latency: latencies(30 * time.Millisecond)}
		if _, err := resilience.Do(ctx, h, s.call); err != nil || s.calls.Load() != 1 {
			t.Errorf("%v after %d attempts; want the first's answer, no hedge", err, s.calls.Load())
		}
		if st := hedgeStats(h); st["deadline"] != 1 || st["sent"] != 0 {
			t.Errorf("Stats %v, want one hedge skipped for the deadline", st)
		}
	})
}

// A preset with a Latency builds one model for the guard, innermost, and
// gives it to the Retry (deadline-aware retries) and to a Hedge that asks
// for a quantile; the stages run Timeout → Retry → Hedge → Breaker →
// Latency.
func TestPresetLatencyAndHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := must(resilience.Preset{
			Name:    "p",
			Timeout: resilience.TimeoutConfig{Duration: time.Second},
			Retry:   &resilience.RetryConfig{MaxRetries: 2, NoBackoff: true},
			Latency: &resilience.LatencyConfig{MinSamples: 10},
			Hedge:   &resilience.HedgeConfig{Quantile: 0.9, Delay: 50 * time.Millisecond, NoBudget: true},
		}.Build())
		var kinds []string
		var h *resilience.Hedge
		for _, s := range g.Stages() {
			kinds = append(kinds, s.Kind()+" "+s.Name())
			if x, ok := s.(*resilience.Hedge); ok {
				h = x
			}
		}
		if got := strings.Join(kinds, ", "); got != "timeout p, retry p, hedge p, breaker p, latency p" {
			t.Fatalf("stages %s", got)
		}
		fast := &slowAttempts{latency: latencies(80 * time.Millisecond)}
		for range 20 {
			if _, err := resilience.Do(context.Background(), g, fast.call); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond)
		if d, ok := h.Delay(); !ok || d < 78*time.Millisecond || d > 82*time.Millisecond {
			t.Errorf("the hedge's delay %v, %v; want the guard's model's p90, 80ms", d, ok)
		}
		// An attempt failing at 80ms, with 100ms of deadline: no retry.
		failing := &slowAttempts{latency: latencies(80 * time.Millisecond), errs: func(int) error { return errBoom }}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := resilience.Do(ctx, g, failing.call); !errors.Is(err, resilience.ErrRetryDeadline) || failing.calls.Load() != 1 {
			t.Errorf("%v after %d attempts; want ErrRetryDeadline after 1", err, failing.calls.Load())
		}
	})
}
