package resilgrpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"github.com/resilience-go/resilience/presets"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A client guarded by the gRPC preset through the unary interceptor,
// against gRPC's own health service on 127.0.0.1, whose server sheds load
// with a bulkhead and, to show a retry, fails its first call with
// Unavailable. Unavailable is retried; NotFound is the server's answer,
// neither retried nor counted against the breaker; a call the open breaker
// rejects comes back as a *PolicyError with code Unavailable.
func ExampleUnaryClientInterceptor() {
	// The server: at most 100 calls at once, and a first call that fails.
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "health", MaxConcurrent: 100})
	if err != nil {
		panic(err)
	}
	shed, err := resilgrpc.UnaryServerInterceptor(bulkhead)
	if err != nil {
		panic(err)
	}
	var calls atomic.Int32
	restarting := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if calls.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "restarting")
		}
		return handler(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(shed, restarting))
	healthpb.RegisterHealthServer(srv, health.NewServer()) // reports "" as SERVING
	go srv.Serve(lis)
	defer srv.Stop()

	// The client: one guard for the backend.
	cfg := presets.GRPCConfig()
	cfg.Name = "health"
	cfg.Retry.InitialBackoff = time.Millisecond // the preset waits 100ms before the first retry
	guard, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	unary, err := resilgrpc.UnaryClientInterceptor(guard)
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()

	resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err, "after", calls.Load(), "calls to the server")

	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{Service: "nobody"})
	fmt.Println(status.Code(err), "after", calls.Load(), "calls; breaker", guard.Breaker().State())

	guard.Breaker().ForceOpen()
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	var pe *resilgrpc.PolicyError
	fmt.Println(status.Code(err), errors.As(err, &pe), errors.Is(err, resilience.ErrOpen), "after", calls.Load(), "calls")
	// Output:
	// SERVING <nil> after 2 calls to the server
	// NotFound after 3 calls; breaker closed
	// Unavailable true true after 3 calls
}

// DialOptions guards a connection with its interceptors and turns off
// grpc-go's own retry, here one that a service config asks for: the
// server, always Unavailable, sees the guard's 3 attempts, not 3 times
// the config's 5.
func ExampleDialOptions() {
	var calls atomic.Int32
	down := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return nil, status.Error(codes.Unavailable, "down")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(down))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	cfg := presets.GRPCConfig()
	cfg.Retry.MaxRetries = 2
	cfg.Retry.InitialBackoff = time.Millisecond
	guard, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	opts, err := resilgrpc.DialOptions(guard)
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"methodConfig": [{"name": [{}], "retryPolicy": {
			"maxAttempts": 5, "initialBackoff": "0.001s", "maxBackoff": "0.001s",
			"backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()

	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err), "after", calls.Load(), "calls to the server")
	// Output:
	// Unavailable after 3 calls to the server
}

// KeyByMethod gives each method of a guarded connection a breaker of its
// own, in a guard with a KeyedBreaker: the server's Check fails every
// call, and once Check's breaker has opened, List goes on being called.
func ExampleKeyByMethod() {
	checkDown := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod == healthpb.Health_Check_FullMethodName {
			return nil, status.Error(codes.Unavailable, "down")
		}
		return handler(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(checkDown))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	perKey, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:    "health",
		Breaker: resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Minute},
	})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "health", Stages: []resilience.Stage{perKey}})
	if err != nil {
		panic(err)
	}
	opts, err := resilgrpc.DialOptions(guard, resilgrpc.KeyByMethod())
	if err != nil {
		panic(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	ctx := context.Background()

	for range 3 {
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		fmt.Println("Check:", status.Code(err), errors.Is(err, resilience.ErrOpen))
	}
	_, err = client.List(ctx, &healthpb.HealthListRequest{})
	fmt.Println("List:", err)
	key := lis.Addr().String() + "/grpc.health.v1.Health/"
	check, _ := perKey.Lookup(key + "Check")
	list, _ := perKey.Lookup(key + "List")
	fmt.Println("breakers: Check", check.State(), "List", list.State())
	// Output:
	// Check: Unavailable false
	// Check: Unavailable false
	// Check: Unavailable true
	// List: <nil>
	// breakers: Check open List closed
}

// An adaptive limiter in the server's interceptor, starting at one call
// at a time, in front of gRPC's health service on 127.0.0.1: while a call
// holds the slot, the next is answered at once with ResourceExhausted and
// a trailer that says how long to wait before a retry (the client
// interceptors of this package wait that long), and its handler never
// runs. A call through the client interceptors with a critical priority
// in its context carries it in PriorityMetadataKey, and the server's
// handlers see it.
func ExampleUnaryServerInterceptor_adaptiveLimiter() {
	limiter, err := resilience.NewAdaptiveLimiter(resilience.AdaptiveLimiterConfig{Name: "health", InitialLimit: 1})
	if err != nil {
		panic(err)
	}
	shed, err := resilgrpc.UnaryServerInterceptor(limiter)
	if err != nil {
		panic(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	hold := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		} else {
			fmt.Println("server: a", resilience.PriorityFrom(ctx), "call")
		}
		return handler(ctx, req)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(shed, hold))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	first := make(chan error)
	go func() {
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
		first <- err
	}()
	<-entered // the first call holds the slot

	var trailer metadata.MD
	_, err = client.Check(context.Background(), &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	fmt.Println(status.Code(err), resilgrpc.PushbackKey, trailer.Get(resilgrpc.PushbackKey))
	close(release)
	fmt.Println("the first call:", <-first)

	guard, err := presets.GRPCConfig().Build()
	if err != nil {
		panic(err)
	}
	opts, err := resilgrpc.DialOptions(guard)
	if err != nil {
		panic(err)
	}
	guarded, err := grpc.NewClient(lis.Addr().String(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		panic(err)
	}
	defer guarded.Close()
	ctx := resilience.WithPriority(context.Background(), resilience.PriorityCritical)
	resp, err := healthpb.NewHealthClient(guarded).Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(resp.GetStatus(), err)
	// Output:
	// ResourceExhausted grpc-retry-pushback-ms [1]
	// the first call: <nil>
	// server: a critical call
	// SERVING <nil>
}
