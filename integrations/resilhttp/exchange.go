package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/resilience-go/resilience"
)

// exchange is one RoundTrip, as its attempts see it. The stages of a
// guard run attempts one after the other, except a Hedge, which runs them
// at the same time, each hedge on a goroutine of its own, and drops the
// results of the attempts that lose, some of them after RoundTrip has
// returned. So what the attempts share is here, under mu, and every
// response Base returns is recorded, to be handed back to the caller
// (one at most) or closed (every other): a losing attempt never writes
// into what the caller gets, and its response is never left open.
type exchange struct {
	t   *Transport
	req *http.Request

	mu      sync.Mutex
	started int   // attempts begun, each numbered by it: the first sends req.Body, every later one a body from GetBody
	done    bool  // RoundTrip has taken its response: an attempt still running closes what it gets, and none begins
	got     []got // the responses Base returned that are still recorded
	first   [1]got
}

// got is a response that Base returned for attempt n of an exchange.
type got struct {
	resp   *http.Response
	n      int
	failed bool // IsFailure said so: its body was buffered (see bufferBody)
	state  gotState
}

type gotState uint8

const (
	open    gotState = iota // no one has it yet: the caller may get it
	taken                   // the caller's
	dropped                 // closed, or about to be, by whoever dropped it
)

// drop closes a response that no caller will get: a failed one drained a
// little first, so that its connection can be reused (see discard), one
// that a Hedge cancelled, or that lost to another, only closed.
func (g got) drop() {
	if g.failed {
		discard(g.resp)
		return
	}
	g.resp.Body.Close()
}

// attempt is the call that the guard runs for each attempt of the
// exchange, on the caller's goroutine or, for a hedge, on one of its own.
func (x *exchange) attempt(ctx context.Context) (*http.Response, error) {
	t, req := x.t, x.req
	if err := ctx.Err(); err != nil {
		// Ended before it was sent: a hedge whose call another attempt
		// won, or a call its caller gave up. Nothing is sent, or counted.
		return nil, err
	}
	var buf [2]got
	stale := buf[:0]
	x.mu.Lock()
	if x.done {
		x.mu.Unlock()
		return nil, context.Canceled
	}
	x.started++
	n := x.started
	if !t.hedges {
		// The attempts run one after the other: the responses of the
		// earlier ones are no one's now, and a failed one is closed before
		// the next attempt goes out, so that its connection can serve it.
		stale = x.dropAll(stale)
	}
	x.mu.Unlock()
	for _, g := range stale {
		g.drop()
	}

	r := req.WithContext(ctx)
	r.Header = withAttempt(req.Header, resilience.Attempt(ctx))
	if n > 1 && req.GetBody != nil {
		// The first attempt sends req.Body; every other one, a retry or a
		// hedge, a body of its own.
		body, err := req.GetBody()
		if err != nil {
			return nil, resilience.Permanent(fmt.Errorf("resilhttp: GetBody: %w", err))
		}
		r.Body = body
	}
	t.wire.Sent(n)
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.Canceled) {
			err = &lostConnError{err: err}
		}
		return nil, err
	}
	if !t.isFailure(resp) {
		x.record(got{resp: resp, n: n})
		return resp, nil
	}
	bufferBody(resp)
	err = failure(resp, n)
	x.record(got{resp: resp, n: n, failed: true})
	return resp, err
}

// record records g, a response that an attempt got, or closes it if
// RoundTrip has already taken its own. From then on the attempt reads
// nothing of it.
func (x *exchange) record(g got) {
	x.mu.Lock()
	if x.done {
		x.mu.Unlock()
		g.drop() // a loser's, after the call was decided
		return
	}
	x.got = append(x.got, g)
	x.mu.Unlock()
}

// dropAll marks every open response dropped, and appends it to list, for
// the caller to close once mu is unlocked. Called with mu held.
func (x *exchange) dropAll(list []got) []got {
	for i := range x.got {
		if g := &x.got[i]; g.state == open {
			g.state = dropped
			list = append(list, *g)
		}
	}
	return list
}

// end ends the exchange once the guard has returned, and returns the
// response the caller gets, and how many attempts began. That response
// is resp, the one the guard returned (which a stage of the guard may
// have made: it is not recorded), or, when resp is nil and n is not 0,
// the failed response to attempt n; nil if it is not there to take.
// Every other response recorded is closed, and so is every one an
// attempt still running gets from now on (see record); no attempt begins
// after end.
func (x *exchange) end(resp *http.Response, n int) (*http.Response, int) {
	var buf [4]got
	var kept *http.Response
	found := false
	x.mu.Lock()
	x.done = true
	started := x.started
	for i := range x.got {
		g := &x.got[i]
		if resp != nil && g.resp == resp || resp == nil && n != 0 && g.n == n {
			found = true
			if g.state == open {
				g.state = taken
				kept = g.resp
			}
		}
	}
	stale := x.dropAll(buf[:0])
	x.mu.Unlock()
	for _, g := range stale {
		g.drop()
	}
	if resp != nil && !found {
		kept = resp // made up by a stage of the guard
	}
	return kept, started
}

// lostConnError is the error of an attempt that Base failed with
// context.Canceled although the attempt's context was live: net/http's
// Transport puts the connection of an answer without a body back in its
// pool before it hands the answer over, and if that request is cancelled
// in between, it closes the connection under the request that took it
// from the pool, which then fails with the other's cancellation
// (golang/go#41600; still so in Go 1.26). Losing hedges are cancelled as
// their answers come, so this happens to requests sent beside them. The
// connection was lost, nothing was cancelled: the error is a failure like
// any other lost connection, retried if the request may be, where a
// retry policy takes context.Canceled for the caller's and gives up.
type lostConnError struct{ err error }

func (e *lostConnError) Error() string {
	return "resilhttp: connection closed under the request by another request's cancellation (" + e.err.Error() + ")"
}
