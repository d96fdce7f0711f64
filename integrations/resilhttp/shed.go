package resilhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
)

// Shed returns a middleware that runs requests through the bulkhead b:
// at most b.MaxConcurrent() handlers run at once, a request that finds
// every slot taken waits for one up to the bulkhead's MaxWait, and one that
// gets none is answered at once with 503 Service Unavailable and a
// Retry-After header of retryAfter, rounded up to whole seconds (at least
// one), so that well-behaved clients back off.
//
// A slot is given back when the handler returns, or panics. A request whose
// client goes away while it waits for a slot is dropped without an answer.
//
// Shed returns an error if b is nil or retryAfter is negative.
func Shed(b *resilience.Bulkhead, retryAfter time.Duration) (func(http.Handler) http.Handler, error) {
	if b == nil {
		return nil, errors.New("resilhttp: Shed: the bulkhead is nil")
	}
	if retryAfter < 0 {
		return nil, fmt.Errorf("resilhttp: Shed: retryAfter is %v; it may not be negative", retryAfter)
	}
	secs := strconv.FormatInt(max(int64((retryAfter+time.Second-1)/time.Second), 1), 10)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := b.Acquire(r.Context()); err != nil {
				if errors.Is(err, resilience.ErrBulkheadFull) {
					w.Header().Set("Retry-After", secs)
					http.Error(w, "server busy: "+err.Error(), http.StatusServiceUnavailable)
				}
				return
			}
			defer b.Release()
			next.ServeHTTP(w, r)
		})
	}, nil
}
