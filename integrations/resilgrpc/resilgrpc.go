// Package resilgrpc guards gRPC clients and servers (google.golang.org/grpc)
// with the policies of package resilience: client interceptors that run
// calls through a Guard, and server interceptors that shed load with a
// Bulkhead or an AdaptiveLimiter.
//
//	opts, err := resilgrpc.DialOptions(presets.GRPC())
//	...
//	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(creds))...)
//
// DialOptions gives the unary and stream client interceptors and turns off
// grpc-go's own retry (grpc.WithDisableRetry), which a service config can
// turn on, from grpc.WithDefaultServiceConfig or the name resolver, under
// the guard: each attempt of the guard would then be up to 5 on the
// server. A client that adds the interceptors itself
// (UnaryClientInterceptor, StreamClientInterceptor) should add
// grpc.WithDisableRetry too.
//
// Any guard will do: a preset, or stages of your choice in the order you
// want, with or without a breaker or a retry. A time limit for each
// attempt goes inside the retry, under the total one:
//
//	guard, err := resilience.NewGuard(resilience.GuardConfig{
//		Name:   "users",
//		Stages: []resilience.Stage{total, retry, breaker, perAttempt},
//	})
//
// One guard may guard the connections to many servers. Give it a
// *resilience.KeyedBreaker and the interceptors key each call and stream
// by its ClientConn's target, so that each server has its breaker: one that fails is cut off, the others go on
// being called. With KeyByMethod the key is the target and the method, so
// that one failing method of a service does not cut off the others:
//
//	opts, err := resilgrpc.DialOptions(guard, resilgrpc.KeyByMethod())
//
// Between services that both use it, each hop says two things, in gRFC
// A6's words. The client interceptors send each retry's count of the
// attempts before it (PreviousAttemptsKey), which the server's hop
// interceptors (ServerOptions) hand to the handler
// (resilience.CallerAttempt). And a handler whose own call to a
// dependency gave up returns that call's error: the hop interceptors
// answer codes.Unavailable with the trailer PushbackKey of -1, which the
// client interceptors calling it never retry. Only the layer right above
// an overloaded service retries it: with two layers that retry twice
// each, a call from the top costs it 3 attempts, not 9.
//
//	srv := grpc.NewServer(resilgrpc.ServerOptions()...)
//
// The priority of a call (resilience.WithPriority) goes along too: the
// client interceptors send it in PriorityMetadataKey, and the server
// interceptors put it in the handler's context, whose own calls through
// the client interceptors send it on, so that an AdaptiveLimiter
// at any hop lets the critical calls through first.
//
// A guard with a *resilience.Hedge hedges only the unary calls marked as
// safe to run twice at once, by method (HedgeMethods) or one by one
// (Hedged), keeping to gRFC A6's rules: each attempt has its own reply,
// the first to answer wins and the others are cancelled, and no hedge is
// sent once a response header has come:
//
//	opts, err := resilgrpc.DialOptions(guard, resilgrpc.HedgeMethods(userspb.Users_Get_FullMethodName))
//
// Wire counts the calls and attempts sent with a guard, for package
// metrics.
package resilgrpc

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// IsFailure reports whether a call that ended with code says the server
// could not serve it: Unavailable, ResourceExhausted and DeadlineExceeded,
// which are worth retrying, and Internal, Unknown and DataLoss, which are
// not. The other codes are answers from a working server (NotFound,
// InvalidArgument, AlreadyExists, PermissionDenied, Unauthenticated,
// FailedPrecondition, Aborted, OutOfRange, Unimplemented): they never
// count against the breaker and are never retried. Canceled is the
// caller's doing and counts for nothing.
func IsFailure(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded,
		codes.Internal, codes.Unknown, codes.DataLoss:
		return true
	}
	return false
}

