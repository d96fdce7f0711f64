// Package resilhttp guards HTTP clients and servers with the policies of
// package resilience: a RoundTripper that runs each request through a
// Guard, and a middleware that sheds load with a Bulkhead.
package resilhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// TransportConfig configures a Transport.
type TransportConfig struct {
	// Base sends the requests. Default http.DefaultTransport.
	Base http.RoundTripper

	// Guard protects the calls to one backend: its time limit bounds each
	// request, retries included, and its breaker sees every attempt.
	// Required; presets.ExternalHTTP() is made for it.
	Guard *resilience.Guard

	// RetryUnsafe lets requests with methods that are not idempotent (POST,
	// PATCH, CONNECT) be retried too. Default false: they are retried only
	// when they carry an Idempotency-Key header.
	RetryUnsafe bool

	// IsFailure reports whether a response counts as a failure: its
	// attempt is retried and the breaker counts it. Default
	// IsFailureStatus.
	IsFailure func(*http.Response) bool
}

// IsFailureStatus is the default TransportConfig.IsFailure: a 5xx status
// other than 501 Not Implemented, or 429 Too Many Requests. Every other
// status, 4xx included, means the server is up and answering.
func IsFailureStatus(resp *http.Response) bool {
	code := resp.StatusCode
	return code == http.StatusTooManyRequests || code >= 500 && code != http.StatusNotImplemented
}

// Transport is an http.RoundTripper that runs each request through a
// Guard.
//
// A response counts as a failure when IsFailure says so, although the
// round trip itself succeeded; so does any error from Base. A failed
// attempt is retried, as the guard's retry policy allows, if the request
// can be sent again: its method is idempotent (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE), it has an Idempotency-Key header, or RetryUnsafe is set;
// and it has no body or its GetBody can make a new one. A Retry-After
// header (seconds or an HTTP date) on a failed response sets the wait
// before the next attempt, capped by the retry policy's MaxBackoff.
//
// A failed response about to be retried is drained and closed first, so
// that its connection goes back to the pool. When no retry is left, the
// last response is returned as it came, with a nil error, as
// http.Transport returns any response: check its StatusCode.
//
// The guard's time limit runs from the start of RoundTrip until the
// response body is closed, so it bounds reading the body too, as
// http.Client.Timeout does; close every body, as always. When the
// caller's context ends, everything stops at once: the request in flight,
// the wait before a retry, and reading the body.
//
// A Transport is safe for concurrent use. Make one with NewTransport: the
// zero Transport sends nothing, and answers every request with an error
// that says so.
type Transport struct {
	base      http.RoundTripper
	guard     *resilience.Guard
	attempts  resilience.Policy[*http.Response] // retry (if any), then breaker
	once      resilience.Policy[*http.Response] // breaker
	unsafe    bool
	isFailure func(*http.Response) bool
}

// NewTransport returns a Transport configured by cfg, or an error if
// cfg.Guard is nil.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if cfg.Guard == nil || cfg.Guard.Breaker() == nil {
		return nil, fmt.Errorf("resilhttp: TransportConfig.Guard is required: build one with a preset, such as presets.ExternalHTTP()")
	}
	t := &Transport{
		base:      cfg.Base,
		guard:     cfg.Guard,
		unsafe:    cfg.RetryUnsafe,
		isFailure: cfg.IsFailure,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.isFailure == nil {
		t.isFailure = IsFailureStatus
	}
	t.once = resilience.For[*http.Response](cfg.Guard.Breaker())
	t.attempts = t.once
	if r := cfg.Guard.Retry(); r != nil {
		t.attempts = resilience.For[*http.Response](r, cfg.Guard.Breaker())
	}
	return t, nil
}

// statusError is how a failed response travels through the policies, so
// that the breaker counts it and the retry policy sees it.
type statusError struct{ resp *http.Response }

func (e *statusError) Error() string { return "resilhttp: server answered " + e.resp.Status }

