package resilgrpc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// hangServer is a TestService on 127.0.0.1 whose unary calls hang, until
// their context ends, when hang says so for the call's number (from 1),
// and answer at once otherwise.
type hangServer struct {
	testgrpc.UnimplementedTestServiceServer
	hang    func(n int) bool
	calls   atomic.Int32
	entered chan struct{} // if set, told when a call starts
}

func (s *hangServer) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	n := int(s.calls.Add(1))
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.hang != nil && s.hang(n) {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// FullDuplexCall echoes each message.
func (s *hangServer) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

// startHang serves srv on 127.0.0.1.
func startHang(t *testing.T, srv *hangServer) string {
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

// newTimeout returns a Timeout of d whose time-outs are counted in n.
func newTimeout(t *testing.T, name string, d time.Duration, n *atomic.Int32) *resilience.Timeout {
	return stagetest.CountingTimeout(name, d, n)
}

func newGuard(t *testing.T, stages ...resilience.Stage) *resilience.Guard {
	return stagetest.Guard("backend", stages...)
}

func newBreaker(t *testing.T) *resilience.Breaker { return stagetest.Breaker("backend") }

func newRetry(t *testing.T, retries int) *resilience.Retry {
	return stagetest.Retry("backend", retries, time.Millisecond)
}

// Every time-out of the guard's Timeout stage is counted by its observer,
// and so by the timeout metrics: two calls that time out count two.
func TestEveryTimeoutCounted(t *testing.T) {
	srv := &hangServer{hang: func(int) bool { return true }}
	addr := startHang(t, srv)
	var expired atomic.Int32
	g := newGuard(t, newTimeout(t, "call", 200*time.Millisecond, &expired), newBreaker(t))
	c := dial(t, addr, g)
	for i := range 2 {
		_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("call %d, hung past the 200ms limit: %v, want DeadlineExceeded matching ErrTimeout", i+1, err)
		}
	}
	if n := expired.Load(); n != 2 {
		t.Errorf("the Timeout's observer counted %d time-outs, want 2", n)
	}
}

// A time limit per attempt, inside the retry, cuts an attempt that hangs,
// and the retry tries again within the total limit.
func TestPerAttemptTimeoutRetriesAHungAttempt(t *testing.T) {
	srv := &hangServer{hang: func(n int) bool { return n == 1 }}
	addr := startHang(t, srv)
	var totalExpired, attemptExpired atomic.Int32
	total := newTimeout(t, "total", 5*time.Second, &totalExpired)
	perAttempt := newTimeout(t, "attempt", 200*time.Millisecond, &attemptExpired)
	g := newGuard(t, total, newRetry(t, 2), newBreaker(t), perAttempt)
	c := dial(t, addr, g)
	start := time.Now()
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("x")}})
	took := time.Since(start)
	if err != nil || string(resp.GetPayload().GetBody()) != "x" {
		t.Fatalf("a call whose first attempt hangs: %v, %v; want the second attempt's answer", resp, err)
	}
	if n := srv.calls.Load(); n != 2 {
		t.Errorf("%d attempts reached the server, want 2", n)
	}
	if took < 200*time.Millisecond || took > 3*time.Second {
		t.Errorf("the call took %v: want the 200ms of the hung attempt and a little more, well within the 5s total", took)
	}
	if a, tot := attemptExpired.Load(), totalExpired.Load(); a != 1 || tot != 0 {
		t.Errorf("time-outs counted: %d per attempt, %d in total; want 1 and 0", a, tot)
	}
}

// A guard without a breaker, or without a retry, is accepted and guards
// unary calls and streams; a nil or zero guard is refused with an error
// naming it.
func TestAnyGuardAccepted(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)

	// Retries and no breaker: unary calls and streams are retried.
	c := dial(t, addr, newGuard(t, newRetry(t, 2)))
	srv.script(codes.Unavailable)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil || srv.count() != 2 {
		t.Errorf("unary, failing once, with a retry and no breaker: %v after %d calls; want success after 2", err, srv.count())
	}
	srv.script(codes.Unavailable)
	s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := recvAll(s); n != 2 || err != nil || srv.count() != 2 {
		t.Errorf("stream, failing once before its first message, with no breaker: %d messages, %v, %d streams; want 2, nil, 2", n, err, srv.count())
	}

	// A time limit alone: no breaker, no retry.
	c = dial(t, addr, newGuard(t, newTimeout(t, "call", 5*time.Second, nil)))
	srv.script(codes.Unavailable)
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); status.Code(err) != codes.Unavailable || srv.count() != 1 {
		t.Errorf("unary, failing once, with no retry: %v after %d calls; want the server's Unavailable after 1", err, srv.count())
	}
	srv.script()
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Errorf("unary with a time limit alone: %v", err)
	}

	for _, tc := range []struct {
		name string
		make func(*resilience.Guard) error
	}{
		{"UnaryClientInterceptor", func(g *resilience.Guard) error { _, err := UnaryClientInterceptor(g); return err }},
		{"StreamClientInterceptor", func(g *resilience.Guard) error { _, err := StreamClientInterceptor(g); return err }},
	} {
		for _, g := range []struct {
			name  string
			guard *resilience.Guard
			want  string
		}{
			{"nil", nil, "is nil"},
			{"zero", &resilience.Guard{}, "zero resilience.Guard"},
		} {
			err := tc.make(g.guard)
			if err == nil || !strings.Contains(err.Error(), tc.name+": the guard") || !strings.Contains(err.Error(), g.want) {
				t.Errorf("%s of a %s guard: %v, want an error naming %q and saying it %s", tc.name, g.name, err, tc.name+": the guard", g.want)
			}
		}
	}
}

