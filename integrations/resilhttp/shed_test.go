package resilhttp

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
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
			{"context ended", context.DeadlineExceeded, "7"},
		} {
			if got := shedRetryAfter(tc.err, "7"); got != tc.want {
				t.Errorf("%s: Retry-After %q, want %q", tc.name, got, tc.want)
			}
		}
	})
}
