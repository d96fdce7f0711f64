package bench

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	retrygo "github.com/avast/retry-go/v4"
	"github.com/cenkalti/backoff/v4"
	"github.com/eapache/go-resiliency/breaker"
	"github.com/eapache/go-resiliency/deadline"
	"github.com/eapache/go-resiliency/retrier"
	"github.com/eapache/go-resiliency/semaphore"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"

	"github.com/resilience-go/resilience"
)

// Each benchmark runs one workload for every library that has the feature,
// as sub-benchmarks lib=NAME, ours first: `benchstat -col /lib` then
// gives each peer's ratio to ours. Every library is set up as its
// documentation shows, with the settings that make the workload the same.

var errFail = errors.New("fail")

func noop() (int, error) { return 1, nil }

func noopCtx(context.Context) (int, error) { return 1, nil }

func noopErr() error { return nil }

// lib is one library's way of making one call of a workload.
type lib struct {
	name string
	call func() // makes one call; built before the clock starts
}

// run benchmarks each library's call, on one goroutine and on all.
func run(b *testing.B, libs []lib) {
	for _, l := range libs {
		b.Run("lib="+l.name+"/goroutines=1", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				l.call()
			}
		})
		b.Run("lib="+l.name+"/goroutines=all", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.call()
				}
			})
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

var ctx = context.Background()

// BenchmarkBreakerClosed: a breaker in its default configuration around a
// call that succeeds.
func BenchmarkBreakerClosed(b *testing.B) {
	ours := resilience.For[int](must(resilience.NewBreaker(resilience.BreakerConfig{})))
	fs := failsafe.With[int](circuitbreaker.NewWithDefaults[int]())
	gb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{})
	gr := breaker.New(5, 2, time.Minute)
	hystrix.ConfigureCommand("closed", hystrix.CommandConfig{Timeout: 60_000, MaxConcurrentRequests: 10_000})
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"gobreaker", func() { gb.Execute(noop) }},
		{"go-resiliency", func() { gr.Run(noopErr) }},
		{"hystrix-go", func() { hystrix.Do("closed", noopErr, nil) }},
	})
}

// BenchmarkBreakerOpen: rejecting a call while the breaker is open.
func BenchmarkBreakerOpen(b *testing.B) {
	br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	br.ForceOpen()
	ours := resilience.For[int](br)
	fcb := circuitbreaker.NewBuilder[int]().WithDelay(time.Hour).Build()
	fcb.Open()
	fs := failsafe.With[int](fcb)
	gb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{Timeout: time.Hour, ReadyToTrip: func(gobreaker.Counts) bool { return true }})
	gb.Execute(func() (int, error) { return 0, errFail })
	gr := breaker.New(1, 1, time.Hour)
	gr.Run(func() error { return errFail })
	if br.State() != resilience.Open || !fcb.IsOpen() || gb.State() != gobreaker.StateOpen || gr.GetState() != breaker.Open {
		b.Fatal("a breaker did not open")
	}
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"gobreaker", func() { gb.Execute(noop) }},
		{"go-resiliency", func() { gr.Run(noopErr) }},
	})
}

// BenchmarkRetrySuccess: a retry policy around a call that succeeds at
// once.
func BenchmarkRetrySuccess(b *testing.B) {
	ours := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3})))
	fs := failsafe.With[int](retrypolicy.NewBuilder[int]().WithMaxRetries(3).Build())
	rt := retrier.New(retrier.ConstantBackoff(3, 100*time.Millisecond), nil)
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"go-resiliency", func() { rt.Run(noopErr) }},
		{"retry-go", func() { retrygo.DoWithData(noop, retrygo.Attempts(4)) }},
		{"backoff", func() { backoff.RetryWithData(noop, backoff.WithMaxRetries(backoff.NewExponentialBackOff(), 3)) }},
	})
}

// flaky fails twice, then succeeds, then starts again.
type flaky struct{ n int }

func (f *flaky) call() (int, error) {
	f.n++
	if f.n%3 != 0 {
		return 0, errFail
	}
	return 1, nil
}

// BenchmarkRetryTwice: a call that fails twice then succeeds, with no
// wait between attempts: the cost of the retry machinery. Ours waits zero
// with NoBackoff (a zero InitialBackoff means the 100ms default), as the
// peers do.
func BenchmarkRetryTwice(b *testing.B) {
	ours := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, NoBackoff: true})))
	fs := failsafe.With[int](retrypolicy.NewBuilder[int]().WithMaxRetries(3).Build()) // no delay by default
	rt := retrier.New(retrier.ConstantBackoff(3, 0), nil)
	zero := backoff.WithMaxRetries(&backoff.ZeroBackOff{}, 3)
	var f flaky
	b.Run("lib=resilience", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ours.Do(ctx, func(context.Context) (int, error) { return f.call() })
		}
	})
	b.Run("lib=failsafe-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fs.Get(f.call)
		}
	})
	b.Run("lib=go-resiliency", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rt.Run(func() error { _, err := f.call(); return err })
		}
	})
	b.Run("lib=retry-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			retrygo.DoWithData(f.call, retrygo.Attempts(4), retrygo.Delay(0), retrygo.DelayType(retrygo.FixedDelay))
		}
	})
	b.Run("lib=backoff", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			zero.Reset()
			backoff.RetryWithData(f.call, zero)
		}
	})
}

// BenchmarkTimeout: a time limit around a call that returns at once.
func BenchmarkTimeout(b *testing.B) {
	ours := resilience.For[int](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute})))
	fs := failsafe.With[int](timeout.New[int](time.Minute))
	dl := deadline.New(time.Minute)
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"go-resiliency", func() { dl.Run(func(<-chan struct{}) error { return nil }) }},
		{"context.WithTimeout", func() {
			c, cancel := context.WithTimeout(ctx, time.Minute)
			noopCtx(c)
			cancel()
		}},
	})
}

