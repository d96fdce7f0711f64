package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
)

type User struct{ Name string }

var errUnavailable = errors.New("unavailable")

// The usual chain for a call to another service: a total time limit, a
// few retries, and a circuit breaker shared by every call to that service.
func Example() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "users", FailureThreshold: 5, OpenTimeout: time.Minute})
	if err != nil {
		panic(err)
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Millisecond, Jitter: true})
	if err != nil {
		panic(err)
	}
	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: 2 * time.Second})
	if err != nil {
		panic(err)
	}

	getUser := resilience.For[*User](timeout, retry, breaker) // the first is outermost

	calls := 0
	user, err := getUser.Do(context.Background(), func(ctx context.Context) (*User, error) {
		calls++
		if calls < 3 {
			return nil, errUnavailable // a transient failure, retried
		}
		return &User{Name: "ada"}, nil
	})
	fmt.Println(user.Name, err, "after", calls, "calls")
	// Output: ada <nil> after 3 calls
}

func ExampleFor() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "backend", FailureThreshold: 2})
	if err != nil {
		panic(err)
	}
	// Two chains for two result types, one breaker: the state is about the
	// backend, not about what it returns.
	users := resilience.For[[]string](breaker)
	count := resilience.For[int](breaker)

	ctx := context.Background()
	users.Do(ctx, func(context.Context) ([]string, error) { return nil, errUnavailable })
	count.Do(ctx, func(context.Context) (int, error) { return 0, errUnavailable })

	_, err = users.Do(ctx, func(context.Context) ([]string, error) { return []string{"ada"}, nil })
	fmt.Println(breaker.State(), errors.Is(err, resilience.ErrOpen))
	// Output: open true
}

func ExampleCompose() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1})
	if err != nil {
		panic(err)
	}
	fallback, err := resilience.NewFallback(resilience.FallbackConfig[string]{
		Func: func(ctx context.Context, err error) (string, error) { return "cached greeting", nil },
	})
	if err != nil {
		panic(err)
	}
	greet := resilience.Compose(fallback, resilience.For[string](breaker))

	for range 2 {
		msg, err := greet.Do(context.Background(), func(context.Context) (string, error) {
			return "", errUnavailable
		})
		fmt.Println(msg, err, breaker.State())
	}
	// Output:
	// cached greeting <nil> open
	// cached greeting <nil> open
}

func ExamplePolicyFunc() {
	var attempts int
	counting := resilience.PolicyFunc[int](func(ctx context.Context, next resilience.Func[int]) (int, error) {
		attempts++
		return next(ctx)
	})
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond})
	if err != nil {
		panic(err)
	}
	// Inside the retry, the policy sees every attempt.
	p := resilience.Compose(resilience.For[int](retry), counting)
	p.Do(context.Background(), func(context.Context) (int, error) { return 0, errUnavailable })
	fmt.Println(attempts)
	// Output: 3
}

func ExampleNewBreaker() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name:               "payments",
		FailureThreshold:   3,   // 3 failures in a row, or
		ErrorRateThreshold: 0.5, // half the calls in the window failing,
		WindowSize:         20,  // over the last 20 calls,
		MinCalls:           10,  // once there are 10 of them.
		OpenTimeout:        30 * time.Second,
		OnStateChange: func(c resilience.StateChange) {
			fmt.Printf("%s: %v -> %v\n", c.Name, c.From, c.To)
		},
	})
	if err != nil {
		panic(err)
	}
	pay := resilience.For[string](breaker)
	for range 4 {
		_, err = pay.Do(context.Background(), func(context.Context) (string, error) { return "", errUnavailable })
	}
	var open *resilience.OpenError
	fmt.Println(errors.As(err, &open), open.RetryAfter() > 29*time.Second)
	// Output:
	// payments: closed -> open
	// true true
}

func ExampleNewBreaker_invalid() {
	_, err := resilience.NewBreaker(resilience.BreakerConfig{ErrorRateThreshold: 50})
	fmt.Println(err)
	fmt.Println(errors.Is(err, resilience.ErrInvalidConfig))
	// Output:
	// resilience: invalid BreakerConfig.ErrorRateThreshold 50: must be a rate from 0 to 1, or Off
	// true
}

func ExampleBreaker_Allow() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()

	// Two steps, for code that cannot be wrapped in a function: ask, call,
	// report. Report on every path.
	permit, err := breaker.Allow(ctx)
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	callErr := errUnavailable // the outcome of the call made under the permit
	permit.Done(callErr)

	_, err = breaker.Allow(ctx)
	fmt.Println(errors.Is(err, resilience.ErrOpen))
	// Output: true
}

func ExampleBreaker_ForceOpen() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "search"})
	if err != nil {
		panic(err)
	}
	breaker.ForceOpen() // maintenance: keep traffic off until Reset
	_, err = resilience.For[int](breaker).Do(context.Background(), func(context.Context) (int, error) { return 1, nil })
	fmt.Println(err)
	breaker.Reset()
	fmt.Println(breaker.State())
	// Output:
	// resilience: circuit breaker "search" is forced open
	// closed
}