// A call made with resilience.AtMostOnce is sent once, even when its
// attempt hangs and the time limit per attempt cuts it: no stage sends it
// again.
func TestAtMostOnceCallNotResent(t *testing.T) {
	srv := &hangServer{hang: func(int) bool { return true }}
	addr := startHang(t, srv)
	total := newTimeout(t, "total", 5*time.Second, nil)
	perAttempt := newTimeout(t, "attempt", 200*time.Millisecond, nil)
	g := newGuard(t, total, newRetry(t, 3), newBreaker(t), perAttempt)
	c := dial(t, addr, g)
	start := time.Now()
	_, err := c.UnaryCall(resilience.AtMostOnce(t.Context()), &testgrpc.SimpleRequest{})
	took := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, resilience.ErrTimeout) {
		t.Errorf("a hung call made with AtMostOnce: %v, want DeadlineExceeded matching ErrTimeout", err)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("the call reached the server %d times, want once", n)
	}
	if took > 3*time.Second {
		t.Errorf("the call took %v: not cut by the 200ms limit per attempt", took)
	}
}

// A stream is not bounded by the guard's time limits: it outlives them.
func TestStreamOutlivesTheTimeLimits(t *testing.T) {
	srv := &hangServer{}
	addr := startHang(t, srv)
	g := newGuard(t, newTimeout(t, "total", 300*time.Millisecond, nil), newRetry(t, 2), newBreaker(t),
		newTimeout(t, "attempt", 100*time.Millisecond, nil))
	c := dial(t, addr, g)
	s, err := c.FullDuplexCall(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		time.Sleep(250 * time.Millisecond)
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}}); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("receive %d, %v after the stream opened: %v", i+1, time.Duration(i+1)*250*time.Millisecond, err)
		}
	}
	s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Errorf("the end of the stream: %v, want io.EOF", err)
	}
}

// limiter is a stage of the user's own that admits no call.
type limiter struct{}

var errLimited = errors.New("limiter: no tokens")

// limitedError is its rejection: it matches resilience.ErrRejected, as
// every stage's must.
type limitedError struct{}

func (limitedError) Error() string { return errLimited.Error() }
func (limitedError) Is(target error) bool {
	return target == resilience.ErrRejected || target == errLimited
}

func (limiter) Name() string { return "tokens" }
func (limiter) Kind() string { return "limiter" }
func (limiter) Run(context.Context, func(context.Context) error) error {
	return limitedError{}
}

// A bulkhead in the guard bounds how many calls run at once; its
// rejection, like every stage's (ErrRejected), is a *PolicyError with
// code Unavailable, and reaches no server.
func TestRejectionsAreUnavailable(t *testing.T) {
	srv := &hangServer{hang: func(n int) bool { return n == 1 }, entered: make(chan struct{}, 4)}
	addr := startHang(t, srv)
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "backend", MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, addr, newGuard(t, newRetry(t, 2), bulkhead, newBreaker(t)))

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { c.UnaryCall(ctx, &testgrpc.SimpleRequest{}) })
	<-srv.entered
	_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	var pe *PolicyError
	if status.Code(err) != codes.Unavailable || !errors.As(err, &pe) ||
		!errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Errorf("a call while the bulkhead is full: %v, want a *PolicyError with code Unavailable matching ErrRejected and ErrBulkheadFull", err)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("%d calls reached the server while the bulkhead held one, want 1", n)
	}
	if d := retryDelay(t, err); d != 0 {
		t.Errorf("a full bulkhead's status has a retry delay of %v; it knows none", d)
	}
	cancel()
	wg.Wait()
	if n := bulkhead.InUse(); n != 0 {
		t.Errorf("%d slots in use once every call ended", n)
	}

	c = dial(t, addr, newGuard(t, newRetry(t, 2), limiter{}, newBreaker(t)))
	_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !errors.As(err, &pe) || !errors.Is(err, errLimited) {
		t.Errorf("a call a stage of the user's own rejects: %v, want a *PolicyError with code Unavailable matching the stage's error", err)
	}

	b, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "backend", FailureThreshold: 1, OpenTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := b.Allow(t.Context())
	p.Done(errors.New("down")) // open, for a minute
	c = dial(t, addr, newGuard(t, b))
	_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	var open *resilience.OpenError
	if status.Code(err) != codes.Unavailable || !errors.As(err, &open) || open.RetryAfter() <= 0 {
		t.Errorf("a call the open breaker rejects: %v, want code Unavailable and an *OpenError saying when it will probe", err)
	}
	// Its status says when to try again, as google.rpc.RetryInfo: what a
	// server hands on to its clients when it returns the error.
	if d := retryDelay(t, err); d <= 0 || d > time.Minute {
		t.Errorf("the open breaker's status: retry delay %v, want the time to the next probe, within the minute", d)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("%d calls reached the server, want only the first", n)
	}
}

// retryDelay returns the delay of the RetryInfo detail of err's status,
// through a round trip of the status's wire form, or 0 if it has none.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	wire := status.Convert(err).Proto()
	for _, d := range status.FromProto(wire).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
