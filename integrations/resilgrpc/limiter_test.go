package resilgrpc

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// plain dials addr without interceptors, so that the test reads what the
// server answers as it came.
func plain(t *testing.T, addr string) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// adaptive returns an adaptive limiter of cfg, named "server".
func adaptive(t *testing.T, cfg resilience.AdaptiveLimiterConfig) *resilience.AdaptiveLimiter {
	t.Helper()
	cfg.Name = "server"
	l, err := resilience.NewAdaptiveLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// stageFunc is a stage of the test's own.
type stageFunc func(ctx context.Context, call func(context.Context) error) error

func (stageFunc) Name() string { return "own" }
func (stageFunc) Kind() string { return "own" }
func (f stageFunc) Run(ctx context.Context, call func(context.Context) error) error {
	return f(ctx, call)
}

func TestServerInterceptorsRefuseABadStage(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    resilience.Stage
		want string
	}{
		{"nil", nil, "bulkhead"},
		{"a nil *Bulkhead", (*resilience.Bulkhead)(nil), "bulkhead is nil"},
		{"a nil *AdaptiveLimiter", (*resilience.AdaptiveLimiter)(nil), "adaptive limiter is nil"},
		{"a zero AdaptiveLimiter", &resilience.AdaptiveLimiter{}, "resilience.NewAdaptiveLimiter"},
		{"a nil *Breaker", (*resilience.Breaker)(nil), "nil *resilience.Breaker"},
	} {
		if _, err := UnaryServerInterceptor(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("UnaryServerInterceptor of %s: %v, want an error with %q", tc.name, err, tc.want)
		}
		if _, err := StreamServerInterceptor(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("StreamServerInterceptor of %s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	for _, s := range []resilience.Stage{adaptive(t, resilience.AdaptiveLimiterConfig{}), newBreaker(t)} {
		if _, err := UnaryServerInterceptor(s); err != nil {
			t.Errorf("UnaryServerInterceptor of a %s: %v", s.Kind(), err)
		}
		if _, err := StreamServerInterceptor(s); err != nil {
			t.Errorf("StreamServerInterceptor of a %s: %v", s.Kind(), err)
		}
	}
}

// pushbackMs reads the PushbackKey of a trailer, and fails t unless it is
// one whole number of milliseconds, at least 1.
func pushbackMs(t *testing.T, what string, md metadata.MD) {
	t.Helper()
	vs := md.Get(PushbackKey)
	if len(vs) != 1 {
		t.Errorf("%s: trailer %s %q, want one value", what, PushbackKey, vs)
		return
	}
	if ms, err := strconv.Atoi(vs[0]); err != nil || ms < 1 {
		t.Errorf("%s: trailer %s %q, want whole milliseconds, at least 1", what, PushbackKey, vs[0])
	}
}

// A real server behind an adaptive limiter of one slot and no line: while
// a call holds the slot, the next unary call and the next stream are
// answered ResourceExhausted with a pushback trailer the client reads, and
// their handlers never run; once the slot is free, calls are served.
func TestServerLimiterAnswersResourceExhausted(t *testing.T) {
	l := adaptive(t, resilience.AdaptiveLimiterConfig{InitialLimit: 1})
	unary, _ := UnaryServerInterceptor(l)
	stream, _ := StreamServerInterceptor(l)
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	h := &handlers{
		unary: func(ctx context.Context) error {
			if calls.Add(1) == 1 {
				close(entered)
				<-release
			}
			return nil
		},
		stream: func(ctx context.Context, send func() error) error {
			calls.Add(1)
			return send()
		},
	}
	c := plain(t, serve(t, h, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream)))

	done := make(chan error)
	go func() {
		_, err := c.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
		done <- err
	}()
	<-entered

	var trailer metadata.MD
	_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("unary while full: %v, want ResourceExhausted", err)
	}
	pushbackMs(t, "unary while full", trailer)

	s, err := c.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("stream while full: %v, want ResourceExhausted", err)
	}
	pushbackMs(t, "stream while full", s.Trailer())
	if n := calls.Load(); n != 1 {
		t.Errorf("%d handlers ran, want only the one holding the slot", n)
	}

	close(release)
	if err := <-done; err != nil {
		t.Errorf("the call holding the slot: %v", err)
	}
	if _, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
		t.Errorf("unary once free: %v", err)
	}
	if err := recvFirst(t.Context(), c); err != nil {
		t.Errorf("stream once free: %v", err)
	}
	if n := l.InFlight(); n != 0 {
		t.Errorf("%d calls in flight after every call ended", n)
	}
}

// A bare server stream, for the interceptors called without a server.
type bareStream struct {
	grpc.ServerStream
	ctx     context.Context
	trailer metadata.MD
}

func (s *bareStream) Context() context.Context  { return s.ctx }
func (s *bareStream) SetTrailer(md metadata.MD) { s.trailer = metadata.Join(s.trailer, md) }

