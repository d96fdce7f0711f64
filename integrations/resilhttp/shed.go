package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
)

// MaxShedRetryAfter is the longest Retry-After that Shed sends: a larger
// retryAfter is sent as this. Shedding answers a burst of load; a client
// told to stay away for longer is a client lost, and clients cap the wait
// anyway (Transport caps it at the retry policy's MaxBackoff).
const MaxShedRetryAfter = time.Hour

// PriorityHeader is the request header that carries a request's priority
// from hop to hop: "critical", "default" or "sheddable", as
// resilience.ParsePriority reads it. A Transport sends the priority of
// the request's context (resilience.WithPriority) in it, and Shed hands
// it to the handler's context, where an AdaptiveLimiter in Shed, or one
// the handler's own calls go through, reads it.
//
// The header is the client's word. Behind a public endpoint, where any
// client could say that its requests are critical, set or strip it in a
// middleware of your own before Shed, from what you trust (the caller's
// identity, the route); a priority that such a middleware puts in the
// request's context with resilience.WithPriority wins over the header.
const PriorityHeader = "Resilience-Priority"

// Shed returns a middleware that runs requests through the stage s, a
// *resilience.Bulkhead, a *resilience.AdaptiveLimiter or any stage that
// admits calls (a breaker, a rate limiter, a guard of them), and answers
// a request that s refused at once with 503 Service Unavailable and a
// Retry-After header, so that well-behaved clients back off. Its handler
// never runs.
//
// With a Bulkhead, at most its MaxConcurrent() handlers run at once, and
// a request that finds every slot taken waits for one up to the
// bulkhead's MaxWait. With an AdaptiveLimiter, at most its limit run at
// once, and a request that finds the limit reached waits in the limiter's
// line, by priority, up to its MaxWait; the limiter times the handlers it
// admits (a sample of them, once they are many), from the slot taken to
// the handler's return, and moves its limit by that latency. A slot is
// given back when the handler returns, or panics.
//
// Any other stage runs the handler as its call, with the context the
// stage gives it; the call returns nil, so a stage that counts failures
// (a breaker) counts none of the handler's. A request the stage did not
// run the handler for is answered as one refused. The stage must run its
// call at most once, on the request's goroutine, and not return before
// the call has: not a retry, a hedge, or a time limit that abandons
// calls.
//
// The Retry-After is the refusal's own wait, when the error that refused
// the request knows one (a method RetryAfter() time.Duration that reports
// more than zero, on it or on any error it wraps: a
// *resilience.LimitExceededError's estimate of when a slot frees, an open
// breaker's next probe, a rate limiter's next token), and retryAfter
// otherwise, rounded up to whole seconds (at least one, at most
// MaxShedRetryAfter).
//
// A request whose context ends while it waits for a slot (its client went
// away, or a deadline set before Shed passed) was not served either: it is
// answered the same way, as soon as its context ends, and its handler
// never runs. Nothing but a handler that ran answers 200.
//
// A request with a PriorityHeader of "critical", "default" or "sheddable"
// runs with that priority in its context (resilience.WithPriority), for
// the AdaptiveLimiter and for the handler, whose calls through a
// Transport send it on. An unknown value is ignored, and so is the header
// when the request's context carries a priority already (see
// PriorityHeader: set one in a middleware before Shed, from what you
// trust, on a public endpoint).
//
// Shed returns an error if s is nil, or a Bulkhead or AdaptiveLimiter
// that was not made by NewBulkhead or NewAdaptiveLimiter, or if
// retryAfter is negative.
func Shed(s resilience.Stage, retryAfter time.Duration) (func(http.Handler) http.Handler, error) {
	if err := checkShed(s); err != nil {
		return nil, err
	}
	if retryAfter < 0 {
		return nil, fmt.Errorf("resilhttp: Shed: retryAfter is %v; it may not be negative", retryAfter)
	}
	secs := strconv.FormatInt(retryAfterSeconds(retryAfter), 10)
	switch st := s.(type) {
	case *resilience.Bulkhead:
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = withPriority(r)
				if err := st.Acquire(r.Context()); err != nil {
					refuse(w, err, secs)
					return
				}
				defer st.Release()
				next.ServeHTTP(w, r)
			})
		}, nil
	case *resilience.AdaptiveLimiter:
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r = withPriority(r)
				p, err := st.Acquire(r.Context())
				if err != nil {
					refuse(w, err, secs)
					return
				}
				defer p.Release()
				next.ServeHTTP(w, r)
			})
		}, nil
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = withPriority(r)
			ran := false
			err := s.Run(r.Context(), func(ctx context.Context) error {
				ran = true
				next.ServeHTTP(w, r.WithContext(ctx))
				return nil
			})
			if ran {
				return
			}
			if err == nil {
				err = errNotRun
			}
			refuse(w, err, secs)
		})
	}, nil
}

