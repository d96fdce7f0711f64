package resilgrpc

import (
	"context"
	"net"
	"testing"

	"github.com/resilience-go/resilience/presets"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// The cost of the unary interceptor on a call that succeeds at once, with
// an invoker that does no I/O.
func BenchmarkUnaryInterceptor(b *testing.B) {
	unary, err := UnaryClientInterceptor(presets.GRPC())
	if err != nil {
		b.Fatal(err)
	}
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := invoker(ctx, "/svc/M", nil, nil, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := unary(ctx, "/svc/M", nil, nil, nil, invoker); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Over loopback, to a real grpc-go server: what the interceptor adds to a
// call that crosses a socket.
func BenchmarkUnaryLoopback(b *testing.B) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &server{})
	go gs.Serve(lis)
	defer gs.Stop()
	unary, err := UnaryClientInterceptor(presets.GRPC())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opts []grpc.DialOption
	}{{"direct", nil}, {"guarded", []grpc.DialOption{grpc.WithUnaryInterceptor(unary)}}} {
		b.Run(bc.name, func(b *testing.B) {
			conn, err := grpc.NewClient(lis.Addr().String(),
				append(bc.opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			c := testgrpc.NewTestServiceClient(conn)
			req := &testgrpc.SimpleRequest{}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.UnaryCall(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
