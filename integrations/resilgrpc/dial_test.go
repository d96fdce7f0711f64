package resilgrpc

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// retryConfig is a service config that makes grpc-go retry every
// TestService call that fails with UNAVAILABLE, up to 4 attempts in all.
const retryConfig = `{"methodConfig": [{
	"name": [{"service": "grpc.testing.TestService"}],
	"retryPolicy": {
		"maxAttempts": 4,
		"initialBackoff": "0.001s",
		"maxBackoff": "0.001s",
		"backoffMultiplier": 1,
		"retryableStatusCodes": ["UNAVAILABLE"]
	}
}]}`

// attempts is a TestService that fails every call with Unavailable and
// counts the attempts that reach it, and those that grpc-go marked as its
// own retries (the grpc-previous-rpc-attempts header).
type attempts struct {
	testgrpc.UnimplementedTestServiceServer
	calls, retried chan struct{}
}

func (s *attempts) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.calls <- struct{}{}
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("grpc-previous-rpc-attempts")) > 0 {
		s.retried <- struct{}{}
	}
	return nil, status.Error(codes.Unavailable, "down")
}

func (s *attempts) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	_, err := s.UnaryCall(stream.Context(), nil)
	return err
}

// Under a service config whose retry policy retries UNAVAILABLE, grpc-go
// retries inside the interceptor: with the options of DialOptions, one
// attempt of the guard is one attempt on the server, for unary calls and
// streams; with the interceptors alone, each guard attempt is 4.
func TestDialOptionsLeaveTheRetryToTheGuard(t *testing.T) {
	srv := &attempts{calls: make(chan struct{}, 100), retried: make(chan struct{}, 100)}
	lis := startService(t, srv)
	count := func(c chan struct{}) int {
		n := 0
		for {
			select {
			case <-c:
				n++
			default:
				return n
			}
		}
	}
	const retries = 2 // the guard's: 3 attempts
	for _, tc := range []struct {
		name    string
		opts    func(t *testing.T) []grpc.DialOption
		perCall int
	}{
		{"DialOptions", func(t *testing.T) []grpc.DialOption {
			opts, err := DialOptions(guard(t, retries, 100))
			if err != nil {
				t.Fatal(err)
			}
			return opts
		}, retries + 1},
		{"interceptors alone", func(t *testing.T) []grpc.DialOption {
			g := guard(t, retries, 100)
			unary, _ := UnaryClientInterceptor(g)
			stream, _ := StreamClientInterceptor(g)
			return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
		}, (retries + 1) * 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := append(tc.opts(t), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultServiceConfig(retryConfig))
			conn, err := grpc.NewClient(lis, opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := testgrpc.NewTestServiceClient(conn)
			ctx := t.Context()

			_, err = client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("unary: err = %v, want Unavailable", err)
			}
			if n, r := count(srv.calls), count(srv.retried); n != tc.perCall || (tc.perCall == retries+1 && r != 0) {
				t.Errorf("unary: %d attempts reached the server (%d of them grpc-go's retries) for %d attempts of the guard, want %d",
					n, r, retries+1, tc.perCall)
			}

			s, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream: err = %v, want Unavailable", err)
			}
			if n, r := count(srv.calls), count(srv.retried); n != tc.perCall || (tc.perCall == retries+1 && r != 0) {
				t.Errorf("stream: %d attempts reached the server (%d of them grpc-go's retries) for %d attempts of the guard, want %d",
					n, r, retries+1, tc.perCall)
			}
		})
	}
}

func TestDialOptionsRefusesABadGuard(t *testing.T) {
	if _, err := DialOptions(nil); err == nil || !strings.Contains(err.Error(), "DialOptions") {
		t.Errorf("DialOptions(nil): err = %v, want one naming DialOptions", err)
	}
}

// startService serves srv on 127.0.0.1.
func startService(t *testing.T, srv testgrpc.TestServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}
