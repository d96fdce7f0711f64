package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
)

func TestShedConfig(t *testing.T) {
	if _, err := Shed(nil, time.Second); err == nil || !strings.Contains(err.Error(), "bulkhead") {
		t.Errorf("Shed(nil): err = %v, want one naming the bulkhead", err)
	}
	if _, err := Shed(&resilience.Bulkhead{}, time.Second); err == nil || !strings.Contains(err.Error(), "NewBulkhead") {
		t.Errorf("Shed of a zero Bulkhead: err = %v, want one naming NewBulkhead", err)
	}
	b, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	if _, err := Shed(b, -time.Second); err == nil || !strings.Contains(err.Error(), "retryAfter") {
		t.Errorf("Shed(b, -1s): err = %v, want one naming retryAfter", err)
	}
	for _, tc := range []struct {
		name string
		s    resilience.Stage
		want string
	}{
		{"a nil *Bulkhead", (*resilience.Bulkhead)(nil), "bulkhead is nil"},
		{"a nil *AdaptiveLimiter", (*resilience.AdaptiveLimiter)(nil), "adaptive limiter is nil"},
		{"a zero AdaptiveLimiter", &resilience.AdaptiveLimiter{}, "NewAdaptiveLimiter"},
		{"a nil *Breaker", (*resilience.Breaker)(nil), "nil *resilience.Breaker"},
	} {
		if _, err := Shed(tc.s, time.Second); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Shed of %s: err = %v, want one with %q", tc.name, err, tc.want)
		}
	}
	l, _ := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{})
	if _, err := Shed(l, time.Second); err != nil {
		t.Errorf("Shed of an AdaptiveLimiter: %v", err)
	}
	if _, err := Shed(stagetest.Breaker("api"), time.Second); err != nil {
		t.Errorf("Shed of a Breaker: %v", err)
	}
}

// A real server on 127.0.0.1 behind an adaptive limiter of one slot and
// no line: while a request holds the slot, the next is answered 503 with
// the limiter's own Retry-After, not Shed's, and its handler never runs;
// once the slot is free a request is served, and a handler that panics
// gives its slot back.
func TestShedAdaptiveLimiterAnswers503WhenFull(t *testing.T) {
	l, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", InitialLimit: 1})
	if err != nil {
		t.Fatal(err)
	}
	shed, err := Shed(l, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var fast atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) {
		fast.Add(1)
		io.WriteString(w, "fast")
	})
	srv := httptest.NewServer(shed(mux))
	defer srv.Close()
	client := srv.Client()

	slow := make(chan *http.Response)
	go func() {
		resp, err := client.Get(srv.URL + "/slow")
		if err != nil {
			t.Error(err)
		}
		slow <- resp
	}()
	<-entered

	resp, err := client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	after, aerr := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || aerr != nil || after < 1 || after >= 60 {
		t.Errorf("while full: %d, Retry-After %q (%q); want 503 and the limiter's wait, from 1 to 59 seconds", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := fast.Load(); n != 0 {
		t.Errorf("the handler of a request refused ran %d times", n)
	}

	close(release)
	if resp := <-slow; resp != nil {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the request holding the slot got %d", resp.StatusCode)
		}
	}
	resp, err = client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || fast.Load() != 1 {
		t.Errorf("once free: %d, handler ran %d times; want 200, once", resp.StatusCode, fast.Load())
	}

	if resp, err := client.Get(srv.URL + "/panic"); err == nil {
		resp.Body.Close()
	}
	if n := l.InFlight(); n != 0 {
		t.Errorf("%d calls in flight after the handlers returned, one of them by panicking", n)
	}
	resp, err = client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after the panic: %d, want 200", resp.StatusCode)
	}
}

