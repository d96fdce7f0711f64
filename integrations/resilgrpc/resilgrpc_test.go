package resilgrpc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
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

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a TestService on 127.0.0.1 whose calls fail as scripted: each
// call takes the next code of fail, until none is left and calls succeed.
type server struct {
	testgrpc.UnimplementedTestServiceServer
	mu      sync.Mutex
	fail    []codes.Code
	calls   int
	inputs  [][]string    // the payloads each StreamingInputCall received
	block   chan struct{} // if set, calls wait for it (or their end) first
	entered chan struct{} // if set, told when a call starts
	gate    chan struct{} // if set, FullDuplexCall waits for it before failing
}

func (s *server) next() error {
	s.mu.Lock()
	s.calls++
	var code codes.Code
	if len(s.fail) > 0 {
		code, s.fail = s.fail[0], s.fail[1:]
	}
	block, entered := s.block, s.entered
	s.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	if code != codes.OK {
		return status.Error(code, "scripted "+code.String())
	}
	return nil
}

func (s *server) script(codes ...codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.calls, s.inputs = codes, 0, nil
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *server) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := s.next(); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: req.GetPayload().GetBody()}}, nil
}

// StreamingOutputCall fails, as scripted, before its first message; a
// response parameter of size -1 makes it fail with Unavailable at that
// point instead of sending.
func (s *server) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	if err := s.next(); err != nil {
		return err
	}
	for i, p := range req.GetResponseParameters() {
		if p.GetSize() < 0 {
			return status.Error(codes.Unavailable, "failed after the first message")
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte{byte(i)}}}); err != nil {
			return err
		}
	}
	return nil
}

// StreamingInputCall receives every message, then fails as scripted or
// answers with their total size.
func (s *server) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	var got []string
	size := 0
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		got = append(got, string(m.GetPayload().GetBody()))
		size += len(m.GetPayload().GetBody())
	}
	s.mu.Lock()
	s.inputs = append(s.inputs, got)
	s.mu.Unlock()
	if err := s.next(); err != nil {
		return err
	}
	return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(size)})
}

