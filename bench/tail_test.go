//go:build !race

// The tail scenarios measure latency in real time, which the race
// detector's own cost (several times every request's) would decide rather
// than the libraries: they are built without it, and CI runs them so (the
// coverage step, without -race).

package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// The tail-latency scenarios: a dependency whose latency has a heavy
// tail, with and without hedged requests, ours and failsafe-go's
// (TestTailLatency), and the same dependency overloaded twice over
// (TestTailUnderLoad). The server is an httptest server on 127.0.0.1,
// closed by the test; each call's latency is measured by its caller.

const (
	tailFast      = time.Millisecond
	tailSlow      = 50 * time.Millisecond
	tailSlowShare = 0.02
	tailClients   = 2                    // per row, the rows at once: few enough that the fast mode stays near 1ms on a 2-core machine (16 made a tenth of its calls take over 5ms)
	tailDelay     = 5 * time.Millisecond // the fixed hedge delay: well past the fast mode, far short of the slow one
	tailFloor     = 2 * time.Millisecond // the floor under the live p95
)

// tailCalls is how many calls each row of TestTailLatency makes:
// TAIL_CALLS, or 10,240, enough that the p99.9 is the 10th slowest call
// rather than the slowest.
func tailCalls(t *testing.T) int {
	if s := os.Getenv("TAIL_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 10000 || n%tailClients != 0 {
			t.Fatalf("TAIL_CALLS=%q: want a multiple of %d, at least 10,000", s, tailClients)
		}
		return n
	}
	return 10240
}

// tailServer answers each request after 1ms, or, for 2% of them chosen
// at random (a fixed seed, an exact share of every 1,000 in the order
// they arrive), after 50ms, independently of load, unless the request is
// cancelled first. With workers > 0 it serves at most that many
// requests at once, and the others wait for a worker (leaving if they
// are cancelled while they wait); a request served runs to its end,
// cancelled or not, as work a server has begun does.
type tailServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newTailServer(workers int) *tailServer {
	s := &tailServer{}
	pattern := make([]bool, 1000)
	for i := range int(tailSlowShare * 1000) {
		pattern[i] = true
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(pattern), func(i, j int) { pattern[i], pattern[j] = pattern[j], pattern[i] })
	var sem chan struct{}
	if workers > 0 {
		sem = make(chan struct{}, workers)
	}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1) - 1
		d := tailFast
		if pattern[n%int64(len(pattern))] {
			d = tailSlow
		}
		if sem != nil {
			select {
			case sem <- struct{}{}:
			case <-r.Context().Done():
				return
			}
			time.Sleep(d) // begun: run to the end
			<-sem
		} else {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, "ok")
	}))
	return s
}

// tailResult is what one row's calls saw.
type tailResult struct {
	p50, p99, p999 time.Duration // of the calls that succeeded
	extra          float64       // requests the server received beyond one per call, as a share of calls
	succeeded      int
	calls          int
	elapsed        time.Duration
}

func quantileOf(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func summarize(lat []time.Duration, calls int, requests int64, elapsed time.Duration) tailResult {
	slices.Sort(lat)
	return tailResult{
		p50: quantileOf(lat, 0.5), p99: quantileOf(lat, 0.99), p999: quantileOf(lat, 0.999),
		extra:     float64(requests-int64(calls)) / float64(calls),
		succeeded: len(lat), calls: calls, elapsed: elapsed,
	}
}

// get makes one GET and reports whether it succeeded, reading the body.
func get(ctx context.Context, c *http.Client, url string) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && string(body) == "ok"
}

// tailWarmUp is how many calls each row of TestTailLatency makes before
// the calls it measures.
const tailWarmUp = 2048