// IsRetryable reports whether a call that failed with code may be tried
// again: Unavailable, ResourceExhausted or DeadlineExceeded. Internal,
// Unknown and DataLoss are failures that are not retried, since the call
// may have had its effect.
func IsRetryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// classify turns what a call returned into what the policies see: nil for
// an answer from a working server, an error for a failure, marked
// resilience.Overloaded for Unavailable and ResourceExhausted, and
// permanent when it is not worth retrying or the server's pushback says
// not to retry. A pushback wait sets the delay before the next attempt.
func classify(ctx context.Context, err error, pb pushback) error {
	if err == nil {
		return nil
	}
	code := status.Code(err)
	switch {
	case code == codes.Canceled && ctx.Err() != nil:
		return &outcome.Failure{Err: err, CtxErr: ctx.Err()}
	case !IsFailure(code):
		return nil
	}
	var f error = &outcome.Failure{Err: err}
	if code == codes.Unavailable || code == codes.ResourceExhausted {
		f = resilience.Overloaded(f)
	}
	switch {
	case pb.ok && !pb.retry:
		return resilience.Permanent(&outcome.NoRetry{Err: f})
	case !IsRetryable(code):
		return resilience.Permanent(f)
	case pb.ok:
		return resilience.RetryAfter(f, pb.wait)
	}
	return f
}

// PolicyError is the error of a call that the policies ended: cut by a
// time limit (codes.DeadlineExceeded), or refused by a stage that admits
// calls, such as an open breaker or a full bulkhead (codes.Unavailable).
// status.Code and status.FromError read its code, and errors.Is matches
// it against resilience.ErrTimeout, or resilience.ErrRejected and the
// stage's own sentinel (ErrOpen, ErrBulkheadFull). An open breaker's
// error, reached with errors.As, is a *resilience.OpenError, whose
// RetryAfter says when the breaker will let a probe through.
type PolicyError struct {
	// Code is the gRPC code the caller sees: codes.DeadlineExceeded for a
	// time limit, and codes.Unavailable for every rejection (ErrRejected:
	// a breaker, a bulkhead, a limiter of your own), which says that the
	// call did not run and may be tried elsewhere or later. A full
	// bulkhead gets Unavailable too rather than ResourceExhausted, which
	// clients often read as a quota that will not come back soon. The
	// server interceptors answer an AdaptiveLimiter's rejection with
	// ResourceExhausted, and a PushbackKey trailer that says when to come
	// back (see UnaryServerInterceptor).
	Code codes.Code
	// Err is the error the policies returned: a *resilience.TimeoutError,
	// or a rejection such as a *resilience.OpenError or a
	// *resilience.BulkheadFullError, possibly inside the
	// *resilience.RetryError of a retry that stopped on it.
	Err error
}

// Error formats the error as a gRPC status error does,
// "rpc error: code = Unavailable desc = ...", with Err's text as the
// description; a nil Err, as in the zero PolicyError, gives an empty one.
func (e *PolicyError) Error() string {
	return "rpc error: code = " + e.Code.String() + " desc = " + e.desc()
}

func (e *PolicyError) desc() string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

// Unwrap returns Err, so that errors.Is and errors.As reach the policies'
// error and the sentinels it matches.
func (e *PolicyError) Unwrap() error { return e.Err }

// GRPCStatus returns the error as a gRPC status: Code, with Error's
// description as its message. When the policies know when a call may
// succeed again (an open breaker's next probe), the status carries it as a
// google.rpc.RetryInfo detail, gRPC's Retry-After, which a server's
// interceptor hands on to its clients.
func (e *PolicyError) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.desc())
	var oe *resilience.OpenError
	if errors.As(e.Err, &oe) {
		if d := oe.RetryAfter(); d > 0 {
			if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); err == nil {
				return withInfo
			}
		}
	}
	return st
}

