package resilgrpc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/resilience-go/resilience"
)

// A chaos interceptor inside the guard's: a made-up UNAVAILABLE is what a
// real one is to the guard: retried, and each attempt counted on the wire;
// a call fails only when every attempt got one. A nil chaos stage is an
// error, not a panic.
func TestChaosInterceptorUnderTheGuard(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	g := guard(t, 2, 1000)
	g.Breaker().Disable()
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.5, Seed: 3, Err: status.Error(codes.Unavailable, "chaos")}))
	unary := must(UnaryClientInterceptor(g))
	conn := must(grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary, ChaosUnaryClientInterceptor(chaos))))
	t.Cleanup(func() { conn.Close() })
	c := testgrpc.NewTestServiceClient(conn)
	const calls = 200
	failed := 0
	for range calls {
		if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("a failed call: %v, want the made-up Unavailable", err)
			}
			failed++
		}
	}
	injected := int(chaos.Stats().Calls[1].N)
	if srv.count()+failed != calls || injected < 100 || injected > 250 || failed == 0 || failed > 50 {
		t.Errorf("%d calls: %d reached the server, %d failed every attempt, %d faults injected", calls, srv.count(), failed, injected)
	}
	if w := Wire(g).Stats().Calls; w[0].N != calls || w[1].N != uint64(srv.count()+injected) {
		t.Errorf("wire %+v; want %d calls and an attempt for each faulted or served", w, calls)
	}
	t.Logf("%d calls: %d attempts faulted and retried, %d calls failed every attempt", calls, injected, failed)

	nilConn := must(grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(ChaosUnaryClientInterceptor(nil)), grpc.WithChainStreamInterceptor(ChaosStreamClientInterceptor(nil))))
	t.Cleanup(func() { nilConn.Close() })
	nc := testgrpc.NewTestServiceClient(nilConn)
	if _, err := nc.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err == nil {
		t.Error("a nil chaos stage: no error")
	}
	if _, err := nc.FullDuplexCall(t.Context()); err == nil {
		t.Error("a nil chaos stage, stream: no error")
	}
}

// The stream interceptor: at rate 1 every stream fails to open with the
// made-up status, and none reaches the server.
func TestChaosStreamInterceptor(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: status.Error(codes.ResourceExhausted, "chaos")}))
	conn := must(grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainStreamInterceptor(ChaosStreamClientInterceptor(chaos))))
	t.Cleanup(func() { conn.Close() })
	_, err := testgrpc.NewTestServiceClient(conn).FullDuplexCall(t.Context())
	if status.Code(err) != codes.ResourceExhausted || srv.count() != 0 {
		t.Errorf("stream at rate 1: %v, %d reached the server", err, srv.count())
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// Injected latency (NoError) longer than a per-attempt limit is what a
// slow server is: each attempt cut by the limit is retried (3 attempts),
// and a caller's deadline that ends the wait gives DeadlineExceeded.
// (Before, the bare context error read as code Unknown, never retried.)
func TestChaosLatencyIsASlowServer(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	g := guard(t, 2, 1000, func(p *resilience.Preset) {
		p.AttemptTimeout = &resilience.TimeoutConfig{Duration: 30 * time.Millisecond}
	})
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, NoError: true, Latency: time.Second}))
	unary := must(UnaryClientInterceptor(g))
	conn := must(grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary, ChaosUnaryClientInterceptor(chaos))))
	t.Cleanup(func() { conn.Close() })
	_, err := testgrpc.NewTestServiceClient(conn).UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	w := Wire(g).Stats().Calls
	t.Logf("err %v (code %v), wire %+v, chaos %+v", err, status.Code(err), w, chaos.Stats().Calls)
	if w[1].N != 3 {
		t.Errorf("attempts %d, want 3 (a slow attempt cut by the per-attempt limit is retried)", w[1].N)
	}

	// Without a guard: the caller's deadline ends the latency.
	conn2 := must(grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(ChaosUnaryClientInterceptor(chaos))))
	t.Cleanup(func() { conn2.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn2).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("caller deadline during chaos latency: %v, code %v; a real call gives DeadlineExceeded", err, status.Code(err))
	}
}