// FullDuplexCall fails as scripted when the first message arrives, before
// answering; otherwise it echoes each message's payload.
func (s *server) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	first := true
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first {
			first = false
			s.mu.Lock()
			gate := s.gate
			s.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if err := s.next(); err != nil {
				return err
			}
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

// start serves srv on 127.0.0.1 with the given server options.
func start(t *testing.T, srv *server, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// dial connects to addr through the guard's interceptors.
func dial(t *testing.T, addr string, g *resilience.Guard) testgrpc.TestServiceClient {
	t.Helper()
	unary, err := UnaryClientInterceptor(g)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := StreamClientInterceptor(g)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(unary), grpc.WithStreamInterceptor(stream))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func guard(t *testing.T, retries, threshold int, tune ...func(*resilience.Preset)) *resilience.Guard {
	t.Helper()
	p := resilience.Preset{
		Name:    "backend",
		Timeout: resilience.TimeoutConfig{Duration: 10 * time.Second},
		Breaker: resilience.BreakerConfig{FailureThreshold: threshold, OpenTimeout: time.Minute},
	}
	if retries > 0 {
		p.Retry = &resilience.RetryConfig{MaxRetries: retries, InitialBackoff: time.Millisecond}
	}
	for _, f := range tune {
		f(&p)
	}
	g, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestNilGuardOrBulkhead(t *testing.T) {
	if _, err := UnaryClientInterceptor(nil); err == nil || !strings.Contains(err.Error(), "guard") {
		t.Errorf("UnaryClientInterceptor(nil): %v", err)
	}
	if _, err := StreamClientInterceptor(nil); err == nil || !strings.Contains(err.Error(), "guard") {
		t.Errorf("StreamClientInterceptor(nil): %v", err)
	}
	if _, err := UnaryServerInterceptor(nil); err == nil || !strings.Contains(err.Error(), "bulkhead") {
		t.Errorf("UnaryServerInterceptor(nil): %v", err)
	}
	if _, err := StreamServerInterceptor(nil); err == nil || !strings.Contains(err.Error(), "bulkhead") {
		t.Errorf("StreamServerInterceptor(nil): %v", err)
	}
	abandoning := guard(t, 0, 5, func(p *resilience.Preset) { p.Timeout.Abandon = true })
	if _, err := UnaryClientInterceptor(abandoning); err == nil || !strings.Contains(err.Error(), "Abandon") {
		t.Errorf("UnaryClientInterceptor of a guard that abandons calls: %v", err)
	}
	if _, err := StreamClientInterceptor(abandoning); err == nil || !strings.Contains(err.Error(), "Abandon") {
		t.Errorf("StreamClientInterceptor of a guard that abandons calls: %v", err)
	}
}

// Each code, on unary calls and on streams before their first message: is
// it retried, does it count against the breaker, and does the caller get
// the server's own status?
func TestCodes(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	for _, tc := range []struct {
		code             codes.Code
		retried, counted bool
	}{
		{codes.Unavailable, true, true},
		{codes.ResourceExhausted, true, true},
		{codes.DeadlineExceeded, true, true},
		{codes.Internal, false, true},
		{codes.Unknown, false, true},
		{codes.DataLoss, false, true},
		{codes.NotFound, false, false},
		{codes.InvalidArgument, false, false},
		{codes.AlreadyExists, false, false},
		{codes.PermissionDenied, false, false},
		{codes.Unauthenticated, false, false},
		{codes.FailedPrecondition, false, false},
		{codes.Aborted, false, false},
		{codes.OutOfRange, false, false},
		{codes.Unimplemented, false, false},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			wantCalls := 1
			if tc.retried {
				wantCalls = 3
			}
			calls := []struct {
				name string
				run  func(c testgrpc.TestServiceClient) error
			}{
				{"unary", func(c testgrpc.TestServiceClient) error {
					_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
					return err
				}},
				{"stream", func(c testgrpc.TestServiceClient) error {
					s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{
						ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}})
					if err != nil {
						return err
					}
					_, err = s.Recv()
					return err
				}},
			}
			for _, call := range calls {
				// Retries: a guard that retries twice and never opens.
				srv.script(tc.code, tc.code, tc.code)
				err := call.run(dial(t, addr, guard(t, 2, 100)))
				if got := status.Code(err); got != tc.code {
					t.Errorf("%s: code %v (%v), want the server's %v", call.name, got, err, tc.code)
				}
				var pe *PolicyError
				if errors.As(err, &pe) {
					t.Errorf("%s: a *PolicyError for the server's own status: %v", call.name, err)
				}
				if n := srv.count(); n != wantCalls {
					t.Errorf("%s: %d calls reached the server, want %d", call.name, n, wantCalls)
				}
				// Counting: a guard that opens at the first failure.
				g := guard(t, 0, 1)
				srv.script(tc.code)
				call.run(dial(t, addr, g))
				if open := g.Breaker().State() == resilience.Open; open != tc.counted {
					t.Errorf("%s: breaker %v after one %v; counted as a failure: %v, want %v", call.name, g.Breaker().State(), tc.code, open, tc.counted)
				}
			}
		})
	}
}

func TestOpenBreakerRejectsUnaryAndStreams(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	g := guard(t, 2, 5)
	g.Breaker().ForceOpen()
	c := dial(t, addr, g)
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("unary with the breaker open: %v, want Unavailable matching ErrOpen", err)
	}
	_, err = c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("stream with the breaker open: %v, want Unavailable matching ErrOpen", err)
	}
	if n := srv.count(); n != 0 {
		t.Errorf("%d calls reached the server", n)
	}
}

func TestUnaryTimeLimit(t *testing.T) {
	srv := &server{block: make(chan struct{})}
	defer close(srv.block)
	addr := start(t, srv)
	c := dial(t, addr, guard(t, 2, 5, func(p *resilience.Preset) { p.Timeout.Duration = 100 * time.Millisecond }))
	start := time.Now()
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, resilience.ErrTimeout) {
		t.Errorf("unary past the time limit: %v, want DeadlineExceeded matching ErrTimeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("unary past a 100ms limit returned after %v", took)
	}
}

