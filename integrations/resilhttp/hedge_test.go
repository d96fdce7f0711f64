package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// The tests of this file hold the Transport to a guard with a Hedge,
// against servers on 127.0.0.1 through http.Transport: a slow request
// that may be sent twice at once is, the first answer wins, every other
// response is closed, and the winner's body is read after RoundTrip
// returns.

// newHedge returns a Hedge that sends one hedge after delay, with no
// budget: every call slower than delay is hedged.
func newHedge(t *testing.T, delay time.Duration) *resilience.Hedge {
	t.Helper()
	return must(resilience.NewHedge(resilience.HedgeConfig{Name: "backend", Delay: delay, NoBudget: true}))
}

// wireCounts returns the calls and attempts g's Wire counted.
func wireCounts(g *resilience.Guard) (calls, attempts uint64) {
	w := Wire(g).(interface {
		Calls() uint64
		Attempts() uint64
	})
	return w.Calls(), w.Attempts()
}

// hedgeStat returns the count of result in h's Stats.
func hedgeStat(h *resilience.Hedge, result string) uint64 {
	for _, c := range h.Stats().Calls {
		if c.Result == result {
			return c.N
		}
	}
	return 0
}

// watched is a Base over a real http.Transport that records every
// response it returns, with a body that counts its closing. It sends the
// requests whose AttemptHeader is one of detach ("" for a first attempt)
// without their attempt's cancellation, so that they are answered even
// once they have lost.
type watched struct {
	base   http.RoundTripper
	detach []string
	mu     sync.Mutex
	got    []*watchedBody
}

type watchedBody struct {
	io.ReadCloser
	attempt string // the AttemptHeader of its request
	closes  atomic.Int32
}

func (b *watchedBody) Close() error {
	b.closes.Add(1)
	return b.ReadCloser.Close()
}

func (w *watched) RoundTrip(r *http.Request) (*http.Response, error) {
	a := r.Header.Get(AttemptHeader)
	if slices.Contains(w.detach, a) {
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	resp, err := w.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	b := &watchedBody{ReadCloser: resp.Body, attempt: a}
	resp.Body = b
	w.mu.Lock()
	w.got = append(w.got, b)
	w.mu.Unlock()
	return resp, nil
}

// bodies returns the bodies of the responses returned so far.
func (w *watched) bodies() []*watchedBody {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// eventually waits up to 5s for cond, and fails the test with what if it
// never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Errorf("after 5s: %s", what)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// headers records the AttemptHeader of each request a server gets, by
// its number.
type headers struct {
	mu  sync.Mutex
	got map[int]string
}

func (h *headers) add(n int, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.got == nil {
		h.got = map[int]string{}
	}
	h.got[n] = r.Header.Get(AttemptHeader)
}

func (h *headers) of(n int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[n]
}

// A GET whose first request the server holds: the hedge, sent after the
// delay with the attempt number 2, is answered at once, and the caller
// gets its answer long before the first would have come; the first
// request is cancelled, which its handler sees, and the server got
// exactly the two.
func TestHedgeTakesTheFirstAnswer(t *testing.T) {
	firstEnded := make(chan error, 1) // how the held request ended, on the server
	var hs headers
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		hs.add(n, r)
		if n == 1 {
			select {
			case <-r.Context().Done():
				firstEnded <- r.Context().Err()
			case <-time.After(10 * time.Second):
				firstEnded <- nil
				io.WriteString(w, "first")
			}
			return
		}
		io.WriteString(w, "second")
	})
	hedge := newHedge(t, 50*time.Millisecond)
	g := newGuard(t, newTimeout(t, "total", 30*time.Second).Timeout, hedge, newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: client.Transport})

	start := time.Now()
	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil || resp.StatusCode != 200 || string(body) != "second" {
		t.Fatalf("got %d %q, %v; want 200 \"second\", the hedge's answer", resp.StatusCode, body, err)
	}
	if took > 2*time.Second {
		t.Errorf("answered after %v, with a hedge after 50ms answered at once", took)
	}
	select {
	case err := <-firstEnded:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the first request ended on the server with %v, want context.Canceled: the client cancels the loser", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the first request was still held on the server 5s after the hedge won")
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("the server got %d requests, want 2", n)
	}
	if first, hedged := hs.of(1), hs.of(2); first != "" || hedged != "2" {
		t.Errorf("AttemptHeader %q on the first request and %q on the hedge, want none and \"2\"", first, hedged)
	}
	if calls, attempts := wireCounts(g); calls != 1 || attempts != 2 {
		t.Errorf("the wire counted %d calls and %d attempts, want 1 and 2", calls, attempts)
	}
	if sent, won := hedgeStat(hedge, "sent"), hedgeStat(hedge, "won"); sent != 1 || won != 1 {
		t.Errorf("the hedge counted %d sent and %d won, want 1 and 1", sent, won)
	}
}

