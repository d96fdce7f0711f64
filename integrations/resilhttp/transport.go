// Package resilhttp guards HTTP clients and servers with the policies of
// package resilience: a RoundTripper that runs each request through a
// Guard, any Guard, every stage of it in order, and a middleware that
// sheds load with a Bulkhead or an AdaptiveLimiter (Shed). With a
// resilience.Hedge in its guard, the RoundTripper sends a slow request
// that is safe to send twice at once (a GET, or a request with an
// Idempotency-Key) a second time, takes the first answer and closes the
// other (see Transport).
//
// Between services that both use it, each hop says two things. A
// Transport sends the attempt number of each retry and each hedge
// (AttemptHeader), which Server hands to the handler
// (resilience.CallerAttempt). And a handler whose own call to a
// dependency gave up answers with WriteGaveUp, whose PushbackHeader of -1
// tells the Transports calling it not to retry: only the layer right
// above an overloaded service retries it. With two layers that retry
// twice each, a request from the top then costs the overloaded service 3
// attempts, not 9:
//
//	client -> A (Transport, 2 retries) -> B (overloaded)
//
// The priority of a request (resilience.WithPriority) goes along too: a
// Transport sends it in PriorityHeader, and Shed puts it in the context of
// the handler, whose own requests through a Transport send it on, so that
// an AdaptiveLimiter at any hop lets the critical requests through first.
//
// Wire counts the calls and attempts sent with a guard, for package
// metrics.
package resilhttp

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
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

	// Guard protects the calls to one backend. Required;
	// presets.ExternalHTTP() is made for it, and any guard will do: each
	// request runs through every one of its stages, in order, whatever
	// they are (time limits, retries, bulkheads, breakers, stages of your
	// own), with or without a breaker or a retry. A time limit inside the
	// retry bounds each attempt, and one outside bounds the whole
	// exchange:
	//
	//	guard, err := resilience.NewGuard(resilience.GuardConfig{
	//		Name:   "payments",
	//		Stages: []resilience.Stage{total, retry, breaker, perAttempt},
	//	})
	//
	// A Hedge goes inside the retry and outside the breaker and the
	// per-attempt limit, so that each hedge is an attempt of its own:
	//
	//	Stages: []resilience.Stage{total, retry, hedge, breaker, perAttempt},
	//
	// Every time limit a request ran under also bounds reading its
	// response's body (see Transport): size a per-attempt limit for the
	// body too. A guard whose time limit abandons calls
	// (TimeoutConfig.Abandon) is refused: an abandoned request would go on
	// after RoundTrip has returned.
	Guard *resilience.Guard

	// RetryUnsafe lets requests with methods that are not idempotent (POST,
	// PATCH, CONNECT) be retried too, and every request that can be sent
	// again be hedged, PUT and DELETE included. Default false: they are
	// retried and hedged only when they carry an Idempotency-Key header.
	RetryUnsafe bool

	// IsFailure reports whether a response counts as a failure: its
	// attempt is retried and the breaker counts it. Default
	// IsFailureStatus.
	IsFailure func(*http.Response) bool

	// Key gives the key of a request, for a guard with a breaker per key
	// (a resilience.KeyedBreaker, as presets.ExternalHTTP has): each key's
	// calls go through a breaker of their own. Default HostKey: one
	// breaker per scheme, host and port. With a guard without a
	// KeyedBreaker the key is not used, and the request's context keeps
	// the caller's key, for a resilience.Keyed family (a limit per
	// tenant); for one breaker over every host, give the Transport
	// such a guard (set the preset's BreakerPerKey to nil), or a Key that
	// returns a constant.
	Key func(*http.Request) string
}

// HostKey is the default TransportConfig.Key: the request's scheme, host
// and port, the port spelled out when the URL leaves it implied, as in
// "https://api.example.com:443".
func HostKey(req *http.Request) string {
	u := req.URL
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https", "wss":
			port = "443"
		default:
			port = "80"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(u.Hostname(), port)
}

