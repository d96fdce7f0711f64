package resilhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
)

// MaxShedRetryAfter is the longest Retry-After that Shed sends: a larger
// retryAfter is sent as this. Shedding answers a burst of load; a client
// told to stay away for longer is a client lost, and clients cap the wait
// anyway (Transport caps it at the retry policy's MaxBackoff).
const MaxShedRetryAfter = time.Hour

// Shed returns a middleware that runs requests through the bulkhead b:
// at most b.MaxConcurrent() handlers run at once, a request that finds
// every slot taken waits for one up to the bulkhead's MaxWait, and one that
// gets none is answered at once with 503 Service Unavailable and a
// Retry-After header of retryAfter, rounded up to whole seconds (at least
// one, at most MaxShedRetryAfter), so that well-behaved clients back off.
//
// A request whose context ends while it waits for a slot (its client went
// away, or a deadline set before Shed passed) was not served either: it is
// answered the same way, as soon as its context ends, and its handler
// never runs. Nothing but a handler that ran answers 200.
//
// A slot is given back when the handler returns, or panics.
//
// Shed returns an error if b is nil or was not made by NewBulkhead, or if
// retryAfter is negative.
func Shed(b *resilience.Bulkhead, retryAfter time.Duration) (func(http.Handler) http.Handler, error) {
	if b == nil {
		return nil, errors.New("resilhttp: Shed: the bulkhead is nil")
	}
	if b.MaxConcurrent() <= 0 {
		return nil, errors.New("resilhttp: Shed: the bulkhead has no slots: make it with resilience.NewBulkhead")
	}
	if retryAfter < 0 {
		return nil, fmt.Errorf("resilhttp: Shed: retryAfter is %v; it may not be negative", retryAfter)
	}
	secs := strconv.FormatInt(retryAfterSeconds(retryAfter), 10)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := b.Acquire(r.Context()); err != nil {
				// Not served: the bulkhead was full for MaxWait, or the
				// request's context ended first. A client that went away
				// reads no answer, but one behind a deadline does.
				msg := "server busy: " + err.Error()
				if !errors.Is(err, resilience.ErrRejected) {
					msg = "server busy: no slot before the request's context ended: " + err.Error()
				}
				w.Header().Set("Retry-After", shedRetryAfter(err, secs))
				http.Error(w, msg, http.StatusServiceUnavailable)
				return
			}
			defer b.Release()
			next.ServeHTTP(w, r)
		})
	}, nil
}

// shedRetryAfter is the Retry-After header of a request refused with err:
// the wait the refusing stage knows, if it knows one (an open breaker's
// next probe: *resilience.OpenError), or secs. A bulkhead's rejection
// carries no wait, nor does a context that ended.
func shedRetryAfter(err error, secs string) string {
	var open *resilience.OpenError
	if errors.As(err, &open) {
		if d := open.RetryAfter(); d > 0 {
			return strconv.FormatInt(retryAfterSeconds(d), 10)
		}
	}
	return secs
}

// retryAfterSeconds is d in whole seconds, rounded up, from 1 to
// MaxShedRetryAfter's.
func retryAfterSeconds(d time.Duration) int64 {
	d = min(d, MaxShedRetryAfter) // before rounding up, which could overflow
	return max(int64((d+time.Second-1)/time.Second), 1)
}
