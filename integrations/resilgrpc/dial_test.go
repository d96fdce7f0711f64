package resilgrpc

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/resilience-go/resilience"
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
// records the grpc-previous-rpc-attempts header of each attempt that
// reaches it: the guard's retries send one, and grpc-go's own another.
type attempts struct {
	testgrpc.UnimplementedTestServiceServer
	calls chan []string
}

func (s *attempts) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	s.calls <- md.Get("grpc-previous-rpc-attempts")
	return nil, status.Error(codes.Unavailable, "down")
}

func (s *attempts) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	_, err := s.UnaryCall(stream.Context(), nil)
	return err
}

// Under a service config whose retry policy retries UNAVAILABLE, grpc-go
// retries inside the interceptor: with the options of DialOptions, one
// attempt of the guard is one attempt on the server, for unary calls and
// streams, and each retry carries the guard's count of the attempts
// before it, alone; with the interceptors alone, each guard attempt is 4.
func TestDialOptionsLeaveTheRetryToTheGuard(t *testing.T) {
	srv := &attempts{calls: make(chan []string, 100)}
	lis := startService(t, srv)
	seen := func() (got [][]string) {
		for {
			select {
			case v := <-srv.calls:
				got = append(got, v)
			default:
				return got
			}
		}
	}
	const retries = 2 // the guard's: 3 attempts

	// What each of them carries.
	guardOnly := [][]string{nil, {"1"}, {"2"}}
	for _, tc := range []struct {
		name    string
		opts    func(t *testing.T, g *resilience.Guard) []grpc.DialOption
		perCall int
	}{
		{"DialOptions", func(t *testing.T, g *resilience.Guard) []grpc.DialOption {
			opts, err := DialOptions(g)
			if err != nil {
				t.Fatal(err)
			}
			return opts
		}, retries + 1},
		{"interceptors alone", func(t *testing.T, g *resilience.Guard) []grpc.DialOption {
			unary, _ := UnaryClientInterceptor(g)
			stream, _ := StreamClientInterceptor(g)
			return []grpc.DialOption{grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream)}
		}, (retries + 1) * 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := guard(t, retries, 100)
			opts := append(tc.opts(t, g), grpc.WithTransportCredentials(insecure.NewCredentials()),
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
			if got := seen(); len(got) != tc.perCall || tc.perCall == retries+1 && !slices.EqualFunc(got, guardOnly, slices.Equal) {
				t.Errorf("unary: %d attempts reached the server (carrying %q) for %d attempts of the guard, want %d (carrying %q)",
					len(got), got, retries+1, tc.perCall, guardOnly)
			}

			s, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != codes.Unavailable {
				t.Fatalf("stream: err = %v, want Unavailable", err)
			}
			if got := seen(); len(got) != tc.perCall || tc.perCall == retries+1 && !slices.EqualFunc(got, guardOnly, slices.Equal) {
				t.Errorf("stream: %d attempts reached the server (carrying %q) for %d attempts of the guard, want %d (carrying %q)",
					len(got), got, retries+1, tc.perCall, guardOnly)
			}

			// The wire counts the guard's attempts, not grpc-go's.
			if w := Wire(g).Stats(); w.Calls[0].N != 2 || w.Calls[1].N != 2*(retries+1) {
				t.Errorf("the wire counted %v, want 2 calls and %d attempts", w.Calls, 2*(retries+1))
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