// RoundTrip sends req through the guard. See Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.guard == nil {
		closeBody(req)
		return nil, errZeroTransport
	}
	parent := req.Context()
	ctx, cancel := outcome.Limit(parent, t.guard)

	policy := t.once
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	if replayable && (t.unsafe || idempotent(req)) {
		policy = t.attempts
	}

	var pending *http.Response // a failed response not yet handed back
	attempt := 0
	resp, err := policy.Do(ctx, func(ctx context.Context) (*http.Response, error) {
		if pending != nil {
			discard(pending)
			pending = nil
		}
		r := req.WithContext(ctx)
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, resilience.Permanent(fmt.Errorf("resilhttp: GetBody: %w", err))
			}
			r.Body = body
		}
		attempt++
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		if !t.isFailure(resp) {
			return resp, nil
		}
		bufferBody(resp)
		pending = resp
		var failed error = &statusError{resp}
		if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
			failed = resilience.RetryAfter(failed, d)
		}
		return resp, failed
	})

	var se *statusError
	switch {
	case err == nil:
	case parent.Err() != nil:
		// The caller gave up: nothing more is returned.
		resp = nil
		err = parent.Err()
	case errors.As(err, &se) && se.resp == pending:
		// No retry left: the last answer is the caller's, as it came.
		resp, err, pending = se.resp, nil, nil
	case ctx.Err() == context.DeadlineExceeded:
		// The guard's deadline, not the caller's, ended the exchange.
		resp, err = nil, outcome.TimedOut(t.guard, err)
	default:
		resp = nil
	}
	if pending != nil {
		discard(pending)
	}
	if resp == nil {
		cancel()
		return nil, err
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
		// A protocol switch (101): the body is the connection, and stays
		// writable.
		resp.Body = &cancelOnCloseRW{ReadWriteCloser: rwc, cancel: cancel}
		return resp, nil
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// idempotent reports whether req may be sent twice with the same effect.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// retryAfter parses a Retry-After header: a number of seconds or an HTTP
// date. A date in the past means no wait; a number of seconds or a date
// too far ahead for a time.Duration means the longest one, which the retry
// policy caps at its MaxBackoff.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if digits(v) {
		const maxSecs = uint64(math.MaxInt64 / int64(time.Second))
		secs, err := strconv.ParseUint(v, 10, 64)
		if err != nil || secs > maxSecs { // only ErrRange, for digits
			return time.Duration(math.MaxInt64), true
		}
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0), true // Until saturates at the longest Duration
	}
	return 0, false
}

// digits reports whether v is made of ASCII digits only, as a
// Retry-After in seconds is (RFC 9110, section 10.2.3).
func digits(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// maxBuffered is how much of a failed response's body is read into memory,
// so that its connection can go back to the pool at once.
const maxBuffered = 64 << 10

// maxDrained is how much more of a failed response's body is read before
// it is closed, so that its connection can be reused; a longer body costs
// the connection instead.
const maxDrained = 256 << 10

// bufferBody reads a small body into memory and closes the original, so
// that the connection is free even while the retry policy waits; a larger
// body stays as it is, until discard or the caller closes it.
func bufferBody(resp *http.Response) {
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBuffered+1))
	if err != nil || len(buf) > maxBuffered {
		resp.Body = &prefixed{Reader: io.MultiReader(bytes.NewReader(buf), resp.Body), body: resp.Body}
		return
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
}

// prefixed is a body whose first bytes were read into memory.
type prefixed struct {
	io.Reader
	body io.ReadCloser
}

func (p *prefixed) Close() error { return p.body.Close() }

// discard drains a little of a response that will not be returned, so that
// its connection can be reused, and closes it.
func discard(resp *http.Response) {
	body := resp.Body
	if p, ok := body.(*prefixed); ok {
		body = p.body // what is left after the part read into memory
	}
	io.CopyN(io.Discard, body, maxDrained)
	body.Close()
}

// cancelOnClose ends a request's context once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// cancelOnCloseRW is cancelOnClose for a body that is also written to.
type cancelOnCloseRW struct {
	io.ReadWriteCloser
	cancel context.CancelFunc
}

func (b *cancelOnCloseRW) Close() error {
	err := b.ReadWriteCloser.Close()
	b.cancel()
	return err
}

// errZeroTransport is what a Transport not made by NewTransport answers.
var errZeroTransport = errors.New("resilhttp: a zero Transport cannot send requests: make it with NewTransport")

// closeBody closes req's body, as a RoundTripper must even when it fails.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
