package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	retrygo "github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v4"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/retrier"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/sony/gobreaker/v2"

	"github.com/resilience-go/resilience"
)

// service is the in-process dependency of the load scenario, as one
// goroutine sees it: every tenth of its calls fails, so the attempt after
// a failure always succeeds.
type service struct{ n atomic.Uint64 }

var errTransient = errors.New("transient")

func (s *service) call() error {
	if s.n.Add(1)%10 == 0 {
		return errTransient
	}
	return nil
}

// loadClients is how many goroutines call at once.
const loadClients = 1000

// loadCalls is how many calls each library makes: LOAD_CALLS, or a number
// small enough for CI.
func loadCalls(t *testing.T) int {
	if s := os.Getenv("LOAD_CALLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < loadClients {
			t.Fatalf("LOAD_CALLS=%q: want a number of at least %d", s, loadClients)
		}
		return n
	}
	return 20 * loadClients
}

// TestLoad sends the same calls from 1000 goroutines through each
// library's breaker and retry (3 retries, no wait), and through nothing,
// and reports throughput and the latency each library adds. The breakers
// are set not to open at a 10% failure rate, and one retry always gets
// past a failure, so every call through ours must succeed; the table
// reports the peers' failed calls. With LOAD_TABLE=FILE it writes
// the table, in markdown.
func TestLoad(t *testing.T) {
	calls := loadCalls(t)
	ours := resilience.For[struct{}](
		must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: 1, MaxBackoff: 1})),
		must(resilience.NewBreaker(resilience.BreakerConfig{})),
	)
	fs := failsafe.With[any](retrypolicy.NewBuilder[any]().WithMaxRetries(3).Build(),
		circuitbreaker.NewBuilder[any]().WithFailureThreshold(5).Build()) // its default opens at the first failure
	gb := gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{})
	gr := breaker.New(calls, 1, time.Minute) // its threshold counts every error within the minute
	rt := retrier.New(retrier.ConstantBackoff(3, 0), nil)
	hystrix.ConfigureCommand("load", hystrix.CommandConfig{Timeout: 60_000, MaxConcurrentRequests: 2 * loadClients, ErrorPercentThreshold: 50})

	libs := []struct {
		name string
		call func(s *service) error
	}{
		{"direct (no library)", func(s *service) error {
			for range 4 {
				if err := s.call(); err == nil {
					return nil
				}
			}
			return errTransient
		}},
		{"resilience", func(s *service) error {
			_, err := ours.Do(context.Background(), func(context.Context) (struct{}, error) { return struct{}{}, s.call() })
			return err
		}},
		{"failsafe-go", func(s *service) error { return fs.Run(s.call) }},
		{"gobreaker + backoff", func(s *service) error {
			return backoff.Retry(func() error {
				_, err := gb.Execute(func() (struct{}, error) { return struct{}{}, s.call() })
				return err
			}, backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 3))
		}},
		{"go-resiliency", func(s *service) error { return rt.Run(func() error { return gr.Run(s.call) }) }},
		{"hystrix-go + retry-go", func(s *service) error {
			return retrygo.Do(func() error { return hystrix.Do("load", s.call, nil) }, retrygo.Attempts(4), retrygo.Delay(0), retrygo.DelayType(retrygo.FixedDelay))
		}},
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%d goroutines, %d calls each library, 1 in 10 failing; latency per call, including its retries\n\n", loadClients, calls)
	table.WriteString("| library | calls/s | p50 | p99 | added p50 | added p99 | errors |\n|---|---:|---:|---:|---:|---:|---:|\n")
	var direct [2]time.Duration
	for _, l := range libs {
		lat := make([][]time.Duration, loadClients)
		var errs atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for g := range loadClients {
			wg.Go(func() {
				s := &service{}
				mine := make([]time.Duration, 0, calls/loadClients)
				for range calls / loadClients {
					began := time.Now()
					if l.call(s) != nil {
						errs.Add(1)
					}
					mine = append(mine, time.Since(began))
				}
				lat[g] = mine
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		all := slices.Concat(lat...)
		slices.Sort(all)
		p50, p99 := all[len(all)/2], all[len(all)*99/100]
		if l.name == "direct (no library)" {
			direct = [2]time.Duration{p50, p99}
		}
		fmt.Fprintf(&table, "| %s | %.0f | %v | %v | %v | %v | %d |\n", l.name, float64(len(all))/elapsed.Seconds(),
			p50, p99, p50-direct[0], p99-direct[1], errs.Load())
		if l.name == "resilience" && errs.Load() != 0 {
			t.Errorf("%s: %d calls failed, want none", l.name, errs.Load())
		}
	}
	t.Log("\n" + table.String())
	if path := os.Getenv("LOAD_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
