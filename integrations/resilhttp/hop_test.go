package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
)

// The tests of this file hold both ends of a hop to what they tell each
// other: the attempt number of each request, the "overloaded; don't
// retry" answer of a server whose own call gave up, and the counts of
// what is sent.

// retrying returns a guard named name that retries r times at once, with
// no breaker and no budget: every attempt it may make, it makes.
func retrying(t *testing.T, name string, r int) *resilience.Guard {
	t.Helper()
	retry := must(resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: r, NoBackoff: true}))
	return must(resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: []resilience.Stage{retry}}))
}

// seen is a stage that records the error of each call it runs: put
// inside a retry, it sees each attempt's error as the guard's stages do.
type seen struct {
	mu   sync.Mutex
	errs []error
}

func (*seen) Name() string { return "seen" }
func (*seen) Kind() string { return "seen" }
func (s *seen) Run(ctx context.Context, call func(context.Context) error) error {
	err := call(ctx)
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	return err
}

func (s *seen) got() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// countFailures counts the calls b counts as failures.
func countFailures(b *resilience.Breaker) *atomic.Int32 {
	var n atomic.Int32
	b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		if r == resilience.CallFailed {
			n.Add(1)
		}
	}})
	return &n
}

// Each retry of a request carries its attempt number, from 2, in a copy of
// the caller's header, and a first attempt none: the caller's request is
// not changed, and a value the caller put there is replaced (by none, on
// the first attempt).
func TestAttemptHeaderOnEachAttempt(t *testing.T) {
	var mu sync.Mutex
	var got [][]string
	srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Values(AttemptHeader))
		mu.Unlock()
		if r.Header.Get("X-Mine") != "kept" {
			t.Errorf("attempt %d: X-Mine = %q, want the caller's", n, r.Header.Get("X-Mine"))
		}
		if n < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	tr := transport(t, TransportConfig{Guard: retrying(t, "backend", 2), Base: client.Transport})
	req := get(t, t.Context(), "GET", srv.URL, nil)
	req.Header.Set("X-Mine", "kept")
	req.Header.Set(AttemptHeader, "7")
	before := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := [][]string{nil, {"2"}, {"3"}}; resp.StatusCode != 200 || !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("status %d; the attempts carried %q, want 200 and %q", resp.StatusCode, got, want)
	}
	if !equalHeader(req.Header, before) {
		t.Errorf("the caller's header became %v, was %v", req.Header, before)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// Server hands the handler its caller's attempt, and ignores a value that
// is not one, whatever it is.
func TestServerReadsTheCallersAttempt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string // nil: no header
		want   int
	}{
		{"none", nil, 0},
		{"first", []string{"1"}, 1},
		{"third", []string{"3"}, 3},
		{"leading zeros", []string{"007"}, 7},
		{"the largest Attempt", []string{"2147483647"}, 2147483647},
		{"of several, the largest", []string{"2", "5", "3"}, 5},
		{"of several, the valid", []string{"x", "4", "-9"}, 4},
		{"zero", []string{"0"}, 0},
		{"negative", []string{"-1"}, 0},
		{"signed", []string{"+2"}, 0},
		{"spaces", []string{" 2"}, 0},
		{"empty", []string{""}, 0},
		{"a list", []string{"1, 2"}, 0},
		{"not a number", []string{"two"}, 0},
		{"a float", []string{"1e3"}, 0},
		{"past the largest", []string{"2147483648"}, 0},
		{"huge", []string{"99999999999999999999999999999999"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := -1
			h := Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = resilience.CallerAttempt(r.Context())
			}))
			r := httptest.NewRequest("GET", "http://a/", nil)
			if tc.values != nil {
				r.Header[AttemptHeader] = tc.values
			}
			noPanic(t, func() error { h.ServeHTTP(httptest.NewRecorder(), r); return nil })
			if got != tc.want {
				t.Errorf("CallerAttempt = %d, want %d", got, tc.want)
			}
		})
	}
}

// Across a real hop: a server behind Server sees each attempt of a
// Transport's request for what it is.
func TestServerSeesTheTransportsAttempts(t *testing.T) {
	var mu sync.Mutex
	var got []int
	srv := httptest.NewServer(Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, resilience.CallerAttempt(r.Context()))
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	})))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: transport(t, TransportConfig{Guard: retrying(t, "backend", 3), Base: base})}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := []int{0, 2, 3, 4}; !slices.Equal(got, want) { // a first attempt sends none
		t.Errorf("the server saw attempts %v, want %v", got, want)
	}
}

