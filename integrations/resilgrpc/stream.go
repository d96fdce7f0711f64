package resilgrpc

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// maxReplay is how many sent messages a stream keeps to send again on a
// retry; a stream that sends more before its first answer is not retried.
const maxReplay = 64

// StreamClientInterceptor returns an interceptor that guards streams with
// g's breakers and retries: the first *resilience.Breaker, the first
// *resilience.KeyedBreaker and the first *resilience.Retry among its
// stages, any of which may be missing. It returns an error if g is nil,
// the zero Guard, or has a time limit that abandons calls. Any other guard
// will do; its other stages guard unary calls only (see below).
//
// A guard's KeyedBreaker guards each stream with the breaker of the
// stream's key (KeyedBreaker.Breaker), the key that UnaryClientInterceptor
// gives a unary call with the same options: the ClientConn's target, or
// with KeyByMethod the target and the method. Each stream opened for the
// call, retries included, takes a permit from that breaker, looked up
// anew. A guard with a Breaker and a KeyedBreaker, one around the whole
// dependency and one per target, takes a permit from each, in the order of
// the guard's stages; when the inner one rejects the stream, the outer one
// is told of the rejection, as it is of a unary call's.
//
// A stream is one call for the breaker: it succeeds when its first message
// arrives (or the server ends it cleanly without one) and fails as
// IsFailure says when it ends with an error before that. A stream the
// breaker rejects is not opened; its error is a *PolicyError.
//
// A stream's breaker permit is given back exactly once, whichever way the
// stream ends: its first message or error from RecvMsg, an error that
// gRPC sees in Header, a SendMsg error of the client's making (such as a
// message above MaxCallSendMsgSize: the backend never saw it, so it counts
// as neither success nor failure), the end of its context (a cancellation
// counts as neither, a deadline as a failure), or the ClientConn closing
// (neither). A stream the caller drops before any of these (gRPC asks
// callers to cancel the context or read to the end; not all do) gives its
// permit back, as neither, once the garbage collector finds it
// unreachable; its context is then cancelled, which frees what gRPC holds
// for it too.
//
// A stream is retried, as the guard's retry policy allows and with
// IsRetryable's codes, only before its first message arrives: when opening
// it fails, and when it ends before that message. The messages sent until
// then (at most 64) are kept and sent again, in order, on the new stream,
// and CloseSend too. A stream whose send fails, or that sends more than 64
// messages before its first answer, is no longer retried. Once the first
// message has arrived the stream is the caller's: nothing more is counted
// or retried.
//
// Opening the stream and waiting for its first message are each retried
// up to the policy's limit. Each stream opened for a retry carries
// PreviousAttemptsKey, the streams opened for the call before it. A
// stream that fails before its first message with the trailer PushbackKey
// of -1 is not retried. The calls and the streams opened are counted in
// the guard's Wire. The failures are classified as for unary calls
// (Unavailable and ResourceExhausted marked resilience.Overloaded), and a
// stream whose retries gave up fails with the server's status, with the
// guard's error behind it (see UnaryClientInterceptor).
//
// The guard's retry budget, right inside its retry, bounds the retries of
// a stream that fails before its first message, as it does the unary
// calls'; the retries of a stream that could not even be opened are
// bounded by MaxRetries alone. The guard's other stages (its time
// limits, bulkheads, rate limiters, throttlers and stages of your own)
// and its Classify do not apply to streams. A stage holds what it gives a call (a
// permit, a slot, a context) until the call returns, while a stream's
// outcome is known only once its first message arrives, after the
// interceptor has handed the stream to the caller; so the breaker's permit
// is held by the stream itself, as above. And streams often live long:
// the guard's time limit, made for one request and its answer (30s in
// presets.GRPC()), would cut them. Bound a stream with its context.
//
// Streams are never hedged, whatever HedgeMethods says: the guard's Hedge
// is not among the stages they use. The streams that the unary
// interceptor opens for the attempts of a hedged unary call (see
// HedgeMethods) are handed on as they are, since that interceptor guards
// them.
func StreamClientInterceptor(g *resilience.Guard, opts ...ClientOption) (grpc.StreamClientInterceptor, error) {
	if err := checkGuard("StreamClientInterceptor", g); err != nil {
		return nil, err
	}
	var retry, retryFirst resilience.Policy[grpc.ClientStream]
	if r := g.Retry(); r != nil {
		retry = resilience.For[grpc.ClientStream](r)
		retryFirst = retry
		// The retry budget right inside the retry, if the guard has one,
		// bounds the retries of a stream that fails before its first
		// message, nearly all of a stream's retries: it counts each stream
		// that opened once, as a first attempt, and is asked before each
		// stream opened again.
		stages := g.Stages()
		for i, s := range stages[:len(stages)-1] {
			if s == resilience.Stage(r) {
				if b, ok := stages[i+1].(*resilience.RetryBudget); ok {
					retryFirst = resilience.For[grpc.ClientStream](r, b)
				}
				break
			}
		}
	}
	wire := outcome.WireOf(g)
	breaker, keyed := g.Breaker(), g.KeyedBreaker()
	keyedOuter := false // keyed is outside breaker
	if breaker != nil && keyed != nil {
		for _, s := range g.Stages() {
			if s == resilience.Stage(keyed) {
				keyedOuter = true
				break
			}
			if s == resilience.Stage(breaker) {
				break
			}
		}
	}
	o := newClientOptions(opts)
	if o.err != nil {
		return nil, o.err
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx = outgoingPriority(ctx)
		if isHedgeAttempt(opts) {
			// An attempt of a hedged unary call, which the unary
			// interceptor guards (see HedgeMethods).
			return streamer(ctx, desc, cc, method, opts...)
		}
		opts = opts[:len(opts):len(opts)] // appended to for each attempt, never in the caller's array
		st := &streamState{ctx: ctx, breaker: breaker, keyed: keyed, keyedOuter: keyedOuter,
			retry: retry, retryFirst: retryFirst, wire: wire,
			open: func(ctx context.Context, finished func(error)) (grpc.ClientStream, error) {
				return streamer(ctx, desc, cc, method, append(opts, grpc.OnFinish(finished))...)
			}}
		if keyed != nil {
			st.key = o.key(cc, method)
		}
		_, err := st.attempts(st.retry, func() (grpc.ClientStream, error) { return st.attempt(nil) })
		if st.opened == 0 { // read after the attempts, which ran on this goroutine
			wire.Unsent()
		}
		if err != nil {
			return nil, err
		}
		s := &clientStream{st: st}
		// Nothing that st holds leads back to s, so s can be collected
		// once the caller drops it.
		runtime.AddCleanup(s, func(st *streamState) { go st.drop() }, st)
		return s, nil
	}, nil
}