// BenchmarkTimeoutSoonerDeadline: a time limit of a minute around a call
// whose caller's context already ends sooner, in 30s, as a caller's own
// limit often does. The caller's deadline is the one that counts: a
// library need build no timer of its own.
func BenchmarkTimeoutSoonerDeadline(b *testing.B) {
	sooner, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ours := resilience.For[int](must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute})))
	fs := failsafe.With[int](timeout.New[int](time.Minute))
	run(b, []lib{
		{"resilience", func() { ours.Do(sooner, noopCtx) }},
		{"failsafe-go", func() { fs.WithContext(sooner).Get(noop) }},
		{"context.WithTimeout", func() {
			c, cancel := context.WithTimeout(sooner, time.Minute)
			noopCtx(c)
			cancel()
		}},
	})
}

// BenchmarkBreakerCapturingClosure: a closed breaker around the call a user
// really writes, a closure that captures its arguments.
func BenchmarkBreakerCapturingClosure(b *testing.B) {
	br := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	fs := failsafe.With[int](circuitbreaker.NewWithDefaults[int]())
	gb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{})
	gr := breaker.New(5, 2, time.Minute)
	// Each call captures a value of its own, as a user's call captures
	// its arguments.
	run(b, []lib{
		{"resilience", func() {
			id := 1
			resilience.Do(ctx, br, func(context.Context) (int, error) { return id, nil })
		}},
		{"resilience-Allow+Done", func() {
			id := 1
			fn := func(context.Context) (int, error) { return id, nil }
			if permit, err := br.Allow(ctx); err == nil {
				_, err = fn(ctx)
				permit.Done(err)
			}
		}},
		{"failsafe-go", func() { id := 1; fs.Get(func() (int, error) { return id, nil }) }},
		{"gobreaker", func() { id := 1; gb.Execute(func() (int, error) { return id, nil }) }},
		{"go-resiliency", func() {
			id := 1
			gr.Run(func() error { return errorIf(id == 0) })
		}},
	})
}

// errorIf returns errFail if fail is set, nil otherwise.
func errorIf(fail bool) error {
	if fail {
		return errFail
	}
	return nil
}

// BenchmarkCompose: timeout, retry and breaker, the first outermost, around
// a call that succeeds. Peers without a way to compose are composed by
// hand, as a user would.
func BenchmarkCompose(b *testing.B) {
	ours := resilience.For[int](
		must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute})),
		must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3})),
		must(resilience.NewBreaker(resilience.BreakerConfig{})),
	)
	fs := failsafe.With[int](timeout.New[int](time.Minute), retrypolicy.NewBuilder[int]().WithMaxRetries(3).Build(), circuitbreaker.NewWithDefaults[int]())
	gb := gobreaker.NewCircuitBreaker[int](gobreaker.Settings{})
	hystrix.ConfigureCommand("compose", hystrix.CommandConfig{Timeout: 60_000, MaxConcurrentRequests: 10_000})
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"gobreaker+backoff", func() {
			c, cancel := context.WithTimeout(ctx, time.Minute)
			backoff.RetryWithData(func() (int, error) { return gb.Execute(noop) },
				backoff.WithContext(backoff.WithMaxRetries(backoff.NewExponentialBackOff(), 3), c))
			cancel()
		}},
		{"hystrix-go+retry-go", func() {
			retrygo.Do(func() error { return hystrix.Do("compose", noopErr, nil) }, retrygo.Attempts(4))
		}},
	})
}

// BenchmarkComposeNoTimeout: retry, breaker and bulkhead, the chain the
// design's allocation goal names: without a time limit, nothing in it has
// to start a timer.
func BenchmarkComposeNoTimeout(b *testing.B) {
	ours := resilience.For[int](
		must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3})),
		must(resilience.NewBreaker(resilience.BreakerConfig{})),
		must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1024})),
	)
	fs := failsafe.With[int](retrypolicy.NewBuilder[int]().WithMaxRetries(3).Build(), circuitbreaker.NewWithDefaults[int](), bulkhead.New[int](1024))
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
	})
}

// BenchmarkBulkhead: a concurrency limit, never reached, around a call.
func BenchmarkBulkhead(b *testing.B) {
	ours := resilience.For[int](must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1024})))
	fs := failsafe.With[int](bulkhead.New[int](1024))
	sem := semaphore.New(1024, 0)
	run(b, []lib{
		{"resilience", func() { ours.Do(ctx, noopCtx) }},
		{"failsafe-go", func() { fs.Get(noop) }},
		{"go-resiliency", func() {
			if sem.Acquire() == nil {
				noop()
				sem.Release()
			}
		}},
	})
}

// BenchmarkWindow: a closed breaker whose window holds the last 100, or
// the last 1,000,000, calls. Of the peers, only failsafe-go can be given
// a count-based window of a chosen size.
func BenchmarkWindow(b *testing.B) {
	for _, size := range []int{100, 1_000_000} {
		ours := resilience.For[int](must(resilience.NewBreaker(resilience.BreakerConfig{WindowSize: size, MinCalls: 20})))
		fs := failsafe.With[int](circuitbreaker.NewBuilder[int]().WithFailureThresholdRatio(uint(size/2), uint(size)).Build())
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			for _, l := range []lib{
				{"resilience", func() { ours.Do(ctx, noopCtx) }},
				{"failsafe-go", func() { fs.Get(noop) }},
			} {
				b.Run("lib="+l.name, func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						l.call()
					}
				})
			}
		})
	}
}