// result is what the caller gets: the call's own error when the policies
// ran it to the end, or theirs as a *PolicyError. A call whose retries
// gave up, or that its server said not to retry, gets the call's own
// error with the policies' behind it (a *stoppedError).
func result(err, answered error) error {
	out := outcome.Result(err, answered)
	switch {
	case errors.Is(out, resilience.ErrTimeout):
		return &PolicyError{Code: codes.DeadlineExceeded, Err: out}
	case errors.Is(out, resilience.ErrRejected):
		return &PolicyError{Code: codes.Unavailable, Err: out}
	}
	if err != nil && outcome.DontRetry(err) && isFailure(err) { // and out is the Failure's Err
		return &stoppedError{err: out, policy: err}
	}
	return out
}

// isFailure reports whether err is a failed attempt's, or wraps one.
func isFailure(err error) bool {
	var f *outcome.Failure
	return errors.As(err, &f)
}

// checkBulkhead refuses a nil bulkhead, and one not made by
// NewBulkhead, which has no slots and would refuse every call.
func checkBulkhead(fn string, b *resilience.Bulkhead) error {
	if b == nil {
		return errors.New("resilgrpc: " + fn + ": the bulkhead is nil")
	}
	if b.MaxConcurrent() <= 0 {
		return errors.New("resilgrpc: " + fn + ": the bulkhead has no slots: make it with resilience.NewBulkhead")
	}
	return nil
}

// checkGuard refuses a nil or zero guard, and one with a time limit that
// abandons calls; any other guard will do.
func checkGuard(fn string, g *resilience.Guard) error {
	return outcome.Check("resilgrpc", fn+": the guard", g)
}

// UnaryClientInterceptor returns an interceptor that runs unary calls
// through every stage of g, in order: its time limits, retries, breakers,
// bulkheads and stages of your own, with the codes classified as
// IsFailure and IsRetryable say. A time limit inside the retry bounds
// each attempt, and an attempt it cuts (DeadlineExceeded) is tried again
// within the total limit. A call that must not be sent twice is made with
// resilience.AtMostOnce(ctx): no stage repeats it, whatever failed.
//
// Unavailable and ResourceExhausted are marked resilience.Overloaded as
// well, for the stages that count the answers of an overloaded server (an
// adaptive throttler); errors.Is and errors.As see through the mark, and
// retrying and counting are as for any failure. A failure whose trailer
// PushbackKey is -1 is permanent: never retried, counted by the breaker.
// Each retry carries PreviousAttemptsKey. A call whose context carries a
// priority (resilience.WithPriority) carries it in PriorityMetadataKey,
// unless its outgoing metadata has that key already; a call without one
// carries none, at no cost. The calls and the attempts handed to grpc-go
// are counted in the guard's Wire.
//
// A call the policies end returns a *PolicyError; otherwise the call's own
// error comes back: as it was, or, when the guard's retry gave up on it
// or the server said not to retry it, with the guard's error behind it,
// for resilience.GaveUp and errors.Is (its text, and the status that
// status.FromError and status.Code read, are the server's). A server that
// returns it from a handler under UnaryServerHopInterceptor tells its own
// clients not to retry. It returns an error if g is nil, the zero
// Guard, or has a time limit that abandons calls (TimeoutConfig.Abandon).
//
// When g has a *resilience.KeyedBreaker (g.KeyedBreaker() is not nil),
// each call is keyed with resilience.WithKey, for the guard's stages, by
// its ClientConn's target (cc.Target(), the string given to
// grpc.NewClient), or by its target and method with KeyByMethod: a
// failing server, or a failing method, opens its own breaker and the
// others go on being called. The key replaces any the caller's context
// carries, which is some other dependency's. It costs two allocations per
// call (the context and the key in it), three with KeyByMethod; a guard
// without a KeyedBreaker pays nothing for it, and a resilience.Keyed
// family in it (a limit per tenant) sees the key the caller's context
// carries. The key is the target, not
// the address of the server behind it, which gRPC's load balancer picks
// after the interceptor has run: to set aside one bad backend among those
// a target resolves to, use gRPC's outlier detection.
//
// When g has a *resilience.Hedge, only the calls that HedgeMethods or
// Hedged mark are hedged, each attempt into a reply of its own and over a
// stream of its own that commits the call when its response header
// arrives (see HedgeMethods for what that costs and changes); every other
// call runs under resilience.Unhedged, so that the Hedge runs it once,
// and is retried as before. It returns an error if an option was given
// something it cannot use (a name HedgeMethods cannot read).
func UnaryClientInterceptor(g *resilience.Guard, opts ...ClientOption) (grpc.UnaryClientInterceptor, error) {
	if err := checkGuard("UnaryClientInterceptor", g); err != nil {
		return nil, err
	}
	o := newClientOptions(opts)
	if o.err != nil {
		return nil, o.err
	}
	wire := outcome.WireOf(g)
	keyed := g.KeyedBreaker() != nil
	hedge := outcome.Hedge(g) != nil
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx = outgoingPriority(ctx)
		if keyed {
			ctx = resilience.WithKey(ctx, o.key(cc, method))
		}
		if hedge {
			if m, ok := o.hedgeable(method, reply, cc, opts); ok && !resilience.IsUnhedged(ctx) {
				return hedgedCall(ctx, g, wire, method, req, m, cc, opts)
			}
			// Attempts that write into the caller's reply one after
			// another, never two at once.
			ctx = resilience.Unhedged(ctx)
		}
		var c struct {
			answered error // the last attempt's
			sent     int   // attempts handed to invoker
		}
		_, err := outcome.Run(ctx, g, false, func(ctx context.Context) (struct{}, error) {
			c.sent++
			wire.Sent(c.sent)
			ctx = withPreviousAttempts(ctx, resilience.Attempt(ctx))
			slot := getSlot(opts)
			err := invoker(ctx, method, req, reply, cc, slot.opts...)
			var pb pushback
			if err != nil {
				pb = readPushback(slot.md)
			}
			if ctx.Err() == nil {
				// An invoker that returned when the context ended may have
				// left work behind that writes the trailer later: that slot
				// is left to the collector, not handed to another call.
				slot.put()
			}
			c.answered = err
			return struct{}{}, classify(ctx, err, pb)
		})
		if c.sent == 0 {
			wire.Unsent()
		}
		return result(err, c.answered)
	}, nil
}