// A call whose context ends while it waits in the limiter's line gets the
// context's code as soon as it ends, no pushback, and its handler never
// runs.
func TestServerLimiterContextEndsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := adaptive(t, resilience.AdaptiveLimiterConfig{InitialLimit: 1, MaxWait: time.Hour})
		unary, _ := UnaryServerInterceptor(l)
		stream, _ := StreamServerInterceptor(l)
		p, err := l.Acquire(t.Context()) // the only slot
		if err != nil {
			t.Fatal(err)
		}
		defer p.Release()
		ran := false
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		_, err = unary(ctx, nil, &grpc.UnaryServerInfo{}, func(context.Context, any) (any, error) { ran = true; return nil, nil })
		if status.Code(err) != codes.DeadlineExceeded || time.Since(start) != time.Second {
			t.Errorf("unary: %v after %v, want DeadlineExceeded after 1s", err, time.Since(start))
		}
		ss := &bareStream{ctx: ctx}
		err = stream(nil, ss, &grpc.StreamServerInfo{}, func(any, grpc.ServerStream) error { ran = true; return nil })
		if status.Code(err) != codes.DeadlineExceeded || ss.trailer != nil {
			t.Errorf("stream: %v, trailer %v; want DeadlineExceeded, none", err, ss.trailer)
		}
		if ran || l.InFlight() != 1 || l.Queued() != 0 {
			t.Errorf("handler ran: %v; %d in flight, %d queued; want false, 1, 0", ran, l.InFlight(), l.Queued())
		}
	})
}

type ownKey struct{}

// Any other stage runs the handler as its call, with the context it
// gives and seeing the handler's error: a call it refuses gets
// Unavailable with its rejection behind it, a call it fails with a status
// gets that status.
func TestServerInterceptorsOfAnotherStage(t *testing.T) {
	var sawErr atomic.Value
	for _, tc := range []struct {
		name  string
		stage stageFunc
		code  codes.Code
		ran   bool
	}{
		{"admitted", func(ctx context.Context, call func(context.Context) error) error {
			err := call(context.WithValue(ctx, ownKey{}, "own"))
			sawErr.Store(status.Code(err))
			return err
		}, codes.NotFound, true},
		{"refused", func(ctx context.Context, call func(context.Context) error) error {
			return &resilience.RateLimitedError{Name: "server", Delay: time.Second}
		}, codes.Unavailable, false},
		{"failed with a status", func(ctx context.Context, call func(context.Context) error) error {
			return status.Error(codes.PermissionDenied, "who are you")
		}, codes.PermissionDenied, false},
		{"failed", func(ctx context.Context, call func(context.Context) error) error {
			return errors.New("broken")
		}, codes.Unavailable, false},
		{"dropped", func(ctx context.Context, call func(context.Context) error) error { return nil }, codes.Unavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unary, _ := UnaryServerInterceptor(tc.stage)
			stream, _ := StreamServerInterceptor(tc.stage)
			var ran atomic.Int32
			h := &handlers{
				unary: func(ctx context.Context) error {
					ran.Add(1)
					if ctx.Value(ownKey{}) != "own" {
						t.Error("the unary handler's context is not the stage's")
					}
					return status.Error(codes.NotFound, "nothing here")
				},
				stream: func(ctx context.Context, send func() error) error {
					ran.Add(1)
					if ctx.Value(ownKey{}) != "own" {
						t.Error("the stream's context is not the stage's")
					}
					return status.Error(codes.NotFound, "nothing here")
				},
			}
			c := plain(t, serve(t, h, grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream)))
			_, err := c.UnaryCall(t.Context(), &testgrpc.SimpleRequest{})
			if status.Code(err) != tc.code {
				t.Errorf("unary: %v, want %v", err, tc.code)
			}
			if err := recvFirst(t.Context(), c); status.Code(err) != tc.code {
				t.Errorf("stream: %v, want %v", err, tc.code)
			}
			if want := map[bool]int32{true: 2, false: 0}[tc.ran]; ran.Load() != want {
				t.Errorf("handlers ran %d times, want %d", ran.Load(), want)
			}
			if tc.ran && sawErr.Load() != codes.NotFound {
				t.Errorf("the stage saw %v, want the handler's NotFound", sawErr.Load())
			}
		})
	}
}

// priorityOf tells the priority of ctx as the tests compare it: "none"
// when ctx carries none.
func priorityOf(ctx context.Context) string {
	if p, ok := resilience.PriorityIn(ctx); ok {
		return p.String()
	}
	return "none"
}