// A request whose context ends while it waits in the limiter's line is
// answered 503, when its context ends, and its handler never runs.
func TestShedAdaptiveLimiterContextEndsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", InitialLimit: 1, MaxWait: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		shed, err := Shed(l, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ran := false
		h := shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
		p, err := l.Acquire(t.Context()) // the only slot
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/", nil))
		if took := time.Since(start); took != time.Second {
			t.Errorf("answered after %v, want 1s, when the request's context ended", took)
		}
		if ran || rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
			t.Errorf("handler ran: %v; got %d, Retry-After %q (%q); want 503, \"2\"", ran, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		if l.InFlight() != 1 || l.Queued() != 0 {
			t.Errorf("%d in flight, %d queued; want the 1 held by the test, none queued", l.InFlight(), l.Queued())
		}
	})
}

// stageFunc is a stage of the test's own.
type stageFunc func(ctx context.Context, call func(context.Context) error) error

func (stageFunc) Name() string { return "own" }
func (stageFunc) Kind() string { return "own" }
func (f stageFunc) Run(ctx context.Context, call func(context.Context) error) error {
	return f(ctx, call)
}

type ownKey struct{}

// Any other stage runs the handler as its call, with the context it
// gives: a request it refuses is answered 503, with the refusal's own
// wait as Retry-After when it has one, and so is one it fails or drops
// without running the handler. A panic in the handler goes up through the
// stage.
func TestShedOtherStage(t *testing.T) {
	var ran atomic.Int32
	var panicked atomic.Bool
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Add(1)
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		fmt.Fprint(w, r.Context().Value(ownKey{}))
	})
	for _, tc := range []struct {
		name       string
		stage      stageFunc
		path       string
		code       int
		retryAfter string
		body       string
		ran        int32
	}{
		{"admitted", func(ctx context.Context, call func(context.Context) error) error {
			return call(context.WithValue(ctx, ownKey{}, "the stage's context"))
		}, "/", 200, "", "the stage's context", 1},
		{"refused with a wait", func(ctx context.Context, call func(context.Context) error) error {
			return &resilience.RateLimitedError{Name: "api", Delay: 2500 * time.Millisecond}
		}, "/", 503, "3", "server busy: ", 0},
		{"refused without a wait", func(ctx context.Context, call func(context.Context) error) error {
			return &resilience.OpenError{Name: "api", State: resilience.Open}
		}, "/", 503, "7", "server busy: ", 0},
		{"failed without running", func(ctx context.Context, call func(context.Context) error) error {
			return errors.New("broken")
		}, "/", 503, "7", "server busy: not served: broken", 0},
		{"dropped without an error", func(ctx context.Context, call func(context.Context) error) error {
			return nil
		}, "/", 503, "7", "server busy: not served: ", 0},
		{"handler panics", func(ctx context.Context, call func(context.Context) error) error {
			defer func() {
				if p := recover(); p != nil {
					panicked.Store(true)
					panic(p)
				}
			}()
			return call(ctx)
		}, "/panic", 0, "", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran.Store(0)
			shed, err := Shed(tc.stage, 7*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(shed(handler))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + tc.path)
			if tc.code == 0 {
				if err == nil {
					resp.Body.Close()
					t.Errorf("a handler that panicked answered %d", resp.StatusCode)
				}
				if !panicked.Load() {
					t.Error("the panic did not go up through the stage")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code || resp.Header.Get("Retry-After") != tc.retryAfter || !strings.HasPrefix(string(body), tc.body) {
				t.Errorf("%d, Retry-After %q, body %q; want %d, %q, %q...", resp.StatusCode, resp.Header.Get("Retry-After"), body, tc.code, tc.retryAfter, tc.body)
			}
			if n := ran.Load(); n != tc.ran {
				t.Errorf("the handler ran %d times, want %d", n, tc.ran)
			}
		})
	}
}

// A real server on 127.0.0.1 with one slot: while a request holds it, the
// next is answered 503 with Retry-After; a handler that panics gives its
// slot back.
func TestShedAnswers503WhenFull(t *testing.T) {
	b, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	shed, err := Shed(b, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fast") })
	srv := httptest.NewServer(shed(mux))
	defer srv.Close()
	client := srv.Client()

	slow := make(chan *http.Response)
	go func() {
		resp, err := client.Get(srv.URL + "/slow")
		if err != nil {
			t.Error(err)
		}
		slow <- resp
	}()
	<-entered

	resp, err := client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("while full: %d, Retry-After %q (%q); want 503, \"2\"", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	close(release)
	if resp := <-slow; resp != nil {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the request holding the slot got %d", resp.StatusCode)
		}
	}

	if resp, err := client.Get(srv.URL + "/panic"); err == nil {
		resp.Body.Close()
	}
	if n := b.InUse(); n != 0 {
		t.Errorf("%d slots in use after the handlers returned, one of them by panicking", n)
	}
	resp, err = client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("once free: %d, want 200", resp.StatusCode)
	}
}

