package resilhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
)

// The tests of this file hold the Transport to the guard it is given, any
// guard: every stage runs, in order, per-attempt time limits, bulkheads and
// all, against servers on 127.0.0.1 through http.Transport, and under
// testing/synctest with fake round trippers where exact durations are
// checked.

// must returns v, and panics on err: a stage of these tests that cannot
// be built is a mistake in the test.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// timeouts is a Timeout stage and the results its observer was told of.
type timeouts = stagetest.Timeouts

func newTimeout(t *testing.T, name string, d time.Duration) *timeouts {
	return stagetest.Timeout(name, d)
}

func newGuard(t *testing.T, stages ...resilience.Stage) *resilience.Guard {
	return stagetest.Guard("backend", stages...)
}

func newRetry(t *testing.T, retries int, backoff time.Duration) *resilience.Retry {
	return stagetest.Retry("backend", retries, backoff)
}

func newBreaker(t *testing.T) *resilience.Breaker { return stagetest.Breaker("backend") }

// server is a server on 127.0.0.1 that counts its requests and hands each
// to serve with its number, from 1.
func server(t *testing.T, serve func(n int, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32, *http.Client) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(int(requests.Add(1)), w, r)
	}))
	t.Cleanup(srv.Close)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	return srv, &requests, &http.Client{Transport: base}
}

// hang is a handler that never answers.
func hang(_ int, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// The guard's Timeout stage ends each request that outlives it, so that
// its observers, and the timeout metrics built on them, count every
// time-out, and the error is the stage's own.
func TestTimeoutsAreCountedByTheGuardsTimeout(t *testing.T) {
	srv, _, client := server(t, hang)
	total := newTimeout(t, "total", 100*time.Millisecond)
	tr := transport(t, TransportConfig{Guard: newGuard(t, total.Timeout, newBreaker(t)), Base: client.Transport})
	for i := range 2 {
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
		var te *resilience.TimeoutError
		if resp != nil || !errors.As(err, &te) || te.Name != "total" {
			t.Fatalf("request %d to a server that hangs: %v, %v; want the *TimeoutError of the stage \"total\"", i+1, resp, err)
		}
	}
	if n := total.Count(resilience.TimeoutExpired); n != 2 {
		t.Errorf("the Timeout stage counted %d time-outs (%v), want 2", n, total.Got())
	}
}

// Timeout(total) → Retry → Breaker → Timeout(per attempt), against a
// server that hangs on the first attempt only: the per-attempt limit cuts
// it, the retry sends the request again, and it succeeds well within the
// total limit.
func TestPerAttemptTimeoutRetriesAHungAttempt(t *testing.T) {
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "ok")
	})
	total := newTimeout(t, "total", 5*time.Second)
	attempt := newTimeout(t, "attempt", 200*time.Millisecond)
	g := newGuard(t, total.Timeout, newRetry(t, 2, time.Millisecond), newBreaker(t), attempt.Timeout)
	tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})

	start := time.Now()
	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	if err != nil {
		t.Fatalf("RoundTrip: %v, want the second attempt's answer", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("got %d %q, %v; want 200 \"ok\"", resp.StatusCode, body, err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the server got %d requests, want 2", n)
	}
	want := []resilience.TimeoutResult{resilience.TimeoutExpired, resilience.TimeoutSucceeded}
	if got := attempt.Got(); !slices.Equal(got, want) {
		t.Errorf("per-attempt limit: %v, want %v", got, want)
	}
	if got := total.Got(); !slices.Equal(got, want[1:]) {
		t.Errorf("total limit: %v, want %v", got, want[1:])
	}
	if took >= 5*time.Second {
		t.Errorf("took %v, beyond the 5s total limit", took)
	}
}

// The same, with exact durations: the hung attempt is cut at 200ms, the
// retry waits its 100ms backoff, and the answer comes at 300ms.
func TestPerAttemptTimeoutRetriesAHungAttemptExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []time.Duration
		start := time.Now()
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sent = append(sent, time.Since(start))
			if len(sent) == 1 {
				<-r.Context().Done()
				return nil, r.Context().Err()
			}
			return answer(r, 200, "ok"), nil
		})
		total := newTimeout(t, "total", 5*time.Second)
		attempt := newTimeout(t, "attempt", 200*time.Millisecond)
		g := newGuard(t, total.Timeout, newRetry(t, 2, 100*time.Millisecond), newBreaker(t), attempt.Timeout)
		tr := transport(t, TransportConfig{Guard: g, Base: base})
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); took != 300*time.Millisecond {
			t.Errorf("answered after %v, want 300ms", took)
		}
		if want := []time.Duration{0, 300 * time.Millisecond}; !slices.Equal(sent, want) {
			t.Errorf("attempts sent at %v, want %v", sent, want)
		}
	})
}