// clientStream is what the caller holds. Each method keeps it alive until
// it returns, so that the cleanup that releases a dropped stream never runs
// while the stream is in use.
type clientStream struct{ st *streamState }

func (s *clientStream) SendMsg(m any) error {
	defer runtime.KeepAlive(s)
	return s.st.sendMsg(m)
}

func (s *clientStream) RecvMsg(m any) error {
	defer runtime.KeepAlive(s)
	return s.st.recvMsg(m)
}

func (s *clientStream) CloseSend() error {
	defer runtime.KeepAlive(s)
	return s.st.closeSend()
}

func (s *clientStream) Header() (metadata.MD, error) {
	defer runtime.KeepAlive(s)
	return s.st.current().cs.Header()
}

func (s *clientStream) Trailer() metadata.MD {
	defer runtime.KeepAlive(s)
	return s.st.current().cs.Trailer()
}

func (s *clientStream) Context() context.Context {
	defer runtime.KeepAlive(s)
	return s.st.current().cs.Context()
}

// streamState is a stream that is opened again, what was sent on it
// replayed, when it fails before its first message arrives.
type streamState struct {
	ctx     context.Context
	breaker *resilience.Breaker      // the guard's; nil: none
	keyed   *resilience.KeyedBreaker // the guard's; nil: none
	key     string                   // the stream's key in keyed
	// keyedOuter: keyed comes before breaker among the guard's stages.
	keyedOuter bool
	retry      resilience.Policy[grpc.ClientStream] // nil: no retries
	// retryFirst is retry with the guard's retry budget, for the retries
	// before the first message.
	retryFirst resilience.Policy[grpc.ClientStream]
	open       func(ctx context.Context, finished func(error)) (grpc.ClientStream, error)
	wire       *outcome.Wire // the guard's

	mu      sync.Mutex
	opened  int      // streams opened, counting every attempt
	pb      pushback // the trailer's pushback of the attempt that failed last
	cur     *attempt // the current attempt
	sent    []any    // messages sent before the first answer
	closed  bool     // CloseSend was called
	noRetry bool     // the first answer arrived, or retrying is off
	settled bool     // the first RecvMsg, retries included, has returned
}

// attempt is one stream, opened with a permit from each of the guard's
// breakers (none if it has none).
type attempt struct {
	cs     grpc.ClientStream
	caller context.Context    // the caller's context
	cancel context.CancelFunc // ends the stream's context, a child of the caller's

	mu        sync.Mutex
	permits   permits
	reported  bool  // the permits are given back
	sending   int   // SendMsg calls on cs in flight
	ended     bool  // gRPC ended the stream while a SendMsg was in flight
	finishErr error // and with this error
}

// stopRetrying ends the retries of the first answer: the stream can no
// longer be replayed.
type stopRetrying struct{}

