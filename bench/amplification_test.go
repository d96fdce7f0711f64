package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/presets"
)

// The amplification scenarios: how many requests a dependency receives
// for each call its clients make, when it fails (TestAmplification, retry
// budgets), when it is overloaded (TestThrottling, adaptive throttlers),
// and when it fails two hops down (TestTwoHops, "don't retry"). Each dependency is an httptest server on 127.0.0.1, closed
// by the test; the requests are counted, never timed.

// ampClients is how many goroutines call at once in TestAmplification.
const ampClients = 64

// ampCalls is how many logical calls each row of TestAmplification makes:
// AMPLIFICATION_CALLS, or a number small enough for CI, 50 per goroutine
// (20 under the race detector).
func ampCalls(t *testing.T) int {
	if s := os.Getenv("AMPLIFICATION_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < ampClients || n%ampClients != 0 {
			t.Fatalf("AMPLIFICATION_CALLS=%q: want a multiple of %d", s, ampClients)
		}
		return n
	}
	if raceEnabled {
		return 20 * ampClients
	}
	return 50 * ampClients
}

// loopbackBase is the transport under every library's HTTP client: one
// per row, keeping a connection per goroutine alive between requests.
func loopbackBase() *http.Transport {
	return &http.Transport{MaxIdleConns: 4 * ampClients, MaxIdleConnsPerHost: 4 * ampClients, IdleConnTimeout: 10 * time.Second}
}

// bufferedBodies reads each response's body into memory and closes it
// before handing the response on, so that its connection goes back to the
// pool whatever a library does with a response it retries: failsafehttp
// drops them without closing them (as of v0.9.8), which would leave a
// connection busy for each failed attempt. Every library gets it.
type bufferedBodies struct{ base http.RoundTripper }

