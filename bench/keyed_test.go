package bench

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/failsafehttp"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/presets"
)

// The keyed-breaker scenarios: ten hosts behind one HTTP client, some of
// them failing every request, and what the calls to the others see. Each
// host is an httptest server on 127.0.0.1, closed by the test; outcomes
// are counted, never timed.

const (
	keyedHosts   = 10
	keyedClients = 20 // goroutines calling at once, each across every host in turn
)

// keyedCalls is how many calls each row makes: KEYED_CALLS, or a number
// small enough for CI.
func keyedCalls(t *testing.T) int {
	if s := os.Getenv("KEYED_CALLS"); s != "" {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil || n < keyedClients*keyedHosts || n%(keyedClients*keyedHosts) != 0 {
			t.Fatalf("KEYED_CALLS=%q: want a multiple of %d", s, keyedClients*keyedHosts)
		}
		return n
	}
	if raceEnabled {
		return 10 * keyedClients * keyedHosts
	}
	return 50 * keyedClients * keyedHosts
}

// keyedFarm is keyedHosts servers, the first failing of them answering
// 503 to every request and the others 200.
type keyedFarm struct {
	servers  []*httptest.Server
	requests []atomic.Int64 // per server
	failing  int
}

func newKeyedFarm(failing int) *keyedFarm {
	f := &keyedFarm{requests: make([]atomic.Int64, keyedHosts), failing: failing}
	for i := range keyedHosts {
		f.servers = append(f.servers, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.requests[i].Add(1)
			if i < failing {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		})))
	}
	return f
}

func (f *keyedFarm) close() {
	for _, s := range f.servers {
		s.Close()
	}
}

// keyedResult is what one row's calls saw.
type keyedResult struct {
	healthyCalls, healthyOK, healthyRejected, healthyFailed int64
	failingCalls, failingReached, failingRejected           int64
	maxOpen                                                 int // most keys open at once, where the library says
}

