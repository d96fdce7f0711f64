// Run: go run ./examples/http-retry
//
// An HTTP GET retried with exponential backoff and jitter, against a server
// on 127.0.0.1 that answers 503 twice before it answers 200. A 5xx is not an
// error to net/http, so the call turns it into one; a 4xx is marked
// permanent, since asking again will not change the answer.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	// A server that fails its first two requests.
	var requests atomic.Int32
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, `{"rate": 1.08}`)
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/rates/eur-usd"

	// The external-HTTP preset's retry settings: 5 retries from 100ms,
	// doubling to 10s, each wait jittered by ±30%.
	retry := *presets.ExternalHTTPConfig().Retry
	retry.OnRetry = func(e resilience.RetryEvent) {
		fmt.Printf("attempt %d failed (%v); retrying in %v\n", e.Attempt, e.Err, e.Delay.Round(time.Millisecond))
	}

	start := time.Now()
	body, err := resilience.WithRetry(context.Background(), retry, func(ctx context.Context) (string, error) {
		return get(ctx, url)
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s after %d requests and %v\n", body, requests.Load(), time.Since(start).Round(10*time.Millisecond))
}

// get fetches url, counting a 5xx as a retryable failure and any other
// non-2xx answer as a permanent one.
func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", resilience.Permanent(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "", err
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	case resp.StatusCode >= 300:
		return "", resilience.Permanent(fmt.Errorf("GET %s: %s", url, resp.Status))
	}
	return string(body), nil
}