// The PriorityMetadataKey of a call reaches its handler's context,
// through every kind of stage, on unary calls and streams; an unknown
// value is ignored, and so is the metadata when an interceptor before
// has set a priority.
func TestServerInterceptorsReadThePriority(t *testing.T) {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "server", MaxConcurrent: 10})
	if err != nil {
		t.Fatal(err)
	}
	own := stageFunc(func(ctx context.Context, call func(context.Context) error) error { return call(ctx) })
	trusted := func(ctx context.Context) context.Context {
		if len(metadata.ValueFromIncomingContext(ctx, "batch")) > 0 {
			return resilience.WithPriority(ctx, resilience.PrioritySheddable)
		}
		return ctx
	}
	for name, s := range map[string]resilience.Stage{"bulkhead": bulkhead, "limiter": adaptive(t, resilience.AdaptiveLimiterConfig{}), "own stage": own} {
		t.Run(name, func(t *testing.T) {
			unary, _ := UnaryServerInterceptor(s)
			stream, _ := StreamServerInterceptor(s)
			got := make(chan string, 1)
			h := &handlers{
				unary:  func(ctx context.Context) error { got <- priorityOf(ctx); return nil },
				stream: func(ctx context.Context, send func() error) error { got <- priorityOf(ctx); return send() },
			}
			addr := serve(t, h,
				grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
					return handler(trusted(ctx), req)
				}, unary),
				grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
					return handler(srv, &hopStream{ServerStream: ss, ctx: trusted(ss.Context())})
				}, stream))
			c := plain(t, addr)
			for _, tc := range []struct {
				md   []string
				want string
			}{
				{nil, "none"},
				{[]string{PriorityMetadataKey, "critical"}, "critical"},
				{[]string{PriorityMetadataKey, "SHEDDABLE"}, "sheddable"},
				{[]string{PriorityMetadataKey, "default"}, "default"},
				{[]string{PriorityMetadataKey, "urgent"}, "none"},
				{[]string{PriorityMetadataKey, "critical", "batch", "yes"}, "sheddable"},
			} {
				ctx := t.Context()
				if tc.md != nil {
					ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
				}
				if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
					t.Fatal(err)
				}
				if p := <-got; p != tc.want {
					t.Errorf("unary with %q: the handler's priority is %s, want %s", tc.md, p, tc.want)
				}
				if err := recvFirst(ctx, c); err != nil {
					t.Fatal(err)
				}
				if p := <-got; p != tc.want {
					t.Errorf("stream with %q: the handler's priority is %s, want %s", tc.md, p, tc.want)
				}
			}
		})
	}
}

// The unary client interceptor sends the priority of the call's context,
// on every attempt, and nothing for a call without one; metadata the
// caller set is sent as it is.
func TestClientInterceptorSendsThePriority(t *testing.T) {
	var mu sync.Mutex
	var got [][]string
	h := &handlers{unary: func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, metadata.ValueFromIncomingContext(ctx, PriorityMetadataKey))
		if len(got) == 1 {
			return status.Error(codes.Unavailable, "retry me")
		}
		return nil
	}}
	c := dial(t, serve(t, h), retrying(t, "backend", 1))
	critical := resilience.WithPriority(t.Context(), resilience.PriorityCritical)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []string
	}{
		{"no priority", t.Context(), nil},
		{"critical", critical, []string{"critical"}},
		{"sheddable", resilience.WithPriority(t.Context(), resilience.PrioritySheddable), []string{"sheddable"}},
		{"the caller's metadata", metadata.AppendToOutgoingContext(critical, PriorityMetadataKey, "default"), []string{"default"}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		if _, err := c.UnaryCall(tc.ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		mu.Lock()
		if len(got) != 2 || !slices.Equal(got[0], tc.want) || !slices.Equal(got[1], tc.want) {
			t.Errorf("%s: the attempts carried %q, want %q on both", tc.name, got, tc.want)
		}
		mu.Unlock()
	}
	// A stream carries it too.
	seen := make(chan []string, 1)
	hs := &handlers{stream: func(ctx context.Context, send func() error) error {
		seen <- metadata.ValueFromIncomingContext(ctx, PriorityMetadataKey)
		return send()
	}}
	sc := dial(t, serve(t, hs), retrying(t, "backend", 0))
	st, err := sc.StreamingOutputCall(critical, &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	if got := <-seen; !slices.Equal(got, []string{"critical"}) {
		t.Errorf("a stream carried %q, want [critical]", got)
	}
}

// A critical call goes from a client through the client interceptors to
// a server behind an adaptive limiter, whose handler calls another
// server the same way with its call's context: the priority reaches the
// handler of each hop.
func TestPriorityFollowsTheCall(t *testing.T) {
	seen := make(chan string, 2)
	shed := func() grpc.ServerOption {
		unary, err := UnaryServerInterceptor(adaptive(t, resilience.AdaptiveLimiterConfig{}))
		if err != nil {
			t.Fatal(err)
		}
		return grpc.UnaryInterceptor(unary)
	}
	back := dial(t, serve(t, &handlers{unary: func(ctx context.Context) error {
		seen <- "back: " + priorityOf(ctx)
		return nil
	}}, shed()), retrying(t, "back", 0))
	front := dial(t, serve(t, &handlers{unary: func(ctx context.Context) error {
		seen <- "front: " + priorityOf(ctx)
		_, err := back.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}}, shed()), retrying(t, "front", 0))

	ctx := resilience.WithPriority(t.Context(), resilience.PriorityCritical)
	if _, err := front.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := []string{<-seen, <-seen}; !slices.Equal(got, []string{"front: critical", "back: critical"}) {
		t.Errorf("the handlers saw %q, want critical at both hops", got)
	}
}
