package resilgrpc

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// The tests of this file hold hedged calls, against a TestService on
// 127.0.0.1, to gRPC's rules for hedging (gRFC A6): the first answer
// wins and the others are cancelled, each attempt has a reply of its own,
// no hedge goes out once a response header has come, a pushback of -1
// ends the call, and only the methods marked are hedged.

const unaryCall = testgrpc.TestService_UnaryCall_FullMethodName

// hedgeServer is a TestService whose unary calls are served by serve,
// told each call's number, from 1 in the order the calls arrive. It
// records what each call carried as PreviousAttemptsKey, and whether its
// context had ended when serve returned.
type hedgeServer struct {
	testgrpc.UnimplementedTestServiceServer
	serve func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error)

	mu    sync.Mutex
	n     int       // calls arrived
	calls []*served // by number, from 1; made by the call or by whoever waits for it first
}

// served is one call to a hedgeServer. previous may be read once arrived
// is closed, canceled once ended is.
type served struct {
	arrived, ended chan struct{}
	previous       []string
	canceled       bool
}

func (s *hedgeServer) call(n int) *served {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.calls) < n {
		s.calls = append(s.calls, &served{arrived: make(chan struct{}), ended: make(chan struct{})})
	}
	return s.calls[n-1]
}

func (s *hedgeServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *hedgeServer) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	c := s.call(n)
	md, _ := metadata.FromIncomingContext(ctx)
	c.previous = md.Get(PreviousAttemptsKey)
	close(c.arrived)
	resp, err := s.serve(ctx, n)
	c.canceled = ctx.Err() != nil
	close(c.ended)
	return resp, err
}

// StreamingOutputCall sends one message after serve has answered.
func (s *hedgeServer) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	resp, err := s.UnaryCall(stream.Context(), nil)
	if err != nil {
		return err
	}
	return stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: resp.GetPayload()})
}

// untilCanceled is a call that never answers.
func untilCanceled(ctx context.Context) (*testgrpc.SimpleResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// within waits for ch, or fails the test after 5s.
func within(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not after 5s", what)
	}
}

// waitOr waits for ch, or for ctx to end: false then.
func waitOr(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

func answer(body string) *testgrpc.SimpleResponse {
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: []byte(body)}}
}

func body(r *testgrpc.SimpleResponse) string { return string(r.GetPayload().GetBody()) }

func startHedgeServer(t *testing.T, srv *hedgeServer) string {
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

// hedging returns a guard that hedges calls after delay, up to maxHedges
// times and with no budget, inside a 10s time limit and retry (if not
// nil), outside a breaker.
func hedging(t *testing.T, delay time.Duration, maxHedges int, retry *resilience.Retry) (*resilience.Guard, *resilience.Hedge) {
	t.Helper()
	h, err := resilience.NewHedge(resilience.HedgeConfig{Name: "backend", Delay: delay, MaxHedges: maxHedges, NoBudget: true})
	if err != nil {
		t.Fatal(err)
	}
	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "backend", Duration: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	stages := []resilience.Stage{total}
	if retry != nil {
		stages = append(stages, retry)
	}
	return newGuard(t, append(stages, h, newBreaker(t))...), h
}

// dialHedged dials addr with DialOptions(g, opts...) and more, the
// options of the connection.
func dialHedged(t *testing.T, addr string, g *resilience.Guard, opts []ClientOption, more ...grpc.DialOption) testgrpc.TestServiceClient {
	t.Helper()
	dopts, err := DialOptions(g, opts...)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, append(append(dopts, grpc.WithTransportCredentials(insecure.NewCredentials())), more...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func stats(h *resilience.Hedge) map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range h.Stats().Calls {
		m[c.Result] = c.N
	}
	return m
}

// A slow first attempt and a fast hedge: the call returns the hedge's
// answer as it comes, the first attempt is cancelled on the server, the
// hedge says it follows one attempt, and the wire counts both.
func TestHedgeAnswersForASlowFirstAttempt(t *testing.T) {
	srv := &hedgeServer{serve: func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if n == 1 {
			return untilCanceled(ctx)
		}
		return answer("hedge"), nil
	}}
	g, h := hedging(t, 20*time.Millisecond, 1, nil)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})

	start := time.Now()
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	took := time.Since(start)
	if err != nil || body(resp) != "hedge" {
		t.Fatalf("got %q, %v; want the hedge's answer", body(resp), err)
	}
	if took > 2*time.Second {
		t.Errorf("took %v: the call waited for the first attempt, which never answers", took)
	}
	first := srv.call(1)
	within(t, first.ended, "the first attempt's handler returning")
	if !first.canceled {
		t.Error("the first attempt's context did not end on the server when the hedge won")
	}
	if n := srv.count(); n != 2 {
		t.Errorf("the server saw %d calls, want 2", n)
	}
	if p1, p2 := first.previous, srv.call(2).previous; p1 != nil || !slices.Equal(p2, []string{"1"}) {
		t.Errorf("%s: %q on the first attempt, %q on the hedge; want none, then 1", PreviousAttemptsKey, p1, p2)
	}
	if got := stats(h); got["sent"] != 1 || got["won"] != 1 || got["canceled"] != 1 {
		t.Errorf("hedge stats %v, want 1 sent, 1 won, 1 cancelled", got)
	}
	if w := Wire(g).Stats().Calls; w[0].N != 1 || w[1].N != 2 {
		t.Errorf("wire: %d calls, %d attempts; want 1 and 2", w[0].N, w[1].N)
	}
}

