package resilgrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The tests of this file hold both ends of a hop to what they tell each
// other: the attempt number of each retry, the "overloaded; don't retry"
// trailer of a server whose own call gave up, and the counts of what is
// sent.

// retrying returns a guard named name that retries r times at once, with
// no breaker and no budget: every attempt it may make, it makes.
func retrying(t *testing.T, name string, r int, more ...resilience.Stage) *resilience.Guard {
	t.Helper()
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: name, MaxRetries: r, NoBackoff: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: name, Stages: append([]resilience.Stage{retry}, more...)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// connect dials addr with DialOptions(g).
func connect(t *testing.T, addr string, g *resilience.Guard) testgrpc.TestServiceClient {
	t.Helper()
	opts, err := DialOptions(g)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// handlers is a TestService whose unary calls and server streams are
// served by functions, each told its call's context.
type handlers struct {
	testgrpc.UnimplementedTestServiceServer
	unary  func(ctx context.Context) error
	stream func(ctx context.Context, send func() error) error
}

func (h *handlers) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if err := h.unary(ctx); err != nil {
		return nil, err
	}
	return &testgrpc.SimpleResponse{}, nil
}

func (h *handlers) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, s testgrpc.TestService_StreamingOutputCallServer) error {
	return h.stream(s.Context(), func() error { return s.Send(&testgrpc.StreamingOutputCallResponse{}) })
}

// serve serves h on 127.0.0.1 with opts.
func serve(t *testing.T, h testgrpc.TestServiceServer, opts ...grpc.ServerOption) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(gs, h)
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	return l.Addr().String()
}

// recvFirst opens a server stream and reads its first message.
func recvFirst(ctx context.Context, c testgrpc.TestServiceClient) error {
	s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		return err
	}
	_, err = s.Recv()
	return err
}

// Behind the hop interceptors, a handler knows which attempt of its client
// it serves: 0 for a first attempt, which carries nothing, and n for the
// n-th, on unary calls and streams.
func TestServerSeesTheClientsAttempts(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	record := func(ctx context.Context) int {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, resilience.CallerAttempt(ctx))
		return len(seen)
	}
	addr := serve(t, &handlers{
		unary: func(ctx context.Context) error {
			if record(ctx) < 3 {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		},
		stream: func(ctx context.Context, send func() error) error {
			if record(ctx) < 3 {
				return status.Error(codes.Unavailable, "down")
			}
			return send()
		},
	}, ServerOptions()...)
	c := connect(t, addr, retrying(t, "backend", 3))
	got := func() []int {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}
	want := []int{0, 2, 3}
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
	if s := got(); err != nil || !slices.Equal(s, want) {
		t.Errorf("unary: %v; the handler saw attempts %v, want success at the third, and %v", err, s, want)
	}
	err = recvFirst(t.Context(), c)
	if s := got(); err != nil || !slices.Equal(s, want) {
		t.Errorf("stream: %v; the handler saw attempts %v, want success at the third, and %v", err, s, want)
	}
}

// The hop interceptors ignore a grpc-previous-rpc-attempts that is not a
// count, whatever it is, and take the largest of several.
func TestServerIgnoresABadAttemptCount(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   int
	}{
		{"none", nil, 0},
		{"zero: the first retry's predecessor", []string{"0"}, 1},
		{"one", []string{"1"}, 2},
		{"the largest", []string{"2147483646"}, 2147483647},
		{"of several, the largest", []string{"1", "4", "2"}, 5},
		{"of several, the valid", []string{"x", "3"}, 4},
		{"past the largest", []string{"2147483647"}, 0},
		{"huge", []string{"99999999999999999999999999"}, 0},
		{"negative", []string{"-1"}, 0},
		{"signed", []string{"+1"}, 0},
		{"not a number", []string{"one"}, 0},
		{"empty", []string{""}, 0},
		{"spaces", []string{"1 "}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.values != nil {
				ctx = metadata.NewIncomingContext(ctx, metadata.MD{PreviousAttemptsKey: tc.values})
			}
			got := -1
			unary := UnaryServerHopInterceptor()
			noPanic(t, func() error {
				_, err := unary(ctx, nil, &grpc.UnaryServerInfo{}, func(ctx context.Context, _ any) (any, error) {
					got = resilience.CallerAttempt(ctx)
					return nil, nil
				})
				return err
			})
			if got != tc.want {
				t.Errorf("CallerAttempt = %d, want %d", got, tc.want)
			}
		})
	}

	// And over the wire, from a client that sends what it likes.
	var got atomic.Int32
	addr := serve(t, &handlers{unary: func(ctx context.Context) error {
		got.Store(int32(resilience.CallerAttempt(ctx)))
		return nil
	}}, ServerOptions()...)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, v := range []string{"-5", "1e9", "4294967296", "ninety"} {
		ctx := metadata.AppendToOutgoingContext(t.Context(), PreviousAttemptsKey, v)
		if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil || got.Load() != 0 {
			t.Errorf("%s: %q: %v, CallerAttempt %d; want the call served, as a first attempt", PreviousAttemptsKey, v, err, got.Load())
		}
	}
}