// tailRun makes calls GETs from tailClients goroutines, one after the
// other each, and returns the latencies of those that succeeded and how
// long they took in all; the server counts the requests.
func tailRun(c *http.Client, srv *tailServer, calls int) ([]time.Duration, time.Duration) {
	var (
		mu  sync.Mutex
		lat = make([]time.Duration, 0, calls)
		wg  sync.WaitGroup
	)
	start := time.Now()
	for range tailClients {
		wg.Go(func() {
			mine := make([]time.Duration, 0, calls/tailClients)
			for range calls / tailClients {
				t0 := time.Now()
				if get(context.Background(), c, srv.URL) {
					mine = append(mine, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	time.Sleep(2 * tailSlow) // losers cancelled, counted or not: let the server see the last of them
	return lat, elapsed
}

// hedgedClient is an http.Client through resilhttp.Transport with a
// guard of one Hedge (and, for a live quantile, the Latency model it
// reads, inside it).
func hedgedClient(base http.RoundTripper, cfg resilience.HedgeConfig, lat *resilience.Latency) *http.Client {
	stages := []resilience.Stage{must(resilience.NewHedge(cfg))}
	if lat != nil {
		stages = append(stages, lat)
	}
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "tail", Stages: stages}))
	return &http.Client{Transport: must(resilhttp.NewTransport(resilhttp.TransportConfig{Base: base, Guard: g}))}
}

// The clients of the tail scenarios, in the table's column order.
const (
	tailNone = iota
	tailOursFixed
	tailOursP95
	tailFailsafeFixed
	tailFailsafeP95
)

var tailLibs = []struct {
	name   string
	client func(base http.RoundTripper) *http.Client
}{
	tailNone: {"no hedging", func(base http.RoundTripper) *http.Client { return &http.Client{Transport: base} }},
	tailOursFixed: {"resilience, hedge after 5ms", func(base http.RoundTripper) *http.Client {
		return hedgedClient(base, resilience.HedgeConfig{Name: "tail", Delay: tailDelay}, nil)
	}},
	tailOursP95: {"resilience, hedge at the live p95 (floor 2ms)", func(base http.RoundTripper) *http.Client {
		lat := must(resilience.NewLatency(resilience.LatencyConfig{Name: "tail"}))
		return hedgedClient(base, resilience.HedgeConfig{Name: "tail", Latency: lat, Quantile: 0.95, MinDelay: tailFloor, Delay: tailDelay}, lat)
	}},
	tailFailsafeFixed: {"failsafe-go, hedge after 5ms", func(base http.RoundTripper) *http.Client {
		return &http.Client{Transport: failsafehttp.NewRoundTripper(base, hedgepolicy.NewWithDelay[*http.Response](tailDelay))}
	}},
	tailFailsafeP95: {"failsafe-go, hedge at the p95", func(base http.RoundTripper) *http.Client {
		// Its quantile over about the last 1,000 calls, hedging from the
		// 50th on, as its doc's example sets it.
		return &http.Client{Transport: failsafehttp.NewRoundTripper(base, hedgepolicy.NewWithDelayQuantile[*http.Response](0.95, 1000, 50))}
	}},
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

// TestTailLatency measures p50, p99 and p99.9 and the extra requests for
// no hedging, our hedge at a fixed delay and at the live p95 (with a
// floor), and failsafe-go's hedge policy with the same settings, against
// a server that answers 98% of requests in 1ms and 2% in 50ms. It
// asserts, on every run, that each of our hedges cuts the p99 to at most
// half the unhedged one with at most 5% extra requests (the default
// budget). The p99.9 and the comparison with failsafe-go are in the
// table, not asserted: on a 2-core machine running client and server, the
// fast mode's own tail (a few percent of its calls past 5ms, more when
// the machine is busy) decides them from run to run (see
// docs/BENCHMARKS.md). With TAIL_TABLE=FILE it writes the table, in
// markdown.
func TestTailLatency(t *testing.T) {
	calls := tailCalls(t)
	// The rows run one after the other, each with its own server and
	// client, warmed up first, so that each hedge's budget and latency
	// model see a steady stream of calls, as a service's do: rows taking
	// turns left each budget's 10s window mostly idle, and rows at once
	// made the machine too busy for a fast mode of 1ms.
	lats := make([][]time.Duration, len(tailLibs))
	elapsed := make([]time.Duration, len(tailLibs))
	servers := make([]*tailServer, len(tailLibs))
	for i, l := range tailLibs {
		servers[i] = newTailServer(0)
		base := loopbackBase()
		defer base.CloseIdleConnections()
		defer servers[i].Close()
		client := l.client(base)
		// Warm up, unmeasured, as a service that has been running: the
		// connections made, a latency model with its samples, a budget
		// with the share its calls have earned.
		tailRun(client, servers[i], tailWarmUp)
		servers[i].requests.Store(0)
		lats[i], elapsed[i] = tailRun(client, servers[i], calls)
	}
	results := make([]tailResult, len(tailLibs))
	for i, l := range tailLibs {
		results[i] = summarize(lats[i], calls, servers[i].requests.Load(), elapsed[i])
		r := results[i]
		t.Logf("%s: p50 %s, p99 %s, p99.9 %s, %+.2f%% requests, %d of %d calls succeeded, in %v", l.name, ms(r.p50), ms(r.p99), ms(r.p999), 100*r.extra, r.succeeded, r.calls, r.elapsed.Round(time.Millisecond))
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%d goroutines make %d GETs in all each row (all rows at the same time, after %d calls not measured), one after the other, to a server on 127.0.0.1 that answers 98%% of requests after 1 ms and 2%% after 50 ms, at random, whatever the load.\n\n", tailClients, calls, tailWarmUp)
	table.WriteString("| client | p50 | p99 | p99.9 | extra requests |\n|---|---|---|---|---|\n")
	for i, l := range tailLibs {
		r := results[i]
		fmt.Fprintf(&table, "| %s | %s | %s | %s | %.2f%% |\n", l.name, ms(r.p50), ms(r.p99), ms(r.p999), 100*r.extra)
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("TAIL_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	none := results[tailNone]
	if none.p999 < tailSlow {
		t.Errorf("unhedged p99.9 %s, want the slow mode's 50ms or more: the server is not what the scenario says", ms(none.p999))
	}
	for i, l := range tailLibs {
		if r := results[i]; r.succeeded != r.calls {
			t.Errorf("%s: %d of %d calls succeeded, want all", l.name, r.succeeded, r.calls)
		}
	}
	for _, i := range []int{tailOursFixed, tailOursP95} {
		ours, name := results[i], tailLibs[i].name
		if ours.p99 > none.p99/2 {
			t.Errorf("%s: p99 %s, want at most half the unhedged %s", name, ms(ours.p99), ms(none.p99))
		}
		if ours.extra > 0.05 {
			t.Errorf("%s: %.2f%% extra requests, want at most the budget's 5%%", name, 100*ours.extra)
		}
	}
}

// loadResult is what one row of TestTailUnderLoad saw.
type loadResult struct {
	tailResult
	goodput float64 // calls that succeeded per second of offered load
}

// TestTailUnderLoad offers the same server, limited to tailWorkers
// requests at once, twice the calls it can serve, for a fixed time, each
// call with a 100ms deadline: no hedging, our hedge after 5ms with its
// budget (the default, 5%) and without one, and failsafe-go's hedge after
// 5ms. It asserts that our hedge with its budget makes neither the p50
// nor the goodput worse than no hedging (within 15%, the noise of a
// loaded machine), and shows what a hedge without a budget does. With
// TAIL_LOAD_TABLE=FILE it writes the table, in markdown.
func TestTailUnderLoad(t *testing.T) {
	const (
		workers  = 4
		deadline = 100 * time.Millisecond
	)
	// The server's capacity: workers requests at a time, each taking
	// 0.98 × 1ms + 0.02 × 50ms on average.
	mean := time.Duration((1-tailSlowShare)*float64(tailFast)*1.1 + tailSlowShare*float64(tailSlow)) // time.Sleep(1ms) takes about 1.1ms
	capacity := float64(workers) / mean.Seconds()
	rate := 2 * capacity
	duration := 4 * time.Second // two turns of 2s: time for a queue of doomed work to build
	rows := []struct {
		name   string
		client func(base http.RoundTripper) *http.Client
	}{
		{"no hedging", tailLibs[tailNone].client},
		{"resilience, hedge after 5ms, budget 5% (the default)", tailLibs[tailOursFixed].client},
		{"resilience, hedge after 5ms, no budget", func(base http.RoundTripper) *http.Client {
			return hedgedClient(base, resilience.HedgeConfig{Name: "tail", Delay: tailDelay, NoBudget: true}, nil)
		}},
		{"failsafe-go, hedge after 5ms", tailLibs[tailFailsafeFixed].client},
	}
	// The rows take turns, loadRounds of them, each with its own server
	// and client for the whole test, so that a slow stretch of a shared
	// machine falls on every row alike; the server is drained between
	// turns.
	lats := make([][]time.Duration, len(rows))
	calls := make([]int, len(rows))
	servers := make([]*tailServer, len(rows))
	clients := make([]*http.Client, len(rows))
	for i, row := range rows {
		servers[i] = newTailServer(workers)
		base := loopbackBase()
		defer base.CloseIdleConnections()
		defer servers[i].Close()
		clients[i] = row.client(base)
	}
	for range loadRounds {
		for i := range rows {
			lat, n := loadRun(clients[i], servers[i], rate, duration/loadRounds, deadline)
			lats[i] = append(lats[i], lat...)
			calls[i] += n
		}
	}
	results := make([]loadResult, len(rows))
	for i, row := range rows {
		r := summarize(lats[i], calls[i], servers[i].requests.Load(), duration)
		results[i] = loadResult{tailResult: r, goodput: float64(r.succeeded) / duration.Seconds()}
		t.Logf("%s: goodput %.0f/s, p50 %s, p99 %s, %+.1f%% requests, %d of %d calls succeeded", row.name, results[i].goodput, ms(r.p50), ms(r.p99), 100*r.extra, r.succeeded, r.calls)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "The same server serving at most %d requests at once (about %.0f a second), offered %.0f calls a second for %v, each with a %v deadline; goodput is the calls that succeeded per second, p50 and p99 theirs.\n\n", workers, capacity, rate, duration, deadline)
	table.WriteString("| client | goodput | p50 | p99 | extra requests |\n|---|---|---|---|---|\n")
	for i, row := range rows {
		r := results[i]
		fmt.Fprintf(&table, "| %s | %.0f/s | %s | %s | %.1f%% |\n", row.name, r.goodput, ms(r.p50), ms(r.p99), 100*r.extra)
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("TAIL_LOAD_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	none, ours := results[0], results[1]
	if ours.goodput < none.goodput*0.85 {
		t.Errorf("hedged with its budget: goodput %.0f/s, unhedged %.0f/s", ours.goodput, none.goodput)
	}
	if ours.p50 > none.p50*115/100+time.Millisecond {
		t.Errorf("hedged with its budget: p50 %s, unhedged %s", ms(ours.p50), ms(none.p50))
	}
	if ours.extra > 0.05 {
		t.Errorf("hedged with its budget: %.1f%% extra requests, want at most 5%%", 100*ours.extra)
	}
}

// loadRun offers rate calls a second to srv for duration, each on a
// goroutine of its own with the deadline, waits for them all, and returns
// the latencies of those that succeeded and how many there were.
// loadRounds is how many turns the rows of TestTailUnderLoad take.
const loadRounds = 2

func loadRun(c *http.Client, srv *tailServer, rate float64, duration, deadline time.Duration) ([]time.Duration, int) {
	calls := int(rate * duration.Seconds())
	var (
		mu  sync.Mutex
		lat = make([]time.Duration, 0, calls)
		wg  sync.WaitGroup
	)
	start := time.Now()
	for i := range calls {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			t0 := time.Now()
			if get(ctx, c, srv.URL) {
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * tailSlow) // the server drained: what it has in hand ends within its slowest answer
	return lat, calls
}
