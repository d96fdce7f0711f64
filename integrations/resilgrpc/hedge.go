package resilgrpc

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
)

// HedgeMethods marks the unary methods whose calls may be hedged: sent
// again while the first attempt is still running, when the guard holds a
// *resilience.Hedge and the call is slower than its delay. Methods are
// named in full, "/package.Service/Method", as the generated code's
// FullMethodName constants spell them (the leading slash may be left
// out); a name of another shape makes the interceptors' constructors
// fail. Mark only methods that may run twice at once on the server: reads,
// and writes that are idempotent. Hedged marks one call instead.
//
// Every other unary call of a guard with a Hedge runs under
// resilience.Unhedged: the Hedge runs it once, as if it were not there,
// and the guard's retry retries it as before. Streams are never hedged:
// they go through the guard's breaker and retry only (see
// StreamClientInterceptor), so a streaming method named here changes
// nothing. A guard without a Hedge hedges nothing, marked or not.
//
// A hedged call keeps to gRPC's rules for hedging (gRFC A6):
//
//   - Each attempt decodes its answer into a reply of its own, made from
//     the caller's with ProtoReflect().New(); once the guard has returned,
//     the winner's is copied into the caller's reply (proto.Reset, then
//     proto.Merge). An attempt that loses never writes into the caller's
//     reply, not even one whose answer comes after the call has returned.
//     A call whose reply is not a proto.Message is not hedged. The call's
//     grpc.Header, grpc.Trailer and grpc.Peer options get the same care:
//     each attempt fills places of its own, and the caller's get the
//     winner's.
//   - Each hedge carries PreviousAttemptsKey, the number of attempts sent
//     before it: 1 for the first hedge.
//   - An attempt whose response header arrives commits the call to itself
//     (resilience.Commit), since its server has begun to answer: no
//     further hedge is sent, the others are cancelled, and its answer is
//     the call's, whatever it is. An answer that comes without a header
//     (a status alone: gRPC's Trailers-Only) commits nothing, as in gRFC
//     A6: the other attempts go on.
//   - A failure whose PushbackKey is -1 is permanent, which the Hedge
//     takes as the call's answer: the call ends with it at once, the other
//     attempts cancelled. A pushback of N milliseconds goes with the
//     failure as a resilience.RetryAfter hint, for the guard's Retry and
//     its resilience.Pushback stage.
//
// Each hedge is an attempt for the guard's stages inside the Hedge (it
// takes a breaker permit of its own) and is counted as an attempt in the
// guard's Wire.
//
// # What it costs, and what it changes
//
// A unary invoker says nothing of the response header until the call has
// ended, so each attempt of a hedged call is made as grpc-go's own
// invoker makes it, over cc.NewStream with a StreamDesc that says the
// call is unary: SendMsg, then Header, which returns as the header
// arrives, then RecvMsg. For the calls that are hedged, and them alone:
//
//   - The unary interceptors chained after this package's are not run
//     (those before it are); the connection's stream interceptors run
//     instead, seeing a stream whose StreamDesc has neither ClientStreams
//     nor ServerStreams set, and this package's own StreamClientInterceptor
//     hands it on untouched. An interceptor that must see every call (one
//     that adds credentials to the metadata) goes before this package's
//     in the unary chain, or in the stream chain as well. Faults for the
//     hedged calls come from ChaosStreamClientInterceptor, chained after
//     this package's stream interceptor: the guard sees a faulted attempt
//     as a failed one, as it sees ChaosUnaryClientInterceptor's.
//   - The connection's default call options (grpc.WithDefaultCallOptions)
//     are given to each attempt twice, by the interceptor chain and by
//     cc.NewStream: harmless for an option that sets something, but a
//     grpc.OnFinish, grpc.Header, grpc.Trailer or grpc.Peer among them is
//     called, or written, by every attempt, the losers' included. Given to
//     the call itself, a grpc.OnFinish is called once by each attempt, as
//     with retries, and by hedges at the same time.
//   - Each attempt allocates its reply and the options it hands on, and
//     the call copies the winning reply once more.
//
// The calls that are not hedged pay one allocation each in a guard with a
// Hedge, for the context that marks them Unhedged, and are made by the
// invoker as before.
func HedgeMethods(fullMethodNames ...string) ClientOption {
	return func(o *clientOptions) {
		for _, name := range fullMethodNames {
			full := "/" + strings.TrimPrefix(name, "/")
			service, method, ok := strings.Cut(full[1:], "/")
			if !ok || service == "" || method == "" || strings.Contains(method, "/") {
				if o.err == nil {
					o.err = errors.New("resilgrpc: HedgeMethods: " + strconv.Quote(name) + " is not a full method name: want /package.Service/Method")
				}
				continue
			}
			if o.hedged == nil {
				o.hedged = make(map[string]bool)
			}
			o.hedged[full] = true
		}
	}
}

// Hedged returns a call option that marks one unary call as one that may
// be hedged, as HedgeMethods marks every call of a method:
//
//	resp, err := client.Get(ctx, req, resilgrpc.Hedged())
//
// It does nothing for a call whose guard has no *resilience.Hedge, nor for
// a stream, and grpc-go ignores it. A context made by resilience.Unhedged
// or resilience.AtMostOnce wins over it: the call is not hedged. Among the
// connection's default call options (grpc.WithDefaultCallOptions), it
// marks every unary call on the connection.
func Hedged() grpc.CallOption { return hedgedOption{} }

// hedgedOption is the call option of Hedged.
type hedgedOption struct{ grpc.EmptyCallOption }

// hedgeAttemptOption marks the call options of an attempt of a hedged
// call, which the unary interceptor makes over cc.NewStream: the stream
// interceptors of this package hand such a stream on untouched, since
// the unary interceptor guards it already.
type hedgeAttemptOption struct{ grpc.EmptyCallOption }