// seen is a stage that records the error of each call it runs: put
// inside a retry, it sees each attempt's error as the guard's stages do.
type seen struct {
	mu   sync.Mutex
	errs []error
}

func (*seen) Name() string { return "seen" }
func (*seen) Kind() string { return "seen" }
func (s *seen) Run(ctx context.Context, call func(context.Context) error) error {
	err := call(ctx)
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	return err
}

// Unavailable and ResourceExhausted travel through the guard marked
// resilience.Overloaded, and are retried and counted as before; the other
// failures are not marked.
func TestOverloadCodesAreMarked(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	for _, tc := range []struct {
		code       codes.Code
		overloaded bool
		attempts   int
	}{
		{codes.Unavailable, true, 3},
		{codes.ResourceExhausted, true, 3},
		{codes.DeadlineExceeded, false, 3},
		{codes.Internal, false, 1},
		{codes.Unknown, false, 1},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			s := &seen{}
			b := newBreaker(t)
			var failed atomic.Int32
			b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
				if r == resilience.CallFailed {
					failed.Add(1)
				}
			}})
			c := dial(t, addr, newGuard(t, newRetry(t, 2), b, s))
			// A stream runs through the guard's breaker and retry only:
			// no stage of the user's sees its errors, and it is retried
			// and counted as before.
			for _, call := range []func() error{
				func() error { _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); return err },
				func() error { return recvFirst(t.Context(), c) },
			} {
				srv.script(tc.code, tc.code, tc.code)
				failed.Store(0)
				err := call()
				if status.Code(err) != tc.code || srv.count() != tc.attempts || failed.Load() != int32(tc.attempts) {
					t.Errorf("%v after %d attempts, %d failures counted; want %v after %d, each counted", err, srv.count(), failed.Load(), tc.code, tc.attempts)
				}
			}
			if len(s.errs) != tc.attempts {
				t.Fatalf("the stage saw %d attempts of the unary call, want %d", len(s.errs), tc.attempts)
			}
			for i, err := range s.errs {
				if resilience.IsOverloaded(err) != tc.overloaded || status.Code(err) != tc.code || !strings.Contains(err.Error(), "scripted") {
					t.Errorf("attempt %d: %v: IsOverloaded %v, want %v, and the server's status seen through the mark", i+1, err, !tc.overloaded, tc.overloaded)
				}
			}
		})
	}
}

// trailing is an invoker that fails each call with Unavailable and the
// trailer PushbackKey of values, as a server does, and records when each
// attempt came, on the synctest clock.
type trailing struct {
	values []string
	at     []time.Duration
	start  time.Time
}

func (tr *trailing) invoke(_ context.Context, _ string, _, _ any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	tr.at = append(tr.at, time.Since(tr.start))
	for _, o := range opts {
		if t, ok := o.(grpc.TrailerCallOption); ok && tr.values != nil {
			*t.TrailerAddr = metadata.MD{PushbackKey: tr.values}
		}
	}
	return status.Error(codes.Unavailable, "overloaded")
}