// The reply, header and trailer are the winner's, whole, and stay so:
// both attempts answer at once, over and over, and whichever wins, the
// caller's reply, header and trailer all name the same call, which a loser
// answering afterwards does not change. A loser that wrote into the
// caller's places would also be a data race, which -race reports.
func TestHedgeReplyIsTheWinners(t *testing.T) {
	var rounds sync.Map // round (the call's number over 2, from 0) -> chan struct{}, closed when both calls are in
	gate := func(round int) chan struct{} {
		ch, _ := rounds.LoadOrStore(round, make(chan struct{}))
		return ch.(chan struct{})
	}
	srv := &hedgeServer{}
	srv.serve = func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		round := (n - 1) / 2
		if n%2 == 0 {
			close(gate(round)) // the hedge is in: both answer now
		}
		if !waitOr(ctx, gate(round)) {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		name := strconv.Itoa(n)
		grpc.SetHeader(ctx, metadata.Pairs("call", name))
		grpc.SetTrailer(ctx, metadata.Pairs("call", name))
		return answer("call " + name), nil
	}
	g, _ := hedging(t, 5*time.Millisecond, 1, nil)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	const calls = 20
	winners := map[string]int{}
	for i := range calls {
		var header, trailer metadata.MD
		var p peer.Peer
		resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer), grpc.Peer(&p))
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		got := body(resp) // read at once, while the loser may be answering
		h, tr := header.Get("call"), trailer.Get("call")
		if len(h) != 1 || len(tr) != 1 || got != "call "+h[0] || tr[0] != h[0] {
			t.Errorf("call %d: reply %q, header %q, trailer %q; want one call's", i, got, h, tr)
		}
		if p.Addr == nil {
			t.Errorf("call %d: no peer", i)
		}
		if n := srv.count(); n != 2*(i+1) {
			t.Fatalf("call %d: the server saw %d calls, want %d: the test needs each call hedged", i, n, 2*(i+1))
		}
		within(t, srv.call(2*(i+1)-1).ended, "the first attempt's handler")
		within(t, srv.call(2*(i+1)).ended, "the hedge's handler")
		time.Sleep(5 * time.Millisecond) // for the loser's answer, if it came, to be read
		if again := body(resp); again != got {
			t.Errorf("call %d: reply %q became %q after the call returned", i, got, again)
		}
		if len(h) == 1 {
			winners[h[0]]++
		}
	}
	t.Logf("winners: %v", winners)
}

// A loser that answers after the call has returned leaves the caller's
// reply as the winner made it: the first attempt wins, and the hedge's
// handler answers once the call has returned.
func TestHedgeLateLoserLeavesTheReply(t *testing.T) {
	returned := make(chan struct{})
	srv := &hedgeServer{}
	srv.serve = func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if n == 1 {
			waitOr(ctx, srv.call(2).arrived)
			return answer("first"), nil
		}
		<-returned
		return answer("hedge"), nil
	}
	g, _ := hedging(t, 20*time.Millisecond, 1, nil)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	close(returned)
	if err != nil || body(resp) != "first" {
		t.Fatalf("got %q, %v; want the first attempt's answer", body(resp), err)
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("the server saw %d calls, want 2", n)
	}
	within(t, srv.call(2).ended, "the hedge's handler")
	time.Sleep(20 * time.Millisecond)
	if got := body(resp); got != "first" {
		t.Errorf("the reply became %q after the call returned", got)
	}
}

