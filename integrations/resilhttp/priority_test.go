package resilhttp

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// priorityOf tells the priority of ctx as the tests compare it: "none"
// when ctx carries none.
func priorityOf(ctx context.Context) string {
	if p, ok := resilience.PriorityIn(ctx); ok {
		return p.String()
	}
	return "none"
}

// sheds returns Shed over each kind of stage: a bulkhead, an adaptive
// limiter, and a stage of the test's own.
func sheds(t *testing.T) map[string]func(http.Handler) http.Handler {
	t.Helper()
	b := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 10}))
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api"}))
	own := stageFunc(func(ctx context.Context, call func(context.Context) error) error { return call(ctx) })
	out := map[string]func(http.Handler) http.Handler{}
	for name, s := range map[string]resilience.Stage{"bulkhead": b, "limiter": l, "own stage": own} {
		out[name] = must(Shed(s, time.Second))
	}
	return out
}

// The PriorityHeader of a request reaches its handler's context, through
// every kind of stage, on a real server; an unknown value is ignored, and
// so is the header when a middleware before Shed has set a priority.
func TestShedReadsThePriorityHeader(t *testing.T) {
	for name, shed := range sheds(t) {
		t.Run(name, func(t *testing.T) {
			got := make(chan string, 1)
			h := shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- priorityOf(r.Context()) }))
			trusted := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/batch" {
						r = r.WithContext(resilience.WithPriority(r.Context(), resilience.PrioritySheddable))
					}
					next.ServeHTTP(w, r)
				})
			}
			srv := httptest.NewServer(trusted(h))
			defer srv.Close()
			for _, tc := range []struct {
				path, header, want string
			}{
				{"/", "", "none"},
				{"/", "critical", "critical"},
				{"/", " Sheddable ", "sheddable"},
				{"/", "default", "default"},
				{"/", "urgent", "none"},
				{"/batch", "critical", "sheddable"},
				{"/batch", "", "sheddable"},
			} {
				req := must(http.NewRequest("GET", srv.URL+tc.path, nil))
				if tc.header != "" {
					req.Header.Set(PriorityHeader, tc.header)
				}
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if p := <-got; p != tc.want {
					t.Errorf("%s with %s %q: the handler's priority is %s, want %s", tc.path, PriorityHeader, tc.header, p, tc.want)
				}
			}
		})
	}
}

// With one slot taken and a line long enough for two, a sheddable
// request and then a critical one wait; when the slot frees, the critical
// one is served first, although it came second.
func TestShedServesTheCriticalRequestFirst(t *testing.T) {
	l := must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", InitialLimit: 1, MaxWait: 5 * time.Second, MaxQueue: 2}))
	shed := must(Shed(l, time.Second))
	held, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var order []string
	srv := httptest.NewServer(shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(held)
			<-release
			return
		}
		mu.Lock()
		order = append(order, r.URL.Path)
		mu.Unlock()
	})))
	defer srv.Close()
	client := srv.Client()

	codes := make(chan string, 3)
	send := func(path, priority string) {
		req := must(http.NewRequest("GET", srv.URL+path, nil))
		if priority != "" {
			req.Header.Set(PriorityHeader, priority)
		}
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				codes <- path + ": " + err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- fmt.Sprint(path, ": ", resp.StatusCode)
		}()
	}
	send("/hold", "")
	<-held
	send("/sheddable", "sheddable")
	eventually(t, "the sheddable request waits", func() bool { return l.Queued() == 1 })
	send("/critical", "critical")
	eventually(t, "the critical request waits", func() bool { return l.Queued() == 2 })
	close(release)

	var got []string
	for range 3 {
		got = append(got, <-codes)
	}
	slices.Sort(got)
	if want := []string{"/critical: 200", "/hold: 200", "/sheddable: 200"}; !slices.Equal(got, want) {
		t.Errorf("answers %q, want %q", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"/critical", "/sheddable"}; !slices.Equal(order, want) {
		t.Errorf("handlers started in the order %q, want %q", order, want)
	}
}

// A Transport sends the priority of the request's context, on every
// attempt, and nothing for a request without one; a header the caller
// set is sent as it is; the caller's request is left as it was.
func TestTransportSendsThePriority(t *testing.T) {
	var mu sync.Mutex
	var got [][]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Values(PriorityHeader))
		n := len(got)
		mu.Unlock()
		if n == 1 {
			http.Error(w, "retry me", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: transport(t, TransportConfig{Base: srv.Client().Transport, Guard: retrying(t, "backend", 1)})}
	critical := resilience.WithPriority(t.Context(), resilience.PriorityCritical)
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		header string // the caller's
		want   []string
	}{
		{"no priority", t.Context(), "", nil},
		{"critical", critical, "", []string{"critical"}},
		{"default", resilience.WithPriority(t.Context(), resilience.PriorityDefault), "", []string{"default"}},
		{"the caller's header", critical, "sheddable", []string{"sheddable"}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		req := get(t, tc.ctx, "GET", srv.URL, nil)
		if tc.header != "" {
			req.Header.Set(PriorityHeader, tc.header)
		}
		before := req.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		if len(got) != 2 || !slices.Equal(got[0], tc.want) || !slices.Equal(got[1], tc.want) {
			t.Errorf("%s: the attempts carried %q, want %q on both", tc.name, got, tc.want)
		}
		mu.Unlock()
		if !equalHeader(req.Header, before) {
			t.Errorf("%s: the caller's header changed to %v, from %v", tc.name, req.Header, before)
		}
	}
}

// A critical request goes from a client through a Transport to a server's
// Shed, whose handler calls another server through a Transport with its
// request's context: the priority reaches the handler of each hop.
func TestPriorityFollowsTheRequest(t *testing.T) {
	seen := make(chan string, 2)
	shed := func() func(http.Handler) http.Handler {
		return must(Shed(must(resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api"})), time.Second))
	}
	back := httptest.NewServer(shed()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- "back: " + priorityOf(r.Context())
	})))
	defer back.Close()
	toBack := &http.Client{Transport: transport(t, TransportConfig{Base: back.Client().Transport, Guard: retrying(t, "back", 0)})}
	front := httptest.NewServer(shed()(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- "front: " + priorityOf(r.Context())
		resp, err := toBack.Do(must(http.NewRequestWithContext(r.Context(), "GET", back.URL, nil)))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})))
	defer front.Close()
	client := &http.Client{Transport: transport(t, TransportConfig{Base: front.Client().Transport, Guard: retrying(t, "front", 0)})}

	ctx := resilience.WithPriority(t.Context(), resilience.PriorityCritical)
	resp, err := client.Do(get(t, ctx, "GET", front.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	}
	if got := []string{<-seen, <-seen}; !slices.Equal(got, []string{"front: critical", "back: critical"}) {
		t.Errorf("the handlers saw %q, want critical at both hops", got)
	}
}
