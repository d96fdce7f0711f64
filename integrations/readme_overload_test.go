package integrations_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/presets"
)

func readmeServer(mux http.Handler) (http.Handler, *resilience.AdaptiveLimiter, error) {
	limiter, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{
		Name:     "api",
		MaxLimit: 500,                   // what the process can hold at all
		MaxWait:  20 * time.Millisecond, // a short line, served by priority
	})
	if err != nil {
		return nil, nil, err
	}
	shed, err := resilhttp.Shed(limiter, time.Second) // 503 and Retry-After when refused
	if err != nil {
		return nil, nil, err
	}
	return shed(mux), limiter, nil
}

// TestREADMEServer runs the README's "Servers that stay up under
// overload": a handler behind the limiter is served; with every slot
// taken and the line's wait over, a request is refused with 503 and a
// Retry-After; a critical request sent with the priority in its context
// reaches the handler with it.
func TestREADMEServer(t *testing.T) {
	release := make(chan struct{})
	var seen atomic.Int32
	mux := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			<-release
		}
		seen.Store(int32(resilience.PriorityFrom(r.Context())))
		io.WriteString(w, "ok")
	})
	h, limiter, err := readmeServer(mux)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: must(resilhttp.NewTransport(resilhttp.TransportConfig{Guard: presets.ExternalHTTP()}))}
	ctx := resilience.WithPriority(context.Background(), resilience.PriorityCritical)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resilience.Priority(seen.Load()); resp.StatusCode != http.StatusOK || got != resilience.PriorityCritical {
		t.Fatalf("a critical request: %s, the handler saw %v; want 200 and critical", resp.Status, got)
	}

	// Take every slot.
	n := limiter.Limit()
	done := make(chan struct{}, n)
	for range n {
		go func() {
			r, err := http.Get(srv.URL + "/block")
			if err == nil {
				r.Body.Close()
			}
			done <- struct{}{}
		}()
	}
	for i := 0; limiter.InFlight() < n; i++ {
		if i > 5000 {
			t.Fatalf("%d of %d slots taken after 5s", limiter.InFlight(), n)
		}
		time.Sleep(time.Millisecond)
	}
	r, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if secs, err := strconv.Atoi(r.Header.Get("Retry-After")); r.StatusCode != http.StatusServiceUnavailable || err != nil || secs < 1 {
		t.Errorf("a request with every slot taken: %s, Retry-After %q; want 503 and a whole number of seconds", r.Status, r.Header.Get("Retry-After"))
	}
	close(release)
	for range n {
		<-done
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