// Any guard will do, with or without a breaker or a retry; nil, the zero
// Guard and a guard that abandons calls are refused, naming the field.
func TestAnyGuardIsAccepted(t *testing.T) {
	srv, _, client := server(t, func(_ int, w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "backend", MaxConcurrent: 4}))
	for _, tc := range []struct {
		name   string
		stages []resilience.Stage
	}{
		{"a Timeout alone", []resilience.Stage{newTimeout(t, "total", 5*time.Second).Timeout}},
		{"a Retry and a Bulkhead", []resilience.Stage{newRetry(t, 2, time.Millisecond), bulkhead}},
		{"a Bulkhead alone", []resilience.Stage{bulkhead}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewTransport(TransportConfig{Guard: newGuard(t, tc.stages...), Base: client.Transport})
			if err != nil {
				t.Fatalf("NewTransport: %v", err)
			}
			resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Errorf("got %d %q, want 200 \"ok\"", resp.StatusCode, body)
			}
		})
	}

	abandons := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "total", Duration: time.Second, Abandon: true}))
	for _, tc := range []struct {
		name  string
		guard *resilience.Guard
		want  []string
	}{
		{"nil", nil, []string{"TransportConfig.Guard", "nil"}},
		{"zero", &resilience.Guard{}, []string{"TransportConfig.Guard", "zero"}},
		{"abandons", newGuard(t, abandons), []string{"TransportConfig.Guard", "Abandon"}},
	} {
		_, err := NewTransport(TransportConfig{Guard: tc.guard})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("NewTransport with a %s guard: err = %v, want one naming %q", tc.name, err, w)
			}
		}
	}
}

// A POST without an idempotency key whose attempt hangs is cut by the
// per-attempt limit and not sent again: the server may have run it. The
// breaker still counts the failure. With a key, it is retried.
func TestPostIsSentOnceUnderAPerAttemptTimeout(t *testing.T) {
	srv, requests, client := server(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		<-r.Context().Done()
	})
	for _, tc := range []struct {
		key  bool
		want int32
	}{{false, 1}, {true, 3}} {
		requests.Store(0)
		breaker := newBreaker(t)
		var failed atomic.Int32
		breaker.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
			if r == resilience.CallFailed {
				failed.Add(1)
			}
		}})
		attempt := newTimeout(t, "attempt", 200*time.Millisecond)
		g := newGuard(t, newTimeout(t, "total", 5*time.Second).Timeout, newRetry(t, 2, time.Millisecond), breaker, attempt.Timeout)
		tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})
		req := get(t, t.Context(), "POST", srv.URL, strings.NewReader("charge 10€")) // GetBody set: the body could be sent again
		if tc.key {
			req.Header.Set("Idempotency-Key", "charge-1")
		}
		resp, err := tr.RoundTrip(req)
		var te *resilience.TimeoutError
		if resp != nil || !errors.As(err, &te) || te.Name != "attempt" {
			t.Errorf("key %v: %v, %v; want the per-attempt limit's *TimeoutError", tc.key, resp, err)
		}
		if n := requests.Load(); n != tc.want {
			t.Errorf("key %v: the server got the POST %d times, want %d", tc.key, n, tc.want)
		}
		if n := failed.Load(); n != tc.want {
			t.Errorf("key %v: the breaker counted %d failures, want %d", tc.key, n, tc.want)
		}
		if n := attempt.Count(resilience.TimeoutExpired); n != int(tc.want) {
			t.Errorf("key %v: the per-attempt limit counted %d time-outs, want %d", tc.key, n, tc.want)
		}
	}
}

// A bulkhead in the guard bounds the requests in flight: while one holds
// the only slot, the next is refused without being sent, with the
// bulkhead's error, and is not retried.
func TestBulkheadBoundsConcurrentRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(entered)
		}
		select {
		case <-release:
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "backend", MaxConcurrent: 1}))
	g := newGuard(t, newRetry(t, 2, time.Millisecond), bulkhead, newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})

	first := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		first <- err
	}()
	<-entered // the first request holds the slot

	body := &closeCounter{Reader: strings.NewReader("x")}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second) // should the request get through
	defer cancel()
	resp, err := tr.RoundTrip(get(t, ctx, "PUT", srv.URL, body))
	if resp != nil || !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Errorf("with the bulkhead full: %v, %v; want an error matching ErrRejected and ErrBulkheadFull", resp, err)
	}
	if body.closed != 1 {
		t.Errorf("the refused request's body was closed %d times, want 1", body.closed)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the request holding the slot: %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the server got %d requests, want 1", n)
	}
	if n := bulkhead.InUse(); n != 0 {
		t.Errorf("%d slots in use once both requests are done", n)
	}
}

