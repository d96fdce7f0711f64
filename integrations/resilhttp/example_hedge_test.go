package resilhttp_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
)

// A guard that hedges: a GET still unanswered after 50ms is sent again,
// with its attempt number, and the first answer wins. The server, on
// 127.0.0.1, holds the first request, as a slow replica would, until the
// client cancels it once the hedge has been answered.
func ExampleTransport_hedge() {
	var requests atomic.Int32
	first := make(chan string, 1) // how the first request ended, on the server
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-r.Context().Done()
			first <- r.Context().Err().Error()
			return
		}
		fmt.Fprintf(w, "hello from attempt %s", r.Header.Get(resilhttp.AttemptHeader))
	}))
	defer srv.Close()

	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "greeter", Duration: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	// NoBudget lets this very first call be hedged; a service would keep
	// the default budget, hedges for at most 5% of its calls.
	hedge, err := resilience.NewHedge(resilience.HedgeConfig{Name: "greeter", Delay: 50 * time.Millisecond, NoBudget: true})
	if err != nil {
		panic(err)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "greeter"})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{
		Name:   "greeter",
		Stages: []resilience.Stage{total, hedge, breaker},
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
	body, err := io.ReadAll(resp.Body) // the winner's context stays open until its body is closed
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body), err)
	fmt.Println("first request:", <-first)
	fmt.Println(requests.Load(), "requests")
	// Output:
	// 200 hello from attempt 2 <nil>
	// first request: context canceled
	// 2 requests
}
