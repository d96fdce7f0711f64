// Run: go run ./examples/defence-in-depth
//
// Every layer at once, around an HTTP service on 127.0.0.1 that goes down
// and comes back:
//
//	fallback → bulkhead → timeout → retry → breaker → call
//
// The fallback serves the last good answer when everything else has
// failed; the bulkhead keeps a pile-up of callers from holding every
// connection; the timeout bounds the caller's wait, retries included; the
// retries ride out single failures; the breaker stops the retries, and the
// calls, once the service is known to be down. docs/PATTERNS.md explains
// the order.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
)

func main() {
	var down atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		io.WriteString(w, "12 items in stock")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/stock/42"

	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name:             "inventory",
		FailureThreshold: 3,
		OpenTimeout:      200 * time.Millisecond,
		OnStateChange: func(c resilience.StateChange) {
			fmt.Printf("  breaker %s -> %s\n", c.From, c.To)
		},
	})
	check(err)
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: 10 * time.Millisecond, Jitter: true})
	check(err)
	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second})
	check(err)
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 16, MaxWait: 50 * time.Millisecond})
	check(err)

	var mu sync.Mutex
	lastGood := "stock unknown"
	fallback, err := resilience.NewFallback(resilience.FallbackConfig[string]{
		Func: func(ctx context.Context, err error) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return lastGood + " (cached)", nil
		},
	})
	check(err)

	stock := resilience.Compose(fallback, resilience.For[string](bulkhead, timeout, retry, breaker))
	lookup := func(step string) {
		s, err := stock.Do(context.Background(), func(ctx context.Context) (string, error) {
			s, err := get(ctx, url)
			if err == nil {
				mu.Lock()
				lastGood = s
				mu.Unlock()
			}
			return s, err
		})
		fmt.Printf("%-22s %s (err %v)\n", step+":", s, err)
	}

	lookup("service up")
	down.Store(true)
	lookup("service down")             // 3 failed attempts open the breaker; the fallback answers
	lookup("still down")               // rejected at once by the breaker; the fallback answers
	time.Sleep(250 * time.Millisecond) // past the breaker's 200ms cooldown
	down.Store(false)
	lookup("back up, probing")
	lookup("back up")
	if breaker.State() != resilience.Closed {
		log.Fatalf("breaker %s, want closed", breaker.State())
	}
}

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
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status)
	}
	return string(body), nil
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