func ExampleDefaultClassify() {
	errNotFound := errors.New("not found")
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		FailureThreshold: 1,
		// A "not found" is the backend working as it should.
		Classify: func(ctx context.Context, err error) resilience.Outcome {
			if errors.Is(err, errNotFound) {
				return resilience.Success
			}
			return resilience.DefaultClassify(ctx, err)
		},
	})
	if err != nil {
		panic(err)
	}
	resilience.For[int](breaker).Do(context.Background(), func(context.Context) (int, error) { return 0, errNotFound })
	fmt.Println(breaker.State())
	// Output: closed
}

func ExampleNewRetry() {
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		Name:              "fetch",
		MaxRetries:        3,
		InitialBackoff:    time.Millisecond,
		MaxBackoff:        10 * time.Millisecond,
		BackoffMultiplier: 2,
		OnRetry: func(e resilience.RetryEvent) {
			fmt.Printf("attempt %d failed (%v), next in %v\n", e.Attempt, e.Err, e.Delay)
		},
	})
	if err != nil {
		panic(err)
	}
	_, err = resilience.For[int](retry).Do(context.Background(), func(context.Context) (int, error) {
		return 0, errUnavailable
	})
	var re *resilience.RetryError
	fmt.Println(errors.As(err, &re), re.Attempts, errors.Is(err, errUnavailable))
	fmt.Println(err)
	// Output:
	// attempt 1 failed (unavailable), next in 1ms
	// attempt 2 failed (unavailable), next in 2ms
	// attempt 3 failed (unavailable), next in 4ms
	// true 4 true
	// resilience: retry "fetch" gave up after 4 attempts: unavailable
}

func ExampleWithRetry() {
	calls := 0
	n, err := resilience.WithRetry(context.Background(),
		resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond},
		func(context.Context) (int, error) {
			calls++
			if calls == 1 {
				return 0, errUnavailable
			}
			return 42, nil
		})
	fmt.Println(n, err, calls)
	// Output: 42 <nil> 2
}

func ExamplePermanent() {
	errBadRequest := errors.New("bad request")
	calls := 0
	_, err := resilience.WithRetry(context.Background(), resilience.RetryConfig{MaxRetries: 5},
		func(context.Context) (int, error) {
			calls++
			return 0, resilience.Permanent(errBadRequest) // retrying cannot help
		})
	fmt.Println(calls, errors.Is(err, errBadRequest), err)
	// Output: 1 true bad request
}

func ExampleRetryAfter() {
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxRetries: 1,
		OnRetry:    func(e resilience.RetryEvent) { fmt.Println("waiting", e.Delay) },
	})
	if err != nil {
		panic(err)
	}
	calls := 0
	resilience.For[int](retry).Do(context.Background(), func(context.Context) (int, error) {
		calls++
		if calls == 1 {
			// The server said: come back in 2ms.
			return 0, resilience.RetryAfter(errUnavailable, 2*time.Millisecond)
		}
		return 1, nil
	})
	// Output: waiting 2ms
}

func ExampleNewTimeout() {
	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "report", Duration: 10 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	_, err = resilience.For[string](timeout).Do(context.Background(), func(ctx context.Context) (string, error) {
		<-ctx.Done() // a slow call that honours its context
		return "", ctx.Err()
	})
	fmt.Println(err)
	fmt.Println(errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// resilience: timeout "report": timed out after 10ms
	// true true
}

func ExampleWithTimeout() {
	err := resilience.WithTimeout(context.Background(), 5*time.Millisecond, func(ctx context.Context) error {
		select {
		case <-time.After(time.Minute):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	fmt.Println(err)
	// Output: resilience: timed out after 5ms
}

func ExampleWithTimeoutResult() {
	user, err := resilience.WithTimeoutResult(context.Background(), time.Second, func(ctx context.Context) (*User, error) {
		return &User{Name: "grace"}, nil
	})
	fmt.Println(user.Name, err)
	// Output: grace <nil>
}

func ExampleNewFallback() {
	fallback, err := resilience.NewFallback(resilience.FallbackConfig[[]string]{
		Handle: func(err error) bool { return errors.Is(err, errUnavailable) },
		Func: func(ctx context.Context, err error) ([]string, error) {
			return []string{"from cache"}, nil
		},
	})
	if err != nil {
		panic(err)
	}
	items, err := fallback.Do(context.Background(), func(context.Context) ([]string, error) {
		return nil, errUnavailable
	})
	fmt.Println(items, err)
	// Output: [from cache] <nil>
}

func ExampleNewBulkhead() {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "reports", MaxConcurrent: 1})
	if err != nil {
		panic(err)
	}
	reports := resilience.For[string](bulkhead)

	// The first call holds the only slot while it runs a second one.
	out, _ := reports.Do(context.Background(), func(ctx context.Context) (string, error) {
		_, err := reports.Do(ctx, func(context.Context) (string, error) { return "inner", nil })
		return fmt.Sprint("inner call: ", err), nil
	})
	fmt.Println(out)
	// Output: inner call: resilience: bulkhead "reports" is full (1 calls in flight)
}

func ExampleBulkhead_Acquire() {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 2, MaxWait: 100 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	if err := bulkhead.Acquire(context.Background()); err != nil {
		fmt.Println("busy:", err)
		return
	}
	defer bulkhead.Release()
	fmt.Println("in use:", bulkhead.InUse())
	// Output: in use: 1
}

func ExampleBreaker_ErrorRate() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{WindowSize: 4, FailureThreshold: 10})
	if err != nil {
		panic(err)
	}
	p := resilience.For[int](breaker)
	for _, failed := range []bool{true, false, false, false} {
		p.Do(context.Background(), func(context.Context) (int, error) {
			if failed {
				return 0, errUnavailable
			}
			return 1, nil
		})
	}
	fmt.Printf("%v, error rate %.2f\n", breaker.State(), breaker.ErrorRate())
	// Output: closed, error rate 0.25
}