// PriorityMetadataKey is the metadata key that carries a call's priority
// from hop to hop: "critical", "default" or "sheddable", as
// resilience.ParsePriority reads it. The client interceptors
// (UnaryClientInterceptor, StreamClientInterceptor) send the
// priority of the call's context (resilience.WithPriority) in it, unless
// the caller's outgoing metadata has one already, and the server
// interceptors (UnaryServerInterceptor, StreamServerInterceptor) put it
// in the handler's context, where an AdaptiveLimiter reads it.
//
// The metadata is the client's word. A server open to clients it does not
// trust sets or strips it in an interceptor of its own, chained before
// the server interceptors, from what it trusts (the caller's identity,
// the method); a priority that such an interceptor puts in the call's
// context with resilience.WithPriority wins over the metadata.
const PriorityMetadataKey = "resilience-priority"

// UnaryServerInterceptor returns an interceptor that runs each call's
// handler through the stage s: a *resilience.Bulkhead, a
// *resilience.AdaptiveLimiter, or any stage that admits calls (a breaker,
// a rate limiter, a guard of them).
//
// With a Bulkhead, a call that gets no slot within the bulkhead's MaxWait
// is answered at once with codes.Unavailable, as every rejection is (see
// PolicyError), which clients retry with backoff. With an
// AdaptiveLimiter, a call waits in the limiter's line, by priority, up to
// its MaxWait; the limiter times the handlers it admits (a sample of them,
// once they are many), from the slot taken to the handler's return, and
// moves its limit by that latency. A call that gets no slot is answered with
// codes.ResourceExhausted and the trailer PushbackKey, the limiter's
// estimate of when a slot frees (LimitExceededError.RetryAfter) in whole
// milliseconds, at least 1, which the client interceptors of this
// package, and grpc-go's own retry, wait before they retry. A slot is
// given back when the handler returns. A call whose context ends while it
// waits gets the context's code (Canceled, DeadlineExceeded).
//
// Any other stage runs the handler as its call, with the context the
// stage gives it, and sees the handler's error. A call the stage refused
// without running the handler gets codes.Unavailable, with the stage's
// error behind it (a *PolicyError); one it failed otherwise, the stage's
// status, or its context's code, or codes.Unavailable. The stage must run
// its call at most once, on the call's goroutine, and not return before
// the call has: not a retry, a hedge, or a time limit that abandons calls.
//
// A call whose metadata has a PriorityMetadataKey of "critical", "default"
// or "sheddable" runs with that priority in its context
// (resilience.WithPriority), for the AdaptiveLimiter and for the handler,
// whose calls through the client interceptors send it on. An unknown
// value is ignored, and so is the metadata when the call's context
// carries a priority already, from an interceptor chained before this
// one (see PriorityMetadataKey).
//
// It returns an error if s is nil, or a Bulkhead or AdaptiveLimiter that
// was not made by resilience.NewBulkhead or resilience.NewAdaptiveLimiter.
func UnaryServerInterceptor(s resilience.Stage) (grpc.UnaryServerInterceptor, error) {
	if err := checkStage("UnaryServerInterceptor", s); err != nil {
		return nil, err
	}
	switch st := s.(type) {
	case *resilience.Bulkhead:
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ctx, _ = incomingPriority(ctx)
			if err := st.Acquire(ctx); err != nil {
				return nil, shedError(err)
			}
			defer st.Release()
			return handler(ctx, req)
		}, nil
	case *resilience.AdaptiveLimiter:
		return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			ctx, _ = incomingPriority(ctx)
			p, err := st.Acquire(ctx)
			if err != nil {
				if md, ok := limitPushback(err); ok {
					grpc.SetTrailer(ctx, md)
				}
				return nil, limitError(err)
			}
			defer p.Release()
			return handler(ctx, req)
		}, nil
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _ = incomingPriority(ctx)
		var (
			resp any
			herr error
			ran  bool
		)
		err := s.Run(ctx, func(ctx context.Context) error {
			ran = true
			resp, herr = handler(ctx, req)
			return herr
		})
		if ran {
			return resp, herr
		}
		return nil, stageError(err)
	}, nil
}