// keyedRun makes calls GETs through c, from keyedClients goroutines, each
// going round the hosts; open, if set, reports how many keys are open, and
// is read after every call (for a shared breaker, 1 while it is not
// closed).
func keyedRun(c *http.Client, f *keyedFarm, calls int, open func() int) keyedResult {
	var r keyedResult
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range keyedClients {
		wg.Go(func() {
			var mine keyedResult
			for j := range calls / keyedClients {
				host := (g + j) % keyedHosts
				resp, err := c.Get(f.servers[host].URL)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				rejected := errors.Is(err, resilience.ErrRejected) || errors.Is(err, circuitbreaker.ErrOpen)
				if host < f.failing {
					mine.failingCalls++
					if rejected {
						mine.failingRejected++
					}
				} else {
					mine.healthyCalls++
					switch {
					case ok:
						mine.healthyOK++
					case rejected:
						mine.healthyRejected++
					default:
						mine.healthyFailed++
					}
				}
				if open != nil {
					mine.maxOpen = max(mine.maxOpen, open())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			r.healthyCalls += mine.healthyCalls
			r.healthyOK += mine.healthyOK
			r.healthyRejected += mine.healthyRejected
			r.healthyFailed += mine.healthyFailed
			r.failingCalls += mine.failingCalls
			r.failingRejected += mine.failingRejected
			r.maxOpen = max(r.maxOpen, mine.maxOpen)
		})
	}
	wg.Wait()
	for i := range f.failing {
		r.failingReached += f.requests[i].Load()
	}
	return r
}

// ourKeyedClient is an http.Client through resilhttp.Transport with the
// external-HTTP preset: a breaker per host that opens after 5 failures in
// a row (its default; cap percent of hosts open at once, 0 for the
// preset's 10%), or one shared breaker if cap is negative; 5 retries with
// no wait, and the preset's retry budget.
func ourKeyedClient(base http.RoundTripper, cap int) (*http.Client, *resilience.Guard) {
	cfg := presets.ExternalHTTPConfig()
	cfg.Retry.NoBackoff = true
	cfg.Retry.InitialBackoff, cfg.Retry.BackoffMultiplier, cfg.Retry.Jitter = 0, 0, false
	if cap < 0 {
		cfg.BreakerPerKey = nil
	} else if cap > 0 {
		cfg.BreakerPerKey.MaxEjectedPercent = cap
	}
	g := must(cfg.Build())
	return &http.Client{Transport: must(resilhttp.NewTransport(resilhttp.TransportConfig{Base: base, Guard: g}))}, g
}

// failsafeKeyedClient is failsafe-go's retry policy (5 retries, no wait)
// around its circuit breaker, opening after 5 failures in a row for 2
// minutes, as our preset's: one breaker for the client, the only kind
// failsafe-go has.
func failsafeKeyedClient(base http.RoundTripper) (*http.Client, circuitbreaker.CircuitBreaker[*http.Response]) {
	rp := failsafehttp.NewRetryPolicyBuilder().WithMaxRetries(5).Build()
	cb := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(resp *http.Response, err error) bool { return err != nil || resp.StatusCode >= 500 }).
		WithFailureThreshold(5).WithDelay(2 * time.Minute).Build()
	return &http.Client{Transport: failsafehttp.NewRoundTripper(base, rp, cb)}, cb
}

// TestKeyedHosts: ten hosts behind one client, one failing every request,
// then five of them with a cap of 30%. With a breaker per host, the calls
// to the healthy hosts see no rejection and no failure, the failing host
// is cut off after its threshold (it receives at most the threshold's 5
// requests, and one more for each goroutine in flight), and with five
// failing no more than 3 breakers are ever open at once. One shared
// breaker, ours or failsafe-go's, is shown for comparison. With
// KEYED_TABLE=FILE it writes the table, in markdown.
func TestKeyedHosts(t *testing.T) {
	calls := keyedCalls(t)
	type lib struct {
		name string
		run  func(f *keyedFarm, base http.RoundTripper, cap int) keyedResult
	}
	libs := []lib{
		{"resilience, a breaker per host (the preset's default)", func(f *keyedFarm, base http.RoundTripper, cap int) keyedResult {
			c, g := ourKeyedClient(base, cap)
			return keyedRun(c, f, calls, g.KeyedBreaker().Ejected)
		}},
		{"resilience, one shared breaker", func(f *keyedFarm, base http.RoundTripper, _ int) keyedResult {
			c, g := ourKeyedClient(base, -1)
			return keyedRun(c, f, calls, func() int {
				if g.Breaker().State() == resilience.Closed {
					return 0
				}
				return 1
			})
		}},
		{"failsafe-go, one breaker", func(f *keyedFarm, base http.RoundTripper, _ int) keyedResult {
			c, cb := failsafeKeyedClient(base)
			return keyedRun(c, f, calls, func() int {
				if cb.IsClosed() {
					return 0
				}
				return 1
			})
		}},
	}
	scenarios := []struct {
		name    string
		failing int
		cap     int // MaxEjectedPercent of our keyed breaker
	}{
		{"1 of 10 hosts failing", 1, 0},
		{"5 of 10 hosts failing, cap 30%", 5, 30},
	}
	results := make([][]keyedResult, len(scenarios))
	for i, sc := range scenarios {
		for _, l := range libs {
			f := newKeyedFarm(sc.failing)
			base := loopbackBase()
			r := l.run(f, bufferedBodies{base}, sc.cap)
			base.CloseIdleConnections()
			f.close()
			results[i] = append(results[i], r)
			t.Logf("%s, %s: %+v", sc.name, l.name, r)
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%d goroutines make %d calls each row, each a GET to one of %d servers on 127.0.0.1 in turn; the failing ones answer 503 to every request. "+
		"5 retries with no wait; breakers open after 5 failures in a row, for 2 minutes. "+
		"Healthy hosts: the share of their calls that succeed, and those rejected or failed; failing hosts: the requests that reached them per call; the most breakers open at once.\n\n",
		keyedClients, calls, keyedHosts)
	table.WriteString("| scenario | library | healthy hosts: succeed | rejected | failed | failing hosts: requests per call | most open at once |\n")
	table.WriteString("|---|---|---:|---:|---:|---:|---:|\n")
	for i, sc := range scenarios {
		for j, r := range results[i] {
			open := fmt.Sprint(r.maxOpen)
			if j > 0 { // one breaker for every host
				open = map[bool]string{true: "the shared one: all 10", false: "0"}[r.maxOpen > 0]
			}
			fmt.Fprintf(&table, "| %s | %s | %.1f%% | %d | %d | %.3f | %s |\n", sc.name, libs[j].name,
				100*float64(r.healthyOK)/float64(r.healthyCalls), r.healthyRejected, r.healthyFailed,
				float64(r.failingReached)/float64(r.failingCalls), open)
		}
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("KEYED_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	one, five := results[0][0], results[1][0]
	if one.healthyRejected != 0 || one.healthyFailed != 0 || one.healthyOK != one.healthyCalls {
		t.Errorf("1 failing, per host: healthy hosts %d calls, %d ok, %d rejected, %d failed; want all ok", one.healthyCalls, one.healthyOK, one.healthyRejected, one.healthyFailed)
	}
	if most := int64(5 + keyedClients); one.failingReached > most || one.failingRejected < one.failingCalls-keyedClients {
		t.Errorf("1 failing, per host: the failing host got %d requests for %d calls (%d rejected); want at most %d, the rest rejected", one.failingReached, one.failingCalls, one.failingRejected, most)
	}
	// One breaker for every host, ours or failsafe-go's, cuts the healthy
	// hosts off with the failing ones: most of their calls are rejected.
	for i, sc := range scenarios {
		for j := 1; j < len(libs); j++ {
			if r := results[i][j]; r.healthyRejected*2 < r.healthyCalls {
				t.Errorf("%s, %s: %d of the healthy hosts' %d calls rejected, want most", sc.name, libs[j].name, r.healthyRejected, r.healthyCalls)
			}
		}
	}
	if five.healthyRejected != 0 || five.healthyFailed != 0 {
		t.Errorf("5 failing, cap 30%%, per host: healthy hosts %d rejected, %d failed; want none", five.healthyRejected, five.healthyFailed)
	}
	if five.maxOpen > 3 || five.maxOpen < 1 {
		t.Errorf("5 failing, cap 30%%: %d breakers open at once, want 1 to 3", five.maxOpen)
	}
}
