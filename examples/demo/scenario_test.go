package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pipeNetwork is an in-memory network: each dial makes a net.Pipe and hands
// its other end to Accept. Unlike a socket, a pipe lets a synctest bubble
// see its goroutines blocked, so the scenario runs on the fake clock.
type pipeNetwork struct {
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

func newPipeNetwork() *pipeNetwork {
	return &pipeNetwork{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeNetwork) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNetwork) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeNetwork) Close() error {
	p.closeOnce.Do(func() { close(p.done) })
	return nil
}

func (p *pipeNetwork) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "backend.test" }

// TestScenario plays the demo's default scenario, HTTP and all, on the
// fake clock, and checks the story it tells.
func TestScenario(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNetwork()
		var out strings.Builder
		start := time.Now()
		rep, err := run(context.Background(), defaultConfig(), network{Listener: pn, Dial: pn.Dial}, &out)
		if err != nil {
			t.Fatal(err)
		}
		t.Log("\n" + out.String())

		// Four phases of 3s, then the calls still running (the slowest, a
		// direct call to the slow backend, takes 1s), then the two
		// epilogues' 3s each.
		if d := time.Since(start); d < 21*time.Second || d > 22*time.Second {
			t.Errorf("the scenario took %v, want 21s to 22s", d)
		}

		// The breaker goes Closed -> Open, probes, and ends Closed, each
		// transition starting where the last one ended.
		ts := rep.Transitions
		if len(ts) < 3 {
			t.Fatalf("%d state changes, want at least Closed -> Open -> HalfOpen -> Closed", len(ts))
		}
		if ts[0].From != resilience.Closed || ts[0].To != resilience.Open {
			t.Errorf("first change %v -> %v, want closed -> open", ts[0].From, ts[0].To)
		}
		if last := ts[len(ts)-1]; last.From != resilience.HalfOpen || last.To != resilience.Closed {
			t.Errorf("last change %v -> %v, want half-open -> closed", last.From, last.To)
		}
		for i := 1; i < len(ts); i++ {
			if ts[i].From != ts[i-1].To {
				t.Errorf("change %d starts at %v, but change %d ended at %v", i, ts[i].From, i-1, ts[i-1].To)
			}
		}
		// It opened in the failing phase, and closed in the last one.
		if d := ts[0].At.Sub(start); d < 3*time.Second || d >= 6*time.Second {
			t.Errorf("opened at %v, want during the failing phase (3s to 6s)", d)
		}
		if d := ts[len(ts)-1].At.Sub(start); d < 9*time.Second {
			t.Errorf("closed at %v, want in the last phase (from 9s)", d)
		}
		if rep.Final != resilience.Closed {
			t.Errorf("final state %v, want closed", rep.Final)
		}

		// The chain did each of its jobs, and cut the latency the slow
		// phase gave the direct calls.
		_, ok, failed, rejected, _ := rep.Guarded.snapshot()
		if ok == 0 || rejected == 0 || rep.TimedOut == 0 || rep.Retries == 0 || rep.FailedAttempts == 0 {
			t.Errorf("through the chain: %d ok, %d failed, %d rejected, %d attempts failed, %d cut by a time limit, %d retries; want each of ok, rejected, failed attempts, time-outs and retries seen",
				ok, failed, rejected, rep.FailedAttempts, rep.TimedOut, rep.Retries)
		}
		// Every call through the chain is counted by the Wire, and each
		// attempt that reached the backend: the first ones and the retries.
		if calls, _, _, _, _ := rep.Guarded.snapshot(); rep.WireCalls != uint64(calls) || rep.WireAttempts < uint64(ok+failed) || rep.WireAttempts > uint64(calls)+uint64(rep.Retries) {
			t.Errorf("Wire: %d calls, %d attempts; want the %d calls, and from the %d not rejected to those plus the %d retries", rep.WireCalls, rep.WireAttempts, calls, ok+failed, rep.Retries)
		}
		if p99 := rep.Guarded.percentile(0.99); p99 > 200*time.Millisecond {
			t.Errorf("p99 through the chain %v, want at most the 200ms time limit", p99)
		}
		if p99 := rep.Direct.percentile(0.99); p99 != time.Second {
			t.Errorf("p99 of direct calls %v, want the slow phase's 1s", p99)
		}
		// The epilogue: with a breaker per host, the two healthy hosts
		// answer every call and the failing one is cut off; with one
		// shared breaker, the healthy hosts are cut off too.
		h := rep.Hosts
		if h == nil {
			t.Fatal("no epilogue")
		}
		for i, name := range hostNames {
			c := h.PerHost[i]
			if name == failingHost {
				if c.OK != 0 || c.Rejected == 0 {
					t.Errorf("a breaker per host, %s: %+v, want its calls rejected", name, c)
				}
				continue
			}
			if c.OK == 0 || c.Failed != 0 || c.Rejected != 0 {
				t.Errorf("a breaker per host, %s: %+v, want every call ok", name, c)
			}
			if s := h.Shared[i]; s.Rejected == 0 {
				t.Errorf("one shared breaker, %s: %+v, want calls rejected for the other host's failures", name, s)
			}
		}
		// The second epilogue: every call of both sides succeeds, each of
		// the unhedged side's reaches the backend once, and the Hedge cuts
		// the p99 the slow tail sets (50ms) to under half, for no more
		// extra requests than its budget allows (5% of calls) and 1% of
		// slack. On the fake clock a fast answer takes 1ms and a hedged
		// slow call 3ms, however loaded the machine: the margins are wide
		// (it reads 3ms against 50ms, 2% more requests), and the test
		// fails without the Hedge, or with one that hedges too late or
		// without a budget.
		tr := rep.Tail
		if tr == nil {
			t.Fatal("no second epilogue")
		}
		u, hd := tr.Sides[unhedged], tr.Sides[hedged]
		for side, s := range tr.Sides {
			if s.Calls < 200 || s.Failed != 0 {
				t.Errorf("the tail, %s: %d calls, %d failed; want at least 200, all ok", tailPaths[side], s.Calls, s.Failed)
			}
		}
		if u.Requests != int64(u.Calls) {
			t.Errorf("the tail without a hedge: the backend saw %d requests for %d calls, want one each", u.Requests, u.Calls)
		}
		if u.P99 < tailSlow {
			t.Errorf("the tail without a hedge: p99 %v, want the slow tail's %v at least", u.P99, tailSlow)
		}
		if hd.P99 > u.P99/2 {
			t.Errorf("the tail with a hedge: p99 %v, want under half the unhedged %v", hd.P99, u.P99)
		}
		if extra := tr.ExtraRequests(); extra > tr.Budget+0.01 || tr.Sent == 0 || tr.Won == 0 {
			t.Errorf("the tail with a hedge: %.1f%% more requests (%d requests for %d calls), %d hedges sent, %d answered first; want some hedges, and extra requests at most the budget's %.0f%% plus 1%%",
				100*extra, hd.Requests, hd.Calls, tr.Sent, tr.Won, 100*tr.Budget)
		}
		if got, want := hd.Requests, int64(hd.Calls)+int64(tr.Sent); got > want {
			t.Errorf("the tail with a hedge: the backend saw %d requests, more than the %d calls and %d hedges", got, hd.Calls, tr.Sent)
		}
		// The third epilogue: offered three times its capacity, the server
		// with nothing in front serves almost nothing within the
		// deadline (its queue eats it), and behind the limiter at least
		// 90% of its capacity, at a median under twice the service time
		// (its p99 is its first half second, coming down from its
		// initial limit of 20 to the workers' 4 and a few), refusing the
		// rest. On the fake clock a request takes exactly its service
		// time: the margins are the limiter's alone.
		or := rep.Overload
		if or == nil {
			t.Fatal("no third epilogue")
		}
		un, lim := or.Sides[unlimited], or.Sides[limited]
		if g := un.Goodput(or.Phase); g > 0.2 {
			t.Errorf("overload, nothing in front: goodput %.0f%%, want the collapse (under 20%%)", 100*g)
		}
		if g := lim.Goodput(or.Phase); g < 0.9 || lim.Refused == 0 || lim.P50 > 2*overloadService || lim.P99 >= un.P99 {
			t.Errorf("overload, behind the limiter: goodput %.0f%%, %d refused, p50 %v, p99 %v; want at least 90%%, some refused, p50 at most %v, p99 under the %v with nothing in front",
				100*g, lim.Refused, lim.P50, lim.P99, 2*overloadService, un.P99)
		}
		// The failures that open the breaker are shown as they happen, and
		// each side has its line a second.
		for _, want := range []string{"attempt 1 failed: resilhttp: server answered 503", `attempt 1 failed: resilience: timeout "backend.attempt"`,
			"direct:", "through the chain:", "breaker closed -> open", "breaker open -> half-open", "breaker half-open -> closed", "p50", "p99", "through chain",
			"a breaker per host", "one shared breaker", "with a breaker per host, api-2.backend.test cut off; with one shared breaker, all three hosts",
			"phase: a slow tail", "slowest   requests a call", "phase: an overloaded server", or.verdict(), "without a hedge ", "with a hedge ", "the Hedge sent ", tr.verdict(), "hedging cut the p99 from "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
}

// TestScenarioLogs plays the scenario with -log: the library's own lines
// say when the breaker opens and closes, and a storm of rejections takes
// a line a second, which says how many it left out.
func TestScenarioLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := newPipeNetwork()
		var out strings.Builder
		cfg := defaultConfig()
		cfg.Log = true
		if _, err := run(context.Background(), cfg, network{Listener: pn, Dial: pn.Dial}, &out); err != nil {
			t.Fatal(err)
		}
		var opened, closed, rejected, suppressed int
		for line := range strings.Lines(out.String()) {
			switch {
			case strings.Contains(line, `msg="resilience: circuit breaker open" dependency=backend stage=breaker from=closed to=open`):
				opened++
			case strings.Contains(line, `msg="resilience: circuit breaker closed" dependency=backend stage=breaker from=half-open to=closed`):
				closed++
			case strings.Contains(line, `msg="resilience: call rejected" dependency=backend stage=breaker`):
				rejected++
				if strings.Contains(line, " suppressed=") {
					suppressed++
				}
			}
		}
		// About 100 rejections a second for 6s: a line a second at most.
		if opened != 1 || closed != 1 || rejected == 0 || rejected > 8 || suppressed == 0 {
			t.Errorf("%d lines for the breaker opening, %d closing, %d for rejections (%d with a count of those left out); want 1, 1, from 1 to 8, and at least 1\n%s",
				opened, closed, rejected, suppressed, out.String())
		}
	})
}

func TestConfigValidation(t *testing.T) {
	bad := config{Phase: 0, FailureRate: 1.5, Slow: -1, Rate: 0, Clients: -2}
	err := bad.validate()
	for _, flag := range []string{"-phase", "-failure-rate", "-slow", "-rate", "-clients"} {
		if err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("error %v does not name %s", err, flag)
		}
	}
	if err := defaultConfig().validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// TestScenarioServesMetrics runs a short scenario on 127.0.0.1 with
// -metrics, and checks the last scrape it prints. It asserts nothing about
// timing: the scenario runs on the real clock here.
func TestScenarioServesMetrics(t *testing.T) {
	cfg := defaultConfig()
	cfg.Phase = 100 * time.Millisecond
	cfg.Slow = 50 * time.Millisecond
	cfg.Metrics = "127.0.0.1:0"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := run(context.Background(), cfg, network{Listener: ln, Dial: (&net.Dialer{}).DialContext}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"metrics on http://127.0.0.1:",
		`resilience_circuit_breaker_state{name="backend",state="closed"}`,
		`resilience_circuit_breaker_calls_total{name="backend",result="success",state="closed"}`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
