package resilgrpc

import (
	"context"
	"errors"
	"io"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// methods is a TestService on which UnaryCall fails every call with
// Unavailable when failUnary is set, and StreamingOutputCall every stream,
// before its first message, when failStream is; EmptyCall always answers.
// It counts the calls and streams that reach it.
type methods struct {
	testgrpc.UnimplementedTestServiceServer
	failUnary, failStream  bool
	unary, empty, streamed atomic.Int32
}

func (s *methods) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.unary.Add(1)
	if s.failUnary {
		return nil, status.Error(codes.Unavailable, "UnaryCall is down")
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (s *methods) EmptyCall(context.Context, *testgrpc.Empty) (*testgrpc.Empty, error) {
	s.empty.Add(1)
	return &testgrpc.Empty{}, nil
}

// StreamingOutputCall sends one message per response parameter.
func (s *methods) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	s.streamed.Add(1)
	if s.failStream {
		return status.Error(codes.Unavailable, "StreamingOutputCall is down")
	}
	for range req.GetResponseParameters() {
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
			return err
		}
	}
	return nil
}

// keyedGuard returns a guard of stages, the last of them a KeyedBreaker
// whose breakers open after threshold failures in a row, for a minute.
func keyedGuard(t *testing.T, threshold int, outer ...resilience.Stage) (*resilience.Guard, *resilience.KeyedBreaker) {
	t.Helper()
	kb, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:    "backend",
		Breaker: resilience.BreakerConfig{FailureThreshold: threshold, OpenTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "backend", Stages: append(outer, kb)})
	if err != nil {
		t.Fatal(err)
	}
	return g, kb
}

// dialWith connects to addr with the options DialOptions gives for g and
// opts.
func dialWith(t *testing.T, addr string, g *resilience.Guard, opts ...ClientOption) testgrpc.TestServiceClient {
	t.Helper()
	dial, err := DialOptions(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// keyCounts is what a KeyedBreaker counted for one key: its state and its
// calls by how they ended.
type keyCounts struct {
	State                               resilience.State
	Success, Failure, Ignored, Rejected uint64
}

// keys returns what kb counted, key by key.
func keys(kb *resilience.KeyedBreaker) map[string]keyCounts {
	out := map[string]keyCounts{}
	for _, k := range kb.Keys() {
		c := keyCounts{State: k.State}
		for _, n := range k.Calls {
			switch n.Result {
			case "success":
				c.Success = n.N
			case "failure":
				c.Failure = n.N
			case "ignored":
				c.Ignored = n.N
			case "rejected":
				c.Rejected = n.N
			}
		}
		out[k.Key] = c
	}
	return out
}

// rejected reports whether err is the rejection of an open breaker, as
// the interceptors return it: a *PolicyError with code Unavailable
// matching ErrOpen and ErrRejected.
func rejected(err error) bool {
	var pe *PolicyError
	return errors.As(err, &pe) && status.Code(err) == codes.Unavailable &&
		errors.Is(err, resilience.ErrOpen) && errors.Is(err, resilience.ErrRejected)
}

// With KeyByMethod, a method that fails every call opens its own breaker
// alone: after 5 calls to the failing UnaryCall (3 failures open its
// breaker, 2 rejected without reaching the server), 5 calls to EmptyCall
// and a stream on the same connection all run, with 0 failures and 0
// rejections. Without it, the target has one key, and the same 3 failures
// cut EmptyCall off too.
func TestKeyByMethodOpensOnlyTheFailingMethod(t *testing.T) {
	srv := &methods{failUnary: true}
	addr := startService(t, srv)
	ctx := t.Context()
	unaryKey := addr + "/grpc.testing.TestService/UnaryCall"
	emptyKey := addr + "/grpc.testing.TestService/EmptyCall"
	streamKey := addr + "/grpc.testing.TestService/StreamingOutputCall"

	g, kb := keyedGuard(t, 3)
	c := dialWith(t, addr, g, KeyByMethod())
	for i := range 5 {
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if i < 3 && (status.Code(err) != codes.Unavailable || rejected(err)) {
			t.Errorf("UnaryCall %d: %v, want the server's Unavailable", i+1, err)
		}
		if i >= 3 && !rejected(err) {
			t.Errorf("UnaryCall %d, its breaker open: %v, want a rejection matching ErrOpen", i+1, err)
		}
	}
	for i := range 5 {
		if _, err := c.EmptyCall(ctx, &testgrpc.Empty{}); err != nil {
			t.Errorf("EmptyCall %d, while UnaryCall's breaker is open: %v", i+1, err)
		}
	}
	s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{}, {}}})
	if err != nil {
		t.Fatalf("a stream while UnaryCall's breaker is open: %v", err)
	}
	if n, err := recvAll(s); n != 2 || err != nil {
		t.Errorf("the stream: %d messages, %v; want 2 and the end", n, err)
	}
	if u, e, st := srv.unary.Load(), srv.empty.Load(), srv.streamed.Load(); u != 3 || e != 5 || st != 1 {
		t.Errorf("the server saw %d UnaryCalls, %d EmptyCalls, %d streams; want 3, 5 and 1", u, e, st)
	}
	want := map[string]keyCounts{
		unaryKey:  {State: resilience.Open, Failure: 3, Rejected: 2},
		emptyKey:  {State: resilience.Closed, Success: 5},
		streamKey: {State: resilience.Closed, Success: 1},
	}
	if got := keys(kb); !reflect.DeepEqual(got, want) {
		t.Errorf("the keys:\n got %v\nwant %v", got, want)
	}

	// Without KeyByMethod: one key, the target's, for every method.
	srv.unary.Store(0)
	srv.empty.Store(0)
	g, kb = keyedGuard(t, 3)
	c = dialWith(t, addr, g)
	for range 3 {
		c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	}
	if _, err := c.EmptyCall(ctx, &testgrpc.Empty{}); !rejected(err) {
		t.Errorf("EmptyCall keyed by target alone, after 3 UnaryCalls failed: %v, want a rejection", err)
	}
	if u, e := srv.unary.Load(), srv.empty.Load(); u != 3 || e != 0 {
		t.Errorf("keyed by target: the server saw %d UnaryCalls and %d EmptyCalls, want 3 and 0", u, e)
	}
	if got, want := keys(kb), map[string]keyCounts{addr: {State: resilience.Open, Failure: 3, Rejected: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("the keys by target:\n got %v\nwant %v", got, want)
	}
}

