package resilgrpc

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// maxReplay is how many sent messages a stream keeps to send again on a
// retry; a stream that sends more before its first answer is not retried.
const maxReplay = 64

// StreamClientInterceptor returns an interceptor that guards streams with
// g's breaker and retries. It returns an error if g is nil or abandons
// calls at its time limit.
//
// A stream is one call for the breaker: it succeeds when its first message
// arrives (or the server ends it cleanly without one) and fails as
// IsFailure says when it ends with an error before that. A stream the
// breaker rejects is not opened; its error is a *PolicyError.
//
// A stream is retried, as the guard's retry policy allows and with
// IsRetryable's codes, only before its first message arrives: when opening
// it fails, and when it ends before that message. The messages sent until
// then (at most 64) are kept and sent again, in order, on the new stream,
// and CloseSend too. A stream whose send fails, or that sends more than 64
// messages before its first answer, is no longer retried. Once the first
// message has arrived the stream is the caller's: nothing more is counted
// or retried.
//
// Opening the stream and waiting for its first message are each retried
// up to the policy's limit. The guard's time limit does not apply to
// streams, which often live long: bound a stream with its context.
func StreamClientInterceptor(g *resilience.Guard) (grpc.StreamClientInterceptor, error) {
	if err := checkGuard(g); err != nil {
		return nil, err
	}
	var retry resilience.Policy[grpc.ClientStream]
	if r := g.Retry(); r != nil {
		retry = resilience.For[grpc.ClientStream](r)
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		s := &clientStream{ctx: ctx, breaker: g.Breaker(), retry: retry,
			open: func() (grpc.ClientStream, error) { return streamer(ctx, desc, cc, method, opts...) }}
		if _, err := s.attempts(func() (grpc.ClientStream, error) { return s.attempt(nil) }); err != nil {
			return nil, err
		}
		return s, nil
	}, nil
}

// clientStream is a stream that is opened again, what was sent on it
// replayed, when it fails before its first message arrives.
type clientStream struct {
	ctx     context.Context
	breaker *resilience.Breaker
	retry   resilience.Policy[grpc.ClientStream] // nil: no retries
	open    func() (grpc.ClientStream, error)

	mu        sync.Mutex
	cs        grpc.ClientStream // the current attempt's stream
	permit    resilience.Permit // its permit, while pending
	pending   bool              // the permit is not reported yet
	stopWatch func() bool       // stops reporting the permit when ctx ends
	sent      []any             // messages sent before the first answer
	closed    bool              // CloseSend was called
	noRetry   bool              // the first answer arrived, or retrying is off
}

// stopRetrying ends the retries of the first answer: the stream can no
// longer be replayed.
type stopRetrying struct{}

func (stopRetrying) Error() string { return "resilgrpc: the stream can no longer be retried" }

// attempts runs fn, retried as the retry policy allows, and returns what
// the caller gets.
func (s *clientStream) attempts(fn func() (grpc.ClientStream, error)) (grpc.ClientStream, error) {
	var answered error
	call := func(ctx context.Context) (grpc.ClientStream, error) {
		cs, err := fn()
		if errors.Is(err, stopRetrying{}) {
			return nil, resilience.Permanent(err)
		}
		answered = err
		switch {
		case err == io.EOF:
			return cs, nil // the stream ended cleanly
		case errors.Is(err, resilience.ErrOpen):
			return nil, err // the breaker's own rejection
		}
		return cs, classify(ctx, err)
	}
	var cs grpc.ClientStream
	var err error
	if s.retry != nil {
		cs, err = s.retry.Do(s.ctx, call)
	} else {
		cs, err = call(s.ctx)
	}
	if errors.Is(err, stopRetrying{}) {
		return nil, answered
	}
	return cs, result(err, answered)
}

