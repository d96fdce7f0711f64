package resilgrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"

	"github.com/resilience-go/resilience"
)

var errNilChaos = errors.New("resilgrpc: chaos interceptor: the chaos stage is nil")

// ChaosUnaryClientInterceptor returns an interceptor that injects the
// faults of chaos into unary calls as the wire would bring them: chain it
// inside the guard's interceptor (after it, in grpc.WithChainUnaryInterceptor),
// with ChaosConfig.Err a status error (status.Error(codes.Unavailable,
// "..."), a grpc-retry-pushback-ms trailer and all if you like), and the
// guard's interceptor sees a faulted call as one the server answered so:
// classified, retried, counted by the breaker and on the wire as a real
// one. A faulted call waits chaos's Latency first; with NoError it is then
// sent, late. The rest are sent untouched.
func ChaosUnaryClientInterceptor(chaos *resilience.Chaos) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if chaos == nil {
			return errNilChaos
		}
		return chaos.Run(ctx, func(ctx context.Context) error {
			return invoker(ctx, method, req, reply, cc, opts...)
		})
	}
}

// ChaosStreamClientInterceptor is ChaosUnaryClientInterceptor for
// streams: a faulted stream fails to open with chaos's error.
func ChaosStreamClientInterceptor(chaos *resilience.Chaos) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if chaos == nil {
			return nil, errNilChaos
		}
		var s grpc.ClientStream
		err := chaos.Run(ctx, func(ctx context.Context) error {
			var err error
			s, err = streamer(ctx, desc, cc, method, opts...)
			return err
		})
		return s, err
	}
}