// IsFailureStatus is the default TransportConfig.IsFailure: a 5xx status
// other than 501 Not Implemented, or 429 Too Many Requests. Every other
// status, 4xx included, means the server is up and answering.
func IsFailureStatus(resp *http.Response) bool {
	code := resp.StatusCode
	return code == http.StatusTooManyRequests || code >= 500 && code != http.StatusNotImplemented
}

// Transport is an http.RoundTripper that runs each request through a
// Guard: every stage of it, in order, each attempt through the stages
// inside the retry.
//
// A response counts as a failure when IsFailure says so, although the
// round trip itself succeeded; so does any error from Base. A failed
// attempt is retried, as the guard's retry policy allows, if the request
// can be sent again: its method is idempotent (GET, HEAD, OPTIONS, TRACE,
// PUT, DELETE), it has an Idempotency-Key header, or RetryUnsafe is set;
// and it has no body or its GetBody can make a new one. Any other request
// is sent at most once, whatever failed, a per-attempt time limit
// included (see resilience.AtMostOnce): its failure still counts for the
// breaker. A Retry-After header (seconds or an HTTP date) on a failed
// response sets the wait before the next attempt, capped by the retry
// policy's MaxBackoff.
//
// A 429 or a 503 is marked resilience.Overloaded as well, for the
// stages that count the answers of an overloaded dependency (an adaptive
// throttler); errors.Is and errors.As see through the mark, and retrying
// and counting are as for any failure. A failed response with a
// PushbackHeader of -1 is a permanent failure: never retried, counted by
// the breaker. A pushback of zero or more milliseconds sets the wait
// before the next attempt, in place of a Retry-After.
//
// Each retry's request, and each hedge's, carries AttemptHeader, its
// attempt number (resilience.Attempt: 2 for the first retry, or the first
// hedge), and a first attempt none; the caller's request is not changed
// (a retry is sent with a copy of its header). The attempts sent, hedges
// included, and the calls made are counted in the guard's Wire.
//
// With a resilience.Hedge in the guard, a request that has not been
// answered after the hedge's delay is sent again while the first attempt
// is still in flight, and the first response that is not a failure wins:
// the other attempts are cancelled at once, and their responses closed,
// those that arrive after RoundTrip has returned included. A failed
// response ends the call only when no other attempt is left in flight, or
// when it says not to retry (a PushbackHeader of -1); the retry policy
// then decides, as for any failed attempt. Only a request that may
// be sent twice at once is hedged: one whose method is safe (GET, HEAD,
// OPTIONS, TRACE; RFC 9110, section 9.2.1), or that has an
// Idempotency-Key header, or, with RetryUnsafe, any request that can be
// sent again. PUT and DELETE are idempotent but not safe: they are
// retried, one attempt after the other, but not hedged (they run under
// resilience.Unhedged), because two copies in flight at once race at the
// server, where the one that runs second answers as if the first had not
// run (a 404 for a DELETE, a 412 for a conditional PUT), and that answer
// may be the first to come back. A request sent at most once (above) is
// never hedged. A hedge sends a body from GetBody, as a retry does, while
// the first attempt may still be sending req.Body: GetBody must return a
// body of its own on each call, as those http.NewRequest sets do. A
// server that follows the IETF draft on Idempotency-Key may answer a copy
// that arrives while the first is still running with 409 Conflict: give
// such requests a context from resilience.Unhedged, which also keeps any
// request from being hedged.
//
// A failed response about to be retried is drained and closed first, so
// that its connection goes back to the pool. With a Hedge in the guard,
// whose attempts run at once, a failed response that is not returned is
// closed when RoundTrip returns, or as soon as it comes if that is later
// (a body up to 64 KiB was read into memory as it came, so that its
// connection is already free). When no retry is left, the
// last response is returned as it came, with a nil error, as
// http.Transport returns any response: check its StatusCode, or
// ResponseError, which gives the guard's error for it. A request
// that a stage refused to send (an open breaker, a full bulkhead) fails
// with the stage's error, which matches resilience.ErrRejected; one that
// a time limit of the guard ended, with the *resilience.TimeoutError of
// that limit, which its observers and metrics count.
//
// Each time limit of the guard runs from the moment the request reaches
// it until the response body is closed, so it bounds reading the body
// too, as http.Client.Timeout does (see resilience.Hold): the guard's
// outermost limit bounds the whole exchange, and a per-attempt limit the
// attempt whose response is returned, body included: with a Hedge, the
// attempt that won, whose context stays open until its body is closed,
// while the others' end at once. Close every body, as always. When the
// caller's context ends, everything stops at once: the request in
// flight, the wait before a retry, and reading the body.
//
// A request whose context carries a priority (resilience.WithPriority)
// is sent with it in PriorityHeader, unless the caller set that header
// already, so that the priority follows the request to the next hop (see
// Shed); a request without one is sent without the header.
//
// A Transport is safe for concurrent use. Make one with NewTransport: the
// zero Transport sends nothing, and answers every request with an error
// that says so.
type Transport struct {
	base      http.RoundTripper
	guard     *resilience.Guard
	wire      *outcome.Wire // the guard's
	unsafe    bool
	isFailure func(*http.Response) bool
	key       func(*http.Request) string // nil when the guard has no breaker per key
	hedges    bool                       // a stage of the guard may run attempts at once
}

