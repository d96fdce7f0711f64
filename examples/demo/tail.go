package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// The second epilogue: a slow tail. The backend answers most requests in
// 1ms and every 50th in 50ms, whatever the load, and the same calls go
// through the guard as the demo builds it and through the same guard with
// a Hedge, which sends a GET still unanswered after the p95 of the recent
// answers (at least 2ms) again and takes the first answer.

const (
	tailFast  = time.Millisecond      // how long most requests take
	tailSlow  = 50 * time.Millisecond // how long every tailEvery-th request takes
	tailEvery = 50                    // one request in tailEvery is slow: 2%
)

// The two sides of the epilogue, and the paths their requests go to, by
// which the backend tells them apart.
const (
	unhedged = iota
	hedged
)

var tailPaths = [...]string{"/unhedged", "/hedged"}

// tailBackend is the backend in the tail phase: it counts the requests of
// each side, and answers every tailEvery-th of them (the 50th, the 100th,
// ...) slowly.
type tailBackend struct {
	received [len(tailPaths)]atomic.Int64
}

// answer waits as long as r's place in its side's sequence says, and
// reports whether it should be answered: false if its context ended first.
func (t *tailBackend) answer(r *http.Request) bool {
	d := tailFast
	for side, path := range tailPaths {
		if r.URL.Path == path && t.received[side].Add(1)%tailEvery == 0 {
			d = tailSlow
		}
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// tailSide is what the calls of one side saw.
type tailSide struct {
	Calls, Failed int
	Requests      int64 // the requests the backend received for them
	P50, P99      time.Duration
	Slowest       time.Duration // or the p99.9, with 1,000 calls or more
}

// PerCall returns the requests the backend received per call.
func (s tailSide) PerCall() float64 {
	if s.Calls == 0 {
		return 0
	}
	return float64(s.Requests) / float64(s.Calls)
}

// tailReport is what the epilogue saw: each side's calls, in the order of
// tailPaths, and what the hedged side's Hedge did.
type tailReport struct {
	Sides              [len(tailPaths)]tailSide
	Sent, Won, Refused uint64        // the Hedge's hedges sent, those that answered first, and those its budget refused
	Delay              time.Duration // the Hedge's delay at the end
	Budget             float64       // the Hedge's budget, a share of calls
	// SlowestLabel heads the table's last column: "slowest", or "p99.9"
	// with 1,000 calls or more a side; SlowestName names it in the
	// verdict.
	SlowestLabel, SlowestName string
}

// tailHedge is the Hedge the hedged side adds to the guard: a delay of
// the p95 of the guard's latency model (the preset's), at least 2ms, and
// 5ms while the model has fewer answers than it needs.
func tailHedge() *resilience.HedgeConfig {
	return &resilience.HedgeConfig{Quantile: 0.95, MinDelay: 2 * time.Millisecond, Delay: 5 * time.Millisecond}
}

// playTail runs the epilogue for cfg.Phase against be, served on n, and
// writes its table to out.
func playTail(ctx context.Context, cfg config, be *backend, n network, logf func(string, ...any), out io.Writer) (*tailReport, error) {
	var (
		clients [len(tailPaths)]*http.Client
		hedge   *resilience.Hedge
		model   resilience.LatencyConfig // the hedged guard's latency model
	)
	for side := range tailPaths {
		p := guardConfig()
		p.Name = "tail-" + tailPaths[side][1:] // tail-unhedged, tail-hedged
		if side == hedged {
			// The presets that retry have a latency model; a guard
			// without one would get one here, for the hedge's delay.
			if p.Latency == nil {
				p.Latency = &resilience.LatencyConfig{}
			}
			model = *p.Latency
			p.Hedge = tailHedge()
		}
		g, err := p.Build()
		if err != nil {
			return nil, err
		}
		for _, st := range g.Stages() {
			if h, ok := st.(*resilience.Hedge); ok {
				hedge = h
			}
		}
		// A connection pool each, so that the connections the hedged
		// side's cancelled requests close cost the other side nothing.
		base := &http.Transport{DialContext: n.Dial, MaxIdleConnsPerHost: 2 * cfg.Clients}
		defer base.CloseIdleConnections()
		t, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: base, Guard: g})
		if err != nil {
			return nil, err
		}
		clients[side] = &http.Client{Transport: t}
	}
	if hedge == nil {
		return nil, errors.New("the hedged guard has no Hedge")
	}
	hc := tailHedge()

	fmt.Fprintf(out, "\na slow tail: the backend answers every %dth request after %v, the others after %v, for %v; %d calls/s through each of two chains:\n",
		tailEvery, tailSlow, tailFast, cfg.Phase, cfg.Rate)
	fmt.Fprintf(out, "  the guard above, and the same with a Hedge: a GET unanswered after the p%.0f of the last %v of answers (at least %v; %v until it has %d) is sent again\n",
		100*hc.Quantile, cmp.Or(model.Window, resilience.DefaultLatencyWindow), hc.MinDelay, hc.Delay, cmp.Or(model.MinSamples, resilience.DefaultLatencyMinSamples))
	be.phase.Store(tail)
	logf("phase: %s", phaseNames[tail])
	var tallies [len(tailPaths)]tally
	stop := time.Now().Add(cfg.Phase)
	every := time.Duration(float64(time.Second) * float64(cfg.Clients) / float64(cfg.Rate))
	url := "http://" + n.Listener.Addr().String()
	var wg sync.WaitGroup
	for i := range 2 * cfg.Clients {
		side := i % 2
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for time.Now().Before(stop) && ctx.Err() == nil {
				began := time.Now()
				_, err := get(ctx, clients[side], url+tailPaths[side])
				tallies[side].add(time.Since(began), err)
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		})
	}
	wg.Wait()

	rep := &tailReport{
		Sent: count(hedge, "sent"), Won: count(hedge, "won"), Refused: count(hedge, "refused"),
		Budget: cmp.Or(hc.Budget, resilience.DefaultHedgeBudget),
	}
	rep.Delay, _ = hedge.Delay()
	for side := range tailPaths {
		t := &tallies[side]
		n, ok, _, _, _ := t.snapshot()
		rep.Sides[side] = tailSide{Calls: n, Failed: n - ok, Requests: be.tail.received[side].Load(),
			P50: t.percentile(0.50), P99: t.percentile(0.99)}
	}
	// A p99.9 needs a thousand calls at least; with fewer, it is the
	// slowest call.
	rep.SlowestLabel, rep.SlowestName = "slowest", "the slowest call"
	q := 1.0
	if min(rep.Sides[unhedged].Calls, rep.Sides[hedged].Calls) >= 1000 {
		rep.SlowestLabel, rep.SlowestName, q = "p99.9", "the p99.9", 0.999
	}
	for side := range tailPaths {
		rep.Sides[side].Slowest = tallies[side].percentile(q)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-16s %7s %7s %9s %9s %9s %17s\n", "", "calls", "failed", "p50", "p99", rep.SlowestLabel, "requests a call")
	for side, name := range [...]string{"without a hedge", "with a hedge"} {
		s := rep.Sides[side]
		fmt.Fprintf(&b, "%-16s %7d %7d %9s %9s %9s %17.3f\n", name, s.Calls, s.Failed, round(s.P50), round(s.P99), round(s.Slowest), s.PerCall())
	}
	fmt.Fprintf(&b, "\nthe Hedge sent %d requests again, %d of them answered first; its budget (%.0f%% of calls) refused %d; its delay ends at %v\n",
		rep.Sent, rep.Won, 100*rep.Budget, rep.Refused, round(rep.Delay))
	b.WriteString(rep.verdict() + "\n")
	io.WriteString(out, b.String())
	return rep, ctx.Err()
}