// errNotRun is the refusal of a stage that returned without running the
// handler, and without saying why.
var errNotRun = errors.New("resilhttp: Shed: the stage did not run the handler")

// checkShed refuses a nil stage, and a bulkhead or limiter not made by
// its constructor, which would refuse every request.
func checkShed(s resilience.Stage) error {
	switch st := s.(type) {
	case nil:
		return errors.New("resilhttp: Shed: the stage is nil: give it a bulkhead, an adaptive limiter or another stage")
	case *resilience.Bulkhead:
		if st == nil {
			return errors.New("resilhttp: Shed: the bulkhead is nil")
		}
		if st.MaxConcurrent() <= 0 {
			return errors.New("resilhttp: Shed: the bulkhead has no slots: make it with resilience.NewBulkhead")
		}
		return nil
	case *resilience.AdaptiveLimiter:
		if st == nil {
			return errors.New("resilhttp: Shed: the adaptive limiter is nil")
		}
		if st.Limit() <= 0 {
			return errors.New("resilhttp: Shed: the adaptive limiter has no limit: make it with resilience.NewAdaptiveLimiter")
		}
		return nil
	}
	if v := reflect.ValueOf(s); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("resilhttp: Shed: the stage is a nil %T", s)
	}
	return nil
}

// withPriority returns r, with the priority its PriorityHeader gives in
// its context, unless the header is absent or unknown, or the context
// has a priority already.
func withPriority(r *http.Request) *http.Request {
	v := r.Header.Get(PriorityHeader)
	if v == "" {
		return r
	}
	ctx := r.Context()
	if _, set := resilience.PriorityIn(ctx); set {
		return r
	}
	p, err := resilience.ParsePriority(v)
	if err != nil {
		return r
	}
	return r.WithContext(resilience.WithPriority(ctx, p))
}

// refuse answers a request that was not served because of err: the
// stage refused it (err matches resilience.ErrRejected), or its context
// ended first, or the stage failed without running it. A client that
// went away reads no answer, but one behind a deadline does.
func refuse(w http.ResponseWriter, err error, secs string) {
	msg := "server busy: " + err.Error()
	if !errors.Is(err, resilience.ErrRejected) {
		msg = "server busy: no slot before the request's context ended: " + err.Error()
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			msg = "server busy: not served: " + err.Error()
		}
	}
	w.Header().Set("Retry-After", shedRetryAfter(err, secs))
	http.Error(w, msg, http.StatusServiceUnavailable)
}

// shedRetryAfter is the Retry-After header of a request refused with err:
// the wait the refusing stage knows, if it knows one (an adaptive
// limiter's estimate, an open breaker's next probe: any error in err's
// chain with a RetryAfter method that reports a wait), or secs. A
// bulkhead's rejection carries no wait, nor does a context that ended.
func shedRetryAfter(err error, secs string) string {
	if d := hintedWait(err); d > 0 {
		return strconv.FormatInt(retryAfterSeconds(d), 10)
	}
	return secs
}

// hintedWait returns the first wait of more than zero that an error in
// err's chain reports by a RetryAfter method, depth first, or 0.
func hintedWait(err error) time.Duration {
	for err != nil {
		if h, ok := err.(interface{ RetryAfter() time.Duration }); ok {
			if d := h.RetryAfter(); d > 0 {
				return d
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if d := hintedWait(e); d > 0 {
					return d
				}
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// retryAfterSeconds is d in whole seconds, rounded up, from 1 to
// MaxShedRetryAfter's.
func retryAfterSeconds(d time.Duration) int64 {
	d = min(d, MaxShedRetryAfter) // before rounding up, which could overflow
	return max(int64((d+time.Second-1)/time.Second), 1)
}