// A failure with a pushback that says not to retry is not retried, and
// the breaker counts it; a pushback in milliseconds sets the wait.
func TestPushbackTrailer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		values   []string
		attempts int
		wait     time.Duration
	}{
		{"do not retry", []string{"-1"}, 1, 0},
		{"any negative", []string{"-300"}, 1, 0},
		{"not a number", []string{"later"}, 1, 0},
		{"empty", []string{""}, 1, 0},
		{"a wait", []string{"250"}, 3, 250 * time.Millisecond},
		{"no wait", []string{"0"}, 3, 0},
		{"a wait past MaxBackoff", []string{"86400000"}, 3, 10 * time.Second},
		{"repeated: ignored", []string{"-1", "-1"}, 3, 100 * time.Millisecond},
		{"none", nil, 3, 100 * time.Millisecond}, // the retry policy's own backoff
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBreaker(t)
				var failed int
				b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
					if r == resilience.CallFailed {
						failed++
					}
				}})
				retry, _ := resilience.NewRetry(resilience.RetryConfig{Name: "backend", MaxRetries: 2, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second})
				unary, err := UnaryClientInterceptor(newGuard(t, retry, b))
				if err != nil {
					t.Fatal(err)
				}
				inv := &trailing{values: tc.values, start: time.Now()}
				err = unary(t.Context(), "/svc/M", nil, nil, nil, inv.invoke)
				if status.Code(err) != codes.Unavailable || len(inv.at) != tc.attempts || failed != tc.attempts {
					t.Fatalf("%v after %d attempts, %d failures counted; want Unavailable after %d, each counted", err, len(inv.at), failed, tc.attempts)
				}
				if len(inv.at) > 1 && inv.at[1]-inv.at[0] != tc.wait {
					t.Errorf("waited %v before the retry, want %v", inv.at[1]-inv.at[0], tc.wait)
				}
			})
		})
	}
}

// A call whose retries gave up, or that its server said not to retry,
// returns the server's status as before (the same text, code and
// message), with the guard's error behind it for resilience.GaveUp; any
// other call's error is the server's, as it was.
func TestErrorOfACallThatGaveUp(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	c := dial(t, addr, newGuard(t, newRetry(t, 2), newBreaker(t)))
	for _, tc := range []struct {
		name   string
		script []codes.Code
		gaveUp bool
	}{
		{"retries used up", []codes.Code{codes.Unavailable, codes.Unavailable, codes.Unavailable}, true},
		{"not retried", []codes.Code{codes.Internal}, false},
		{"retried, then not", []codes.Code{codes.Unavailable, codes.Internal}, false},
		{"an answer", []codes.Code{codes.NotFound}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []func() error{
				func() error { _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); return err },
				func() error { return recvFirst(t.Context(), c) },
			} {
				srv.script(tc.script...)
				err := call()
				code := tc.script[len(tc.script)-1]
				want := status.Error(code, "scripted "+code.String())
				st, ok := status.FromError(err)
				if !ok || st.Code() != code || st.Message() != "scripted "+code.String() || err.Error() != want.Error() {
					t.Errorf("%v: status %v (%v), want the server's, %v", err, st, ok, want)
				}
				if resilience.GaveUp(err) != tc.gaveUp {
					t.Errorf("%v: GaveUp %v, want %v", err, !tc.gaveUp, tc.gaveUp)
				}
				if _, wrapped := err.(*stoppedError); wrapped != tc.gaveUp {
					t.Errorf("%T: want the server's status error itself: %v", err, !tc.gaveUp)
				}
				if tc.gaveUp && !errors.Is(err, resilience.ErrRetriesExhausted) {
					t.Errorf("%v: want errors.Is ErrRetriesExhausted", err)
				}
			}
		})
	}
}