// A 429 and a 503 travel through the guard marked resilience.Overloaded,
// and are retried and counted as before; other failures are not marked.
func TestOverloadAnswersAreMarked(t *testing.T) {
	for _, tc := range []struct {
		code       int
		overloaded bool
	}{{429, true}, {503, true}, {500, false}, {502, false}, {504, false}} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var a attempts
				s := &seen{}
				b := newBreaker(t)
				failed := countFailures(b)
				g := newGuard(t, newRetry(t, 2, time.Millisecond), b, s)
				tr := transport(t, TransportConfig{Guard: g, Base: a.base([]int{tc.code}, "Retry-After", "1")})
				resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if len(a.at) != 3 || a.at[1]-a.at[0] != time.Second {
					t.Errorf("%d attempts, waits %v; want 3, the Retry-After of 1s", len(a.at), a.at)
				}
				if n := failed.Load(); n != 3 {
					t.Errorf("the breaker counted %d failures, want 3", n)
				}
				for i, err := range s.got() {
					if resilience.IsOverloaded(err) != tc.overloaded {
						t.Errorf("attempt %d: IsOverloaded(%v) = %v, want %v", i+1, err, !tc.overloaded, tc.overloaded)
					}
					var se *statusError
					if !errors.As(err, &se) || !strings.Contains(err.Error(), fmt.Sprint(tc.code)) {
						t.Errorf("attempt %d: %v, want the status error, seen through the mark", i+1, err)
					}
				}
			})
		})
	}
}

// A failed response with a PushbackHeader that says not to retry is not
// retried, and the breaker counts it; a pushback in milliseconds sets the
// wait, in place of Retry-After. On a response that is not a failure it
// means nothing.
func TestPushbackHeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		code     int
		values   []string
		attempts int
		wait     time.Duration // before the second attempt
	}{
		{"do not retry", 503, []string{"-1"}, 1, 0},
		{"any negative", 500, []string{"-250"}, 1, 0},
		{"not a number", 503, []string{"soon"}, 1, 0},
		{"empty", 503, []string{""}, 1, 0},
		{"too large for an int64", 503, []string{"99999999999999999999"}, 1, 0},
		{"a wait", 503, []string{"250"}, 3, 250 * time.Millisecond},
		{"no wait", 429, []string{"0"}, 3, 0},
		{"a wait past MaxBackoff", 503, []string{"3600000"}, 3, 10 * time.Second},
		{"repeated: ignored", 503, []string{"-1", "-1"}, 3, 5 * time.Second}, // Retry-After's
		{"on a success", 200, []string{"-1"}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var at []time.Duration
				start := time.Now()
				base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
					mu.Lock()
					at = append(at, time.Since(start))
					mu.Unlock()
					resp := answer(r, tc.code, "x", "Retry-After", "5")
					resp.Header[PushbackHeader] = tc.values
					return resp, nil
				})
				g := guard(t, 2, 100)
				counted := countFailures(g.Breaker())
				tr := transport(t, TransportConfig{Guard: g, Base: base})
				resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if len(at) != tc.attempts || len(at) > 1 && at[1]-at[0] != tc.wait {
					t.Errorf("attempts at %v, want %d, the second after %v", at, tc.attempts, tc.wait)
				}
				failed := 0
				if tc.code != 200 {
					failed = tc.attempts
				}
				if n := counted.Load(); n != int32(failed) {
					t.Errorf("the breaker counted %d failures, want %d", n, failed)
				}
				rerr := ResponseError(resp)
				if tc.code == 200 {
					if rerr != nil {
						t.Errorf("ResponseError of a success: %v", rerr)
					}
					return
				}
				if pushed := tc.attempts == 1; resilience.IsPermanent(rerr) != pushed {
					t.Errorf("ResponseError = %v: permanent %v, want %v", rerr, !pushed, pushed)
				}
			})
		})
	}
}