func (b bufferedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// failPattern returns 1000 answers, exactly share × 1000 of them
// failures, shuffled with a fixed seed. A server walks it in the order
// its requests arrive, so that any 1000 requests in a row hold exactly
// that share of failures.
func failPattern(share float64) []bool {
	p := make([]bool, 1000)
	for i := range int(math.Round(share * 1000)) {
		p[i] = true
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// failingServer answers 503 to the requests its pattern says, 200 to the
// others, and counts them.
type failingServer struct {
	*httptest.Server
	requests atomic.Int64
}

func newFailingServer(share float64) *failingServer {
	s := &failingServer{}
	pattern := failPattern(share)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := s.requests.Add(1) - 1
		if pattern[n%int64(len(pattern))] {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}))
	return s
}

// ourHTTPClient is an http.Client through resilhttp.Transport with the
// external-HTTP preset (5 retries), with or without its retry budget. The
// retries wait nothing, as failsafe-go's do by default, and the breaker
// is disabled: the question is what retries do, not the breaker.
func ourHTTPClient(base http.RoundTripper, withBudget bool) *http.Client {
	cfg := presets.ExternalHTTPConfig()
	cfg.BreakerPerKey = nil // one server: one breaker, disabled below
	cfg.Retry.NoBackoff = true
	cfg.Retry.InitialBackoff, cfg.Retry.BackoffMultiplier, cfg.Retry.Jitter = 0, 0, false
	if !withBudget {
		cfg.RetryBudget = nil
	}
	g := must(cfg.Build())
	g.Breaker().Disable()
	return &http.Client{Transport: must(resilhttp.NewTransport(resilhttp.TransportConfig{Base: base, Guard: g}))}
}

// The clients of TestAmplification, in the table's column order.
const (
	ampNoBudget = iota
	ampBudget
	ampFailsafe
)

var ampLibs = []struct {
	name   string
	client func(base http.RoundTripper) *http.Client
}{
	ampNoBudget: {"resilience, budget off", func(base http.RoundTripper) *http.Client { return ourHTTPClient(base, false) }},
	ampBudget:   {"resilience, budget on (the preset's default)", func(base http.RoundTripper) *http.Client { return ourHTTPClient(base, true) }},
	ampFailsafe: {"failsafe-go, budget", func(base http.RoundTripper) *http.Client {
		// failsafehttp's retry policy (429s and most 5xx), 5 retries,
		// its budget with the defaults, attached with WithBudget as
		// its doc says; no delay, its default.
		rp := failsafehttp.NewRetryPolicyBuilder().WithMaxRetries(5).WithBudget(budget.New()).Build()
		return &http.Client{Transport: failsafehttp.NewRoundTripper(base, rp)}
	}},
}

type ampResult struct {
	attempts float64 // wire attempts per logical call
	success  float64 // share of logical calls that got a 200
	elapsed  time.Duration
}

// getAll makes calls GETs of url through c, from goroutines at once, and
// returns how many were answered 200.
func getAll(c *http.Client, url string, goroutines, calls int) int64 {
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls / goroutines {
				resp, err := c.Get(url)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return ok.Load()
}

// ampRun makes calls GETs to srv through c from ampClients goroutines.
func ampRun(c *http.Client, srv *failingServer, calls int) ampResult {
	start := time.Now()
	ok := getAll(c, srv.URL, ampClients, calls)
	return ampResult{
		attempts: float64(srv.requests.Load()) / float64(calls),
		success:  float64(ok) / float64(calls),
		elapsed:  time.Since(start),
	}
}

// TestAmplification counts the requests a server that fails a share of
// them receives per logical call, through our external-HTTP preset (5
// retries) without and with its retry budget, and through failsafe-go's
// retry policy (5 retries) with its budget. Every library retries at
// once, with no wait. At 100% failure, the budget must hold the attempts
// to 1.2 per call plus its floor (10 retries a second and the 100 of a
// window's reserve, over the calls), and without it every call makes all
// 6; at 10%, the budget must cost no more than half a percentage point of
// successes. With AMPLIFICATION_TABLE=FILE it writes the table, in
// markdown.
func TestAmplification(t *testing.T) {
	calls := ampCalls(t)
	shares := []float64{0, 0.1, 0.5, 1}
	results := make([][]ampResult, len(shares))
	for i, share := range shares {
		results[i] = make([]ampResult, len(ampLibs))
		for j, l := range ampLibs {
			srv := newFailingServer(share)
			base := loopbackBase()
			r := ampRun(l.client(bufferedBodies{base}), srv, calls)
			base.CloseIdleConnections()
			srv.Close()
			results[i][j] = r
			t.Logf("%3.0f%% failing, %s: %.3f attempts per call, %.2f%% succeed, in %v", 100*share, l.name, r.attempts, 100*r.success, r.elapsed.Round(time.Millisecond))
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%d goroutines make %d calls each row, each a GET to a server on 127.0.0.1 that answers 503 to an exact share of its requests; "+
		"wire attempts per call, counted by the server, and the share of calls that succeed. 5 retries, with no wait, for every library; our breaker disabled.\n\n", ampClients, calls)
	table.WriteString("| server failing |")
	for _, l := range ampLibs {
		table.WriteString(" " + l.name + " |")
	}
	table.WriteString("\n|---|")
	for range ampLibs {
		table.WriteString("---:|")
	}
	table.WriteString("\n")
	for i, share := range shares {
		fmt.Fprintf(&table, "| %.0f%% |", 100*share)
		for _, r := range results[i] {
			fmt.Fprintf(&table, " %.2f attempts, %.1f%% succeed |", r.attempts, 100*r.success)
		}
		table.WriteString("\n")
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("AMPLIFICATION_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	all, tenth := results[len(shares)-1], results[1]
	if r := all[ampNoBudget]; r.attempts != 6 {
		t.Errorf("100%% failing, budget off: %v attempts per call, want exactly 6", r.attempts)
	}
	r := all[ampBudget]
	floor := (presets.RetryBudgetMinPerSecond*r.elapsed.Seconds() + presets.RetryBudgetMinPerSecond*presets.RetryBudgetWindow.Seconds()) / float64(calls)
	if want := 1 + presets.RetryBudgetRatio + floor; r.attempts > want {
		t.Errorf("100%% failing, budget on: %.3f attempts per call, want at most %.3f (1.2 plus the floor's %.3f over %v)", r.attempts, want, floor, r.elapsed)
	}
	if d := math.Abs(tenth[ampBudget].success - tenth[ampNoBudget].success); d > 0.005 {
		t.Errorf("10%% failing: %.2f%% succeed with the budget, %.2f%% without: want within 0.5 points", 100*tenth[ampBudget].success, 100*tenth[ampNoBudget].success)
	}
}

// The overload of TestThrottling.
const (
	thrClients = 64
	thrRate    = 2000        // calls offered per second, all goroutines together
	thrWindow  = time.Second // both throttlers' window
	thrK       = 2.0         // our Throttler's default; failsafe-go's is 1/(1 − failure rate threshold)
	thrOver    = 3           // windows of overload, before the server recovers
	thrAfter   = 2           // windows after it recovers
)

// capacityServer accepts one request for every four calls its clients are
// offered, and answers 503 to the rest, until it recovers; then it accepts
// every request. Each offered call adds a quarter of a token; a request
// takes a whole one or is turned down. Capacity is counted in calls, not
// time, so that a slow run shifts nothing; tokens bank up to a quarter of
// the goroutines, so that capacity unused for a moment is lost, but not
// that of calls offered all at once by goroutines that woke together.
type capacityServer struct {
	*httptest.Server
	recovered atomic.Bool
	mu        sync.Mutex
	credit    float64
}

func newCapacityServer() *capacityServer {
	s := &capacityServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.recovered.Load() {
			s.mu.Lock()
			ok := s.credit >= 1
			if ok {
				s.credit--
			}
			s.mu.Unlock()
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		io.WriteString(w, "ok")
	}))
	return s
}

// offer counts a call offered to the client, before it decides anything.
func (s *capacityServer) offer() {
	s.mu.Lock()
	s.credit = min(s.credit+0.25, thrClients/4)
	s.mu.Unlock()
}

var errOverloaded = errors.New("503 Service Unavailable")

// thrLibs are the throttlers of TestThrottling: each runs call, a request
// to the server, and reports whether it throttled it instead.
var thrLibs = []struct {
	name string
	make func() func(call func(context.Context) error) (throttled bool)
}{
	{"resilience", func() func(func(context.Context) error) bool {
		th := must(resilience.NewThrottler(resilience.ThrottlerConfig{K: thrK, Window: thrWindow}))
		g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{th}}))
		return func(call func(context.Context) error) bool {
			return errors.Is(g.Run(context.Background(), call), resilience.ErrThrottled)
		}
	}},
	{"failsafe-go", func() func(func(context.Context) error) bool {
		// Executions may exceed successes / (1 - 0.5), that is K = 2, over
		// the window, from the first execution; its maximum rejection rate
		// stays at its default, 0.9. Every error is a failure.
		at := adaptivethrottler.NewBuilder[any]().WithFailureRateThreshold(1-1/thrK, 0, thrWindow).Build()
		ex := failsafe.With[any](at)
		return func(call func(context.Context) error) bool {
			err := ex.Run(func() error { return call(context.Background()) })
			return errors.Is(err, adaptivethrottler.ErrExceeded)
		}
	}},
}