// A handler whose call to its dependency gave up answers, under the hop
// interceptors, Unavailable with the pushback of -1 whatever its code,
// on unary calls and streams; any other error goes back as it was.
func TestHopInterceptorsSayDoNotRetry(t *testing.T) {
	gaveUp := &resilience.RetryError{Attempts: 3, Err: status.Error(codes.DeadlineExceeded, "B is slow"), Cause: resilience.ErrRetriesExhausted}
	refused := &resilience.RetryError{Attempts: 1, Err: errors.New("B is down"), Cause: resilience.ErrRetryBudget}
	plain := status.Error(codes.NotFound, "no such user")
	var handlerErr atomic.Pointer[error]
	addr := serve(t, &handlers{
		unary:  func(context.Context) error { return *handlerErr.Load() },
		stream: func(context.Context, func() error) error { return *handlerErr.Load() },
	}, ServerOptions()...)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := testgrpc.NewTestServiceClient(conn)
	for _, tc := range []struct {
		name     string
		err      error
		code     codes.Code
		msg      string
		pushback []string
	}{
		// A status error keeps its message; any other error's text is the
		// handler's dependency's, not for its callers: a fixed message.
		{"gave up", gaveUp, codes.Unavailable, "overloaded: a dependency of this service is failing; do not retry", []string{"-1"}},
		{"gave up, from a client of this package", &stoppedError{err: status.Error(codes.ResourceExhausted, "B is full"), policy: gaveUp},
			codes.Unavailable, "B is full", []string{"-1"}},
		{"refused by the budget", fmt.Errorf("calling B: %w", refused), codes.Unavailable, "overloaded: a dependency of this service is failing; do not retry", []string{"-1"}},
		{"an answer", plain, codes.NotFound, "no such user", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			handlerErr.Store(&tc.err)
			var trailer metadata.MD
			_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg || !slices.Equal(trailer[PushbackKey], tc.pushback) {
				t.Errorf("unary: %v, trailer %v; want %v %q, pushback %q", err, trailer, tc.code, tc.msg, tc.pushback)
			}
			s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Recv()
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg || !slices.Equal(s.Trailer()[PushbackKey], tc.pushback) {
				t.Errorf("stream: %v, trailer %v; want %v %q, pushback %q", err, s.Trailer(), tc.code, tc.msg, tc.pushback)
			}
		})
	}
}

// service is a gRPC service on 127.0.0.1 whose handler calls next through
// DialOptions with a guard that retries twice at once, and returns what
// it got, behind the hop interceptors if signal is set.
type service struct {
	addr     string
	requests atomic.Int32
}

func newService(t *testing.T, name, next string, signal bool) *service {
	t.Helper()
	s := &service{}
	down := connect(t, next, retrying(t, name, 2))
	var opts []grpc.ServerOption
	if signal {
		opts = ServerOptions()
	}
	s.addr = serve(t, &handlers{
		unary: func(ctx context.Context) error {
			s.requests.Add(1)
			_, err := down.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			return err
		},
		stream: func(ctx context.Context, send func() error) error {
			s.requests.Add(1)
			if err := recvFirst(ctx, down); err != nil {
				return err
			}
			return send()
		},
	}, opts...)
	return s
}

// The multi-layer amplification of retries, end to end: a client calls
// service A, whose handler calls B, which fails every call with
// Unavailable; the client and A each retry twice (r = 2). Without the hop
// interceptors, A's error goes back as B's Unavailable, which the client
// retries: B gets (1+r)^2 = 9 attempts per client call. With them, A
// retries B and then tells the client not to retry: B gets 1+r = 3. Over
// three layers, the word goes up from each hop to the next: (1+r)^3 = 27
// against 3. The same for streams that fail before their first message.
func TestRetriesAmplifyOnlyOneLayerDown(t *testing.T) {
	const r = 2
	for _, tc := range []struct {
		name   string
		layers int // services between the client and B
		signal bool
		want   int // attempts reaching B per client call
		top    int // calls reaching the first service
	}{
		{"two hops, no signal", 1, false, (1 + r) * (1 + r), 1 + r},
		{"two hops, hop interceptors", 1, true, 1 + r, 1},
		{"three hops, no signal", 2, false, (1 + r) * (1 + r) * (1 + r), 1 + r},
		{"three hops, hop interceptors", 2, true, 1 + r, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var atB atomic.Int32
			overloaded := func() error {
				atB.Add(1)
				return status.Error(codes.Unavailable, "B is overloaded")
			}
			next := serve(t, &handlers{
				unary:  func(context.Context) error { return overloaded() },
				stream: func(context.Context, func() error) error { return overloaded() },
			})
			var top *service
			for i := range tc.layers {
				top = newService(t, fmt.Sprintf("hop%d", i), next, tc.signal)
				next = top.addr
			}
			g := retrying(t, "client", r)
			c := connect(t, next, g)
			for _, call := range []struct {
				name string
				do   func() error
			}{
				{"unary", func() error { _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); return err }},
				{"stream", func() error { return recvFirst(t.Context(), c) }},
			} {
				atB.Store(0)
				top.requests.Store(0)
				err := call.do()
				if status.Code(err) != codes.Unavailable {
					t.Errorf("%s: the client got %v, want Unavailable", call.name, err)
				}
				if got := int(atB.Load()); got != tc.want {
					t.Errorf("%s: %d attempts reached B for one call, want %d", call.name, got, tc.want)
				}
				if got := int(top.requests.Load()); got != tc.top {
					t.Errorf("%s: %d calls reached the first service, want %d", call.name, got, tc.top)
				}
			}
			if w := Wire(g).Stats(); w.Calls[0].N != 2 || w.Calls[1].N != uint64(2*tc.top) {
				t.Errorf("the client's wire counted %v, want 2 calls and %d attempts", w.Calls, 2*tc.top)
			}
		})
	}
}