// NewTransport returns a Transport configured by cfg, or an error if
// cfg.Guard is nil, the zero Guard, or has a time limit that abandons
// calls.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	if err := outcome.Check("resilhttp", "TransportConfig.Guard", cfg.Guard); err != nil {
		return nil, err
	}
	t := &Transport{
		base:      cfg.Base,
		guard:     cfg.Guard,
		wire:      outcome.WireOf(cfg.Guard),
		unsafe:    cfg.RetryUnsafe,
		isFailure: cfg.IsFailure,
		hedges:    outcome.Hedge(cfg.Guard) != nil,
	}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.isFailure == nil {
		t.isFailure = IsFailureStatus
	}
	if cfg.Guard.KeyedBreaker() != nil {
		t.key = cfg.Key
		if t.key == nil {
			t.key = HostKey
		}
	}
	return t, nil
}

// statusError is how a failed response travels through the policies, so
// that the breaker counts it and the retry policy sees it. It holds
// nothing of the response but its status: ResponseError keeps it for as
// long as the response lives, no longer.
type statusError struct {
	status  string
	attempt int // which attempt of the round trip it answered: its number in the exchange, from 1
}

func (e *statusError) Error() string { return "resilhttp: server answered " + e.status }

// failure is the error that resp, a failed response to attempt number
// attempt of its exchange, travels through the guard as: marked
// resilience.Overloaded for a 429 or a 503, permanent when its
// PushbackHeader says not to retry, and carrying the wait of its
// PushbackHeader or, failing that, of its Retry-After.
func failure(resp *http.Response, attempt int) error {
	var err error = &statusError{status: resp.Status, attempt: attempt}
	if code := resp.StatusCode; code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		err = resilience.Overloaded(err)
	}
	if wait, retry, ok := outcome.Pushback(resp.Header.Values(PushbackHeader)); ok {
		if !retry {
			return resilience.Permanent(&outcome.NoRetry{Err: err})
		}
		return resilience.RetryAfter(err, wait)
	}
	if d, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
		err = resilience.RetryAfter(err, d)
	}
	return err
}