// StreamServerInterceptor is UnaryServerInterceptor for streams: a stream
// holds its slot until its handler returns, and the stream's context
// carries the priority its metadata gives.
func StreamServerInterceptor(s resilience.Stage) (grpc.StreamServerInterceptor, error) {
	if err := checkStage("StreamServerInterceptor", s); err != nil {
		return nil, err
	}
	switch st := s.(type) {
	case *resilience.Bulkhead:
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, set := incomingPriority(ss.Context())
			if set {
				ss = &hopStream{ServerStream: ss, ctx: ctx}
			}
			if err := st.Acquire(ctx); err != nil {
				return shedError(err)
			}
			defer st.Release()
			return handler(srv, ss)
		}, nil
	case *resilience.AdaptiveLimiter:
		return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, set := incomingPriority(ss.Context())
			if set {
				ss = &hopStream{ServerStream: ss, ctx: ctx}
			}
			p, err := st.Acquire(ctx)
			if err != nil {
				if md, ok := limitPushback(err); ok {
					ss.SetTrailer(md)
				}
				return limitError(err)
			}
			defer p.Release()
			return handler(srv, ss)
		}, nil
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, _ := incomingPriority(ss.Context())
		var herr error
		ran := false
		err := s.Run(ctx, func(ctx context.Context) error {
			ran = true
			herr = handler(srv, &hopStream{ServerStream: ss, ctx: ctx})
			return herr
		})
		if ran {
			return herr
		}
		return stageError(err)
	}, nil
}

