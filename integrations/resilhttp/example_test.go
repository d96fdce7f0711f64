package resilhttp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/presets"
)

// A client guarded by the external-HTTP preset, against a server on
// 127.0.0.1 that answers its first request with a 503: the transport
// counts the 503 as a failure, drains it and retries, and the caller sees
// only the answer that worked.
func ExampleNewTransport() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close() // also closes the idle connections of srv.Client()

	cfg := presets.ExternalHTTPConfig()
	cfg.Name = "greeter"
	cfg.Retry.InitialBackoff = time.Millisecond // the preset waits 100ms before the first retry
	guard, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{
		Base:  srv.Client().Transport, // default: http.DefaultTransport
		Guard: guard,
	})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: transport}

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close() // the guard's time limit runs until the body is closed
	fmt.Println(resp.StatusCode, string(body), err, "after", requests.Load(), "requests")
	// Output: 200 hello <nil> after 2 requests
}

// Any guard will do. Here a time limit for the whole exchange, a retry, a
// breaker and, inside them, a limit for each attempt: the server, on
// 127.0.0.1, hangs on the first request; the per-attempt limit cuts it,
// and the retry sends the request again, well within the total limit.
func ExampleNewTransport_perAttemptTimeout() {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-r.Context().Done() // hangs until the client gives up
			return
		}
		io.WriteString(w, "hello")
	}))
	defer srv.Close()

	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "greeter", Duration: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "greeter", MaxRetries: 2, InitialBackoff: time.Millisecond})
	if err != nil {
		panic(err)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "greeter"})
	if err != nil {
		panic(err)
	}
	perAttempt, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "greeter.attempt", Duration: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{
		Name:   "greeter",
		Stages: []resilience.Stage{total, retry, breaker, perAttempt},
	})
	if err != nil {
		panic(err)
	}
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: srv.Client().Transport, Guard: guard})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: transport}

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	body, err := io.ReadAll(resp.Body) // within both limits: each runs until the body is closed
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body), err, "after", requests.Load(), "requests")
	// Output: 200 hello <nil> after 2 requests
}

// A server on 127.0.0.1 that runs one handler at a time: while a request
// holds the only slot, the next is answered at once with 503 and a
// Retry-After header, and its handler never runs.
func ExampleShed() {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 1})
	if err != nil {
		panic(err)
	}
	shed, err := resilhttp.Shed(bulkhead, 2*time.Second)
	if err != nil {
		panic(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})))
	defer srv.Close()
	client := srv.Client()

	first := make(chan string)
	go func() {
		resp, err := client.Get(srv.URL)
		if err != nil {
			first <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	<-entered // the first request holds the slot

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, "Retry-After:", resp.Header.Get("Retry-After"))

	close(release)
	fmt.Println(<-first)
	// Output:
	// 503 Retry-After: 2
	// 200 done
}

// Testing what a client does when its server answers 503, without a
// broken server: the chaos stage under the Transport makes up a 503 for a
// share of the requests (here a third, exactly), and the Transport
// retries them as it would real ones.
func ExampleWithChaos() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	chaos, err := resilience.NewChaos(resilience.ChaosConfig{Rate: 1.0 / 3, Seed: 1, Err: &resilhttp.StatusFault{Status: 503}})
	if err != nil {
		panic(err)
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "api", MaxRetries: 3, NoBackoff: true})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "api", Stages: []resilience.Stage{retry}})
	if err != nil {
		panic(err)
	}
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: resilhttp.WithChaos(http.DefaultTransport, chaos), Guard: guard})
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: transport}
	ok := 0
	for range 30 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			ok++
		}
	}
	fmt.Println(ok, "of 30 calls answered 200; made-up 503s:", chaos.Stats().Calls[1].N)
	// Output: 30 of 30 calls answered 200; made-up 503s: 15
}

// An adaptive limiter in Shed, on a server on 127.0.0.1, starting at one
// request at a time: while a request holds the slot, the next is answered
// at once with 503 and the limiter's own Retry-After (it expects a slot
// within a second, well before Shed's 10s), and its handler never runs.
// A request sent through a Transport with a critical priority in its
// context carries it in PriorityHeader, and its handler sees it.
func ExampleShed_adaptiveLimiter() {
	limiter, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "api", InitialLimit: 1})
	if err != nil {
		panic(err)
	}
	shed, err := resilhttp.Shed(limiter, 10*time.Second)
	if err != nil {
		panic(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(shed(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		fmt.Fprint(w, "a ", resilience.PriorityFrom(r.Context()), " request")
	})))
	defer srv.Close()
	client := srv.Client()

	first := make(chan string)
	go func() {
		resp, err := client.Get(srv.URL + "/slow")
		if err != nil {
			first <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		first <- fmt.Sprint(resp.StatusCode, " ", string(body))
	}()
	<-entered // the first request holds the slot

	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, "Retry-After:", resp.Header.Get("Retry-After"))
	close(release)
	fmt.Println(<-first)

	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "api", Duration: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "api", Stages: []resilience.Stage{timeout}})
	if err != nil {
		panic(err)
	}
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Base: client.Transport, Guard: guard})
	if err != nil {
		panic(err)
	}
	ctx := resilience.WithPriority(context.Background(), resilience.PriorityCritical)
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
	if err != nil {
		panic(err)
	}
	resp, err = (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output:
	// 503 Retry-After: 1
	// 200 a default request
	// 200 a critical request
}