// The word crosses protocols: a gRPC service whose handler calls an HTTP
// service through resilhttp, which gave up on it, tells its gRPC client
// not to retry.
func TestDoNotRetryFromHTTPToGRPC(t *testing.T) {
	for _, signal := range []bool{false, true} {
		t.Run(fmt.Sprintf("signal=%v", signal), func(t *testing.T) {
			var atB atomic.Int32
			b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				atB.Add(1)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer b.Close()
			base := &http.Transport{}
			defer base.CloseIdleConnections()
			tr, err := resilhttp.NewTransport(resilhttp.TransportConfig{Guard: retrying(t, "a", 2), Base: base})
			if err != nil {
				t.Fatal(err)
			}
			client := &http.Client{Transport: tr}
			var opts []grpc.ServerOption
			if signal {
				opts = ServerOptions()
			}
			addr := serve(t, &handlers{unary: func(ctx context.Context) error {
				req, _ := http.NewRequestWithContext(ctx, "GET", b.URL, nil)
				resp, err := client.Do(req)
				if err != nil {
					return status.Error(codes.Unavailable, err.Error())
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err := resilhttp.ResponseError(resp); err != nil {
					if signal {
						return err // the hop interceptors say it
					}
					return status.Error(codes.Unavailable, err.Error()) // B's 503, as Unavailable
				}
				return nil
			}}, opts...)
			c := connect(t, addr, retrying(t, "client", 2))
			_, err = c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			want := 9
			if signal {
				want = 3
			}
			if code := status.Code(err); code == codes.OK || int(atB.Load()) != want {
				t.Errorf("%v; %d attempts reached B, want a failure and %d", err, atB.Load(), want)
			}
		})
	}
}

// Wire counts every call the interceptors run through the guard and every
// attempt they hand to grpc-go: a call tried three times is three
// attempts, and a call the breaker refuses is a call with none, for unary
// calls and streams alike.
func TestWireCounts(t *testing.T) {
	srv := &server{}
	addr := start(t, srv)
	breaker := newBreaker(t)
	g := newGuard(t, newRetry(t, 2), breaker)
	w := Wire(g)
	if w != Wire(g) || w.Kind() != KindWire || KindWire != "wire" || w.Name() != g.Name() {
		t.Errorf("Wire(g): %v %q %q, want one stage of kind wire named %q", w, w.Kind(), w.Name(), g.Name())
	}
	check := func(calls, attempts uint64) {
		t.Helper()
		st := w.Stats()
		amp := 0.0
		if calls > 0 {
			amp = float64(attempts) / float64(calls)
		}
		wantCalls := []resilience.Count{{Result: "call", N: calls}, {Result: "attempt", N: attempts}}
		if !slices.Equal(st.Calls, wantCalls) || len(st.Gauges) != 1 || st.Gauges[0].Name != "amplification" || st.Gauges[0].Value != amp {
			t.Errorf("Stats = %+v, want %v and amplification %v", st, wantCalls, amp)
		}
	}
	check(0, 0)
	c := dial(t, addr, g)
	unary := func() { c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}) }
	stream := func() { recvFirst(t.Context(), c) }
	var calls, attempts uint64
	for _, call := range []func(){unary, stream} {
		srv.script()
		call()
		calls, attempts = calls+1, attempts+1 // sent once
		check(calls, attempts)
		srv.script(codes.Unavailable, codes.Unavailable)
		call()
		calls, attempts = calls+1, attempts+3 // sent three times
		check(calls, attempts)
		breaker.ForceOpen()
		call()
		calls++ // sent never
		check(calls, attempts)
		breaker.Reset()
	}
}
