package resilgrpc_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// HedgeMethods lets the guard's Hedge hedge the calls of Check: the
// server's first call hangs, so the Hedge sends a second after its delay,
// which the server answers. The caller gets that answer, the hanging call
// is cancelled, and the server's hop interceptor tells the hedge's
// handler that it is its caller's second attempt.
func ExampleHedgeMethods() {
	var calls atomic.Int32
	var hedgeAttempt atomic.Int64
	firstCanceled := make(chan struct{})
	firstHangs := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if calls.Add(1) == 1 {
			<-ctx.Done()
			close(firstCanceled)
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		hedgeAttempt.Store(int64(resilience.CallerAttempt(ctx)))
		return handler(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(resilgrpc.UnaryServerHopInterceptor(), firstHangs))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	// Timeout → Hedge → Breaker: a hedge after 50ms, with no budget (the
	// default one, 5% of calls, would refuse the hedge of a first call).
	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "health", Duration: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	hedge, err := resilience.NewHedge(resilience.HedgeConfig{Name: "health", Delay: 50 * time.Millisecond, NoBudget: true})
	if err != nil {
		panic(err)
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "health"})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "health", Stages: []resilience.Stage{total, hedge, breaker}})
	if err != nil {
		panic(err)
	}
	opts, err := resilgrpc.DialOptions(guard, resilgrpc.HedgeMethods(healthpb.Health_Check_FullMethodName))
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err, "after", calls.Load(), "calls to the server")
	<-firstCanceled
	fmt.Println("the first call was cancelled; the hedge was attempt", hedgeAttempt.Load())
	for _, c := range hedge.Stats().Calls {
		if c.Result == "sent" || c.Result == "won" {
			fmt.Println("hedges", c.Result, c.N)
		}
	}
	// Output:
	// SERVING <nil> after 2 calls to the server
	// the first call was cancelled; the hedge was attempt 2
	// hedges sent 1
	// hedges won 1
}

// Hedged marks one call as one the guard's Hedge may hedge, on a
// connection where no method is marked: the server's odd calls hang. The
// call made with Hedged gets the hedge's answer; the same call made
// without it is sent once, and hangs until its deadline.
func ExampleHedged() {
	var calls atomic.Int32
	oddHang := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if calls.Add(1)%2 == 1 {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return handler(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(oddHang))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	hedge, err := resilience.NewHedge(resilience.HedgeConfig{Name: "health", Delay: 50 * time.Millisecond, NoBudget: true})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "health", Stages: []resilience.Stage{hedge}})
	if err != nil {
		panic(err)
	}
	opts, err := resilgrpc.DialOptions(guard)
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}, resilgrpc.Hedged())
	fmt.Println("with Hedged:", resp.GetStatus(), err, "after", calls.Load(), "calls to the server")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("without:", status.Code(err), "after", calls.Load(), "calls")
	// Output:
	// with Hedged: SERVING <nil> after 2 calls to the server
	// without: DeadlineExceeded after 3 calls
}
