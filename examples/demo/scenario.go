package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

// config is the scenario: four phases of the backend's life, and the
// traffic sent to it.
type config struct {
	Phase       time.Duration // length of each phase
	FailureRate float64       // share of calls that fail while the backend is failing
	Slow        time.Duration // how long the backend takes while it is slow
	Rate        int           // calls per second, sent both directly and through the chain
	Clients     int           // concurrent callers on each side
	Metrics     string        // if set, the address to serve Prometheus metrics on
	Log         bool          // also log the chain's events through log/slog (resilience.LogEvents)
}

func defaultConfig() config {
	return config{Phase: 3 * time.Second, FailureRate: 0.9, Slow: time.Second, Rate: 100, Clients: 8}
}

func (c config) validate() error {
	var errs []error
	if c.Phase <= 0 {
		errs = append(errs, fmt.Errorf("-phase %v: must be positive", c.Phase))
	}
	if !(c.FailureRate >= 0 && c.FailureRate <= 1) {
		errs = append(errs, fmt.Errorf("-failure-rate %v: must be from 0 to 1", c.FailureRate))
	}
	if c.Slow <= 0 {
		errs = append(errs, fmt.Errorf("-slow %v: must be positive", c.Slow))
	}
	if c.Rate <= 0 {
		errs = append(errs, fmt.Errorf("-rate %d: must be positive", c.Rate))
	}
	if c.Clients <= 0 {
		errs = append(errs, fmt.Errorf("-clients %d: must be positive", c.Clients))
	}
	return errors.Join(errs...)
}

// The backend's phases, in order.
const (
	healthy = iota
	failing
	slow
	recovered
	hosts    // the epilogue: see playHosts
	tail     // the second epilogue: see playTail
	overload // the third epilogue: see playOverload
	over
)

var phaseNames = [...]string{"healthy", "failing", "slow", "healthy again", "three hosts, one failing", "a slow tail", "an overloaded server", "over"}

// backend is the flaky dependency: an HTTP handler whose behaviour follows
// the phase.
type backend struct {
	cfg     config
	phase   atomic.Int32
	tail    tailBackend      // the tail phase's
	ov      *overloadBackend // the overload phase's
	failing atomic.Int64     // requests served in the failing phase
}

// fails reports whether the failing phase's request number n (from 0)
// fails: FailureRate of them, spread evenly (request n succeeds when the
// count of successes due moves on at it), so that at 90% no two requests
// in a row succeed and the breaker's two half-open probes never both do
// while the backend is failing. Drawn at random, two in a row did about
// once in sixty runs, and the breaker closed and opened again.
func (b *backend) fails(n int64) bool {
	ok := 1 - b.cfg.FailureRate
	return math.Floor(float64(n+1)*ok) == math.Floor(float64(n)*ok)
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch b.phase.Load() {
	case failing:
		if b.fails(b.failing.Add(1) - 1) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
	case hosts:
		if r.Host == failingHost {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
	case tail:
		if !b.tail.answer(r) {
			return
		}
	case overload:
		b.ov.ServeHTTP(w, r)
		return
	case slow:
		t := time.NewTimer(b.cfg.Slow)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	io.WriteString(w, "ok")
}

// errStatus is a response the client counts as a failure.
type errStatus int

func (e errStatus) Error() string { return fmt.Sprintf("HTTP %d", int(e)) }

// get fetches url and counts a 5xx answer as a failure.
func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode >= 500 {
		return "", errStatus(resp.StatusCode)
	}
	return string(body), nil
}

// guardConfig is the external-HTTP preset with its times scaled down so the
// story fits in seconds: a real third-party API gets 60s, 20s an attempt
// and a 2-minute cooldown, this one 200ms, 80ms and 1s.
func guardConfig() resilience.Preset {
	p := presets.ExternalHTTPConfig()
	p.Name = "backend"
	p.BreakerPerKey = nil // one backend: one breaker
	p.Timeout.Duration = 200 * time.Millisecond
	p.AttemptTimeout.Duration = 80 * time.Millisecond
	p.Breaker.OpenTimeout = time.Second
	p.Retry.MaxRetries = 2
	p.Retry.InitialBackoff = 10 * time.Millisecond
	p.Retry.MaxBackoff = 100 * time.Millisecond
	return p
}

// tally counts the calls of one side of the scenario.
type tally struct {
	mu        sync.Mutex
	latencies []time.Duration
	ok        int
	failed    int
	rejected  int // failed fast by the open breaker
	timeouts  int
}

func (t *tally) add(d time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.latencies = append(t.latencies, d)
	switch {
	case err == nil:
		t.ok++
	case errors.Is(err, resilience.ErrRejected):
		t.rejected++
	default:
		t.failed++
		if errors.Is(err, resilience.ErrTimeout) {
			t.timeouts++
		}
	}
}

// snapshot returns the counts so far.
func (t *tally) snapshot() (calls, ok, failed, rejected, timeouts int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.latencies), t.ok, t.failed, t.rejected, t.timeouts
}

