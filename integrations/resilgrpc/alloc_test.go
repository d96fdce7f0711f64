//go:build !race

package resilgrpc

// Allocation counts mean nothing under the race detector, which allocates
// (and empties sync.Pools): these tests are built without it, and CI runs
// them so (.ci/run, the integrations step).

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The unary interceptor allocates what it did before it counted attempts
// and asked for trailers: its closure and what the closure shares.
func TestUnaryInterceptorAllocations(t *testing.T) {
	unary, err := UnaryClientInterceptor(newGuard(t, newRetry(t, 2), newBreaker(t)))
	if err != nil {
		t.Fatal(err)
	}
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { unary(ctx, "/svc/M", nil, nil, nil, invoker) }); n > 2 {
		t.Errorf("%v allocations per call, want at most 2", n)
	}
}

// A guard with a KeyedBreaker costs the unary interceptor a fixed number
// of allocations more per call, for a key that has its breaker already:
// the context that carries the key and the key boxed in it (2), and with
// KeyByMethod the key itself, made of the target and the method (3).
func TestUnaryInterceptorKeyedAllocations(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []ClientOption
		want float64
	}{
		{"by target", nil, 2 + 2},
		{"by method", []ClientOption{KeyByMethod()}, 2 + 3},
	} {
		g, _ := keyedGuard(t, 5, newRetry(t, 2))
		unary, err := UnaryClientInterceptor(g, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { unary(ctx, "/svc/M", nil, nil, conn, invoker) }); n != tc.want {
			t.Errorf("keyed %s: %v allocations per call, want %v", tc.name, n, tc.want)
		}
	}
}
