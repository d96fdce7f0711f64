// Run: cd integrations && go run ./examples/grpc
//
// A gRPC client guarded by the gRPC preset through resilgrpc's
// interceptors, against a TestService on 127.0.0.1 whose handlers are
// guarded by a server-side bulkhead. The first unary call meets
// Unavailable once and is retried; a NotFound is an answer, neither
// retried nor counted against the breaker; a server stream that fails
// before its first message is opened again.
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
	"google.golang.org/grpc/status"
)

type service struct {
	testgrpc.UnimplementedTestServiceServer
	unary, streams atomic.Int32
}

func (s *service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	switch n := s.unary.Add(1); {
	case n == 1:
		return nil, status.Error(codes.Unavailable, "restarting")
	case string(req.GetPayload().GetBody()) == "nobody":
		return nil, status.Error(codes.NotFound, "no such user")
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (s *service) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
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

	// The client: one Guard for the backend, shared by both interceptors.
	guard := presets.GRPC()
	unary, err := resilgrpc.UnaryClientInterceptor(guard)
	if err != nil {
		log.Fatal(err)
	}
	stream, err := resilgrpc.StreamClientInterceptor(guard)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream))
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
}
