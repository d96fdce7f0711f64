//go:build !race

package resilgrpc

// Allocation counts mean nothing under the race detector, which allocates
// (and empties sync.Pools): these tests are built without it, and CI runs
// them so (.ci/run, the integrations step).

import (
	"context"
	"testing"

	"google.golang.org/grpc"
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