func recvAll(s grpc.ServerStreamingClient[testgrpc.StreamingOutputCallResponse]) (int, error) {
	n := 0
	for {
		_, err := s.Recv()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// A stream that fails before its first message is opened again; one that
// fails after it is the caller's.
func TestStreamRetriedOnlyBeforeTheFirstMessage(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	c := dial(t, addr, guard(t, 2, 5))
	three := []*testgrpc.ResponseParameters{{Size: 1}, {Size: 1}, {Size: 1}}

	srv.script(codes.Unavailable, codes.Unavailable)
	s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{ResponseParameters: three})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := recvAll(s); n != 3 || err != nil || srv.count() != 3 {
		t.Errorf("stream failing twice before its first message: %d messages, %v, %d streams; want 3, nil, 3", n, err, srv.count())
	}

	srv.script()
	s, err = c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: -1}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := recvAll(s); n != 1 || status.Code(err) != codes.Unavailable || srv.count() != 1 {
		t.Errorf("stream failing after its first message: %d messages, %v, %d streams; want 1, Unavailable, 1", n, err, srv.count())
	}
}

// A client stream's messages are sent again, all and in order, on the
// stream that replaces a failed one.
func TestClientStreamReplayed(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	c := dial(t, addr, guard(t, 2, 5))
	srv.script(codes.Unavailable)
	s, err := c.StreamingInputCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"a", "bb", "ccc"} {
		if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := s.CloseAndRecv()
	if err != nil || resp.GetAggregatedPayloadSize() != 6 {
		t.Fatalf("CloseAndRecv: %v, %v; want a total of 6", resp, err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := strings.Join([]string{strings.Join(srv.inputs[0], ","), strings.Join(srv.inputs[1], ",")}, " | "); len(srv.inputs) != 2 || got != "a,bb,ccc | a,bb,ccc" {
		t.Errorf("the server received %q, want the same three messages twice", srv.inputs)
	}
}

// A bidirectional stream, sending from one goroutine and receiving on
// another: it fails at its first message (once every message is sent, so
// that no send sees the failure and ends the retrying), and the new stream
// gets every message sent so far, in order.
func TestBidiStreamReplayed(t *testing.T) {
	srv := &server{gate: make(chan struct{})}
	addr := start(t, srv)
	c := dial(t, addr, guard(t, 2, 5))
	srv.script(codes.Unavailable)
	s, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		for _, body := range []string{"a", "b", "c"} {
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}); err != nil {
				sent <- err
				return
			}
		}
		sent <- s.CloseSend()
		close(srv.gate)
	}()
	var got []string
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Recv after %q: %v", got, err)
		}
		got = append(got, string(m.GetPayload().GetBody()))
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,b,c" || srv.count() != 2 {
		t.Errorf("received %q over %d streams; want a,b,c over 2", got, srv.count())
	}
}

