package resilience_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// slowAttempts answers each attempt after the latency given for its
// number (from 1), or with its error; an attempt whose context ends first
// returns the context's error. It records the attempts' numbers and how
// each ended.
type slowAttempts struct {
	latency func(attempt int) time.Duration
	errs    func(attempt int) error

	mu       sync.Mutex
	started  []int
	canceled []int
	calls    atomic.Int32
}

func (s *slowAttempts) call(ctx context.Context) (int, error) {
	n := int(s.calls.Add(1))
	s.mu.Lock()
	s.started = append(s.started, resilience.Attempt(ctx))
	s.mu.Unlock()
	t := time.NewTimer(s.latency(n))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		s.mu.Lock()
		s.canceled = append(s.canceled, n)
		s.mu.Unlock()
		return -n, ctx.Err()
	}
	if s.errs != nil {
		if err := s.errs(n); err != nil {
			return -n, err
		}
	}
	return n, nil
}

func hedgeStats(h *resilience.Hedge) map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range h.Stats().Calls {
		m[c.Result] = c.N
	}
	return m
}

func latencies(d ...time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		if n <= len(d) {
			return d[n-1]
		}
		return d[len(d)-1]
	}
}

func equalMaps(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A call slower than the delay gets a hedge at the delay; the first
// answer wins, at the moment it comes, and the slow first attempt is
// cancelled.
func TestHedgeSendsAfterTheDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "h", Delay: 10 * time.Millisecond, NoBudget: true}))
		s := &slowAttempts{latency: latencies(time.Second, 5*time.Millisecond)}
		start := time.Now()
		v, err := resilience.Do(context.Background(), h, s.call)
		if err != nil || v != 2 {
			t.Fatalf("got %d, %v; want the hedge's 2, nil", v, err)
		}
		if took := time.Since(start); took != 15*time.Millisecond {
			t.Errorf("took %v, want 15ms: the hedge sent at 10ms answering in 5ms", took)
		}
		synctest.Wait()
		if s.started[0] != 1 || s.started[1] != 2 {
			t.Errorf("attempt numbers %v, want [1 2]", s.started)
		}
		if len(s.canceled) != 1 || s.canceled[0] != 1 {
			t.Errorf("cancelled %v, want the first attempt", s.canceled)
		}
		want := map[string]uint64{"sent": 1, "won": 1, "refused": 0, "canceled": 1, "deadline": 0}
		if got := hedgeStats(h); !equalMaps(got, want) {
			t.Errorf("Stats %v, want %v", got, want)
		}
	})
}

// A call that ends before the delay sends nothing more.
func TestHedgeNotSentForAFastCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		s := &slowAttempts{latency: latencies(9 * time.Millisecond)}
		for range 100 {
			if v, err := resilience.Do(context.Background(), h, s.call); err != nil || v <= 0 {
				t.Fatalf("got %d, %v", v, err)
			}
		}
		time.Sleep(time.Second)
		if n := s.calls.Load(); n != 100 {
			t.Errorf("%d attempts for 100 fast calls, want 100", n)
		}
		if got := hedgeStats(h)["sent"]; got != 0 {
			t.Errorf("sent %d hedges", got)
		}
	})
}

// A failure of one attempt does not end the call while another is in
// flight; once every attempt sent has failed, the call fails with the
// last one's error, at once.
func TestHedgeFailureWaitsForTheOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		errFirst := errors.New("first failed")
		s := &slowAttempts{latency: latencies(20*time.Millisecond, 30*time.Millisecond),
			errs: func(n int) error {
				if n == 1 {
					return errFirst
				}
				return nil
			}}
		start := time.Now()
		v, err := resilience.Do(context.Background(), h, s.call)
		if err != nil || v != 2 || time.Since(start) != 40*time.Millisecond {
			t.Errorf("got %d, %v after %v; want the hedge's 2 at 40ms", v, err, time.Since(start))
		}

		errAll := func(n int) error { return errors.New("attempt " + string(rune('0'+n))) }
		s = &slowAttempts{latency: latencies(20*time.Millisecond, 30*time.Millisecond), errs: errAll}
		start = time.Now()
		_, err = resilience.Do(context.Background(), h, s.call)
		if err == nil || err.Error() != "attempt 2" || time.Since(start) != 40*time.Millisecond {
			t.Errorf("all failing: %v after %v; want the last failure, attempt 2, at 40ms", err, time.Since(start))
		}

		// A failure before the delay ends the call: nothing is in flight.
		s = &slowAttempts{latency: latencies(time.Millisecond), errs: errAll}
		if _, err := resilience.Do(context.Background(), h, s.call); err == nil || s.calls.Load() != 1 {
			t.Errorf("a fast failure: %v after %d attempts, want it after 1", err, s.calls.Load())
		}
	})
}