// ExtraRequests returns the share of requests the hedged side sent beyond
// the unhedged side's, per call: 0.02 for 2% more.
func (r *tailReport) ExtraRequests() float64 {
	if base := r.Sides[unhedged].PerCall(); base > 0 {
		return r.Sides[hedged].PerCall()/base - 1
	}
	return 0
}

// verdict says what the table shows: whether hedging cut the p99, and at
// what cost in requests.
func (r *tailReport) verdict() string {
	u, h := r.Sides[unhedged], r.Sides[hedged]
	cost := fmt.Sprintf("%.1f%% more requests", 100*r.ExtraRequests())
	if r.ExtraRequests() < 0 {
		cost = fmt.Sprintf("%.1f%% fewer requests", -100*r.ExtraRequests())
	}
	if h.P99 >= u.P99 {
		return fmt.Sprintf("hedging did not cut the p99 (%v without, %v with), for %s", round(u.P99), round(h.P99), cost)
	}
	slowest := ""
	if h.Slowest < u.Slowest {
		slowest = fmt.Sprintf(", and %s from %v to %v,", r.SlowestName, round(u.Slowest), round(h.Slowest))
	}
	return fmt.Sprintf("hedging cut the p99 from %v to %v%s for %s", round(u.P99), round(h.P99), slowest, cost)
}