// A method that is not marked is never hedged, and is retried as before;
// Hedged marks one call of it; a context made Unhedged wins over the
// mark; a stream is never hedged.
func TestOnlyMarkedCallsAreHedged(t *testing.T) {
	slow := 150 * time.Millisecond // far past the delay
	var script sync.Map            // call number -> its error
	srv := &hedgeServer{serve: func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if err, ok := script.Load(n); ok {
			return nil, err.(error)
		}
		select {
		case <-time.After(slow):
			return answer(strconv.Itoa(n)), nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}}
	g, h := hedging(t, 10*time.Millisecond, 1, newRetry(t, 2))
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(testgrpc.TestService_EmptyCall_FullMethodName)})
	ctx := t.Context()

	// Not marked: one request, however slow.
	if resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil || body(resp) != "1" || srv.count() != 1 {
		t.Errorf("an unmarked slow call: %q, %v over %d calls; want 1, nil over 1", body(resp), err, srv.count())
	}
	// Not marked, and failing: retried, once after the other.
	script.Store(2, status.Error(codes.Unavailable, "down"))
	if resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil || body(resp) != "3" || srv.count() != 3 {
		t.Errorf("an unmarked call failing once: %q, %v over %d calls; want 3, nil over 3", body(resp), err, srv.count())
	}
	if p := srv.call(3).previous; !slices.Equal(p, []string{"1"}) {
		t.Errorf("the retry carried %s %q, want 1", PreviousAttemptsKey, p)
	}
	if n := stats(h)["sent"]; n != 0 {
		t.Fatalf("%d hedges sent for calls not marked", n)
	}

	// Marked for one call: hedged.
	if resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, Hedged()); err != nil || srv.count() != 5 {
		t.Errorf("a call with Hedged(): %q, %v; the server saw %d calls, want 5", body(resp), err, srv.count())
	}
	within(t, srv.call(5).ended, "the hedge's handler")
	// Marked, on a context that may not be hedged.
	if _, err := c.UnaryCall(resilience.Unhedged(ctx), &testgrpc.SimpleRequest{}, Hedged()); err != nil || srv.count() != 6 {
		t.Errorf("an Unhedged call with Hedged(): %v; the server saw %d calls, want 6", err, srv.count())
	}
	// A stream through the same guard, as slow.
	s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{}, Hedged())
	if err == nil {
		_, err = recvAll(s)
	}
	if err != nil || srv.count() != 7 {
		t.Errorf("a slow stream: %v; the server saw %d calls, want 7", err, srv.count())
	}
	if n := stats(h)["sent"]; n != 1 {
		t.Errorf("%d hedges sent, want the one for the call with Hedged()", n)
	}
}

// A first attempt whose header arrives before the delay commits the call:
// no hedge is sent, however late its answer.
func TestNoHedgeAfterTheHeader(t *testing.T) {
	srv := &hedgeServer{serve: func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if err := grpc.SendHeader(ctx, metadata.Pairs("begun", "yes")); err != nil {
			return nil, err
		}
		time.Sleep(300 * time.Millisecond) // six delays
		return answer("first"), nil
	}}
	g, h := hedging(t, 50*time.Millisecond, 3, nil)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if err != nil || body(resp) != "first" {
		t.Fatalf("got %q, %v; want the first attempt's answer", body(resp), err)
	}
	if n := srv.count(); n != 1 {
		t.Errorf("the server saw %d calls, want 1: hedges were sent after the header", n)
	}
	if n := stats(h)["sent"]; n != 0 {
		t.Errorf("%d hedges sent", n)
	}
}