// ResponseError gives the guard's error for a failed response handed
// back, through an http.Client with a Timeout too (which wraps the body),
// and nil for any other.
func TestResponseError(t *testing.T) {
	srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		}
	})
	tr := transport(t, TransportConfig{Guard: retrying(t, "backend", 2), Base: client.Transport})
	c := &http.Client{Transport: tr, Timeout: time.Minute}
	for _, tc := range []struct {
		path   string
		method string
		gaveUp bool
		failed bool
	}{
		{"/down", "GET", true, true},
		{"/down", "POST", false, true}, // not retried: a failure, not a give-up
		{"/ok", "GET", false, false},
		{"/missing", "GET", false, false},
	} {
		req := get(t, t.Context(), tc.method, srv.URL+tc.path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		rerr := ResponseError(resp)
		if (rerr != nil) != tc.failed || resilience.GaveUp(rerr) != tc.gaveUp {
			t.Errorf("%s %s: ResponseError = %v; want an error %v, one that gave up %v", tc.method, tc.path, rerr, tc.failed, tc.gaveUp)
		}
		if tc.failed && !strings.Contains(rerr.Error(), "503") {
			t.Errorf("%s %s: ResponseError = %v, want one that gives the status", tc.method, tc.path, rerr)
		}
	}
	if err := ResponseError(nil); err != nil {
		t.Errorf("ResponseError(nil) = %v", err)
	}
	if err := ResponseError(&http.Response{StatusCode: 503}); err != nil {
		t.Errorf("ResponseError of a response no Transport saw = %v", err)
	}
}

// WriteGaveUp answers 503 with the pushback of -1 for an error that gave
// up, or that its own dependency said not to retry, and writes nothing for
// any other.
func TestWriteGaveUp(t *testing.T) {
	down := errors.New("down")
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"retries used up", &resilience.RetryError{Attempts: 3, Err: down, Cause: resilience.ErrRetriesExhausted}, true},
		{"refused by the budget", &resilience.RetryError{Attempts: 1, Err: down, Cause: resilience.ErrRetryBudget}, true},
		{"wrapped", fmt.Errorf("calling B: %w", &resilience.RetryError{Attempts: 2, Err: down, Cause: resilience.ErrRetriesExhausted}), true},
		{"stopped before the deadline", &resilience.RetryError{Err: down, Cause: resilience.ErrRetryDeadline}, false},
		{"a failure", down, false},
		{"a rejection", resilience.ErrOpen, false},
		{"nil", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			w.Header().Set("Content-Length", "99")
			if got := WriteGaveUp(w, tc.err); got != tc.want {
				t.Fatalf("WriteGaveUp = %v, want %v", got, tc.want)
			}
			if !tc.want {
				if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get(PushbackHeader) != "" {
					t.Errorf("wrote %d %q %v, want nothing", w.Code, w.Body, w.Header())
				}
				return
			}
			if w.Code != 503 || w.Header().Get(PushbackHeader) != "-1" || w.Header().Get("Content-Length") != "" {
				t.Errorf("wrote %d with %v, want 503 with %s: -1", w.Code, w.Header(), PushbackHeader)
			}
			if tc.err != nil && strings.Contains(w.Body.String(), "down") {
				t.Errorf("the body %q gives the error's text", w.Body)
			}
		})
	}
}

// hop is a service on 127.0.0.1 whose handler calls next through a
// Transport with a guard that retries twice at once, then answers with
// what it got: a plain copy of the status, or, if signal is set, the
// answer of WriteGaveUp when its call gave up.
type hop struct {
	srv      *httptest.Server
	requests atomic.Int32
}

func newHop(t *testing.T, name, next string, signal bool) *hop {
	t.Helper()
	h := &hop{}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	client := &http.Client{Transport: transport(t, TransportConfig{Guard: retrying(t, name, 2), Base: base})}
	h.srv = httptest.NewServer(Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.requests.Add(1)
		req, err := http.NewRequestWithContext(r.Context(), "GET", next, nil)
		if err != nil {
			t.Error(err)
			return
		}
		resp, err := client.Do(req)
		if err != nil {
			if !signal || !WriteGaveUp(w, err) {
				http.Error(w, err.Error(), http.StatusBadGateway)
			}
			return
		}
		defer resp.Body.Close()
		if signal && WriteGaveUp(w, ResponseError(resp)) {
			return
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})))
	t.Cleanup(h.srv.Close)
	return h
}

