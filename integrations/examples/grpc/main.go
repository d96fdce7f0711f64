// Run: cd integrations && go run ./examples/grpc
//
// A real grpc-go client and server on 127.0.0.1 (the interop TestService):
// the client is guarded by the gRPC preset through resilgrpc.DialOptions,
// the server's handlers by a bulkhead. What it shows, and counts on the
// server: the first unary call meets Unavailable once and the guard
// retries it (2 calls reach the server); a NotFound is an answer, neither
// retried nor counted against the breaker (1 call); a server stream that
// fails before its first message is opened again by the guard (2 streams).
//
// DialOptions also turns grpc-go's own retry off (grpc.WithDisableRetry):
// the client here has a service config, as a name resolver may hand one
// over, that makes up to 5 attempts of a call failing with UNAVAILABLE;
// with the interceptors alone, each attempt of the guard could be 5 on
// the server. The server counts the attempts that grpc-go marks as its
// own retries: none.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"github.com/resilience-go/resilience/presets"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

type service struct {
	testgrpc.UnimplementedTestServiceServer
	unary, streams atomic.Int32
	grpcRetries    atomic.Int32 // attempts grpc-go sent as retries of its own
}

// countRetries counts an attempt that grpc-go's retry sent again: it
// carries the grpc-previous-rpc-attempts header.
func (s *service) countRetries(ctx context.Context) {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("grpc-previous-rpc-attempts")) > 0 {
		s.grpcRetries.Add(1)
	}
}

func (s *service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.countRetries(ctx)
	switch n := s.unary.Add(1); {
	case n == 1:
		return nil, status.Error(codes.Unavailable, "restarting")
	case string(req.GetPayload().GetBody()) == "nobody":
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *service) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	s.countRetries(stream.Context())
	if s.streams.Add(1) == 1 {
		return status.Error(codes.Unavailable, "restarting")
	}
	for i := range 3 {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte{byte('a' + i)}}}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	// The server, shedding load past 100 calls at once.
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "test-service", MaxConcurrent: 100})
	if err != nil {
		log.Fatal(err)
	}
	unaryShed, err := resilgrpc.UnaryServerInterceptor(bulkhead)
	if err != nil {
		log.Fatal(err)
	}
	streamShed, err := resilgrpc.StreamServerInterceptor(bulkhead)
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &service{}
	gs := grpc.NewServer(grpc.UnaryInterceptor(unaryShed), grpc.StreamInterceptor(streamShed))
	testgrpc.RegisterTestServiceServer(gs, srv)
	go gs.Serve(lis)
	defer gs.Stop()

	// The client: one Guard for the backend, for unary calls and streams,
	// and grpc-go's own retry off, whatever the service config says.
	guard := presets.GRPC()
	opts, err := resilgrpc.DialOptions(guard)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), append(opts,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(retryingServiceConfig))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx := context.Background()

	resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ada")}})
	fmt.Printf("UnaryCall(ada): %q, err %v, after %d calls to the server\n", resp.GetPayload().GetBody(), err, srv.unary.Load())

	_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("nobody")}})
	fmt.Printf("UnaryCall(nobody): code %v, after %d calls: not retried, breaker %v\n", status.Code(err), srv.unary.Load(), guard.Breaker().State())

	s, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		log.Fatal(err)
	}
	var got []byte
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		got = append(got, m.GetPayload().GetBody()...)
	}
	fmt.Printf("StreamingOutputCall: %q, on the %d streams opened\n", got, srv.streams.Load())
	fmt.Printf("attempts sent again by grpc-go's own retry: %d\n", srv.grpcRetries.Load())
}

// retryingServiceConfig asks grpc-go to retry every call that fails with
// UNAVAILABLE, up to 5 attempts: DialOptions keeps it from doing so.
const retryingServiceConfig = `{"methodConfig": [{"name": [{}], "retryPolicy": {
	"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.1s",
	"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`
