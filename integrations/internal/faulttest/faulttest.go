// Package faulttest measures what a guarded client does when its server
// goes down in the middle of a load: how soon the breaker opens, how fast
// calls fail while it is open, and how soon calls succeed again once the
// server is back.
package faulttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// Outage describes the experiment.
type Outage struct {
	// Breaker is the guard's breaker, watched for its state changes.
	Breaker *resilience.Breaker
	// Threshold is the breaker's FailureThreshold: it must open after
	// that many failures, give or take the calls in flight.
	Threshold int
	// Call makes one guarded call to the server.
	Call func(ctx context.Context) error
	// Stop and Start stop the server and bring it back.
	Stop, Start func()
	// Workers is how many goroutines call at once. Default 8.
	Workers int
	// Open is how long the load runs against the open breaker before the
	// server is started again. Default 300ms.
	Open time.Duration
}

// Report is what the experiment measured.
type Report struct {
	// Healthy is how many calls succeeded before the server was stopped.
	Healthy int
	// ToOpen is the time from stopping the server to the breaker opening;
	// FailedBeforeOpen counts the calls that failed in that time, after
	// the policies' retries.
	ToOpen           time.Duration
	FailedBeforeOpen int
	// Failures counts the failures the breaker recorded between the stop
	// and its opening: attempts, retries included.
	Failures int
	// Rejected counts the calls rejected by the open breaker; P50 and P99
	// are their latencies.
	Rejected int
	P50, P99 time.Duration
	// ToClose is the time from starting the server again to the breaker
	// closing; ToSuccess, to the first call that succeeded after that.
	ToClose, ToSuccess time.Duration
}

func (r Report) String() string {
	return fmt.Sprintf("%d calls ok before the fault; breaker open %v after the server stopped, on %d failed attempts (%d failed calls); "+
		"%d calls rejected while open, latency p50 %v p99 %v; breaker closed %v after the server was back, first success after %v",
		r.Healthy, r.ToOpen.Round(time.Millisecond), r.Failures, r.FailedBeforeOpen, r.Rejected, r.P50, r.P99,
		r.ToClose.Round(time.Millisecond), r.ToSuccess.Round(time.Millisecond))
}

// phase numbers the stages of the experiment.
const (
	healthy int32 = iota
	down          // stopped, the breaker not open yet
	open          // the breaker is open
	back          // the server is starting or started again
)

// Run runs the experiment, failing t if the breaker does not open within
// 20s or close within 30s of the server's return, if rejected calls are
// not fast (p50 under 1ms, p99 under 20ms), or if calls do not succeed
// again.
func Run(t *testing.T, o Outage) Report {
	t.Helper()
	if o.Workers == 0 {
		o.Workers = 8
	}
	if o.Open == 0 {
		o.Open = 300 * time.Millisecond
	}
	var (
		phase     atomic.Int32
		mu        sync.Mutex
		rep       Report
		rejected  []time.Duration
		opened    = make(chan time.Time, 1)
		closed    = make(chan time.Time, 1)
		succeeded = make(chan time.Time, 1)
	)
	var failures atomic.Int32
	o.Breaker.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		if r == resilience.CallFailed && phase.Load() == down {
			failures.Add(1)
		}
	}, StateChange: func(c resilience.StateChange) {
		switch {
		case c.To == resilience.Open && phase.Load() == down:
			phase.Store(open)
			opened <- time.Now()
		case c.To == resilience.Closed && phase.Load() == back:
			select {
			case closed <- time.Now():
			default:
			}
		}
	}})

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				p := phase.Load()
				start := time.Now()
				err := o.Call(ctx)
				took := time.Since(start)
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				switch {
				case p == healthy && err == nil:
					rep.Healthy++
				case p == down && err != nil && phase.Load() == down:
					rep.FailedBeforeOpen++
				case p == open && errors.Is(err, resilience.ErrOpen):
					rejected = append(rejected, took)
				case p == back && err == nil && phase.Load() == back:
					select {
					case succeeded <- time.Now():
					default:
					}
				}
				mu.Unlock()
				if p == open {
					// Spread the calls out, as real traffic is, rather
					// than have 8 goroutines fight over 2 cores.
					time.Sleep(500 * time.Microsecond)
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	time.Sleep(200 * time.Millisecond)
	phase.Store(down)
	stopped := time.Now()
	o.Stop()
	select {
	case at := <-opened:
		rep.ToOpen = at.Sub(stopped)
		rep.Failures = int(failures.Load())
	case <-time.After(20 * time.Second):
		t.Fatalf("the breaker did not open within 20s of the server stopping (state %v)", o.Breaker.State())
	}

	time.Sleep(o.Open)
	phase.Store(back)
	restarted := time.Now()
	o.Start()
	select {
	case at := <-closed:
		rep.ToClose = at.Sub(restarted)
	case <-time.After(30 * time.Second):
		t.Fatalf("the breaker did not close within 30s of the server's return (state %v)", o.Breaker.State())
	}
	select {
	case at := <-succeeded:
		rep.ToSuccess = at.Sub(restarted)
	case <-time.After(10 * time.Second):
		t.Fatalf("no call succeeded within 10s of the breaker closing")
	}
	cancel()
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	rep.Rejected = len(rejected)
	if rep.Healthy == 0 {
		t.Errorf("no call succeeded before the fault")
	}
	// Calls in flight when the server stopped fail too, and may reset the
	// count of failures in a row by succeeding late; one database/sql call
	// can make up to three attempts on broken connections. So the breaker
	// opens on its threshold, plus at most three per caller.
	if rep.Failures < o.Threshold || rep.Failures > o.Threshold+3*o.Workers {
		t.Errorf("the breaker opened on %d failures; want its threshold of %d, plus at most 3 for each of the %d callers",
			rep.Failures, o.Threshold, o.Workers)
	}
	if rep.Rejected < 100 {
		t.Fatalf("only %d calls were rejected while the breaker was open; too few to measure", rep.Rejected)
	}
	slices.Sort(rejected)
	rep.P50 = rejected[len(rejected)/2]
	rep.P99 = rejected[len(rejected)*99/100]
	// What a rejection costs is the benchmarks' business (the open
	// breaker's row in bench/); here, with the race detector on, 8 callers
	// and the server on 2 cores, the scheduler alone holds a goroutine for
	// a few milliseconds now and then. What this proves is that a rejected
	// call neither reaches the network nor waits: the median is well under
	// a millisecond, and even the slowest 1% stay far below the shortest
	// wait a guarded call of the presets can make (a retry's backoff, 70ms
	// at least once jittered).
	if rep.P50 >= time.Millisecond {
		t.Errorf("calls rejected by the open breaker: p50 %v, want under 1ms", rep.P50)
	}
	if rep.P99 >= 20*time.Millisecond {
		t.Errorf("calls rejected by the open breaker: p99 %v, want under 20ms", rep.P99)
	}
	return rep
}
