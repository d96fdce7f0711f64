package resilgrpc

import (
	"context"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// outcomes records what a breaker counted once it was half-open.
type outcomes struct {
	mu       sync.Mutex
	on       bool
	results  []resilience.CallResult
	halfOpen chan struct{}
}

func (o *outcomes) observe(b *resilience.Breaker) {
	o.halfOpen = make(chan struct{}, 1)
	b.Observe(resilience.BreakerObserver{
		Call: func(_ resilience.State, r resilience.CallResult) {
			o.mu.Lock()
			defer o.mu.Unlock()
			if o.on && r != resilience.CallRejected {
				o.results = append(o.results, r)
			}
		},
		StateChange: func(ev resilience.StateChange) {
			if ev.To == resilience.HalfOpen {
				select {
				case o.halfOpen <- struct{}{}:
				default:
				}
			}
		},
	})
}

func (o *outcomes) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.on = true
}

func (o *outcomes) get() []resilience.CallResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]resilience.CallResult(nil), o.results...)
}

// Every way a client stream can end gives its breaker permit back, once,
// counted as what it says about the server. The breaker is half-open with
// a single probe, which the stream takes: if the stream kept it, every
// later call would be rejected for good.
func TestStreamPermitReturnedOnEveryPath(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	big := &testgrpc.Payload{Body: make([]byte, 1024)}
	const maxSend = 64 // bytes, below big
	for _, tc := range []struct {
		name string
		gc   bool // the stream is dropped: collect it
		want resilience.CallResult
		run  func(t *testing.T, ctx context.Context, cancel context.CancelFunc, conn *grpc.ClientConn, c testgrpc.TestServiceClient)
	}{
		{"SendMsg above MaxCallSendMsgSize, client stream", false, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				s, err := c.StreamingInputCall(ctx, grpc.MaxCallSendMsgSize(maxSend))
				if err != nil {
					t.Fatal(err)
				}
				// gRPC ends the stream: the caller is not expected to go on.
				if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: big}); status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("Send of %d bytes with a limit of %d: %v, want ResourceExhausted", len(big.Body), maxSend, err)
				}
			}},
		{"SendMsg above MaxCallSendMsgSize, server stream", false, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				_, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{Payload: big}, grpc.MaxCallSendMsgSize(maxSend))
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("a request of %d bytes with a limit of %d: %v, want ResourceExhausted", len(big.Body), maxSend, err)
				}
			}},
		{"SendMsg io.EOF, then dropped", true, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				srv.script(codes.Unavailable)
				s, err := c.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				msg := &testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}}
				for i := 0; s.Send(msg) != io.EOF; i++ {
					if i == 500 {
						t.Fatal("no send failed in 5s although the server ended the stream")
					}
					time.Sleep(10 * time.Millisecond)
				}
			}},
		{"Header error", false, resilience.CallFailed,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				srv.script(codes.Unavailable)
				s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
				if err != nil {
					t.Fatal(err)
				}
				// gRPC ends the stream and returns no error from Header:
				// the caller would see it from Recv, and never calls it.
				if md, err := s.Header(); md != nil || err != nil {
					t.Fatalf("Header of a failed stream: %v, %v; want nil, nil", md, err)
				}
			}},
		{"RecvMsg error", false, resilience.CallFailed,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				srv.script(codes.Unavailable)
				s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
					t.Fatalf("Recv: %v, want Unavailable", err)
				}
			}},
		{"RecvMsg io.EOF", false, resilience.CallSucceeded,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Recv(); err != io.EOF {
					t.Fatalf("Recv: %v, want io.EOF", err)
				}
			}},
		{"the first message, then dropped unread", false, resilience.CallSucceeded,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
					ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 1}}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.Recv(); err != nil {
					t.Fatalf("Recv: %v", err)
				}
			}},
		{"CloseSend, then drained", false, resilience.CallSucceeded,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				s, err := c.FullDuplexCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range []string{"a", "b"} {
					if err := s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(b)}}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.CloseSend(); err != nil {
					t.Fatal(err)
				}
				n := 0
				for {
					if _, err := s.Recv(); err == io.EOF {
						break
					} else if err != nil {
						t.Fatalf("Recv after %d messages: %v", n, err)
					}
					n++
				}
				if n != 2 {
					t.Fatalf("%d messages back, want 2", n)
				}
			}},
		{"CloseAndRecv", false, resilience.CallSucceeded,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				s, err := c.StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: []byte("abc")}}); err != nil {
					t.Fatal(err)
				}
				if resp, err := s.CloseAndRecv(); err != nil || resp.GetAggregatedPayloadSize() != 3 {
					t.Fatalf("CloseAndRecv: %v, %v", resp, err)
				}
			}},
		{"the context ends before the first message", false, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, cancel context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				if _, err := c.FullDuplexCall(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
			}},
		{"the ClientConn is closed", false, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, conn *grpc.ClientConn, c testgrpc.TestServiceClient) {
				if _, err := c.FullDuplexCall(ctx); err != nil {
					t.Fatal(err)
				}
				conn.Close()
			}},
		{"dropped, its context still live", true, resilience.CallIgnored,
			func(t *testing.T, ctx context.Context, _ context.CancelFunc, _ *grpc.ClientConn, c testgrpc.TestServiceClient) {
				if _, err := c.FullDuplexCall(ctx); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := goleak.IgnoreCurrent()
			srv.script()
			var seen outcomes
			g := guard(t, 0, 1, func(p *resilience.Preset) {
				p.Breaker.OpenTimeout = time.Millisecond
				p.Breaker.HalfOpenProbes, p.Breaker.SuccessThreshold = 1, 1
			})
			b := g.Breaker()
			seen.observe(b)
			unary, _ := UnaryClientInterceptor(g)
			stream, _ := StreamClientInterceptor(g)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithUnaryInterceptor(unary), grpc.WithStreamInterceptor(stream))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())

			// Open the breaker with one failure; a millisecond later it is
			// half-open, with one probe for the stream.
			p, _ := b.Allow(ctx)
			p.Done(errors.New("down"))
			select {
			case <-seen.halfOpen:
			case <-time.After(5 * time.Second):
				t.Fatalf("the breaker is %v 5s after it opened with an open timeout of 1ms", b.State())
			}
			seen.start()

			tc.run(t, ctx, cancel, conn, testgrpc.NewTestServiceClient(conn))

			// The stream's outcome is counted, at once or (the context, the
			// ClientConn, a dropped stream) soon after.
			deadline := time.Now().Add(3 * time.Second)
			for len(seen.get()) == 0 && time.Now().Before(deadline) {
				if tc.gc {
					runtime.GC()
				}
				time.Sleep(time.Millisecond)
			}
			// The probe was given back: a call is admitted, at once if the
			// stream was not a failure, once the breaker is half-open again
			// if it was.
			admitted := false
			for !admitted && time.Now().Before(deadline) {
				if p, err := b.Allow(ctx); err == nil {
					p.Done(nil)
					admitted = true
				} else {
					time.Sleep(time.Millisecond)
				}
			}
			cancel()
			conn.Close()
			// Once every goroutine of the stream has ended, nothing more
			// can be counted.
			goleak.VerifyNone(t, before)
			if !admitted {
				t.Errorf("every call rejected 3s after the stream ended, the breaker %v: the probe's permit was kept", b.State())
			}
			got := seen.get()
			want := []resilience.CallResult{tc.want, resilience.CallSucceeded}
			if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("the breaker counted %v, want %v: the stream's outcome once, then the call admitted after it", got, want)
			}
		})
	}
}