// Two ClientConns to two servers share one keyed guard: each target is a
// key. Calls alternate between them, 6 each: the failing server's breaker
// opens after 3 failures and rejects the 3 calls after, without reaching
// it; the healthy server answers all 6, with 0 failures and 0 rejections.
func TestKeyByTargetOpensOnlyTheFailingServer(t *testing.T) {
	down, up := &methods{failUnary: true}, &methods{}
	downAddr, upAddr := startService(t, down), startService(t, up)
	g, kb := keyedGuard(t, 3)
	toDown, toUp := dialWith(t, downAddr, g), dialWith(t, upAddr, g)
	ctx := t.Context()
	for i := range 6 {
		_, err := toDown.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if i >= 3 && !rejected(err) {
			t.Errorf("call %d to the failing server, its breaker open: %v, want a rejection", i+1, err)
		}
		if _, err := toUp.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Errorf("call %d to the healthy server: %v", i+1, err)
		}
	}
	if d, u := down.unary.Load(), up.unary.Load(); d != 3 || u != 6 {
		t.Errorf("the failing server saw %d calls, the healthy one %d; want 3 and 6", d, u)
	}
	want := map[string]keyCounts{
		downAddr: {State: resilience.Open, Failure: 3, Rejected: 3},
		upAddr:   {State: resilience.Closed, Success: 6},
	}
	if got := keys(kb); !reflect.DeepEqual(got, want) {
		t.Errorf("the keys:\n got %v\nwant %v", got, want)
	}
	if e, l := kb.Ejected(), kb.EjectionLimit(); e != 1 || l != 1 {
		t.Errorf("%d keys ejected, limit %d; want 1 and 1", e, l)
	}
}

