package resilgrpc

import (
	"strings"

	"google.golang.org/grpc"
)

// A ClientOption changes how the client interceptors guard calls. Pass
// the same options to UnaryClientInterceptor and StreamClientInterceptor,
// or once to DialOptions, which hands them to both.
type ClientOption func(*clientOptions)

type clientOptions struct {
	byMethod bool            // key calls by target and method
	hedged   map[string]bool // the methods of HedgeMethods, by full name
	err      error           // an option given something it cannot use
}

// newClientOptions applies opts; an option that was given something it
// cannot use makes the interceptors' constructors fail with o.err.
func newClientOptions(opts []ClientOption) clientOptions {
	var o clientOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// KeyByMethod keys the calls of a guard that has a
// *resilience.KeyedBreaker by their ClientConn's target and their method,
// rather than by the target alone: each method of each target then has a
// breaker of its own, so that one method that fails every call (a handler
// whose own dependency is down) is cut off while the others go on being
// called on the same connection.
//
// The key is the target, a slash and the full method name without its
// leading slash: "dns:///users:443/users.v1.Users/Get". Making it costs one
// allocation per call; without a KeyedBreaker in the guard, KeyByMethod
// does nothing.
//
// The keys are as many as the targets times the methods called on them:
// size KeyedBreakerConfig.MaxKeys above that, and
// KeyedBreakerConfig.MaxEjectedPercent with it in mind: by default at most
// 10% of the keys may be open at once (one, with fewer than 20 keys).
func KeyByMethod() ClientOption {
	return func(o *clientOptions) { o.byMethod = true }
}

// key returns the key of a call to method on cc: cc's target, followed by
// the method if the options key by method. A nil cc, which grpc-go never
// passes, has the target "".
func (o *clientOptions) key(cc *grpc.ClientConn, method string) string {
	var target string
	if cc != nil {
		target = cc.Target()
	}
	if !o.byMethod {
		return target
	}
	return target + "/" + strings.TrimPrefix(method, "/")
}