// An answer (an error marked Answer) or a permanent failure decides the
// call as a success does.
func TestHedgeAnswersAndPermanentErrorsDecide(t *testing.T) {
	for name, mark := range map[string]func(error) error{"answer": resilience.Answer, "permanent": resilience.Permanent} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
				s := &slowAttempts{latency: latencies(20*time.Millisecond, time.Second),
					errs: func(int) error { return mark(errBoom) }}
				start := time.Now()
				_, err := resilience.Do(context.Background(), h, s.call)
				if !errors.Is(err, errBoom) || time.Since(start) != 20*time.Millisecond {
					t.Errorf("%v after %v, want the first attempt's at 20ms", err, time.Since(start))
				}
			})
		})
	}
}

// Up to MaxHedges hedges go out, one per delay; the first answer wins
// and every other attempt is cancelled.
func TestHedgeMaxHedges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 3, NoBudget: true}))
		s := &slowAttempts{latency: latencies(100*time.Millisecond, 100*time.Millisecond, 75*time.Millisecond, 100*time.Millisecond)}
		start := time.Now()
		v, err := resilience.Do(context.Background(), h, s.call)
		if err != nil || v != 3 || time.Since(start) != 95*time.Millisecond {
			t.Errorf("got %d, %v after %v; want attempt 3 (sent at 20ms) at 95ms", v, err, time.Since(start))
		}
		synctest.Wait()
		if n := s.calls.Load(); n != 4 {
			t.Errorf("%d attempts, want 4", n)
		}
		if len(s.canceled) != 3 {
			t.Errorf("cancelled %v, want the three others", s.canceled)
		}
		if st := hedgeStats(h); st["sent"] != 3 || st["won"] != 1 || st["canceled"] != 3 {
			t.Errorf("Stats %v", st)
		}
	})
}

// The budget lets hedges add only their share of the calls: 100 slow calls
// with a 5% budget send 5 hedges, and the others are refused, each
// reported as an EventRejected of the hedge.
func TestHedgeBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "h", Delay: 10 * time.Millisecond}))
		var rejected atomic.Int32
		h.ObserveEvents(func(_ context.Context, e resilience.Event) {
			if e.Type == resilience.EventRejected && e.Kind == resilience.KindHedge && errors.Is(e.Err, resilience.ErrHedgeBudget) && e.Attempt == 2 {
				rejected.Add(1)
			}
		})
		s := &slowAttempts{latency: latencies(20 * time.Millisecond)}
		for range 100 {
			if _, err := resilience.Do(context.Background(), h, s.call); err != nil {
				t.Fatal(err)
			}
		}
		st := hedgeStats(h)
		if st["sent"] != 5 || st["refused"] != 95 || rejected.Load() != 95 {
			t.Errorf("Stats %v, %d refusals reported; want 5 sent, 95 refused", st, rejected.Load())
		}
		if n := s.calls.Load(); n != 105 {
			t.Errorf("%d attempts for 100 calls, want 105", n)
		}
	})
}

// A call that must not run twice at once is not hedged.
func TestHedgeLeavesUnhedgedCallsAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		for name, ctx := range map[string]context.Context{
			"AtMostOnce": resilience.AtMostOnce(context.Background()),
			"Unhedged":   resilience.Unhedged(context.Background()),
		} {
			s := &slowAttempts{latency: latencies(100 * time.Millisecond)}
			if _, err := resilience.Do(ctx, h, s.call); err != nil || s.calls.Load() != 1 {
				t.Errorf("%s: %v, %d attempts; want 1", name, err, s.calls.Load())
			}
			if !resilience.IsUnhedged(ctx) {
				t.Errorf("%s: IsUnhedged false", name)
			}
		}
		if resilience.IsUnhedged(context.Background()) {
			t.Error("IsUnhedged(Background)")
		}
	})
}

