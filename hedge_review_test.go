package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// A Commit on an attempt that has already ended (it failed while a hedge
// ran) does nothing: the call is decided by the hedge, not left waiting
// for an attempt that will never end it.
func TestHedgeCommitAfterTheAttemptEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		var n atomic.Int32
		kept := make(chan context.Context, 1)
		done := make(chan int)
		go func() {
			v, _ := resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
				if n.Add(1) == 1 {
					time.Sleep(15 * time.Millisecond)
					kept <- ctx
					return 0, errors.New("first failed")
				}
				select {
				case <-time.After(50 * time.Millisecond):
					return 2, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			})
			done <- v
		}()
		ctx := <-kept
		time.Sleep(5 * time.Millisecond)
		resilience.Commit(ctx)
		select {
		case v := <-done:
			if v != 2 {
				t.Errorf("got %d, want the hedge's 2", v)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the call had not returned 10s after a late Commit; Stats %v", hedgeStats(h))
		}
	})
}

// The attempts a committed call cancels are recorded in the model too,
// and a loser that answered anyway is recorded once, by the Latency in
// the chain, not again as cancelled.
func TestHedgeRecordsEachLoserOnce(t *testing.T) {
	for _, commit := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			lat := must(resilience.NewLatency(resilience.LatencyConfig{MinSamples: 1}))
			h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, Latency: lat, NoBudget: true}))
			resilience.For[int](h, lat).Do(context.Background(), func(ctx context.Context) (int, error) {
				if resilience.Attempt(ctx) == 1 {
					<-ctx.Done()
					return 0, ctx.Err()
				}
				time.Sleep(4 * time.Millisecond)
				if commit {
					resilience.Commit(ctx)
				}
				time.Sleep(time.Millisecond)
				return 2, nil
			})
			synctest.Wait()
			if top, _ := lat.Quantile(1); lat.Samples() != 2 || top < 14*time.Millisecond {
				t.Errorf("commit %v: %d samples, the largest %v; want the winner's and the cancelled first attempt's 14ms", commit, lat.Samples(), top)
			}
		})
	}
	synctest.Test(t, func(t *testing.T) {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{MinSamples: 1}))
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true, Latency: lat}))
		var n atomic.Int32
		resilience.For[int](h, lat).Do(context.Background(), func(ctx context.Context) (int, error) {
			if n.Add(1) == 1 {
				time.Sleep(50 * time.Millisecond) // ignores its cancellation, and answers
				return 1, nil
			}
			time.Sleep(time.Millisecond)
			return 2, nil
		})
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		if n := lat.Samples(); n != 2 {
			t.Errorf("%d samples for two answers, want 2", n)
		}
	})
}

// A Preset's Retry may set its DeadlineQuantile for the guard's Latency.
func TestPresetRetryDeadlineQuantile(t *testing.T) {
	if _, err := (resilience.Preset{
		Name:    "x",
		Timeout: resilience.TimeoutConfig{Duration: time.Second},
		Retry:   &resilience.RetryConfig{MaxRetries: 2, DeadlineQuantile: 0.9},
		Latency: &resilience.LatencyConfig{},
	}).Build(); err != nil {
		t.Error(err)
	}
}

// A hedge the budget refuses is counted, and reported, once, however often
// the call asks again.
func TestHedgeRefusedOncePerCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond}))
		var events atomic.Int32
		h.ObserveEvents(func(context.Context, resilience.Event) { events.Add(1) })
		resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
			time.Sleep(time.Second)
			return 1, nil
		})
		if st := hedgeStats(h); st["refused"] != 1 || st["sent"] != 0 || events.Load() != 1 {
			t.Errorf("Stats %v, %d events; want one refusal, reported once", st, events.Load())
		}
	})
}

// "won" counts the calls a hedge answered first, not those a hedge ended
// with a failure.
func TestHedgeWonCountsAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		_, err := resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
			if resilience.Attempt(ctx) == 1 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			resilience.Commit(ctx)
			return 0, errors.New("hedge failed")
		})
		if err == nil || err.Error() != "hedge failed" || hedgeStats(h)["won"] != 0 {
			t.Errorf("%v, Stats %v; want the committed hedge's failure and no win", err, hedgeStats(h))
		}
	})
}

// No hedge goes out for a call whose caller has gone.
func TestHedgeNotSentAfterTheCallerLeft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(5*time.Millisecond, cancel)
		var n atomic.Int32
		resilience.Do(ctx, h, func(ctx context.Context) (int, error) {
			n.Add(1)
			time.Sleep(30 * time.Millisecond) // notices late
			return 0, ctx.Err()
		})
		synctest.Wait()
		if n.Load() != 1 || hedgeStats(h)["sent"] != 0 {
			t.Errorf("%d attempts, Stats %v; want 1 and no hedge", n.Load(), hedgeStats(h))
		}
	})
}

type closedFlag struct{ closed *atomic.Bool }

func (c closedFlag) Close() error { c.closed.Store(true); return nil }

// When the first attempt panics after a hedge has answered, the hedge's
// result, which no one will see, is closed.
func TestHedgeWinnerClosedWhenTheFirstPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		var closed atomic.Bool
		func() {
			defer func() { recover() }()
			resilience.Do(context.Background(), h, func(ctx context.Context) (closedFlag, error) {
				if resilience.Attempt(ctx) == 1 {
					<-ctx.Done()
					panic("first")
				}
				return closedFlag{&closed}, nil
			})
		}()
		synctest.Wait()
		if !closed.Load() {
			t.Error("the hedge's result was not closed")
		}
	})
}

// A hedge's attempt that calls runtime.Goexit fails; it is not a panic.
func TestHedgeGoexitIsAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: 10 * time.Millisecond, NoBudget: true}))
		var r any
		var err error
		func() {
			defer func() { r = recover() }()
			_, err = resilience.Do(context.Background(), h, func(ctx context.Context) (int, error) {
				if resilience.Attempt(ctx) == 1 {
					time.Sleep(20 * time.Millisecond)
					return 0, errBoom
				}
				runtime.Goexit()
				return 0, nil
			})
		}()
		if r != nil || err == nil || !strings.Contains(err.Error(), "boom") && !strings.Contains(err.Error(), "Goexit") {
			t.Errorf("recovered %v, error %v; want a failure, no panic", r, err)
		}
	})
}