// The multi-layer amplification of retries, end to end: a client calls
// service A, whose handler calls B, which fails every request with a
// 503; the client and A each retry twice (r = 2). Without the signal, A
// answers a plain 503, which the client retries: B gets (1+r)^2 = 9
// attempts per client call. With it, A retries B and then tells the
// client not to retry: B gets 1+r = 3. Over three layers, the word goes
// up from each hop to the next: (1+r)^3 = 27 against 3.
func TestRetriesAmplifyOnlyOneLayerDown(t *testing.T) {
	const r = 2
	for _, tc := range []struct {
		name   string
		layers int // services between the client and B
		signal bool
		want   int // attempts reaching B per client call
		top    int // requests reaching the first service
	}{
		{"two hops, no signal", 1, false, (1 + r) * (1 + r), 1 + r},
		{"two hops, WriteGaveUp", 1, true, 1 + r, 1},
		{"three hops, no signal", 2, false, (1 + r) * (1 + r) * (1 + r), 1 + r},
		{"three hops, WriteGaveUp", 2, true, 1 + r, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var atB atomic.Int32
			b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				atB.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer b.Close()
			next := b.URL
			var hops []*hop
			for i := range tc.layers {
				h := newHop(t, fmt.Sprintf("hop%d", i), next, tc.signal)
				hops = append([]*hop{h}, hops...)
				next = h.srv.URL
			}
			base := &http.Transport{}
			defer base.CloseIdleConnections()
			g := retrying(t, "client", r)
			client := &http.Client{Transport: transport(t, TransportConfig{Guard: g, Base: base})}
			resp, err := client.Get(next)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 503 {
				t.Errorf("the client got %d, want 503", resp.StatusCode)
			}
			if got := int(atB.Load()); got != tc.want {
				t.Errorf("%d attempts reached B for one call, want %d", got, tc.want)
			}
			if got := int(hops[0].requests.Load()); got != tc.top {
				t.Errorf("%d requests reached the first service, want %d", got, tc.top)
			}
			if gaveUp := resilience.GaveUp(ResponseError(resp)); gaveUp == tc.signal {
				t.Errorf("the client's retry gave up: %v, want %v", gaveUp, !tc.signal)
			}
			if w := Wire(g).Stats(); w.Calls[0].N != 1 || w.Calls[1].N != uint64(tc.top) {
				t.Errorf("the client's wire counted %v, want 1 call and %d attempts", w.Calls, tc.top)
			}
		})
	}
}

// Wire counts every call a Transport runs through the guard and every
// attempt it sends: a call sent three times is three attempts, and a call
// the breaker refuses is a call with none.
func TestWireCounts(t *testing.T) {
	srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "backend", FailureThreshold: 100, OpenTimeout: time.Minute}))
	g := newGuard(t, must(resilience.NewRetry(resilience.RetryConfig{Name: "backend", MaxRetries: 2, NoBackoff: true})), breaker)
	w := Wire(g)
	if w != Wire(g) {
		t.Error("Wire(g) is not one stage for g")
	}
	if w.Kind() != KindWire || w.Kind() != "wire" || w.Name() != g.Name() {
		t.Errorf("kind %q, name %q; want %q and the guard's, %q", w.Kind(), w.Name(), "wire", g.Name())
	}
	check := func(calls, attempts uint64) {
		t.Helper()
		st := w.Stats()
		amp := 0.0
		if calls > 0 {
			amp = float64(attempts) / float64(calls)
		}
		want := resilience.Stats{
			Calls:  []resilience.Count{{Result: "call", N: calls}, {Result: "attempt", N: attempts}},
			Gauges: []resilience.Gauge{{Name: "amplification", Help: st.Gauges[0].Help, Value: amp}},
		}
		if !slices.Equal(st.Calls, want.Calls) || !slices.Equal(st.Gauges, want.Gauges) || st.Gauges[0].Help == "" {
			t.Errorf("Stats = %+v, want %+v", st, want)
		}
	}
	check(0, 0)
	tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})
	do := func(path string) {
		t.Helper()
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL+path, nil))
		if err == nil {
			resp.Body.Close()
		}
	}
	do("/ok")
	check(1, 1)
	do("/down")
	check(2, 4)
	breaker.ForceOpen()
	do("/ok")
	check(3, 4)
	breaker.Reset()

	// Another Transport with the same guard counts into the same wire.
	other := transport(t, TransportConfig{Guard: g, Base: client.Transport})
	resp, err := other.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	check(4, 5)

	if err := w.Run(t.Context(), nil); err == nil {
		t.Error("Run(nil) = nil, want an error")
	}
	ran := false
	if err := w.Run(t.Context(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Run: %v, ran %v; want the call run", err, ran)
	}
	check(4, 5)
	if st := Wire(nil).Stats(); st.Calls[0].N != 0 || Wire(nil).Name() != "" {
		t.Errorf("Wire(nil): %+v", st)
	}
}

// Server(nil) serves with http.DefaultServeMux, as http.Server does,
// rather than panic on the first request.
func TestServerOfNil(t *testing.T) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "http://a/resilhttp-test-nothing-here", nil)
	r.Header.Set(AttemptHeader, "2")
	noPanic(t, func() error { Server(nil).ServeHTTP(w, r); return nil })
	if w.Code != http.StatusNotFound {
		t.Errorf("status %d, want DefaultServeMux's 404", w.Code)
	}
}