// An AdaptiveLimiter in a client's guard limits the requests in flight to
// the dependency as a bulkhead does: at its limit, a request is refused
// with ErrLimitExceeded (ErrRejected: the retry does not retry it) and
// never sent, and every slot is given back.
func TestAdaptiveLimiterBoundsConcurrentRequests(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			close(entered)
		}
		select {
		case <-release:
			io.WriteString(w, "done")
		case <-r.Context().Done():
		}
	})
	limiter := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "backend", MinLimit: 1, MaxLimit: 1}))
	g := newGuard(t, newRetry(t, 2, time.Millisecond), limiter, newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})

	first := make(chan error, 1)
	go func() {
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		first <- err
	}()
	<-entered // the first request holds the slot

	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	var lerr *resilience.LimitExceededError
	if resp != nil || !errors.Is(err, resilience.ErrRejected) || !errors.As(err, &lerr) || lerr.Limit != 1 {
		t.Errorf("at the limit: %v, %v; want a *LimitExceededError of limit 1, matching ErrRejected", resp, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the request holding the slot: %v", err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the server got %d requests, want 1", n)
	}
	if n := limiter.InFlight(); n != 0 {
		t.Errorf("%d calls in flight once both requests are done", n)
	}
}

// Under a guard with a per-attempt limit, the body of a successful
// response can be read after RoundTrip has returned, and reading it is cut
// at the total limit.
func TestBodyIsReadAfterRoundTripWithinTheTimeLimits(t *testing.T) {
	more := make(chan struct{})
	srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "head ")
		http.NewResponseController(w).Flush()
		if r.URL.Path == "/hang" {
			<-r.Context().Done()
			return
		}
		select {
		case <-more:
			io.WriteString(w, "tail")
		case <-r.Context().Done():
		}
	})
	stages := func(total time.Duration) []resilience.Stage {
		return []resilience.Stage{
			newTimeout(t, "total", total).Timeout, newRetry(t, 2, time.Millisecond), newBreaker(t),
			newTimeout(t, "attempt", 5*time.Second).Timeout,
		}
	}

	tr := transport(t, TransportConfig{Guard: newGuard(t, stages(10*time.Second)...), Base: client.Transport})
	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL+"/", nil))
	if err != nil {
		t.Fatal(err)
	}
	close(more) // the rest of the body is sent once RoundTrip has returned
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "head tail" {
		t.Errorf("body read after RoundTrip returned: %q, %v; want \"head tail\"", body, err)
	}

	tr = transport(t, TransportConfig{Guard: newGuard(t, stages(300*time.Millisecond)...), Base: client.Transport})
	start := time.Now()
	resp, err = tr.RoundTrip(get(t, t.Context(), "GET", srv.URL+"/hang", nil))
	if err != nil {
		t.Fatal(err)
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || string(body) != "head " {
		t.Errorf("reading a body that never ends: %q, %v; want \"head \" and DeadlineExceeded", body, err)
	}
	if took < 300*time.Millisecond || took >= 5*time.Second {
		t.Errorf("reading cut after %v, want at the 300ms total limit", took)
	}
}

// The same with exact durations. Timeout(1s) → Retry → Breaker → Timeout(600ms): the
// first attempt hangs and is cut at 600ms; the second, sent at 700ms after
// the backoff, answers at once with a body that never ends. Reading it is
// cut at 1s, by the total limit, before the attempt's own (at 1.3s); a
// body closed earlier ends both limits at once.
func TestBodyIsReadWithinTheTimeLimitsExactly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ctxs []context.Context
		start := time.Now()
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			ctxs = append(ctxs, r.Context())
			if len(ctxs) == 1 {
				<-r.Context().Done()
				return nil, r.Context().Err()
			}
			resp := answer(r, 200, "")
			resp.Body = &endlessBody{ctx: r.Context()}
			return resp, nil
		})
		attempt := newTimeout(t, "attempt", 600*time.Millisecond)
		g := newGuard(t, newTimeout(t, "total", time.Second).Timeout, newRetry(t, 2, 100*time.Millisecond), newBreaker(t), attempt.Timeout)
		tr := transport(t, TransportConfig{Guard: g, Base: base})

		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != 700*time.Millisecond {
			t.Errorf("answered after %v, want 700ms", took)
		}
		_, err = io.ReadAll(resp.Body)
		if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took != time.Second {
			t.Errorf("reading ended after %v with %v, want DeadlineExceeded at 1s", took, err)
		}
		resp.Body.Close()

		// Closed before the limits: their contexts end at once.
		resp, err = tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
		if err != nil {
			t.Fatal(err)
		}
		last := ctxs[len(ctxs)-1]
		time.Sleep(100 * time.Millisecond)
		if last.Err() != nil {
			t.Fatalf("the request's context ended before its body was closed: %v", last.Err())
		}
		resp.Body.Close()
		if !errors.Is(last.Err(), context.Canceled) {
			t.Errorf("after Close, the request's context: %v, want Canceled", last.Err())
		}
	})
}

// endlessBody sends one byte at a time every 10ms until its context ends.
type endlessBody struct{ ctx context.Context }

func (b *endlessBody) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	select {
	case <-b.ctx.Done():
		return 0, b.ctx.Err()
	case <-time.After(10 * time.Millisecond):
		p[0] = 'x'
		return 1, nil
	}
}

func (b *endlessBody) Close() error { return nil }