// A call whose deadline comes before the delay is not hedged.
func TestHedgeNotSentPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		s := &slowAttempts{latency: latencies(100 * time.Millisecond)}
		if _, err := resilience.Do(ctx, h, s.call); !errors.Is(err, context.DeadlineExceeded) || s.calls.Load() != 1 {
			t.Errorf("%v, %d attempts; want the deadline after 1", err, s.calls.Load())
		}
	})
}

// closer is a result that says whether it was closed.
type closer struct{ closed atomic.Bool }

func (c *closer) Close() error { c.closed.Store(true); return nil }

// A loser's result is dropped, and closed if it is a Closer; it never
// reaches the caller, even when it comes after the winner's.
func TestHedgeDropsTheLosersResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		results := []*closer{{}, {}}
		var n atomic.Int32
		call := func(ctx context.Context) (*closer, error) {
			i := n.Add(1) - 1
			if i == 0 {
				// The first attempt ignores its cancellation, and
				// answers late.
				time.Sleep(100 * time.Millisecond)
				return results[0], nil
			}
			time.Sleep(5 * time.Millisecond)
			return results[1], nil
		}
		got, err := resilience.Do(context.Background(), h, call)
		if err != nil || got != results[1] {
			t.Fatalf("got %p, %v; want the hedge's %p", got, err, results[1])
		}
		synctest.Wait()
		if got != results[1] || got.closed.Load() {
			t.Error("the winner's result was changed or closed")
		}
		if !results[0].closed.Load() {
			t.Error("the loser's result was not closed")
		}
	})
}

// A panic in the first attempt goes on up, the hedges cancelled; one in a
// hedge while the call is undecided is raised on the caller's goroutine.
func TestHedgePanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true, MaxHedges: 2}))
		var hedgeCanceled atomic.Bool
		var n atomic.Int32
		func() {
			defer func() {
				if r := recover(); r != "first" {
					t.Errorf("recovered %v, want the first attempt's panic", r)
				}
			}()
			resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
				if n.Add(1) == 1 {
					time.Sleep(15 * time.Millisecond)
					panic("first")
				}
				<-ctx.Done()
				hedgeCanceled.Store(true)
				return 0, ctx.Err()
			})
		}()
		synctest.Wait()
		if !hedgeCanceled.Load() {
			t.Error("the hedge was not cancelled")
		}
		time.Sleep(time.Second)
		if n.Load() != 2 {
			t.Errorf("%d attempts, want 2: no hedge after the panic", n.Load())
		}

		n.Store(0)
		func() {
			defer func() {
				if r := recover(); r != "hedge" {
					t.Errorf("recovered %v, want the hedge's panic", r)
				}
			}()
			resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
				if n.Add(1) == 1 {
					<-ctx.Done()
					return 0, ctx.Err()
				}
				panic("hedge")
			})
		}()
	})
}

// The context of the attempt whose result is returned stays open under a
// Hold until release, for a result read after the call returns; the
// others are cancelled.
func TestHedgeHoldsTheWinnersContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		ctxs := make(chan context.Context, 2)
		call := func(ctx context.Context) (int, error) {
			ctxs <- ctx
			if resilience.Attempt(ctx) == 1 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return 2, nil
		}
		held, release := resilience.Hold(context.Background(), h)
		if _, err := resilience.Do(held, h, call); err != nil {
			t.Fatal(err)
		}
		first, second := <-ctxs, <-ctxs
		synctest.Wait()
		if first.Err() == nil || second.Err() != nil {
			t.Errorf("held: loser's context %v, winner's %v; want the loser's cancelled and the winner's open", first.Err(), second.Err())
		}
		release()
		if second.Err() == nil {
			t.Error("the winner's context is open after release")
		}

		// Not held: every attempt's context ends with the call.
		if _, err := resilience.Do(context.Background(), h, call); err != nil {
			t.Fatal(err)
		}
		_, second = <-ctxs, <-ctxs
		if second.Err() == nil {
			t.Error("the winner's context is open after the call, with no Hold")
		}
		synctest.Wait()
	})
}