// checkStage refuses a nil stage, and a bulkhead or limiter not made by
// its constructor, which would refuse every call.
func checkStage(fn string, s resilience.Stage) error {
	switch st := s.(type) {
	case nil:
		return errors.New("resilgrpc: " + fn + ": the stage is nil: give it a bulkhead, an adaptive limiter or another stage")
	case *resilience.Bulkhead:
		return checkBulkhead(fn, st)
	case *resilience.AdaptiveLimiter:
		if st == nil {
			return errors.New("resilgrpc: " + fn + ": the adaptive limiter is nil")
		}
		if st.Limit() <= 0 {
			return errors.New("resilgrpc: " + fn + ": the adaptive limiter has no limit: make it with resilience.NewAdaptiveLimiter")
		}
		return nil
	}
	if v := reflect.ValueOf(s); v.Kind() == reflect.Pointer && v.IsNil() {
		return fmt.Errorf("resilgrpc: %s: the stage is a nil %T", fn, s)
	}
	return nil
}

// incomingPriority returns ctx with the priority its incoming metadata
// gives (PriorityMetadataKey), and true, unless the metadata has none or
// an unknown one, or ctx has a priority already.
func incomingPriority(ctx context.Context) (context.Context, bool) {
	vs := metadata.ValueFromIncomingContext(ctx, PriorityMetadataKey) // nil, and no allocation, when absent
	if len(vs) == 0 {
		return ctx, false
	}
	if _, set := resilience.PriorityIn(ctx); set {
		return ctx, false
	}
	p, err := resilience.ParsePriority(vs[0])
	if err != nil {
		return ctx, false
	}
	return resilience.WithPriority(ctx, p), true
}

// outgoingPriority returns ctx with the priority it carries
// (resilience.PriorityIn) in its outgoing metadata, unless it carries
// none or the metadata has a PriorityMetadataKey already.
func outgoingPriority(ctx context.Context) context.Context {
	p, ok := resilience.PriorityIn(ctx)
	if !ok || len(metadata.ValueFromOutgoingContext(ctx, PriorityMetadataKey)) != 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, PriorityMetadataKey, p.String())
}

func shedError(err error) error {
	if errors.Is(err, resilience.ErrRejected) {
		return &PolicyError{Code: codes.Unavailable, Err: err}
	}
	return status.FromContextError(err).Err()
}

// limitError is the error of a call an AdaptiveLimiter did not admit:
// ResourceExhausted for its rejection, the context's code for a call
// whose context ended while it waited.
func limitError(err error) error {
	if errors.Is(err, resilience.ErrRejected) {
		return &PolicyError{Code: codes.ResourceExhausted, Err: err}
	}
	return status.FromContextError(err).Err()
}

// limitPushback is the trailer of a call an AdaptiveLimiter rejected with
// err: PushbackKey, the limiter's wait in whole milliseconds, rounded up,
// at least 1.
func limitPushback(err error) (metadata.MD, bool) {
	var le *resilience.LimitExceededError
	if !errors.As(err, &le) {
		return nil, false
	}
	d := le.RetryAfter()
	ms := int64(1)
	if d > time.Millisecond {
		ms = int64(d / time.Millisecond)
		if d%time.Millisecond != 0 {
			ms++
		}
	}
	return metadata.Pairs(PushbackKey, strconv.FormatInt(ms, 10)), true
}

// stageError is the error of a call that a stage of the server
// interceptors did not run: its rejection as a *PolicyError, with
// codes.Unavailable; a status the stage gave; its context's code; or
// codes.Unavailable for any other failure.
func stageError(err error) error {
	switch {
	case err == nil:
		return status.Error(codes.Unavailable, "resilgrpc: the stage did not run the handler")
	case errors.Is(err, resilience.ErrRejected):
		return &PolicyError{Code: codes.Unavailable, Err: err}
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unavailable, "resilgrpc: not served: "+err.Error())
}