var hedgeAttempt grpc.CallOption = hedgeAttemptOption{}

// isHedgeAttempt reports whether opts are an attempt's of a hedged call.
func isHedgeAttempt(opts []grpc.CallOption) bool {
	for _, o := range opts {
		if _, ok := o.(hedgeAttemptOption); ok {
			return true
		}
	}
	return false
}

// hedgeable returns the caller's reply of a call that may be hedged: to a
// method marked by HedgeMethods, or with the option Hedged, on a
// ClientConn, with a reply that is a proto.Message.
func (o *clientOptions) hedgeable(method string, reply any, cc *grpc.ClientConn, opts []grpc.CallOption) (proto.Message, bool) {
	if cc == nil {
		return nil, false
	}
	marked := o.hedged[method]
	for i := 0; !marked && i < len(opts); i++ {
		_, marked = opts[i].(hedgedOption)
	}
	if !marked {
		return nil, false
	}
	m, ok := reply.(proto.Message)
	if !ok || !m.ProtoReflect().IsValid() { // a nil *T is no place to copy an answer to
		return nil, false
	}
	return m, true
}

// hedgeAnswer is what one attempt of a hedged call got: its own reply,
// the error its stream returned, and, if the call asked for them, its
// header, trailer and peer.
type hedgeAnswer struct {
	reply   proto.Message
	err     error
	ended   bool // the attempt ran to its end, with its context still open: what follows is written
	header  metadata.MD
	trailer metadata.MD
	peer    *peer.Peer
}

// places are what a call's options ask the attempts to fill.
type places struct{ header, trailer, peer bool }

func placesOf(opts []grpc.CallOption) (p places) {
	for _, o := range opts {
		switch o.(type) {
		case grpc.HeaderCallOption:
			p.header = true
		case grpc.TrailerCallOption:
			p.trailer = true
		case grpc.PeerCallOption:
			p.peer = true
		}
	}
	return p
}

// hedgedCall runs a call that may be hedged through g: each attempt over a
// stream of its own, into a reply of its own, committing the call as its
// header arrives; the winner's reply, header, trailer and peer are the
// caller's once g has returned.
func hedgedCall(ctx context.Context, g *resilience.Guard, wire *outcome.Wire, method string, req any, reply proto.Message, cc *grpc.ClientConn, opts []grpc.CallOption) error {
	want := placesOf(opts)
	var sent atomic.Int32 // attempts handed to grpc-go; hedges count at once
	v, err := outcome.Run(ctx, g, false, func(ctx context.Context) (hedgeAnswer, error) {
		wire.Sent(int(sent.Add(1)))
		ctx = withPreviousAttempts(ctx, resilience.Attempt(ctx))
		a := hedgeAnswer{reply: reply.ProtoReflect().New().Interface()}
		slot := getSlot(opts)
		slot.opts = append(slot.opts, hedgeAttempt)
		var header *metadata.MD
		if want != (places{}) {
			// The caller's places are filled from the winner, once the
			// guard has returned: the attempt fills its own.
			for i, o := range slot.opts[:len(opts)] {
				switch o.(type) {
				case grpc.HeaderCallOption:
					if header == nil {
						header = new(metadata.MD)
					}
					slot.opts[i] = grpc.Header(header)
				case grpc.TrailerCallOption:
					slot.opts[i] = grpc.EmptyCallOption{} // the slot's is read
				case grpc.PeerCallOption:
					if a.peer == nil {
						a.peer = new(peer.Peer)
					}
					slot.opts[i] = grpc.Peer(a.peer)
				}
			}
		}
		err := invokeCommitting(ctx, cc, method, req, a.reply, slot.opts)
		var pb pushback
		if err != nil {
			pb = readPushback(slot.md)
		}
		if ctx.Err() == nil {
			// The stream has ended: what it wrote is written (see
			// trailerSlot).
			a.ended = true
			a.trailer = slot.md // given away: put keeps no reference to it
			if header != nil {
				a.header = *header
			}
			slot.put()
		}
		a.err = err
		return a, classify(ctx, err, pb)
	})
	if sent.Load() == 0 {
		wire.Unsent()
	}
	if err == nil && v.err == nil && v.reply != nil {
		proto.Reset(reply)
		proto.Merge(reply, v.reply)
	}
	if v.ended && want != (places{}) {
		for _, o := range opts {
			switch o := o.(type) {
			case grpc.HeaderCallOption:
				*o.HeaderAddr = v.header
			case grpc.TrailerCallOption:
				*o.TrailerAddr = v.trailer
			case grpc.PeerCallOption:
				if v.peer != nil {
					*o.PeerAddr = *v.peer
				}
			}
		}
	}
	return result(err, v.err)
}

// unaryDesc is the StreamDesc of a unary call, as grpc-go's own invoker
// opens one.
var unaryDesc = &grpc.StreamDesc{}

// invokeCommitting makes one attempt of a unary call as grpc-go's invoker
// does, over a stream, and commits the call to it (resilience.Commit) as
// soon as its response header arrives. Header returns no header for an
// answer that has none (Trailers-Only) or a stream that failed, whose
// error RecvMsg then returns.
func invokeCommitting(ctx context.Context, cc *grpc.ClientConn, method string, req, reply any, opts []grpc.CallOption) error {
	cs, err := cc.NewStream(ctx, unaryDesc, method, opts...)
	if err != nil {
		return err
	}
	if err := cs.SendMsg(req); err != nil {
		return err
	}
	if md, _ := cs.Header(); md != nil {
		resilience.Commit(ctx)
	}
	return cs.RecvMsg(reply)
}