// percentile returns the p-th percentile of the latencies, p from 0 to 1.
func (t *tally) percentile(p float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.latencies) == 0 {
		return 0
	}
	s := slices.Clone(t.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// percentileSince returns the p-th percentile of the latencies recorded
// after the first from, p from 0 to 1.
func (t *tally) percentileSince(from int, p float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if from >= len(t.latencies) {
		return 0
	}
	s := slices.Clone(t.latencies[from:])
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// report is what a run saw.
type report struct {
	Transitions []resilience.StateChange
	Final       resilience.State
	Direct      *tally
	Guarded     *tally
	Retries     int64
	// FailedAttempts counts the attempts the breaker counted as failures,
	// TimedOut the attempts and calls a time limit cut.
	FailedAttempts int64
	TimedOut       int64
	// WireCalls and WireAttempts are the calls through the chain and the
	// attempts of them that reached the backend (resilhttp.Wire);
	// BudgetRefused, the retries the preset's retry budget held back.
	WireCalls, WireAttempts, BudgetRefused uint64
	// Hosts is what the epilogue saw: three hosts, one failing, through a
	// breaker per host and through one shared breaker.
	Hosts *hostsReport
	// Tail is what the second epilogue saw: a backend with a slow tail,
	// through the guard and through the same guard with a Hedge.
	Tail *tailReport
	// Overload is what the third epilogue saw: a server offered three
	// times its capacity, with nothing in front and behind a limiter.
	Overload *overloadReport
}

// lockedWriter writes to w under mu, which the narration holds too.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// network is where the backend listens and how clients reach it.
type network struct {
	Listener net.Listener
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
}

// run plays the scenario: it serves the backend on n, sends the same
// traffic to it directly and through a preset chain, and writes what
// happens to out as it happens, then a summary.
func run(ctx context.Context, cfg config, n network, out io.Writer) (*report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	var outMu sync.Mutex
	logf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, "%6.2fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	rep := &report{Direct: &tally{}, Guarded: &tally{}}
	var retries atomic.Int64
	var (
		transitions sync.Mutex
		ended       bool // the story is over: a later transition is not part of it
	)
	pc := guardConfig()
	pc.Breaker.OnStateChange = func(c resilience.StateChange) {
		transitions.Lock()
		defer transitions.Unlock()
		if !ended {
			rep.Transitions = append(rep.Transitions, c)
			logf("breaker %s -> %s", c.From, c.To)
		}
	}
	// The first failed attempts of each phase are shown as they happen:
	// the 503s and the time-outs the breaker counts, before it turns the
	// rest away.
	const maxFailuresShown = 4
	var failuresShown atomic.Int64
	pc.Retry.OnRetry = func(e resilience.RetryEvent) {
		retries.Add(1)
		if failuresShown.Add(1) <= maxFailuresShown {
			logf("  attempt %d failed: %v; retrying in %v", e.Attempt, e.Err, round(e.Delay))
		}
	}
	guard, err := pc.Build()
	if err != nil {
		return nil, err
	}
	var failedAttempts, timedOut atomic.Int64
	guard.Breaker().Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		if r == resilience.CallFailed {
			failedAttempts.Add(1)
		}
	}})
	for _, st := range guard.Stages() {
		if t, ok := st.(*resilience.Timeout); ok {
			t.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
				if r == resilience.TimeoutExpired {
					timedOut.Add(1)
				}
			}})
		}
	}
	if cfg.Log {
		// The library's own log lines, beside the narration: a state
		// change each, and at most one a second for each kind of event
		// of each stage, the next saying how many it left out.
		w := lockedWriter{mu: &outMu, w: out}
		logger := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String("t", fmt.Sprintf("%.2fs", time.Since(start).Seconds()))
			}
			return a
		}}))
		if err := resilience.LogEvents(resilience.LogConfig{Logger: logger, Interval: time.Second}, guard); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics != "" {
		stop, err := serveMetrics(cfg.Metrics, guard, out)
		if err != nil {
			return nil, err
		}
		defer stop()
	}

	be := &backend{cfg: cfg}
	if be.ov, err = newOverloadBackend(); err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: be}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(n.Listener) }()
	defer func() {
		srv.Close()
		<-served
	}()
	transport := &http.Transport{DialContext: n.Dial, MaxIdleConnsPerHost: 2 * cfg.Clients}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	// The guarded side is what an HTTP user writes: the guard as the
	// client's Transport, which counts 5xx answers as failures and retries
	// them, and leaves the rest to the code as it was.
	guarded, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: transport, Guard: guard})
	if err != nil {
		return nil, err
	}
	guardedClient := &http.Client{Transport: guarded}
	url := "http://" + n.Listener.Addr().String() + "/"

	fmt.Fprintf(out, "backend on %s: %s each of healthy, failing (%.0f%% answer 503), slow (%v per call), healthy again\n",
		url, cfg.Phase, 100*cfg.FailureRate, cfg.Slow)
	fmt.Fprintf(out, "%d calls/s straight to it, and %d calls/s through resilhttp.Transport with the external-HTTP preset, scaled down:\n", cfg.Rate, cfg.Rate)
	fmt.Fprintf(out, "  timeout %v for the whole call -> retry x%d (from %v, doubling, jittered) -> breaker (opens after %d failures in a row or %.0f%% of the last %d; probes after %v) -> %v an attempt\n\n",
		pc.Timeout.Duration, pc.Retry.MaxRetries, pc.Retry.InitialBackoff, pc.Breaker.FailureThreshold, 100*pc.Breaker.ErrorRateThreshold, pc.Breaker.WindowSize, pc.Breaker.OpenTimeout, pc.AttemptTimeout.Duration)

	// The callers: Clients on each side, each sending Rate/Clients calls a
	// second until the scenario is over.
	every := time.Duration(float64(time.Second) * float64(cfg.Clients) / float64(cfg.Rate))
	var wg sync.WaitGroup
	for i := range 2 * cfg.Clients {
		direct := i%2 == 0
		wg.Go(func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for be.phase.Load() < hosts && ctx.Err() == nil {
				began := time.Now()
				if direct {
					_, err := get(ctx, client, url)
					rep.Direct.add(time.Since(began), err)
				} else {
					_, err := get(ctx, guardedClient, url)
					rep.Guarded.add(time.Since(began), err)
				}
				select {
				case <-t.C:
				case <-ctx.Done():
				}
			}
		})
	}

	// The story, with a line a second on what the chain is doing.
	status := time.NewTicker(time.Second)
	defer status.Stop()
	var last, lastDirect [5]int
	var lastRetries, lastFailed, lastTimedOut int64
	for p := healthy; p < hosts && ctx.Err() == nil; p++ {
		failuresShown.Store(0)
		be.phase.Store(int32(p))
		logf("phase: %s", phaseNames[p])
		end := time.NewTimer(cfg.Phase)
		for waiting := true; waiting; {
			select {
			case <-end.C:
				waiting = false
			case <-ctx.Done():
				waiting = false
			case <-status.C:
				calls, ok, failed, rejected, _ := rep.Direct.snapshot()
				_ = rejected
				logf("  %-9s  direct:            %4d ok  %4d failed  p99 %v",
					"", ok-lastDirect[1], failed-lastDirect[2], round(rep.Direct.percentileSince(lastDirect[0], 0.99)))
				lastDirect = [5]int{calls, ok, failed}
				calls, ok, failed, rejected, _ = rep.Guarded.snapshot()
				r, fa, to := retries.Load(), failedAttempts.Load(), timedOut.Load()
				logf("  %-9s  through the chain: %4d ok  %4d failed  p99 %v  %4d rejected fast; %d attempts failed, %d cut by a time limit, %d retries",
					guard.Breaker().State(), ok-last[1], failed-last[2], round(rep.Guarded.percentileSince(last[0], 0.99)), rejected-last[3], fa-lastFailed, to-lastTimedOut, r-lastRetries)
				last = [5]int{calls, ok, failed, rejected}
				lastRetries, lastFailed, lastTimedOut = r, fa, to
			}
		}
		end.Stop()
	}
	be.phase.Store(over)
	wg.Wait()

	// A breaker left open would report moving to half-open after we have
	// returned: the story ends here.
	transitions.Lock()
	ended = true
	transitions.Unlock()
	rep.Final = guard.Breaker().State()
	rep.Retries = retries.Load()
	rep.FailedAttempts = failedAttempts.Load()
	rep.TimedOut = timedOut.Load()
	rep.WireCalls, rep.WireAttempts = count(resilhttp.Wire(guard), "call"), count(resilhttp.Wire(guard), "attempt")
	rep.BudgetRefused = count(guard.RetryBudget(), "refused")
	writeSummary(out, rep)
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if rep.Hosts, err = playHosts(ctx, cfg, be, n, logf, out); err != nil {
		return rep, err
	}
	if rep.Tail, err = playTail(ctx, cfg, be, n, logf, out); err != nil {
		return rep, err
	}
	rep.Overload, err = playOverload(ctx, cfg, be, n, logf, out)
	return rep, err
}