// Commit makes the attempt it is called on the call's: no further hedge,
// the others cancelled, its result returned even if another would have
// answered sooner.
func TestHedgeCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, MaxHedges: 3, NoBudget: true}))
		var n atomic.Int32
		start := time.Now()
		v, err := resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
			i := int(n.Add(1))
			switch i {
			case 1:
				// Answers at 30ms, after a header at 15ms.
				time.Sleep(15 * time.Millisecond)
				resilience.Commit(ctx)
				time.Sleep(15 * time.Millisecond)
				return 1, nil
			default:
				// The hedge sent at 10ms would answer at 12ms, but the
				// call is committed to the first attempt at 15ms... it
				// is cancelled there if it still runs.
				select {
				case <-time.After(20 * time.Millisecond):
					return i, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
		})
		if err != nil || v != 1 || time.Since(start) != 30*time.Millisecond {
			t.Errorf("got %d, %v at %v; want the committed first attempt's 1 at 30ms", v, err, time.Since(start))
		}
		synctest.Wait()
		if n.Load() != 2 {
			t.Errorf("%d attempts, want 2: no hedge after the commit at 15ms", n.Load())
		}
		if st := hedgeStats(h); st["sent"] != 1 || st["canceled"] != 1 || st["won"] != 0 {
			t.Errorf("Stats %v", st)
		}
		resilience.Commit(context.Background()) // no Hedge: nothing happens
	})
}

// Each hedge sent is reported, with its attempt and the delay.
func TestEventsOfAHedge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "users", Delay: 10 * time.Millisecond, NoBudget: true}))
		type key struct{}
		var mu sync.Mutex
		var got []resilience.Event
		h.ObserveEvents(func(ctx context.Context, e resilience.Event) {
			if ctx.Value(key{}) != "call" {
				t.Error("event without the call's context")
			}
			mu.Lock()
			got = append(got, e)
			mu.Unlock()
		})
		s := &slowAttempts{latency: latencies(time.Second, time.Millisecond)}
		if _, err := resilience.Do(context.WithValue(context.Background(), key{}, "call"), h, s.call); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		want := resilience.Event{Type: resilience.EventHedge, Kind: resilience.KindHedge, Name: "users", Attempt: 2, Delay: 10 * time.Millisecond}
		if len(got) != 1 || got[0] != want {
			t.Errorf("events %+v, want %+v", got, want)
		}
		if resilience.EventHedge.String() != "hedge" {
			t.Errorf("EventHedge.String() = %q", resilience.EventHedge.String())
		}
	})
}

// In a chain, each hedge goes through the stages inside the Hedge, and a
// Retry outside retries the hedged call as one attempt.
func TestHedgeInAGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "h", Delay: 10 * time.Millisecond, NoBudget: true}))
		b := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
		r := must(resilience.NewRetry(resilience.RetryConfig{Name: "r", MaxRetries: 1, NoBackoff: true}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{r, h, b}}))
		s := &slowAttempts{latency: latencies(20*time.Millisecond, 20*time.Millisecond, time.Millisecond),
			errs: func(n int) error {
				if n <= 2 {
					return errBoom
				}
				return nil
			}}
		var failed, succeeded atomic.Int32
		b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
			switch r {
			case resilience.CallFailed:
				failed.Add(1)
			case resilience.CallSucceeded:
				succeeded.Add(1)
			}
		}})
		v, err := resilience.Do(context.Background(), g, s.call)
		if err != nil || v != 3 {
			t.Errorf("got %d, %v; want the retry's attempt, 3", v, err)
		}
		synctest.Wait()
		if failed.Load() != 2 || succeeded.Load() != 1 {
			t.Errorf("breaker counted %d failures, %d successes; want both hedged attempts' failures and the retry's success", failed.Load(), succeeded.Load())
		}
	})
}