// A header that arrives while a hedge is in flight commits the call to
// its attempt: the hedge is cancelled, none more is sent, and the call
// waits for the committed attempt's answer.
func TestHeaderCommitsAndCancelsTheHedge(t *testing.T) {
	srv := &hedgeServer{}
	srv.serve = func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if n != 1 {
			return untilCanceled(ctx)
		}
		if !waitOr(ctx, srv.call(2).arrived) {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		if err := grpc.SendHeader(ctx, metadata.Pairs("begun", "yes")); err != nil {
			return nil, err
		}
		time.Sleep(200 * time.Millisecond) // more delays than the hedges left
		return answer("first"), nil
	}
	g, h := hedging(t, 50*time.Millisecond, 3, nil)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if err != nil || body(resp) != "first" {
		t.Fatalf("got %q, %v; want the committed attempt's answer", body(resp), err)
	}
	hedge := srv.call(2)
	within(t, hedge.ended, "the hedge's handler")
	if !hedge.canceled {
		t.Error("the hedge's context did not end on the server when the first attempt's header came")
	}
	if n := srv.count(); n != 2 {
		t.Errorf("the server saw %d calls, want 2: hedges were sent after the header", n)
	}
	if got := stats(h); got["sent"] != 1 || got["won"] != 0 {
		t.Errorf("hedge stats %v, want 1 sent, none won", got)
	}
}

// A first attempt answered with a pushback of -1 while the hedge is in
// flight ends the call there, with the server's status, not retried; the
// hedge is cancelled, not waited for.
func TestHedgedPushbackMinusOneEndsTheCall(t *testing.T) {
	srv := &hedgeServer{}
	srv.serve = func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		if n != 1 {
			return untilCanceled(ctx)
		}
		if !waitOr(ctx, srv.call(2).arrived) {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		grpc.SetTrailer(ctx, metadata.Pairs(PushbackKey, "-1"))
		return nil, status.Error(codes.Unavailable, "overloaded")
	}
	g, _ := hedging(t, 20*time.Millisecond, 1, newRetry(t, 2))
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	start := time.Now()
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	took := time.Since(start)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "overloaded") {
		t.Fatalf("got %v; want the server's Unavailable", err)
	}
	var pe *PolicyError
	if errors.As(err, &pe) {
		t.Errorf("a *PolicyError for the server's own status: %v", err)
	}
	if took > 2*time.Second {
		t.Errorf("took %v: the call waited for the hedge, which never answers", took)
	}
	hedge := srv.call(2)
	within(t, hedge.ended, "the hedge's handler")
	if !hedge.canceled {
		t.Error("the hedge's context did not end on the server")
	}
	if n := srv.count(); n != 2 {
		t.Errorf("the server saw %d calls, want 2: a call pushed back with -1 was retried", n)
	}
}

// A pushback of N ms on the failure that ends a hedged attempt goes with
// it: the guard's retry waits N ms before the next.
func TestHedgedPushbackSetsTheRetryWait(t *testing.T) {
	srv := &hedgeServer{}
	srv.serve = func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) {
		switch n {
		case 1:
			if !waitOr(ctx, srv.call(2).arrived) {
				return nil, status.FromContextError(ctx.Err()).Err()
			}
			fallthrough
		case 2:
			grpc.SetTrailer(ctx, metadata.Pairs(PushbackKey, "150"))
			return nil, status.Error(codes.Unavailable, "busy")
		}
		return answer("retry"), nil
	}
	var waits []time.Duration // on the caller's goroutine
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "backend", MaxRetries: 2, InitialBackoff: time.Millisecond,
		OnRetry: func(e resilience.RetryEvent) { waits = append(waits, e.Delay) }})
	if err != nil {
		t.Fatal(err)
	}
	g, h := hedging(t, 20*time.Millisecond, 1, retry)
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)})
	resp, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if err != nil || body(resp) != "retry" {
		t.Fatalf("got %q, %v; want the retry's answer", body(resp), err)
	}
	if !slices.Equal(waits, []time.Duration{150 * time.Millisecond}) {
		t.Errorf("the retry waited %v, want the pushback's 150ms once", waits)
	}
	if n, sent := srv.count(), stats(h)["sent"]; n != 3 || sent != 1 {
		t.Errorf("the server saw %d calls, %d of them hedges; want 3, 1", n, sent)
	}
}