// RoundTrip sends req through the guard. See Transport.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.guard == nil {
		closeBody(req)
		return nil, errZeroTransport
	}
	parent := req.Context()
	if p, ok := resilience.PriorityIn(parent); ok {
		if _, set := req.Header[PriorityHeader]; !set {
			req = withPriorityHeader(req, p)
		}
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	once := !replayable || !t.unsafe && !idempotent(req)

	// A Hedge of the guard runs attempts at the same time, and drops the
	// results of those that lose: what the attempts share is the
	// exchange's, which hands back one response at most and closes every
	// other.
	x := &exchange{t: t, req: req}
	x.got = x.first[:0]
	ctx := parent
	if t.key != nil {
		ctx = resilience.WithKey(parent, t.key(req))
	}
	if !once && t.hedges && !t.unsafe && !hedgeable(req) {
		// Idempotent, not safe: retried after it fails, never sent twice
		// at once (see Transport).
		ctx = resilience.Unhedged(ctx)
	}
	ended := false
	defer func() {
		if !ended { // a panic in a stage or in Base: close what came back
			x.end(nil, 0)
		}
	}()
	resp, release, err := outcome.RunHeldAlways(ctx, t.guard, once, x.attempt)

	answered := 0 // the attempt whose failed response err is, if any
	switch {
	case err == nil:
		if resp == nil {
			// A stage of the guard ended the call without an error and
			// without a response: a RoundTripper must return one or the
			// other.
			err = errNoResponse
		}
	case parent.Err() != nil:
		// The caller gave up: nothing more is returned.
		resp, err = nil, parent.Err()
	default:
		// A stage's error (a time-out, a rejection), Base's, or a failed
		// response with no retry left: the last answer is then the
		// caller's, as it came, and the guard's error is ResponseError's.
		resp = nil
		var se *statusError
		if errors.As(err, &se) {
			answered = se.attempt
		}
	}
	resp, sent := x.end(resp, answered)
	ended = true
	if resp == nil && err == nil {
		err = errNoResponse // the guard returned a response already closed
	}
	if resp != nil && err != nil {
		remember(resp, err)
		err = nil
	}
	if sent == 0 {
		t.wire.Unsent()
		closeBody(req) // never sent (a stage refused it): Base did not close it
	}
	if resp == nil {
		release()
		return nil, err
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
		// A protocol switch (101): the body is the connection, and stays
		// writable.
		resp.Body = &releaseOnCloseRW{ReadWriteCloser: rwc, release: release}
		return resp, nil
	}
	resp.Body = &releaseOnClose{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// withPriorityHeader returns a copy of req whose header is a copy of
// req's with PriorityHeader set to p, since a RoundTripper may not change
// the request it is given. The body is req's, still to be closed by
// whoever sends it.
func withPriorityHeader(req *http.Request, p resilience.Priority) *http.Request {
	r := new(http.Request)
	*r = *req
	h := req.Header.Clone()
	if h == nil {
		h = make(http.Header, 1)
	}
	h[PriorityHeader] = []string{p.String()}
	r.Header = h
	return r
}

// idempotent reports whether req may be sent twice with the same effect
// (RFC 9110, section 9.2.2), one after the other.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return hasKey(req)
}

// hedgeable reports whether req, which may be sent twice, may also be sent
// twice at once: its method is safe (RFC 9110, section 9.2.1), so that it
// changes nothing on the server, or it has an Idempotency-Key, so that the
// server answers both copies as one.
func hedgeable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return hasKey(req)
}

// hasKey reports whether req has an Idempotency-Key (or
// X-Idempotency-Key) header.
func hasKey(req *http.Request) bool {
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

// releaseOnClose ends the time limits a request ran under (see
// resilience.Hold) once its body is closed.
type releaseOnClose struct {
	io.ReadCloser
	release func()
}

func (b *releaseOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

// releaseOnCloseRW is releaseOnClose for a body that is also written to.
type releaseOnCloseRW struct {
	io.ReadWriteCloser
	release func()
}

func (b *releaseOnCloseRW) Close() error {
	err := b.ReadWriteCloser.Close()
	b.release()
	return err
}

// errZeroTransport is what a Transport not made by NewTransport answers.
var errZeroTransport = errors.New("resilhttp: a zero Transport cannot send requests: make it with NewTransport")

// errNoResponse is what RoundTrip returns when a stage of the guard ended
// the call with neither a response nor an error.
var errNoResponse = errors.New("resilhttp: the guard returned neither a response nor an error")

// closeBody closes req's body, as a RoundTripper must even when it fails.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
