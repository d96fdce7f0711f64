package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
)

func ExampleStaleCache() {
	cache, err := resilience.NewStaleCache(resilience.StaleCacheConfig[string]{
		Name:   "prices",
		MaxAge: time.Hour,
	})
	if err != nil {
		panic(err)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "pricing"})
	if err != nil {
		panic(err)
	}
	// The cache goes outermost, so that the breaker sees the real failures.
	prices := resilience.Compose(cache, resilience.For[string](breaker))
	ctx := resilience.WithKey(context.Background(), "sku-42")

	up := func(context.Context) (string, error) { return "9.99", nil }
	down := func(context.Context) (string, error) { return "", errUnavailable }

	for _, fetch := range []resilience.Func[string]{up, down} {
		price, err := prices.Do(ctx, fetch)
		if err != nil && !errors.Is(err, resilience.ErrStale) {
			fmt.Println("no price:", err)
			continue
		}
		if age, stale := resilience.StaleAge(err); stale {
			// The value is usable, and err says how old it is and why the
			// fresh call failed.
			fmt.Printf("price %s, stale: under a minute old %v, pricing unavailable %v\n",
				price, age < time.Minute, errors.Is(err, errUnavailable))
			continue
		}
		fmt.Println("price", price)
	}

	// A key the cache holds nothing for gets the call's own error.
	_, err = prices.Do(resilience.WithKey(ctx, "sku-7"), down)
	fmt.Println(err, errors.Is(err, resilience.ErrStale))
	// Output:
	// price 9.99
	// price 9.99, stale: under a minute old true, pricing unavailable true
	// unavailable false
}