func TestHedgeConfig(t *testing.T) {
	lat := must(resilience.NewLatency(resilience.LatencyConfig{}))
	for _, tc := range []struct {
		cfg   resilience.HedgeConfig
		field string
	}{
		{resilience.HedgeConfig{}, "Delay"},
		{resilience.HedgeConfig{Delay: -1}, "Delay"},
		{resilience.HedgeConfig{Delay: 1, Quantile: 0.9}, "Quantile"},
		{resilience.HedgeConfig{Latency: lat, Quantile: 1}, "Quantile"},
		{resilience.HedgeConfig{Latency: lat, Quantile: -0.5}, "Quantile"},
		{resilience.HedgeConfig{Latency: lat, DeadlineQuantile: 1.5}, "DeadlineQuantile"},
		{resilience.HedgeConfig{Delay: 1, DeadlineQuantile: 0.5}, "DeadlineQuantile"},
		{resilience.HedgeConfig{Delay: 1, MinDelay: 1}, "MinDelay"},
		{resilience.HedgeConfig{Latency: lat, MinDelay: -1}, "MinDelay"},
		{resilience.HedgeConfig{Latency: &resilience.Latency{}}, "Latency"},
		{resilience.HedgeConfig{Delay: 1, MaxHedges: 11}, "MaxHedges"},
		{resilience.HedgeConfig{Delay: 1, MaxHedges: -1}, "MaxHedges"},
		{resilience.HedgeConfig{Delay: 1, Budget: 1.5}, "Budget"},
		{resilience.HedgeConfig{Delay: 1, BudgetWindow: time.Millisecond}, "BudgetWindow"},
		{resilience.HedgeConfig{Delay: 1, NoBudget: true, Budget: 0.1}, "Budget"},
		{resilience.HedgeConfig{Delay: 1, NoBudget: true, BudgetWindow: time.Second}, "BudgetWindow"},
	} {
		if _, err := resilience.NewHedge(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.field) || !errors.Is(err, resilience.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.field)
		}
	}
	var zero resilience.Hedge
	if _, err := resilience.Do(context.Background(), &zero, ok); !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("zero Hedge: %v", err)
	}
	h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "x", Delay: time.Millisecond}))
	if h.Kind() != resilience.KindHedge || h.Name() != "x" {
		t.Errorf("Kind %q Name %q", h.Kind(), h.Name())
	}
	if d, ok := h.Delay(); d != time.Millisecond || !ok {
		t.Errorf("Delay() = %v, %v", d, ok)
	}
}

// With a Latency inside it, the Hedge waits a live quantile of the
// recent answers: after a hundred calls of 10ms, a slow call is hedged at
// about 10ms (the p90's bucket), not at the fixed Delay it uses before
// the model has samples.
func TestHedgeAtALiveQuantile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{Name: "dep"}))
		h := must(resilience.NewHedge(resilience.HedgeConfig{Name: "dep", Latency: lat, Quantile: 0.9, Delay: 50 * time.Millisecond, NoBudget: true}))
		p := resilience.For[int](h, lat)
		if d, ok := h.Delay(); d != 50*time.Millisecond || !ok {
			t.Fatalf("before any sample: Delay() = %v, %v; want the fixed 50ms", d, ok)
		}
		fast := &slowAttempts{latency: latencies(10 * time.Millisecond)}
		for range 100 {
			if _, err := p.Do(context.Background(), fast.call); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // the hedge's view of the model is at most 100ms old
		d, ok := h.Delay()
		if !ok || d < 9840*time.Microsecond || d > 10160*time.Microsecond {
			t.Fatalf("after 100 calls of 10ms: Delay() = %v, %v; want 10ms within 1.6%%", d, ok)
		}
		slow := &slowAttempts{latency: latencies(time.Second, time.Millisecond)}
		start := time.Now()
		if v, err := p.Do(context.Background(), slow.call); err != nil || v != 2 || time.Since(start) != d+time.Millisecond {
			t.Errorf("got %d, %v after %v; want the hedge's answer at %v", v, err, time.Since(start), d+time.Millisecond)
		}
		synctest.Wait()
	})
}

