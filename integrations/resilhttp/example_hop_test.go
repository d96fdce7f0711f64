package resilhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// retryTwice is a guard that retries twice at once, named name.
func retryTwice(name string) *resilience.Guard {
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: 2, NoBackoff: true})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: []resilience.Stage{retry}})
	if err != nil {
		panic(err)
	}
	return guard
}

// A server behind Server knows which retry of its client each request
// is: a first attempt sends none (0), the retries their numbers; here the
// third attempt succeeds, after two 503s.
func ExampleServer() {
	var mu sync.Mutex
	var seen []int
	srv := httptest.NewServer(resilhttp.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempt := resilience.CallerAttempt(r.Context()) // 0 for a first attempt, or a client that sends none
		mu.Lock()
		seen = append(seen, attempt)
		mu.Unlock()
		if attempt < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})))
	defer srv.Close()

	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: srv.Client().Transport, Guard: retryTwice("backend")})
	if err != nil {
		panic(err)
	}
	resp, err := (&http.Client{Transport: transport}).Get(srv.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	fmt.Println(resp.StatusCode, "at attempts", seen)
	// Output: 200 at attempts [0 2 3]
}

// Service A calls B, which is overloaded, through a Transport that
// retries twice. When A's retries give up, it answers with WriteGaveUp,
// and its client, which retries twice too, does not retry: B gets 3
// attempts for the client's call, not 9.
func ExampleWriteGaveUp() {
	var atB atomic.Int32
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atB.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer b.Close()

	toB, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: b.Client().Transport, Guard: retryTwice("b")})
	if err != nil {
		panic(err)
	}
	clientOfB := &http.Client{Transport: toB}
	a := httptest.NewServer(resilhttp.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", b.URL, nil)
		resp, err := clientOfB.Do(req)
		if err == nil {
			defer resp.Body.Close()
			err = resilhttp.ResponseError(resp) // nil unless the Transport counted resp as a failure
		}
		if resilhttp.WriteGaveUp(w, err) { // B is overloaded, and A retried it: tell the client not to
			return
		}
		if err != nil {
			http.Error(w, "B failed", http.StatusBadGateway)
			return
		}
		io.Copy(w, resp.Body)
	})))
	defer a.Close()

	toA, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: a.Client().Transport, Guard: retryTwice("a")})
	if err != nil {
		panic(err)
	}
	resp, err := (&http.Client{Transport: toA}).Get(a.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resilhttp.PushbackHeader+":", resp.Header.Get(resilhttp.PushbackHeader))
	fmt.Println(atB.Load(), "attempts reached B")
	// Output:
	// 503 Retry-Pushback-Ms: -1
	// 3 attempts reached B
}

// Wire counts what a guard sends: here two calls, the second retried
// twice, so four attempts. Package metrics exports it as
// resilience_wire_calls_total and resilience_wire_amplification:
//
//	m.Instrument(guard, resilhttp.Wire(guard))
func ExampleWire() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := requests.Add(1); n == 2 || n == 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	guard := retryTwice("backend")
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: srv.Client().Transport, Guard: guard})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: transport}
	for range 2 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}

	wire := resilhttp.Wire(guard)
	stats := wire.Stats()
	fmt.Println(wire.Kind(), wire.Name())
	for _, c := range stats.Calls {
		fmt.Println(c.Result, c.N)
	}
	fmt.Println(stats.Gauges[0].Name, stats.Gauges[0].Value)
	// Output:
	// wire backend
	// call 2
	// attempt 4
	// amplification 2
}