// Only a request that may be sent twice at once is hedged: a safe method,
// or an Idempotency-Key, or any request that can be sent again with
// RetryUnsafe. PUT and DELETE are retried but not hedged, a POST is
// neither, nor is a request whose body cannot be replayed, or one made
// with resilience.Unhedged. A hedge sends the body again, intact.
func TestOnlyRequestsThatMayRunTwiceAtOnceAreHedged(t *testing.T) {
	const slow = 300 * time.Millisecond // the first request's answer; a hedge is answered at once
	for _, tc := range []struct {
		name     string
		method   string
		body     func() io.Reader // nil: none
		header   string           // an idempotency header to set
		unsafe   bool             // RetryUnsafe
		unhedged bool             // the request's context is resilience.Unhedged
		want     int              // requests the server gets
	}{
		{name: "GET", method: "GET", want: 2},
		{name: "HEAD", method: "HEAD", want: 2},
		{name: "OPTIONS", method: "OPTIONS", want: 2},
		{name: "TRACE", method: "TRACE", want: 2},
		{name: "PUT", method: "PUT", body: text("v2"), want: 1},
		{name: "DELETE", method: "DELETE", want: 1},
		{name: "POST", method: "POST", body: text("order-17"), want: 1},
		{name: "PATCH", method: "PATCH", body: text("order-17"), want: 1},
		{name: "POST with Idempotency-Key", method: "POST", body: text("order-17"), header: "Idempotency-Key", want: 2},
		{name: "POST with X-Idempotency-Key", method: "POST", body: text("order-17"), header: "X-Idempotency-Key", want: 2},
		{name: "PUT with Idempotency-Key", method: "PUT", body: text("v2"), header: "Idempotency-Key", want: 2},
		{name: "POST with RetryUnsafe", method: "POST", body: text("order-17"), unsafe: true, want: 2},
		{name: "PUT with RetryUnsafe", method: "PUT", body: text("v2"), unsafe: true, want: 2},
		{name: "POST with a key and a body that cannot be replayed", method: "POST", body: opaque("order-17"), header: "Idempotency-Key", want: 1},
		{name: "GET made Unhedged", method: "GET", unhedged: true, want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var bodies []string
			srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				if n == 1 {
					select {
					case <-r.Context().Done():
						return
					case <-time.After(slow):
					}
				}
				fmt.Fprintf(w, "answer %d", n)
			})
			g := newGuard(t, newRetry(t, 2, time.Millisecond), newHedge(t, 20*time.Millisecond), newBreaker(t))
			tr := transport(t, TransportConfig{Guard: g, Base: client.Transport, RetryUnsafe: tc.unsafe})
			ctx := t.Context()
			if tc.unhedged {
				ctx = resilience.Unhedged(ctx)
			}
			var body io.Reader
			if tc.body != nil {
				body = tc.body()
			}
			req := get(t, ctx, tc.method, srv.URL, body)
			if tc.header != "" {
				req.Header.Set(tc.header, "order-17")
			}
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if n := int(requests.Load()); n != tc.want {
				t.Errorf("the server got %d requests, want %d", n, tc.want)
			}
			switch want := fmt.Sprintf("answer %d", tc.want); {
			case resp.StatusCode != 200:
				t.Errorf("status %d, want 200", resp.StatusCode)
			case tc.method != "HEAD" && string(got) != want:
				t.Errorf("body %q, want %q", got, want)
			}
			if tc.want == 1 && took < slow {
				t.Errorf("answered after %v, before the only request's answer at %v", took, slow)
			}
			if tc.want == 2 && took >= slow {
				t.Errorf("answered after %v, not before the first request's answer at %v", took, slow)
			}
			if tc.body != nil {
				mu.Lock()
				defer mu.Unlock()
				for i, b := range bodies {
					if want := string(must(io.ReadAll(tc.body()))); b != want {
						t.Errorf("request %d carried the body %q, want %q", i+1, b, want)
					}
				}
			}
		})
	}
}

