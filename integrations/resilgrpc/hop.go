package resilgrpc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// PreviousAttemptsKey is the metadata key in which the client
// interceptors send, with each retry of a call, how many attempts of it
// were sent before, as gRFC A6 names it and grpc-go's own retry sends
// it: resilience.Attempt of the attempt's context, minus one. A first
// attempt carries none (as in gRFC A6), so that the happy path costs
// nothing; the server interceptors read it (see
// UnaryServerHopInterceptor).
const PreviousAttemptsKey = "grpc-previous-rpc-attempts"

// PushbackKey is the trailer by which a server tells its clients when to
// retry a failed call (gRFC A6): a whole number of milliseconds to wait
// before the next attempt, or a negative one ("-1") for "do not retry".
// The server interceptors send -1 when the handler's own call to a
// dependency gave up (see UnaryServerHopInterceptor).
//
// The client interceptors read it on a call that failed (IsFailure): a
// negative value, or one that is not a whole number, as grpc-go reads it,
// makes the failure permanent: it is not retried, and still counts for the
// breaker. A wait sets the delay before the next attempt, capped by the
// retry policy's MaxBackoff. One value only: a trailer repeated is
// ignored. A stream's trailer is read when it fails before its first
// message, the only time it is retried; opening a stream fails before
// the server has said anything, so there is no trailer to read then.
const PushbackKey = "grpc-retry-pushback-ms"

// KindWire is the kind of the stage Wire returns.
const KindWire = outcome.KindWire

// Wire returns the counts of what is sent with g: every call that the
// client interceptors (or resilhttp's Transport, or any other integration
// of this module) run through g, and every attempt of them that they hand
// to grpc-go: each invocation of a unary call, each stream opened. It is
// a resilience.Observable stage of kind "wire", named after g, that
// package metrics exports as
// resilience_wire_calls_total{name, result="call"|"attempt"} and
// resilience_wire_amplification{name}, attempts per call (0 before the
// first call):
//
//	m.Instrument(guard, resilgrpc.Wire(guard))
//
// A call is counted as its first attempt is handed on, or as it ends when
// it handed none on (a stage refused it). Attempts that grpc-go makes by
// itself are not counted: with DialOptions, which turns its retry off,
// these are only its transparent retries, which resend, once, an attempt
// that never reached the server's application. Counting them would take
// a stats.Handler, which makes grpc-go build an event, and read the
// clock, for each stage of every call: 15 allocations more per unary
// call over loopback, against the 2 of the interceptor itself.
//
// Counting costs an atomic addition per attempt, and nothing else; a nil
// g's counts nothing. As a stage, it runs a call as it is and counts
// nothing.
func Wire(g *resilience.Guard) resilience.Observable { return outcome.WireOf(g) }

// ServerOptions returns the options that make a server speak to the
// clients of this package across the hop: the interceptors of
// UnaryServerHopInterceptor and StreamServerHopInterceptor, as
// grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor options:
//
//	srv := grpc.NewServer(resilgrpc.ServerOptions()...)
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryServerHopInterceptor()),
		grpc.ChainStreamInterceptor(StreamServerHopInterceptor()),
	}
}

// UnaryServerHopInterceptor returns an interceptor that tells each
// handler which attempt of its client the call is, and the client when
// not to retry.
//
// The handler's context tells the attempt (resilience.CallerAttempt):
// the client's PreviousAttemptsKey plus one, for a retry; a first attempt
// carries no PreviousAttemptsKey, so CallerAttempt is 0 for it, as for a
// client that sends none. A value that is not a decimal number from 0 to
// 2147483646, digits only, is ignored; of several (grpc-go's own retry
// sends it too), the largest is taken.
//
// When the handler's error says that its own call to a dependency gave
// up (resilience.GaveUp: its retries were used up, or refused by a retry
// budget) or was told not to retry by that dependency (a PushbackKey of
// -1, a resilhttp.PushbackHeader of -1), the call ends with
// codes.Unavailable, whatever the handler's code, with its message, and
// the trailer PushbackKey "-1": the client interceptors of this package,
// and grpc-go's own retry, do not retry it. Only the layer right above an
// overloaded service retries it: with two layers that retry twice each, a
// call from the top costs it 3 attempts, not 9. Any other error, and the
// handler's reply, go back as they are.
func UnaryServerHopInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _ = callerAttempt(ctx)
		resp, err := handler(ctx, req)
		if err != nil && outcome.DontRetry(err) {
			grpc.SetTrailer(ctx, noRetryTrailer())
			return resp, gaveUpStatus(err)
		}
		return resp, err
	}
}

