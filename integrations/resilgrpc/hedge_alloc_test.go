//go:build !race

package resilgrpc

import (
	"context"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc"
)

// In a guard with a Hedge, a call that is not hedged costs one allocation
// more than in a guard without: the context that marks it Unhedged.
func TestUnaryInterceptorHedgeAllocations(t *testing.T) {
	h := must(resilience.NewHedge(resilience.HedgeConfig{Delay: time.Second, NoBudget: true}))
	unary, err := UnaryClientInterceptor(newGuard(t, newRetry(t, 2), h, newBreaker(t)), HedgeMethods("/svc/Other"))
	if err != nil {
		t.Fatal(err)
	}
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { unary(ctx, "/svc/M", nil, nil, nil, invoker) }); n != 2+1 {
		t.Errorf("%v allocations per call not hedged, want 3", n)
	}
}