// text makes a body that http.NewRequest can replay (it sets GetBody).
func text(s string) func() io.Reader { return func() io.Reader { return strings.NewReader(s) } }

// opaque makes a body that cannot be replayed: no GetBody.
func opaque(s string) func() io.Reader {
	return func() io.Reader { return io.NopCloser(strings.NewReader(s)) }
}

// Both attempts are answered, the first after the winner: the caller gets
// the winner's response and reads its bytes, and the loser's response is
// closed, by the time RoundTrip returns when the first attempt lost (it
// runs on the caller's goroutine, which waits for it), and as soon as it
// comes when a hedge lost, after RoundTrip has returned.
func TestHedgeLoserAnsweringLaterIsClosed(t *testing.T) {
	t.Run("the first attempt loses", func(t *testing.T) {
		hedgeAnswered := make(chan struct{})
		srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				<-hedgeAnswered
				time.Sleep(100 * time.Millisecond) // for the hedge's answer to reach the client first
				io.WriteString(w, "late")
				return
			}
			io.WriteString(w, "winner")
			w.(http.Flusher).Flush()
			close(hedgeAnswered)
		})
		base := &watched{base: client.Transport, detach: []string{""}} // the first is answered even once it lost
		g := newGuard(t, newHedge(t, 50*time.Millisecond), newBreaker(t))
		tr := transport(t, TransportConfig{Guard: g, Base: base})

		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
		if err != nil {
			t.Fatal(err)
		}
		got := base.bodies()
		if len(got) != 2 {
			t.Fatalf("%d responses came back, want 2: both attempts are answered", len(got))
		}
		for _, b := range got {
			switch closes := b.closes.Load(); {
			case b.attempt == "" && closes != 1:
				t.Errorf("the losing first attempt's body was closed %d times when RoundTrip returned, want once", closes)
			case b.attempt == "2" && closes != 0:
				t.Errorf("the winner's body was closed %d times before the caller read it", closes)
			}
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "winner" {
			t.Errorf("the caller read %q, %v; want the winner's \"winner\"", body, err)
		}
		if n := requests.Load(); n != 2 {
			t.Errorf("the server got %d requests, want 2", n)
		}
		for _, b := range got {
			if n := b.closes.Load(); n != 1 {
				t.Errorf("the body of attempt %q was closed %d times, want once", b.attempt, n)
			}
		}
	})

	t.Run("a hedge loses", func(t *testing.T) {
		release := make(chan struct{}) // the hedge is answered once RoundTrip has returned
		srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
			if n == 1 {
				time.Sleep(150 * time.Millisecond) // after the hedge went out
				io.WriteString(w, "first")
				return
			}
			<-release
			io.WriteString(w, "late")
		})
		base := &watched{base: client.Transport, detach: []string{"2"}}
		hedge := newHedge(t, 20*time.Millisecond)
		g := newGuard(t, hedge, newBreaker(t))
		tr := transport(t, TransportConfig{Guard: g, Base: base})

		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
		close(release)
		if err != nil {
			t.Fatal(err)
		}
		if sent := hedgeStat(hedge, "sent"); sent != 1 {
			t.Fatalf("%d hedges sent, want 1", sent)
		}
		eventually(t, "the losing hedge's response never came back", func() bool { return len(base.bodies()) == 2 })
		var loser *watchedBody
		for _, b := range base.bodies() {
			if b.attempt == "2" {
				loser = b
			}
		}
		if loser == nil {
			t.Fatal("no response to the hedge")
		}
		eventually(t, "the losing hedge's response, which came after RoundTrip returned, was never closed", func() bool { return loser.closes.Load() == 1 })
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "first" {
			t.Errorf("the caller read %q, %v; want the winner's \"first\"", body, err)
		}
	})
}