func (stopRetrying) Error() string { return "resilgrpc: the stream can no longer be retried" }

// attempts runs fn, retried as the retry policy allows, and returns what
// the caller gets.
func (st *streamState) attempts(retry resilience.Policy[grpc.ClientStream], fn func() (grpc.ClientStream, error)) (grpc.ClientStream, error) {
	var answered error
	call := func(ctx context.Context) (grpc.ClientStream, error) {
		cs, err := fn()
		if errors.Is(err, stopRetrying{}) {
			return nil, resilience.Permanent(err)
		}
		answered = err
		pb := st.takePushback()
		switch {
		case err == io.EOF:
			return cs, nil // the stream ended cleanly
		case errors.Is(err, resilience.ErrRejected):
			return nil, err // the breaker's own rejection
		}
		return cs, classify(ctx, err, pb)
	}
	var cs grpc.ClientStream
	var err error
	if retry != nil {
		cs, err = retry.Do(st.ctx, call)
	} else {
		cs, err = call(st.ctx)
	}
	if errors.Is(err, stopRetrying{}) {
		return nil, answered
	}
	return cs, result(err, answered)
}

// attempt opens a stream with a new permit and sends it what was sent
// before; then, if first is set, it waits for the first message with it.
func (st *streamState) attempt(first func(*attempt) error) (grpc.ClientStream, error) {
	ctx, cancel := context.WithCancel(st.ctx)
	// The permits' context is the stream's: a permit given back for a
	// stream that the client ended (see ignore) is counted as neither
	// success nor failure.
	permits, err := st.allow(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	a := &attempt{caller: st.ctx, cancel: cancel, permits: permits}
	st.mu.Lock()
	st.opened++
	n := st.opened
	st.mu.Unlock()
	st.wire.Sent(n)
	// A retry says so: the attempts this interceptor made, or, for its
	// first, those an outer retry made.
	if n == 1 {
		n = resilience.Attempt(st.ctx)
	}
	// gRPC calls finished once, however the stream ends: RecvMsg's error
	// or io.EOF, an error seen by Header or made by SendMsg, the end of
	// the context, the ClientConn closing.
	cs, err := st.open(withPreviousAttempts(ctx, n), a.finished)
	if err != nil {
		a.report(err)
		cancel()
		return nil, err
	}
	a.cs = cs
	// Replay what was sent, including what is sent meanwhile, then make
	// the new stream current.
	for i := 0; ; i++ {
		st.mu.Lock()
		if i == len(st.sent) {
			st.makeCurrentLocked(a)
			closed := st.closed
			st.mu.Unlock()
			if closed {
				cs.CloseSend()
			}
			break
		}
		m := st.sent[i]
		st.mu.Unlock()
		if a.send(m) != nil {
			// The new stream failed already: its RecvMsg tells why.
			st.mu.Lock()
			st.makeCurrentLocked(a)
			st.mu.Unlock()
			break
		}
	}
	if first != nil {
		return cs, first(a)
	}
	return cs, nil
}

// permits are a stream's permits, one from each of the guard's breakers,
// the outermost first. Without a breaker, a permit is the zero Permit,
// whose Done does nothing.
type permits [2]resilience.Permit

// done gives every permit back with err, the innermost first, as a call
// leaves the stages.
func (ps *permits) done(err error) {
	for i := len(ps) - 1; i >= 0; i-- {
		ps[i].Done(err)
	}
}

// allow takes a permit from each of the stream's breakers, the outermost
// first: the guard's Breaker and the breaker of the stream's key in its
// KeyedBreaker, in the order of the guard's stages. When one rejects the
// stream, the permits taken before it are given back with its rejection,
// as the outer stages of a unary call see an inner one's.
func (st *streamState) allow(ctx context.Context) (permits, error) {
	var bs [2]*resilience.Breaker
	bs[0] = st.breaker
	if st.keyed != nil {
		bs[1] = st.keyed.Breaker(st.key) // nil for a zero KeyedBreaker
		if st.keyedOuter {
			bs[0], bs[1] = bs[1], bs[0]
		}
	}
	var ps permits
	for i, b := range bs {
		if b == nil {
			continue
		}
		p, err := b.Allow(ctx)
		if err != nil {
			ps.done(err)
			return permits{}, err
		}
		ps[i] = p
	}
	return ps, nil
}

// makeCurrentLocked makes a the current attempt. The one it replaces ended
// before its first message: its context is ended, to free what gRPC holds
// for it. st.mu is held.
func (st *streamState) makeCurrentLocked(a *attempt) {
	if old := st.cur; old != nil {
		old.cancel()
	}
	st.cur = a
}

func (st *streamState) current() *attempt {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.cur
}

// drop releases a stream that the caller dropped without reading it to
// the end or ending its context: its permit, counted as neither success
// nor failure, and, by ending its context, what gRPC holds for it.
func (st *streamState) drop() {
	a := st.current()
	a.cancel()
	a.ignore()
}

// finished is the attempt's grpc.OnFinish callback: gRPC calls it once,
// when the stream ends, with its status. When a SendMsg is in flight, the
// error may be that SendMsg's own: the send decides.
func (a *attempt) finished(err error) {
	a.mu.Lock()
	if a.sending > 0 {
		a.ended, a.finishErr = true, err
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	a.report(err)
	a.cancel()
}

// send sends m on the attempt's stream. An error other than io.EOF is made
// by the client (a message above MaxCallSendMsgSize, one that cannot be
// encoded) and ends the stream: the backend never saw it, so the permit is
// given back as neither success nor failure.
func (a *attempt) send(m any) error {
	a.mu.Lock()
	a.sending++
	a.mu.Unlock()
	err := a.cs.SendMsg(m)
	a.mu.Lock()
	a.sending--
	ended, finishErr := a.ended && a.sending == 0, a.finishErr
	a.mu.Unlock()
	if ended {
		if err != nil && err != io.EOF && errors.Is(err, finishErr) {
			a.ignore()
		} else {
			a.report(finishErr)
		}
		a.cancel()
	}
	return err
}

// take takes the permits, if they have not been given back yet.
func (a *attempt) take() (permits, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.reported {
		return permits{}, false
	}
	p := a.permits
	a.permits, a.reported = permits{}, true
	return p, true
}

// report gives the permits back, once, for a stream whose first answer was
// err: nil or io.EOF for a success.
func (a *attempt) report(err error) {
	if err != nil && err != io.EOF && status.Code(err) == codes.Canceled {
		// The caller's context ended, or the ClientConn closed: either
		// way, the client's doing.
		a.ignore()
		return
	}
	if p, ok := a.take(); ok {
		p.done(breakerError(a.caller, err))
	}
}

// ignore gives the permits back, once, as neither success nor failure: it
// ends the permits' context, and reports the cancellation that the
// breakers ignore.
func (a *attempt) ignore() {
	if p, ok := a.take(); ok {
		a.cancel()
		p.done(&outcome.Failure{Err: context.Canceled, CtxErr: context.Canceled})
	}
}

// breakerError is what the breaker is told of a stream that ended with
// err before its first message.
func breakerError(ctx context.Context, err error) error {
	if err == io.EOF {
		return nil // ended cleanly
	}
	return classify(ctx, err, pushback{})
}

// takePushback returns the pushback of the attempt that failed last, and
// forgets it.
func (st *streamState) takePushback() pushback {
	st.mu.Lock()
	defer st.mu.Unlock()
	pb := st.pb
	st.pb = pushback{}
	return pb
}

// stopLocked ends retrying. st.mu is held.
func (st *streamState) stopLocked() {
	st.noRetry = true
	st.sent = nil
}

func (st *streamState) sendMsg(m any) error {
	st.mu.Lock()
	a := st.cur
	if !st.noRetry {
		if len(st.sent) < maxReplay {
			st.sent = append(st.sent, m)
		} else {
			st.stopLocked()
		}
	}
	st.mu.Unlock()
	err := a.send(m)
	if err != nil {
		st.mu.Lock()
		if st.cur == a {
			// The caller saw the send fail and may stop sending: a new
			// stream would not get the rest.
			st.stopLocked()
		}
		st.mu.Unlock()
	}
	return err
}

func (st *streamState) closeSend() error {
	st.mu.Lock()
	st.closed = true
	a := st.cur
	st.mu.Unlock()
	return a.cs.CloseSend()
}

func (st *streamState) recvMsg(m any) error {
	st.mu.Lock()
	a, settled, noRetry := st.cur, st.settled, st.noRetry
	st.mu.Unlock()
	if settled {
		return a.cs.RecvMsg(m) // past the first answer
	}
	defer func() {
		st.mu.Lock()
		st.settled = true
		st.mu.Unlock()
	}()
	first := func(a *attempt) error {
		err := a.cs.RecvMsg(m)
		a.report(err)
		st.mu.Lock()
		if err == nil || err == io.EOF {
			st.stopLocked()
		} else {
			// The stream has ended: its trailer may say not to retry.
			st.pb = readPushback(a.cs.Trailer())
		}
		st.mu.Unlock()
		return err
	}
	if noRetry || st.retry == nil {
		return first(a)
	}
	tries := 0
	_, err := st.attempts(st.retryFirst, func() (grpc.ClientStream, error) {
		if tries++; tries == 1 {
			return a.cs, first(a)
		}
		st.mu.Lock()
		stop := st.noRetry
		st.mu.Unlock()
		if stop {
			return nil, stopRetrying{}
		}
		return st.attempt(first)
	})
	return err
}