// StreamServerHopInterceptor is UnaryServerHopInterceptor for streams:
// the stream's context tells the attempt, and a handler that returns an
// error that gave up ends the stream with codes.Unavailable and the
// trailer PushbackKey "-1". The clients of this package read it on a
// stream that fails before its first message, the only time they retry
// one.
func StreamServerHopInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if ctx, ok := callerAttempt(ss.Context()); ok {
			ss = &hopStream{ServerStream: ss, ctx: ctx}
		}
		err := handler(srv, ss)
		if err != nil && outcome.DontRetry(err) {
			ss.SetTrailer(noRetryTrailer())
			return gaveUpStatus(err)
		}
		return err
	}
}

// hopStream is a server stream whose context tells the caller's attempt.
type hopStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *hopStream) Context() context.Context { return s.ctx }

// callerAttempt returns ctx, telling the caller's attempt if its metadata
// says it.
func callerAttempt(ctx context.Context) (context.Context, bool) {
	vs := metadata.ValueFromIncomingContext(ctx, PreviousAttemptsKey) // nil, and no allocation, when absent
	if prev, ok := outcome.Largest(vs, 0, outcome.MaxAttempt-1); ok {
		return resilience.WithCallerAttempt(ctx, prev+1), true
	}
	return ctx, false
}

// withPreviousAttempts returns the context of an attempt whose attempt
// number is n: for a retry, with PreviousAttemptsKey.
func withPreviousAttempts(ctx context.Context, n int) context.Context {
	if n <= 1 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, PreviousAttemptsKey, strconv.Itoa(n-1))
}

func noRetryTrailer() metadata.MD { return metadata.MD{PushbackKey: {"-1"}} }

// gaveUpStatus is the error a server answers with when its call to a
// dependency ended with err, which gave up: the status's own message if
// err is one (not one wrapped in an error of the handler's, whose text
// would be its), and otherwise a fixed one, since the text of an
// error from the handler's dependency (a RetryError naming it, its
// address) is not for the handler's callers, as an HTTP server's body is
// not (WriteGaveUp).
func gaveUpStatus(err error) error {
	if se, ok := err.(interface{ GRPCStatus() *status.Status }); ok {
		return status.Error(codes.Unavailable, se.GRPCStatus().Message())
	}
	return status.Error(codes.Unavailable, "overloaded: a dependency of this service is failing; do not retry")
}

// pushback is a failed call's retry pushback (see outcome.Pushback).
type pushback struct {
	wait      time.Duration
	retry, ok bool
}

func readPushback(md metadata.MD) pushback {
	wait, retry, ok := outcome.Pushback(md[PushbackKey])
	return pushback{wait: wait, retry: retry, ok: ok}
}

// trailerSlot is what an attempt of a unary call reads its trailer into:
// the caller's call options, and grpc.Trailer to fill md. Slots are
// pooled, so that asking for the trailer allocates nothing. A unary
// invoker has filled md when it returns, and keeps nothing of the
// options; one that returned because the call's context ended might not
// have, and its slot is not pooled again.
type trailerSlot struct {
	md   metadata.MD
	opts []grpc.CallOption
}

var trailerSlots = sync.Pool{New: func() any { return new(trailerSlot) }}

func getSlot(opts []grpc.CallOption) *trailerSlot {
	s := trailerSlots.Get().(*trailerSlot)
	s.opts = append(append(s.opts[:0], opts...), grpc.Trailer(&s.md))
	return s
}

func (s *trailerSlot) put() {
	clear(s.opts) // nothing of the caller's is kept
	s.opts, s.md = s.opts[:0], nil
	trailerSlots.Put(s)
}

// stoppedError is the error of a call whose retries gave up, or that its
// server said not to retry: the server's own status error, as the caller
// gets it when the policies end a call on a failure (see
// UnaryClientInterceptor), and, behind it for errors.Is and errors.As,
// the policies' error, so that resilience.GaveUp sees it and a server
// handing it on tells its own clients (UnaryServerHopInterceptor).
type stoppedError struct {
	err    error // the server's
	policy error // the policies'
}

func (e *stoppedError) Error() string              { return e.err.Error() }
func (e *stoppedError) GRPCStatus() *status.Status { return status.Convert(e.err) }
func (e *stoppedError) Unwrap() []error            { return []error{e.err, e.policy} }