// The winner's body is read after RoundTrip returns: the hedge that won
// keeps its context, and the time limits it ran under, until the body is
// closed, a per-attempt limit included, which bounds the body as it does
// without a hedge.
func TestHedgeWinnersBodyIsReadAfterRoundTrip(t *testing.T) {
	const pause = 300 * time.Millisecond // between the winner's header and the rest of its body
	for _, tc := range []struct {
		name       string
		perAttempt time.Duration // 0: none
		wantErr    bool          // the per-attempt limit ends before the body does
	}{
		{"no per-attempt limit", 0, false},
		{"a per-attempt limit longer than the body", 2 * time.Second, false},
		{"a per-attempt limit shorter than the body", 150 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					<-r.Context().Done()
					return
				}
				io.WriteString(w, "head ")
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
					return
				case <-time.After(pause):
				}
				io.WriteString(w, "tail")
			})
			stages := []resilience.Stage{newTimeout(t, "total", 10*time.Second).Timeout, newHedge(t, 20*time.Millisecond), newBreaker(t)}
			if tc.perAttempt > 0 {
				stages = append(stages, newTimeout(t, "attempt", tc.perAttempt).Timeout)
			}
			tr := transport(t, TransportConfig{Guard: newGuard(t, stages...), Base: client.Transport})
			resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if tc.wantErr {
				if err == nil || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("read %q, %v; want the winner's per-attempt limit to end the read", body, err)
				}
				return
			}
			if err != nil || string(body) != "head tail" {
				t.Errorf("read %q, %v after RoundTrip returned; want \"head tail\"", body, err)
			}
		})
	}
}

// A Hedge inside a Retry: the first attempt and its hedge both fail with
// a 503, the retry is answered. Every failed response is closed by the
// time RoundTrip returns, their bodies larger than what is read into
// memory; the wire counts one call and three attempts, and the retry
// carries its attempt number.
func TestHedgeInsideARetry(t *testing.T) {
	var hs headers
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		hs.add(n, r)
		switch n {
		case 1:
			time.Sleep(150 * time.Millisecond) // after its hedge failed
			fallthrough
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(strings.Repeat("e", 100<<10))) // more than is buffered
		default:
			io.WriteString(w, "ok")
		}
	})
	base := &watched{base: client.Transport}
	hedge := newHedge(t, 50*time.Millisecond)
	g := newGuard(t, newRetry(t, 2, time.Millisecond), hedge, newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: base})

	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := base.bodies()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q, want 200 \"ok\" from the retry", resp.StatusCode, body)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("the server got %d requests, want 3: an attempt, its hedge and a retry", n)
	}
	if calls, attempts := wireCounts(g); calls != 1 || attempts != 3 {
		t.Errorf("the wire counted %d calls and %d attempts, want 1 and 3", calls, attempts)
	}
	if a := []string{hs.of(1), hs.of(2), hs.of(3)}; !slices.Equal(a, []string{"", "2", "2"}) {
		t.Errorf("AttemptHeaders %q, want none, 2 for the hedge and 2 for the retry", a)
	}
	if len(got) != 3 {
		t.Fatalf("%d responses, want 3", len(got))
	}
	for i, b := range got[:2] {
		if n := b.closes.Load(); n != 1 {
			t.Errorf("failed response %d (attempt %q) was closed %d times when RoundTrip returned, want once", i+1, b.attempt, n)
		}
	}
}

