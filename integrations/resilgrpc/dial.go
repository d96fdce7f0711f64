package resilgrpc

import (
	"google.golang.org/grpc"

	"github.com/resilience-go/resilience"
)

// DialOptions returns the options that guard a client connection with g:
// the unary and stream client interceptors (as UnaryClientInterceptor and
// StreamClientInterceptor make them, as grpc.WithChainUnaryInterceptor
// and grpc.WithChainStreamInterceptor options: grpc-go runs chained
// interceptors in the order of the options, after one set with
// grpc.WithUnaryInterceptor), and grpc.WithDisableRetry, so that the
// guard's retry is the only one:
//
//	opts, err := resilgrpc.DialOptions(presets.GRPC())
//	...
//	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(creds))...)
//
// grpc-go retries calls itself when the service config has a retryPolicy
// for the method, whether it comes from grpc.WithDefaultServiceConfig or
// from the name resolver (DNS TXT records, xDS): that retry runs inside
// the interceptor, so each attempt of the guard would be up to
// maxAttempts attempts on the server (up to 5), and the guard's breaker
// would count them as one. With grpc.WithDisableRetry, one attempt of the
// guard is one attempt on the server. gRPC's transparent retry, which
// grpc.WithDisableRetry leaves on, resends only an attempt that never
// reached the server's application, once; the guard's Wire does not
// count those (see Wire).
//
// The options opts go to both interceptors: with KeyByMethod, a guard
// with a *resilience.KeyedBreaker keys calls and streams by target and
// method rather than by target alone (see UnaryClientInterceptor); with
// HedgeMethods, a guard with a *resilience.Hedge hedges the unary calls
// of the methods named. One guard may guard many connections: with a
// KeyedBreaker, each target has its breaker.
//
// It returns an error if g is nil, the zero Guard, or has a time limit
// that abandons calls (TimeoutConfig.Abandon), or if an option was given
// something it cannot use.
func DialOptions(g *resilience.Guard, opts ...ClientOption) ([]grpc.DialOption, error) {
	if err := checkGuard("DialOptions", g); err != nil {
		return nil, err
	}
	unary, err := UnaryClientInterceptor(g, opts...)
	if err != nil {
		return nil, err
	}
	stream, err := StreamClientInterceptor(g, opts...)
	if err != nil {
		return nil, err
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(unary),
		grpc.WithChainStreamInterceptor(stream),
		grpc.WithDisableRetry(),
	}, nil
}