// When every attempt fails, the call's error carries the longest wait any
// of them was told, not only the last one's.
func TestHedgeKeepsTheLongestPushback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		s := &slowAttempts{latency: latencies(20*time.Millisecond, 30*time.Millisecond),
			errs: func(n int) error {
				if n == 1 {
					return resilience.RetryAfter(errBoom, 2*time.Second)
				}
				return errors.New("second failed")
			}}
		_, err := resilience.Do(context.Background(), h, s.call)
		var hint interface{ RetryAfter() time.Duration }
		if err == nil || err.Error() != "second failed" || !errors.As(err, &hint) || hint.RetryAfter() != 2*time.Second {
			t.Errorf("%v; want the last failure carrying the first's 2s Retry-After", err)
		}
	})
}

// A hedge the budget refuses is asked for again after twice the delay,
// while the call runs: a call that stays slow gets the share the calls
// made meanwhile have earned.
func TestHedgeAsksTheBudgetAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond})) // 5% of calls, no floor
		fast := func(context.Context) (int, error) { time.Sleep(time.Millisecond); return 0, nil }
		for range 18 {
			resilience.Do(context.Background(), h, fast)
		}
		// The 19th call is slow: at 10ms the budget has 0.95 of a hedge,
		// and refuses; a 20th call, made meanwhile, earns it a whole one,
		// which it gets when it asks again, 20ms later.
		start := time.Now()
		var took time.Duration
		var v int
		done := make(chan struct{})
		go func() {
			defer close(done)
			v, _ = resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
				if resilience.Attempt(ctx) == 1 {
					select {
					case <-time.After(time.Second):
						return 1, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				time.Sleep(time.Millisecond)
				return 2, nil
			})
			took = time.Since(start)
		}()
		time.Sleep(15 * time.Millisecond)
		resilience.Do(context.Background(), h, fast)
		<-done
		if v != 2 || took != 31*time.Millisecond {
			t.Errorf("got %d after %v; want the hedge's 2 at 31ms (refused at 10ms, sent at 30ms)", v, took)
		}
		if st := hedgeStats(h); st["sent"] != 1 || st["refused"] != 1 || st["won"] != 1 {
			t.Errorf("Stats %v", st)
		}
		synctest.Wait()
	})
}

// With a Latency, an attempt cancelled because another answered first is
// recorded at the time it had run, a lower bound of its latency: the
// model sees the slow attempts too, not only the fast ones that won.
func TestHedgeRecordsTheLosersTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{MinSamples: 1}))
		h := must(resilience.NewHedge(resilience.HedgeConfig{Latency: lat, Quantile: 0.5, MinDelay: 10 * time.Millisecond, NoBudget: true}))
		p := resilience.For[int](h, lat)
		lat.Record(time.Millisecond)
		time.Sleep(100 * time.Millisecond) // the hedge's view of the model is refreshed
		_, err := p.Do(context.Background(), func(ctx context.Context) (int, error) {
			if resilience.Attempt(ctx) == 1 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			time.Sleep(5 * time.Millisecond)
			return 2, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The first sample, the hedge's 5ms answer, and the first
		// attempt's 15ms before it was cancelled.
		if n, top := lat.Samples(), must2(lat.Quantile(1)); n != 3 || top < 14700*time.Microsecond || top > 15300*time.Microsecond {
			t.Errorf("%d samples, the largest %v; want 3, the loser's 15ms", n, top)
		}
	})
}

func must2(d time.Duration, ok bool) time.Duration {
	if !ok {
		return -1
	}
	return d
}

// A hedge refused with a delay so long that doubling it overflows is not
// asked for again at once (an overflowed wait, negative, would fire at
// once, over and over).
func TestHedgeLongDelayRefusedWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 1 << 62}))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			resilience.Do(ctx, h, func(ctx context.Context) (int, error) {
				<-ctx.Done()
				return 0, ctx.Err()
			})
		}()
		time.Sleep(1<<62 + time.Second) // the hedge was due, and refused: no budget yet
		cancel()
		<-done
		if st := hedgeStats(h); st["refused"] != 1 || st["sent"] != 0 {
			t.Errorf("Stats %v, want one refusal and no hedge", st)
		}
	})
}