// With no retry left, both attempts failing: the caller gets the last
// failure, as it came, with ResponseError, and the other is closed.
func TestHedgeBothFailWithoutRetry(t *testing.T) {
	srv, _, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			time.Sleep(150 * time.Millisecond) // the last to fail
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "failure %d", n)
	})
	base := &watched{base: client.Transport}
	g := newGuard(t, newHedge(t, 20*time.Millisecond), newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: base})
	resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := base.bodies()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || string(body) != "failure 1" {
		t.Errorf("got %d %q, want 503 \"failure 1\", the last to fail", resp.StatusCode, body)
	}
	if err := ResponseError(resp); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("ResponseError: %v, want the 503", err)
	}
	if len(got) != 2 {
		t.Fatalf("%d responses, want 2", len(got))
	}
	for _, b := range got {
		if n := b.closes.Load(); n != 1 {
			t.Errorf("the response to attempt %q was closed %d times, want once", b.attempt, n)
		}
	}
}

// Many callers at once through one hedging, retrying Transport, against a
// server whose latency varies and which fails some requests: each caller
// gets its own answer, every attempt is counted, and every response that
// came back is closed once, the callers' by them and every other by the
// Transport. Run with -race.
func TestHedgeUnderConcurrentCallers(t *testing.T) {
	srv, requests, client := server(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(time.Duration(n%7) * time.Millisecond):
		}
		if n%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, r.URL.Query().Get("id"))
	})
	base := &watched{base: client.Transport}
	g := newGuard(t, newRetry(t, 3, time.Millisecond), newHedge(t, 3*time.Millisecond), newBreaker(t))
	tr := transport(t, TransportConfig{Guard: g, Base: base})
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Go(func() {
			for i := range 10 {
				id := fmt.Sprint(c*100 + i)
				resp, err := tr.RoundTrip(get(t, t.Context(), "GET", srv.URL+"/?id="+id, nil))
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && string(body) != id {
					t.Errorf("caller %s got %q", id, body)
				}
			}
		})
	}
	wg.Wait()
	calls, attempts := wireCounts(g)
	if calls != 160 || attempts < 160 {
		t.Errorf("the wire counted %d calls and %d attempts, want 160 calls and at least as many attempts", calls, attempts)
	}
	eventually(t, "a response was never closed, or closed twice", func() bool {
		for _, b := range base.bodies() {
			if b.closes.Load() != 1 {
				return false
			}
		}
		return true
	})
	if n := uint64(requests.Load()); n > attempts {
		t.Errorf("the server got %d requests, more than the %d attempts counted", n, attempts)
	}
}

// net/http's Transport can fail a request with context.Canceled when
// another request's cancellation closed the connection it was given
// (golang/go#41600): the attempt's own context is live, so it is a lost
// connection, retried, and the caller who cancelled nothing never gets
// context.Canceled.
func TestCanceledByAnotherRequestIsALostConnection(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retries int
	}{{"retried", 1}, {"no retry left", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var sent atomic.Int32
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if sent.Add(1) == 1 {
					return nil, context.Canceled // what net/http returns then, as it is
				}
				return answer(r, 200, "ok"), nil
			})
			tr := transport(t, TransportConfig{Guard: newGuard(t, newRetry(t, tc.retries, time.Millisecond)), Base: base})
			resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
			if tc.retries == 0 {
				if resp != nil || err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "another request") {
					t.Errorf("got %v, %v; want the lost connection's error, which is not context.Canceled", resp, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("RoundTrip: %v, want the retry's answer", err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || sent.Load() != 2 {
				t.Errorf("got %d after %d attempts, want 200 after 2", resp.StatusCode, sent.Load())
			}
		})
	}
}
