package resilgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/resilience-go/resilience"
)

var errNilChaos = errors.New("resilgrpc: chaos interceptor: the chaos stage is nil")

// ChaosUnaryClientInterceptor returns an interceptor that injects the
// faults of chaos into unary calls as the wire would bring them: chain it
// inside the guard's interceptor (after it, in grpc.WithChainUnaryInterceptor),
// with ChaosConfig.Err a status error (status.Error(codes.Unavailable,
// "...")), and the guard's interceptor sees a faulted call as one the
// server answered so: classified, retried, counted by the breaker and on
// the wire as a real one. (A made-up grpc-retry-pushback-ms trailer is
// not injected: the error alone is.) A faulted call waits chaos's
// Latency first, and one whose deadline ends during the wait gets
// DeadlineExceeded, as a slow server's call would; with NoError it is
// then sent, late. The rest are sent untouched.
func ChaosUnaryClientInterceptor(chaos *resilience.Chaos) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if chaos == nil {
			return errNilChaos
		}
		sent := false
		err := chaos.Run(ctx, func(ctx context.Context) error {
			sent = true
			return invoker(ctx, method, req, reply, cc, opts...)
		})
		return asStatus(err, sent)
	}
}

// asStatus returns err as gRPC returns it: a context's error that ended a
// call during its injected latency, before it was sent, as the status
// gRPC gives such a call (DeadlineExceeded, Canceled).
func asStatus(err error, sent bool) error {
	if err == nil || sent {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return status.FromContextError(err).Err()
	}
	return err
}

// ChaosStreamClientInterceptor is ChaosUnaryClientInterceptor for
// streams: a faulted stream fails to open with chaos's error.
func ChaosStreamClientInterceptor(chaos *resilience.Chaos) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if chaos == nil {
			return nil, errNilChaos
		}
		var s grpc.ClientStream
		sent := false
		err := chaos.Run(ctx, func(ctx context.Context) error {
			sent = true
			var err error
			s, err = streamer(ctx, desc, cc, method, opts...)
			return err
		})
		return s, asStatus(err, sent)
	}
}