// A hedged call's attempts go over streams, so the unary interceptors
// chained after this package's do not see them, and the stream
// interceptors do, as unary: as HedgeMethods says.
func TestHedgedAttemptsGoOverStreams(t *testing.T) {
	srv := &hedgeServer{serve: func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) { return answer("ok"), nil }}
	g, _ := hedging(t, time.Minute, 1, nil)
	var unary, streams atomic.Int32
	var desc atomic.Value
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)},
		grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			unary.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		}),
		grpc.WithChainStreamInterceptor(func(ctx context.Context, d *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			streams.Add(1)
			desc.Store(*d)
			return streamer(ctx, d, cc, method, opts...)
		}))
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if u, s := unary.Load(), streams.Load(); u != 0 || s != 1 {
		t.Errorf("a hedged call: %d unary and %d stream interceptor calls after ours; want 0 and 1", u, s)
	}
	if d := desc.Load().(grpc.StreamDesc); d.ClientStreams || d.ServerStreams {
		t.Errorf("the hedged attempt's StreamDesc %+v, want a unary call's", d)
	}
	if _, err := c.EmptyCall(t.Context(), &testgrpc.Empty{}); status.Code(err) != codes.Unimplemented {
		t.Fatal(err)
	}
	if u, s := unary.Load(), streams.Load(); u != 1 || s != 1 {
		t.Errorf("a call not hedged: %d unary and %d stream interceptor calls after ours; want 1 and 1", u, s)
	}
}

// HedgeMethods refuses a name that is not a full method name; the leading
// slash may be left out.
func TestHedgeMethodsNames(t *testing.T) {
	g, _ := hedging(t, time.Second, 1, nil)
	for _, bad := range []string{"", "/", "UnaryCall", "/grpc.testing.TestService/", "//UnaryCall", "/a/b/c"} {
		if _, err := DialOptions(g, HedgeMethods(unaryCall, bad)); err == nil || !strings.Contains(err.Error(), "HedgeMethods") {
			t.Errorf("HedgeMethods(%q): %v, want an error naming HedgeMethods", bad, err)
		}
		if _, err := StreamClientInterceptor(g, HedgeMethods(bad)); err == nil {
			t.Errorf("StreamClientInterceptor with HedgeMethods(%q): no error", bad)
		}
	}
	o := newClientOptions([]ClientOption{HedgeMethods("grpc.testing.TestService/UnaryCall")})
	if o.err != nil || !o.hedged[unaryCall] {
		t.Errorf("a name without its leading slash: %v, %v", o.err, o.hedged)
	}
}

// Only a marked call with a proto.Message for a reply, on a ClientConn,
// is hedged.
func TestHedgeable(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	o := newClientOptions([]ClientOption{HedgeMethods(unaryCall)})
	for _, tc := range []struct {
		name   string
		method string
		reply  any
		cc     *grpc.ClientConn
		opts   []grpc.CallOption
		want   bool
	}{
		{"marked", unaryCall, new(testgrpc.SimpleResponse), conn, nil, true},
		{"not marked", "/grpc.testing.TestService/EmptyCall", new(testgrpc.Empty), conn, nil, false},
		{"Hedged()", "/grpc.testing.TestService/EmptyCall", new(testgrpc.Empty), conn, []grpc.CallOption{grpc.WaitForReady(true), Hedged()}, true},
		{"not a proto.Message", unaryCall, new(struct{ Body []byte }), conn, nil, false},
		{"a nil reply", unaryCall, (*testgrpc.SimpleResponse)(nil), conn, nil, false},
		{"no ClientConn", unaryCall, new(testgrpc.SimpleResponse), nil, nil, false},
	} {
		if _, got := o.hedgeable(tc.method, tc.reply, tc.cc, tc.opts); got != tc.want {
			t.Errorf("%s: hedgeable %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Faults reach the attempts of hedged calls through the stream chain:
// ChaosStreamClientInterceptor after the guard's stream interceptor, at
// rate 1, fails every attempt with a made-up Unavailable, which the guard
// retries; none reaches the server.
func TestChaosReachesHedgedCalls(t *testing.T) {
	srv := &hedgeServer{serve: func(ctx context.Context, n int) (*testgrpc.SimpleResponse, error) { return answer("ok"), nil }}
	g, _ := hedging(t, time.Second, 1, newRetry(t, 2))
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: status.Error(codes.Unavailable, "chaos")}))
	c := dialHedged(t, startHedgeServer(t, srv), g, []ClientOption{HedgeMethods(unaryCall)},
		grpc.WithChainStreamInterceptor(ChaosStreamClientInterceptor(chaos)))
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "chaos") || srv.count() != 0 {
		t.Errorf("a hedged call, every attempt faulted: %v, %d reached the server; want the made-up Unavailable, none", err, srv.count())
	}
	if w := Wire(g).Stats().Calls; w[1].N != 3 || chaos.Stats().Calls[1].N != 3 {
		t.Errorf("%d attempts on the wire, %d faulted; want 3 and 3", w[1].N, chaos.Stats().Calls[1].N)
	}
}