// thrCounts are the calls of one window of TestThrottling.
type thrCounts struct {
	offered, reached, accepted, throttled int64
}

// thrRun offers thrRate calls a second to a new capacityServer through
// do for thrOver windows of overload and thrAfter windows after the
// server recovers, and counts them by the window they were offered in. It
// returns the counts and the time from the recovery to the last call
// throttled, or -1 if none was throttled after it.
func thrRun(do func(call func(context.Context) error) bool) ([]thrCounts, time.Duration) {
	srv := newCapacityServer()
	defer srv.Close()
	base := loopbackBase()
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: base}

	windows := thrOver + thrAfter
	total := int(time.Duration(windows) * thrWindow * thrRate / time.Second)
	counts := make([]thrCounts, windows)
	var mu sync.Mutex
	last := time.Duration(-1)
	start := time.Now()
	recovery := start.Add(thrOver * thrWindow)
	var flip sync.Once
	var wg sync.WaitGroup
	for g := range thrClients {
		wg.Go(func() {
			for i := g; i < total; i += thrClients {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / thrRate)))
				began := time.Now()
				w := min(int(began.Sub(start)/thrWindow), windows-1)
				if !began.Before(recovery) {
					flip.Do(func() { srv.recovered.Store(true) })
				}
				srv.offer()
				var reached, accepted bool
				throttled := do(func(ctx context.Context) error {
					reached = true
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
					if err != nil {
						return err
					}
					resp, err := client.Do(req)
					if err != nil {
						return err
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						accepted = true
						return nil
					case http.StatusServiceUnavailable:
						return resilience.Overloaded(errOverloaded)
					}
					return errors.New(resp.Status)
				})
				mu.Lock()
				c := &counts[w]
				c.offered++
				if reached {
					c.reached++
				}
				if accepted {
					c.accepted++
				}
				if throttled {
					c.throttled++
					if d := began.Sub(recovery); d >= 0 && d > last {
						last = d
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return counts, last
}

// TestThrottling offers calls to a server that accepts one in four of
// them, through our Throttler (K = 2) and through failsafe-go's adaptive
// throttler set to the same K, both over a window of 1s, for three
// windows; then the server accepts everything, for two more. After the
// first window of overload, the requests that reach the server through
// ours must stay within K × accepts, plus 5%; and within a window of the
// server's recovery, ours must throttle no call. With
// THROTTLING_TABLE=FILE it writes the table, in markdown.
func TestThrottling(t *testing.T) {
	var table strings.Builder
	fmt.Fprintf(&table, "%d goroutines offer %d calls a second in all to a server on 127.0.0.1 that accepts one request for every four calls offered, and answers 503 (marked Overloaded) to the rest, "+
		"for %d windows of %v, then accepts every request for %d more; K = %g for both throttlers. Calls counted by the window they were offered in.\n\n",
		thrClients, thrRate, thrOver, thrWindow, thrAfter, thrK)
	table.WriteString("| library | window | offered | reached the server | accepted | reached per accept | throttled |\n|---|---|---:|---:|---:|---:|---:|\n")
	// The libraries run side by side, each against a server of its own.
	type result struct {
		counts []thrCounts
		last   time.Duration
	}
	results := make([]result, len(thrLibs))
	var wg sync.WaitGroup
	for i, l := range thrLibs {
		wg.Go(func() {
			began := time.Now()
			counts, last := thrRun(l.make())
			results[i] = result{counts, last}
			t.Logf("%s: %v", l.name, time.Since(began).Round(time.Millisecond))
		})
	}
	wg.Wait()

	var lasts []string
	for i, l := range thrLibs {
		counts, last := results[i].counts, results[i].last
		for w, c := range counts {
			phase := fmt.Sprintf("overload, %d", w+1)
			if w >= thrOver {
				phase = fmt.Sprintf("recovered, %d", w-thrOver+1)
			}
			fmt.Fprintf(&table, "| %s | %s | %d | %d | %d | %s | %d |\n", l.name, phase, c.offered, c.reached, c.accepted, perAccept(c.reached, c.accepted), c.throttled)
		}
		if last < 0 {
			lasts = append(lasts, l.name+": none throttled after the recovery")
		} else {
			lasts = append(lasts, fmt.Sprintf("%s: the last call throttled %v after the recovery", l.name, last.Round(time.Millisecond)))
		}

		if l.name != "resilience" {
			continue
		}
		var over thrCounts
		for _, c := range counts[1:thrOver] {
			over.reached += c.reached
			over.accepted += c.accepted
		}
		if want := thrK * float64(over.accepted) * 1.05; float64(over.reached) > want {
			t.Errorf("%s, overload after the first window: %d requests reached the server for %d accepts, want at most %.0f (K × accepts + 5%%)", l.name, over.reached, over.accepted, want)
		}
		// The window moves on a bucket (a 60th of it) at a time: the
		// overload's last requests leave it within a window and a bucket.
		if most := thrWindow + thrWindow/60; last > most {
			t.Errorf("%s: a call was throttled %v after the server recovered, want none after %v", l.name, last, most)
		}
	}
	table.WriteString("\n" + strings.Join(lasts, "; ") + ".\n")
	t.Log("\n" + table.String())
	if path := os.Getenv("THROTTLING_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func perAccept(reached, accepted int64) string {
	if accepted == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(reached)/float64(accepted))
}

// TestTwoHops counts the attempts that reach B, a service that fails
// every request, for each call of a client of A, a service that calls B:
//
//	client -> A -> B (503 to everything)
//
// where the client and A each retry twice at once. When A answers 503 on
// B's failure, the client retries it too, and each of its 3 attempts
// makes A try B 3 times: 9. When A answers with resilhttp.WriteGaveUp
// (503 with Retry-Pushback-Ms: -1), the client's Transport does not
// retry: 3. failsafehttp has no such signal; A answers 503. With
// TWOHOPS_TABLE=FILE it writes the table, in markdown.
func TestTwoHops(t *testing.T) {
	const (
		retries = 2
		clients = 8
		calls   = 8 * clients
	)
	ourRetry := func(name string) *resilience.Guard {
		r := must(resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: retries, NoBackoff: true}))
		return must(resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: []resilience.Stage{r}}))
	}
	ours := func(signal bool) func(base http.RoundTripper) (http.RoundTripper, func(w http.ResponseWriter, resp *http.Response, err error)) {
		return func(base http.RoundTripper) (http.RoundTripper, func(http.ResponseWriter, *http.Response, error)) {
			rt := must(resilhttp.NewTransport(resilhttp.TransportConfig{Base: base, Guard: ourRetry("hop")}))
			answer := func(w http.ResponseWriter, resp *http.Response, err error) {
				if err == nil {
					err = resilhttp.ResponseError(resp) // nil unless the Transport counted resp as a failure
				}
				if signal && resilhttp.WriteGaveUp(w, err) {
					return
				}
				if err != nil {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}
			return rt, answer
		}
	}
	rows := []struct {
		name string
		// hop returns the RoundTripper of one hop's client, over base,
		// and how A answers after its call to B returned resp or err.
		hop func(base http.RoundTripper) (http.RoundTripper, func(w http.ResponseWriter, resp *http.Response, err error))
	}{
		{"resilience: A answers 503", ours(false)},
		{"resilience: A answers with WriteGaveUp (Retry-Pushback-Ms: -1)", ours(true)},
		{"failsafe-go: A answers 503 (no such signal)", func(base http.RoundTripper) (http.RoundTripper, func(http.ResponseWriter, *http.Response, error)) {
			rp := failsafehttp.NewRetryPolicyBuilder().WithMaxRetries(retries).Build()
			return failsafehttp.NewRoundTripper(base, rp), func(w http.ResponseWriter, resp *http.Response, err error) {
				if err != nil || resp.StatusCode != http.StatusOK {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}
		}},
	}

	var table strings.Builder
	fmt.Fprintf(&table, "client -> A -> B, on 127.0.0.1, B answering 503 to every request; the client and A each retry %d times, at once; %d client calls from %d goroutines; attempts counted by A and B, per client call\n\n", retries, calls, clients)
	table.WriteString("| library | attempts at A | attempts at B | client calls that succeed |\n|---|---:|---:|---:|\n")
	perCall := make([]float64, len(rows))
	for i, row := range rows {
		var atA, atB atomic.Int64
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			atB.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		baseB := loopbackBase()
		toB, answer := row.hop(bufferedBodies{baseB})
		clientOfB := &http.Client{Transport: toB}
		a := httptest.NewServer(resilhttp.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			atA.Add(1)
			req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, b.URL, nil)
			if err != nil {
				panic(err)
			}
			resp, err := clientOfB.Do(req)
			if err == nil {
				defer resp.Body.Close()
			}
			answer(w, resp, err)
		})))
		baseA := loopbackBase()
		toA, _ := row.hop(bufferedBodies{baseA})
		client := &http.Client{Transport: toA}

		ok := getAll(client, a.URL, clients, calls)
		baseA.CloseIdleConnections()
		a.Close()
		baseB.CloseIdleConnections()
		b.Close()

		perCall[i] = float64(atB.Load()) / calls
		fmt.Fprintf(&table, "| %s | %.2f | %.2f | %d of %d |\n", row.name, float64(atA.Load())/calls, perCall[i], ok, calls)
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("TWOHOPS_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if want := float64((1 + retries) * (1 + retries)); perCall[0] != want {
		t.Errorf("%s: %.2f attempts at B per client call, want exactly %g", rows[0].name, perCall[0], want)
	}
	if want := float64(1 + retries); perCall[1] > want {
		t.Errorf("%s: %.2f attempts at B per client call, want at most %g", rows[1].name, perCall[1], want)
	}
}