func writeSummary(out io.Writer, rep *report) {
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-16s %7s %7s %7s %9s %9s %9s\n", "", "calls", "ok", "failed", "rejected", "p50", "p99")
	for _, row := range []struct {
		name string
		t    *tally
	}{{"direct", rep.Direct}, {"through chain", rep.Guarded}} {
		calls, ok, failed, rejected, _ := row.t.snapshot()
		fmt.Fprintf(&b, "%-16s %7d %7d %7d %9d %9s %9s\n", row.name, calls, ok, failed, rejected,
			round(row.t.percentile(0.50)), round(row.t.percentile(0.99)))
	}
	fmt.Fprintf(&b, "\nthrough the chain: %d attempts failed, %d cut by a time limit, %d retries, %d state changes; the breaker ends %s\n",
		rep.FailedAttempts, rep.TimedOut, rep.Retries, len(rep.Transitions), rep.Final)
	perCall := 0.0
	if rep.WireCalls > 0 {
		perCall = float64(rep.WireAttempts) / float64(rep.WireCalls)
	}
	fmt.Fprintf(&b, "the backend saw %d attempts for %d calls through the chain (%.2f a call); the retry budget held back %d retries\n",
		rep.WireAttempts, rep.WireCalls, perCall, rep.BudgetRefused)
	io.WriteString(out, b.String())
}

// count returns the calls s counted with result.
func count(s resilience.Observable, result string) uint64 {
	for _, c := range s.Stats().Calls {
		if c.Result == result {
			return c.N
		}
	}
	return 0
}

// round shortens a latency for the table.
func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

// serveMetrics serves the guard's metrics on addr until stop is called;
// stop prints the breaker's series from a last scrape first.
func serveMetrics(addr string, guard *resilience.Guard, out io.Writer) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	if err := m.Instrument(guard); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/metrics"
	fmt.Fprintf(out, "metrics on %s\n", url)

	return func() {
		defer srv.Close()
		resp, err := http.Get(url)
		if err != nil {
			fmt.Fprintln(out, "scraping the metrics:", err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fmt.Fprintln(out, "scraping the metrics:", err)
			return
		}
		fmt.Fprintf(out, "\nthe breaker's series, from a last scrape of %s:\n", url)
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "resilience_circuit_breaker_") && !strings.Contains(line, "_bucket") {
				io.WriteString(out, "  "+line)
			}
		}
	}, nil
}