// attempt opens a stream with a new permit and sends it what was sent
// before; then, if first is set, it waits for the first message with it.
func (s *clientStream) attempt(first func(grpc.ClientStream) error) (grpc.ClientStream, error) {
	permit, err := s.breaker.Allow(s.ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.open()
	if err != nil {
		permit.Done(breakerError(s.ctx, err))
		return nil, err
	}
	// Replay what was sent, including what is sent meanwhile, then make
	// the new stream current.
	for i := 0; ; i++ {
		s.mu.Lock()
		if i == len(s.sent) {
			s.cs, s.permit, s.pending = cs, permit, true
			s.watch()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				cs.CloseSend()
			}
			break
		}
		m := s.sent[i]
		s.mu.Unlock()
		if cs.SendMsg(m) != nil {
			// The new stream failed already: its RecvMsg tells why.
			s.mu.Lock()
			s.cs, s.permit, s.pending = cs, permit, true
			s.watch()
			s.mu.Unlock()
			break
		}
	}
	if first != nil {
		return cs, first(cs)
	}
	return cs, nil
}

// watch reports the current permit if the caller's context ends before the
// first answer. s.mu is held.
func (s *clientStream) watch() {
	if s.stopWatch != nil {
		s.stopWatch()
	}
	cs := s.cs
	s.stopWatch = context.AfterFunc(s.ctx, func() {
		s.mu.Lock()
		pending := s.pending && s.cs == cs
		permit := s.permit
		if pending {
			s.pending, s.permit = false, resilience.Permit{}
		}
		s.mu.Unlock()
		if pending {
			permit.Done(s.ctx.Err())
		}
	})
}

// report reports the current permit, once, as the end of a call with err.
func (s *clientStream) report(err error) {
	s.mu.Lock()
	permit, pending := s.permit, s.pending
	s.pending, s.permit = false, resilience.Permit{}
	if s.stopWatch != nil {
		s.stopWatch()
		s.stopWatch = nil
	}
	s.mu.Unlock()
	if pending {
		permit.Done(breakerError(s.ctx, err))
	}
}

// breakerError is what the breaker is told of a stream that ended with
// err before its first message.
func breakerError(ctx context.Context, err error) error {
	if err == io.EOF {
		return nil // ended cleanly
	}
	return classify(ctx, err)
}

// stopLocked ends retrying. s.mu is held.
func (s *clientStream) stopLocked() {
	s.noRetry = true
	s.sent = nil
}

func (s *clientStream) SendMsg(m any) error {
	s.mu.Lock()
	cs := s.cs
	if !s.noRetry {
		if len(s.sent) < maxReplay {
			s.sent = append(s.sent, m)
		} else {
			s.stopLocked()
		}
	}
	s.mu.Unlock()
	err := cs.SendMsg(m)
	if err != nil {
		s.mu.Lock()
		if s.cs == cs {
			// The caller saw the send fail and may stop sending: a new
			// stream would not get the rest.
			s.stopLocked()
		}
		s.mu.Unlock()
	}
	return err
}

func (s *clientStream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	cs := s.cs
	s.mu.Unlock()
	return cs.CloseSend()
}

func (s *clientStream) RecvMsg(m any) error {
	s.mu.Lock()
	cs, pending, noRetry := s.cs, s.pending, s.noRetry
	s.mu.Unlock()
	if !pending {
		return cs.RecvMsg(m) // past the first answer
	}
	first := func(cs grpc.ClientStream) error {
		err := cs.RecvMsg(m)
		s.report(err)
		if err == nil || err == io.EOF {
			s.mu.Lock()
			s.stopLocked()
			s.mu.Unlock()
		}
		return err
	}
	if noRetry || s.retry == nil {
		return first(cs)
	}
	tries := 0
	_, err := s.attempts(func() (grpc.ClientStream, error) {
		if tries++; tries == 1 {
			return cs, first(cs)
		}
		s.mu.Lock()
		stop := s.noRetry
		s.mu.Unlock()
		if stop {
			return nil, stopRetrying{}
		}
		return s.attempt(first)
	})
	return err
}

func (s *clientStream) stream() grpc.ClientStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cs
}

func (s *clientStream) Header() (metadata.MD, error) { return s.stream().Header() }
func (s *clientStream) Trailer() metadata.MD         { return s.stream().Trailer() }
func (s *clientStream) Context() context.Context     { return s.stream().Context() }