// A stream is no longer retried once a send has failed (the caller may
// have stopped sending, and a new stream would not get the rest), nor once
// it has sent more than it keeps for a replay.
func TestStreamNotRetriedWhenItCannotBeReplayed(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	c := dial(t, addr, guard(t, 2, 100))
	msg := &testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}}

	srv.script(codes.Unavailable, codes.Unavailable)
	s, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	sends := 0
	for ; sends < 50; sends++ {
		if err := s.Send(msg); err == io.EOF {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if sends == 50 {
		t.Fatal("no send failed in 500ms although the server ended the stream")
	}
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable || srv.count() != 1 {
		t.Errorf("after a failed send: %v over %d streams; want Unavailable over 1", err, srv.count())
	}

	srv.mu.Lock()
	srv.fail, srv.calls, srv.gate = []codes.Code{codes.Unavailable}, 0, make(chan struct{})
	srv.mu.Unlock()
	s, err = c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for range maxReplay + 1 {
		if err := s.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	s.CloseSend()
	close(srv.gate)
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable || srv.count() != 1 {
		t.Errorf("after %d sends: %v over %d streams; want Unavailable over 1", maxReplay+1, err, srv.count())
	}
}

// A stream the caller abandons before its first message gives its permit
// back: a half-open breaker with one probe lets the next stream through.
func TestStreamPermitReleasedWhenTheCallerGivesUp(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	g := guard(t, 0, 1, func(p *resilience.Preset) {
		p.Breaker.OpenTimeout = 20 * time.Millisecond
		p.Breaker.HalfOpenProbes, p.Breaker.SuccessThreshold = 1, 1
	})
	c := dial(t, addr, g)
	var seen outcomes
	seen.observe(g.Breaker())

	srv.script(codes.Unavailable)
	if s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{}); err == nil {
		s.Recv()
	}
	// State reports half-open once the open timeout has passed; calls are
	// let through once the breaker has made the move.
	<-seen.halfOpen

	srv.mu.Lock()
	srv.block, srv.entered = make(chan struct{}), make(chan struct{}, 1)
	srv.mu.Unlock()
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	<-srv.entered
	cancel() // before any message, and never read: the probe's permit must come back
	srv.mu.Lock()
	close(srv.block)
	srv.block, srv.entered = nil, nil
	srv.mu.Unlock()

	// The permit comes back as the context ends, on a goroutine of its own:
	// give it a moment.
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for {
		_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("the call after an abandoned probe: %v; the probe's permit was kept", err)
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v after a successful probe, want closed", s)
	}
}

// The server interceptors answer Unavailable while the bulkhead is full.
func TestServerSheds(t *testing.T) {
	b, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "server", MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	unary, _ := UnaryServerInterceptor(b)
	stream, _ := StreamServerInterceptor(b)
	srv := &server{block: make(chan struct{}), entered: make(chan struct{}, 1)}
	addr := start(t, srv, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := testgrpc.NewTestServiceClient(conn)

	done := make(chan error)
	go func() {
		_, err := c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
		done <- err
	}()
	<-srv.entered
	_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("unary while full: %v, want Unavailable", err)
	}
	s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("stream while full: %v, want Unavailable", err)
	}
	srv.mu.Lock()
	close(srv.block)
	srv.block, srv.entered = nil, nil
	srv.mu.Unlock()
	if err := <-done; err != nil {
		t.Errorf("the call holding the slot: %v", err)
	}
	if n := b.InUse(); n != 0 {
		t.Errorf("%d slots in use after every call ended", n)
	}
}

// A stream's retries before its first message are bounded by the guard's
// retry budget, as a unary call's are: with a budget of half a retry per
// first attempt and no floor, the first stream failing before its first
// message is not retried, and the second is, once.
func TestStreamRetriesWithinTheBudget(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	g := guard(t, 2, 100, func(p *resilience.Preset) {
		p.RetryBudget = &resilience.RetryBudgetConfig{Ratio: 0.5, NoFloor: true, Window: time.Hour}
	})
	c := dial(t, addr, g)
	one := []*testgrpc.ResponseParameters{{Size: 1}}
	for i, want := range []int{1, 2} {
		srv.script(codes.Unavailable, codes.Unavailable, codes.Unavailable)
		s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{ResponseParameters: one})
		if err == nil {
			_, err = recvAll(s)
		}
		if status.Code(err) != codes.Unavailable || srv.count() != want {
			t.Errorf("stream %d: %v after %d streams; want Unavailable after %d (the budget's)", i+1, err, srv.count(), want)
		}
	}
	// Refused: stream 1's first retry, and stream 2's second.
	if st := g.RetryBudget().Stats(); st.Calls[0].N != 2 || st.Calls[1].N != 1 || st.Calls[2].N != 2 {
		t.Errorf("budget %+v, want 2 first attempts, 1 retry let through, 2 refused", st.Calls)
	}
}