// A request whose context ends while it waits for a slot was not served,
// and says so: 503 with Retry-After, never the 200 of a handler that did
// not run. Its wait ends with its context, not at MaxWait.
func TestShedAnswers503WhenTheContextEndsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 1, MaxWait: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		shed, err := Shed(b, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ran := false
		h := shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true }))
		if !b.TryAcquire() { // every slot taken
			t.Fatal("TryAcquire on an empty bulkhead failed")
		}
		defer b.Release()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second) // shorter than MaxWait
		defer cancel()
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, "GET", "/", nil))
		if took := time.Since(start); took != time.Second {
			t.Errorf("answered after %v, want 1s, when the request's context ended", took)
		}
		if ran || rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
			t.Errorf("handler ran: %v; got %d, Retry-After %q (%q); want 503, \"2\"", ran, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		if b.InUse() != 1 {
			t.Errorf("%d slots in use, want the 1 held by the test", b.InUse())
		}
	})
}

// Retry-After is whole seconds, rounded up, at least 1, and at most an
// hour, however large retryAfter is.
func TestShedRetryAfterHeader(t *testing.T) {
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{
		{0, "1"},
		{time.Nanosecond, "1"},
		{time.Second, "1"},
		{1500 * time.Millisecond, "2"},
		{time.Hour, "3600"},
		{time.Hour + time.Nanosecond, "3600"},
		{1000 * time.Hour, "3600"},
		{time.Duration(math.MaxInt64), "3600"},
	} {
		b, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
		shed, err := Shed(b, tc.after)
		if err != nil {
			t.Fatal(err)
		}
		b.TryAcquire()
		rec := httptest.NewRecorder()
		shed(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if got := rec.Header().Get("Retry-After"); rec.Code != http.StatusServiceUnavailable || got != tc.want {
			t.Errorf("retryAfter %v: %d, Retry-After %q; want 503, %q", tc.after, rec.Code, got, tc.want)
		}
	}
}

// A rejection that knows when to come back (an open breaker's next probe)
// sets the Retry-After; any other refusal gets Shed's own.
func TestShedRetryAfterOfARejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			name string
			err  error
			want string
		}{
			{"open breaker", &resilience.OpenError{Name: "api", State: resilience.Open, Until: time.Now().Add(89500 * time.Millisecond)}, "90"},
			{"open breaker, probe due", &resilience.OpenError{Name: "api", State: resilience.Open, Until: time.Now()}, "7"},
			{"forced open", &resilience.OpenError{Name: "api", State: resilience.Open}, "7"},
			{"bulkhead full", &resilience.BulkheadFullError{}, "7"},
			{"limit reached", &resilience.LimitExceededError{Name: "api", Delay: 1200 * time.Millisecond}, "2"},
			{"limit reached, a slot due", &resilience.LimitExceededError{Name: "api", Delay: time.Millisecond}, "1"},
			{"limit reached, wrapped", fmt.Errorf("refused: %w", &resilience.LimitExceededError{Name: "api", Delay: 3 * time.Second}), "3"},
			{"no wait, then a wait", errors.Join(&resilience.LimitExceededError{Name: "api"}, &resilience.RateLimitedError{Delay: 4 * time.Second}), "4"},
			{"a wait of an hour and more", &resilience.LimitExceededError{Name: "api", Delay: 100 * time.Hour}, "3600"},
			{"context ended", context.DeadlineExceeded, "7"},
		} {
			if got := shedRetryAfter(tc.err, "7"); got != tc.want {
				t.Errorf("%s: Retry-After %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}
