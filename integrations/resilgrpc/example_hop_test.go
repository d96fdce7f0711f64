package resilgrpc_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// retryTwice is a guard that retries twice at once, named name.
func retryTwice(name string) *resilience.Guard {
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: 2, NoBackoff: true})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: []resilience.Stage{retry}})
	if err != nil {
		panic(err)
	}
	return guard
}

// healthServer is a health service whose Check is check.
type healthServer struct {
	healthpb.UnimplementedHealthServer
	check func(ctx context.Context) error
}

func (h *healthServer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.check(ctx); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// serveHealth serves check on 127.0.0.1 and returns its address and a
// function that stops it.
func serveHealth(check func(ctx context.Context) error, opts ...grpc.ServerOption) (string, func()) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, &healthServer{check: check})
	go srv.Serve(lis)
	return lis.Addr().String(), srv.Stop
}

// dialGuarded connects to addr through DialOptions(guard).
func dialGuarded(addr string, guard *resilience.Guard) (healthpb.HealthClient, func() error) {
	opts, err := resilgrpc.DialOptions(guard)
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	return healthpb.NewHealthClient(conn), conn.Close
}

// Service A calls B, which is overloaded, with a guard that retries twice.
// A's handler returns the error of its call, and A's server options say
// to A's client, which retries twice too, that A gave up: the client does
// not retry, and B gets 3 attempts for the client's call, not 9. The
// handler knows which attempt of its client it serves.
func ExampleServerOptions() {
	var atB atomic.Int32
	b, stopB := serveHealth(func(context.Context) error {
		atB.Add(1)
		return status.Error(codes.Unavailable, "B is overloaded")
	})
	defer stopB()

	toB, closeB := dialGuarded(b, retryTwice("b"))
	defer closeB()
	a, stopA := serveHealth(func(ctx context.Context) error {
		fmt.Println("A serves attempt", resilience.CallerAttempt(ctx), "of its client") // 0: a first attempt
		_, err := toB.Check(ctx, &healthpb.HealthCheckRequest{})
		return err // B's status; and that A's retries gave up, for the server options
	}, resilgrpc.ServerOptions()...)
	defer stopA()

	toA, closeA := dialGuarded(a, retryTwice("a"))
	defer closeA()
	var trailer metadata.MD
	_, err := toA.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), resilgrpc.PushbackKey+":", trailer[resilgrpc.PushbackKey])
	fmt.Println(atB.Load(), "attempts reached B")
	// Output:
	// A serves attempt 0 of its client
	// Unavailable grpc-retry-pushback-ms: [-1]
	// 3 attempts reached B
}

// Wire counts what a guard sends: here two calls, the second retried
// twice, so four attempts. Package metrics exports it as
// resilience_wire_calls_total and resilience_wire_amplification:
//
//	m.Instrument(guard, resilgrpc.Wire(guard))
func ExampleWire() {
	var calls atomic.Int32
	addr, stop := serveHealth(func(context.Context) error {
		if n := calls.Add(1); n == 2 || n == 3 {
			return status.Error(codes.Unavailable, "restarting")
		}
		return nil
	})
	defer stop()

	guard := retryTwice("health")
	client, closeConn := dialGuarded(addr, guard)
	defer closeConn()
	for range 2 {
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			panic(err)
		}
	}

	wire := resilgrpc.Wire(guard)
	stats := wire.Stats()
	fmt.Println(wire.Kind(), wire.Name())
	for _, c := range stats.Calls {
		fmt.Println(c.Result, c.N)
	}
	fmt.Println(stats.Gauges[0].Name, stats.Gauges[0].Value)
	// Output:
	// wire health
	// call 2
	// attempt 4
	// amplification 2
}