// A keyed guard's streams go through the breaker of their target: 3
// streams to the failing server fail before their first message and open
// its breaker; the 4th stream to it, and a unary call, are rejected
// (Unavailable, ErrOpen) without reaching it, while a stream to the
// healthy server, on a connection guarded by the same guard, runs to its
// end.
func TestKeyedStreams(t *testing.T) {
	down, up := &methods{failStream: true, failUnary: true}, &methods{}
	downAddr, upAddr := startService(t, down), startService(t, up)
	g, kb := keyedGuard(t, 3)
	toDown, toUp := dialWith(t, downAddr, g), dialWith(t, upAddr, g)
	ctx := t.Context()
	req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{}, {}}}

	for i := range 3 {
		s, err := toDown.StreamingOutputCall(ctx, req)
		if err == nil {
			_, err = recvAll(s)
		}
		if status.Code(err) != codes.Unavailable || rejected(err) {
			t.Errorf("stream %d to the failing server: %v, want the server's Unavailable", i+1, err)
		}
	}
	_, err := toDown.StreamingOutputCall(ctx, req)
	if !rejected(err) {
		t.Errorf("stream 4 to the failing server, its breaker open: %v, want a rejection (a *PolicyError, Unavailable, ErrOpen)", err)
	}
	if _, err := toDown.UnaryCall(ctx, &testgrpc.SimpleRequest{}); !rejected(err) {
		t.Errorf("a unary call to the failing server, its breaker open: %v, want a rejection", err)
	}

	s, err := toUp.StreamingOutputCall(ctx, req)
	if err != nil {
		t.Fatalf("a stream to the healthy server: %v", err)
	}
	if n, err := recvAll(s); n != 2 || err != nil {
		t.Errorf("the stream to the healthy server: %d messages, %v; want 2 and the end", n, err)
	}
	if d, u, du := down.streamed.Load(), up.streamed.Load(), down.unary.Load(); d != 3 || u != 1 || du != 0 {
		t.Errorf("the failing server saw %d streams and %d unary calls, the healthy one %d streams; want 3, 0 and 1", d, du, u)
	}
	want := map[string]keyCounts{
		downAddr: {State: resilience.Open, Failure: 3, Rejected: 2},
		upAddr:   {State: resilience.Closed, Success: 1},
	}
	if got := keys(kb); !reflect.DeepEqual(got, want) {
		t.Errorf("the keys:\n got %v\nwant %v", got, want)
	}
}

// breakerCounts counts the calls that a breaker's observer sees, by how
// they ended.
type breakerCounts struct{ n [4]atomic.Uint64 }

func (c *breakerCounts) observe(b *resilience.Breaker) *breakerCounts {
	b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) { c.n[r].Add(1) }})
	return c
}

func (c *breakerCounts) get() [4]uint64 {
	return [4]uint64{c.n[0].Load(), c.n[1].Load(), c.n[2].Load(), c.n[3].Load()}
}

// A guard with a Breaker around a KeyedBreaker guards streams with both:
// a stream takes a permit from the Breaker and one from its key's. Each
// breaker counts 4 streams to the failing server exactly as it counts 4
// unary calls made through a guard of the same stages: for the key's, 3
// failures that open it and 1 rejection; for the Breaker outside, 4
// failures, the key's rejection being the end of the 4th call as the
// Breaker sees it, for a unary call as for a stream.
func TestStreamsUseTheBreakerAndTheKeyedBreaker(t *testing.T) {
	down := &methods{failStream: true, failUnary: true}
	addr := startService(t, down)
	run := func(t *testing.T, call func(testgrpc.TestServiceClient) error) (plain, keyed [4]uint64) {
		b, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "backend", FailureThreshold: 100, OpenTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		pc := new(breakerCounts).observe(b)
		g, kb := keyedGuard(t, 3, b)
		c := dialWith(t, addr, g)
		for i := range 4 {
			err := call(c)
			if i < 3 && (status.Code(err) != codes.Unavailable || rejected(err)) {
				t.Errorf("call %d: %v, want the server's Unavailable", i+1, err)
			}
			if i == 3 && !rejected(err) {
				t.Errorf("call 4, the key's breaker open: %v, want a rejection", err)
			}
		}
		if kbk, ok := kb.Lookup(addr); !ok || kbk.State() != resilience.Open {
			t.Errorf("the key's breaker: found %v, want it open", ok)
		}
		if s := b.State(); s != resilience.Closed {
			t.Errorf("the Breaker outside: %v, want closed", s)
		}
		k := keys(kb)[addr]
		return pc.get(), [4]uint64{k.Success, k.Failure, k.Ignored, k.Rejected}
	}
	up, uk := run(t, func(c testgrpc.TestServiceClient) error {
		_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
		return err
	})
	sp, sk := run(t, func(c testgrpc.TestServiceClient) error {
		s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if err == io.EOF {
			err = nil
		}
		return err
	})
	if want := [4]uint64{0, 3, 0, 1}; uk != want || sk != want {
		t.Errorf("the key's breaker counted (success, failure, ignored, rejected) %v for unary calls and %v for streams, want %v for both", uk, sk, want)
	}
	if up != sp {
		t.Errorf("the Breaker outside counted (success, failure, ignored, rejected) %v for unary calls and %v for streams, want the same", up, sp)
	}
	// The Breaker outside ignores the key's rejection, as it does any
	// refusal by a stage inside it: the call never reached the server.
	if want := [4]uint64{0, 3, 1, 0}; sp != want {
		t.Errorf("the Breaker outside counted (success, failure, ignored, rejected) %v for streams, want %v", sp, want)
	}
	if d, u := down.streamed.Load(), down.unary.Load(); d != 3 || u != 3 {
		t.Errorf("the server saw %d streams and %d unary calls, want 3 and 3", d, u)
	}
}