func ExampleBreaker_Disable() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1})
	if err != nil {
		panic(err)
	}
	breaker.Disable() // an incident: keep calling, keep measuring
	p := resilience.For[int](breaker)
	for range 3 {
		p.Do(context.Background(), func(context.Context) (int, error) { return 0, errUnavailable })
	}
	fmt.Println(breaker.State(), breaker.ErrorRate())
	// Output: closed 1
}

func ExampleIsPermanent() {
	err := fmt.Errorf("create order: %w", resilience.Permanent(errors.New("duplicate key")))
	fmt.Println(resilience.IsPermanent(err), resilience.IsPermanent(errUnavailable))
	// Output: true false
}

func ExampleDefaultRetryable() {
	retry, err := resilience.NewRetry(resilience.RetryConfig{
		MaxRetries:     2,
		InitialBackoff: time.Millisecond,
		// Retry what the default retries, except this one.
		Retryable: func(err error) bool {
			return resilience.DefaultRetryable(err) && !errors.Is(err, errUnavailable)
		},
	})
	if err != nil {
		panic(err)
	}
	calls := 0
	resilience.For[int](retry).Do(context.Background(), func(context.Context) (int, error) {
		calls++
		return 0, errUnavailable
	})
	fmt.Println(calls)
	// Output: 1
}

func ExampleBulkhead_TryAcquire() {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(bulkhead.TryAcquire(), bulkhead.TryAcquire())
	bulkhead.Release()
	// Output: true false
}

func ExampleDo() {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "inventory"})
	if err != nil {
		panic(err)
	}
	// The result type comes from the function: no chain to build first.
	n, err := resilience.Do(context.Background(), breaker, func(ctx context.Context) (int, error) {
		return 7, nil
	})
	fmt.Println(n, err)
	// Output: 7 <nil>
}

func ExamplePreset_Build() {
	payments, err := resilience.Preset{
		Name:    "payments",
		Timeout: resilience.TimeoutConfig{Duration: 3 * time.Second},
		Retry:   &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond, Jitter: true},
		Breaker: resilience.BreakerConfig{FailureThreshold: 5, OpenTimeout: 30 * time.Second},
	}.Build()
	if err != nil {
		panic(err)
	}

	calls := 0
	id, err := resilience.Do(context.Background(), payments, func(ctx context.Context) (string, error) {
		calls++
		if calls == 1 {
			return "", errUnavailable
		}
		return "pay_123", nil
	})
	fmt.Println(id, err, calls, payments.Breaker().State())
	// Output: pay_123 <nil> 2 closed
}

// A fallback tested against faults, with no broken dependency: a chaos
// stage where the dependency would be fails half the calls, exactly, and
// the fallback answers for them.
func ExampleChaos() {
	chaos, err := resilience.NewChaos(resilience.ChaosConfig{Name: "users", Rate: 0.5, Seed: 1})
	if err != nil {
		panic(err)
	}
	fallback, err := resilience.NewFallback(resilience.FallbackConfig[string]{
		Func: func(ctx context.Context, err error) (string, error) { return "from the cache", nil },
	})
	if err != nil {
		panic(err)
	}
	users := resilience.Compose(fallback, resilience.For[string](chaos))
	answers := map[string]int{}
	for range 1000 {
		v, err := users.Do(context.Background(), func(ctx context.Context) (string, error) { return "fresh", nil })
		if err != nil {
			panic(err)
		}
		answers[v]++
	}
	fmt.Println(answers["fresh"], "fresh,", answers["from the cache"], "from the cache")
	// Output: 500 fresh, 500 from the cache
}
