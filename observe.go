package resilience

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Each stage's observer type lives with the stage (BreakerObserver in
// breaker.go, and so on). Observers are structs of optional functions, as
// net/http/httptrace's ClientTrace is: any may be nil, each may be called
// from many goroutines at once, and none is called with a lock held. The
// helpers below join two observers into one.

// join0, join1 and join2 return a function calling f then g, either of
// which may be nil.
func join0(f, g func()) func() {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func() { f(); g() }
}

func join1[A any](f, g func(A)) func(A) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A) { f(a); g(a) }
}

func join2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil || g == nil {
		return or2(f, g)
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

// or2 returns f if it is not nil, else g.
func or2[F any](f, g F) F {
	if isNil(f) {
		return g
	}
	return f
}

// EventType says what a stage did to one call.
type EventType uint8

// The events stages report through ObserveEvents.
const (
	// EventRetry: a retry policy is about to wait Delay, then make
	// attempt Attempt+1. Err is attempt Attempt's error.
	EventRetry EventType = iota + 1
	// EventGaveUp: a retry policy returns a failure after Attempt
	// attempts, retries spent or stopped (by the deadline, the budget,
	// the caller's context, an error not worth retrying). Err is the
	// *RetryError: its Cause says why it stopped (nil when the last
	// attempt's error was not retryable), its Err the last attempt's
	// error.
	EventGaveUp
	// EventRejected: the stage refused to run the call (a breaker open,
	// a bulkhead full, a rate limit, a throttler, a retry budget spent,
	// a keyed family full). Err is its refusal, which matches
	// ErrRejected. A retry budget refuses a retry, not the call: its
	// Attempt is the attempt whose retry it refused, its Err the
	// *RetryError the call ends with (Cause ErrRetryBudget).
	EventRejected
	// EventTimeout: the stage's time limit ended the call. Err is the
	// error the stage returns (a *TimeoutError).
	EventTimeout
	// EventChaos: a chaos stage faulted the call. Err is the error it
	// injected, nil for latency alone; Delay the latency it added.
	EventChaos
	// EventHedge: a Hedge sent a hedge, attempt Attempt of the call,
	// Delay after the attempt before it. It is reported from the hedge's
	// goroutine, with the call's context. A hedge the budget refused is
	// an EventRejected of the Hedge, its Err ErrHedgeBudget.
	EventHedge
)

var eventTypeNames = [...]string{"", "retry", "gave_up", "rejected", "timeout", "chaos", "hedge"}

// String returns "retry", "gave_up", "rejected", "timeout", "chaos" or
// "hedge".
func (t EventType) String() string {
	if int(t) < len(eventTypeNames) && t != 0 {
		return eventTypeNames[t]
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is something a stage did to one call, reported with that call's
// context, so that an observer can put it on the call's span or in its
// log line. The calls that run as usual report nothing: a call through a
// closed breaker costs no event.
type Event struct {
	Type EventType
	// Kind and Name are the reporting stage's.
	Kind string
	Name string
	// Key is the call's key, for a stage that keeps state per key (a
	// KeyedBreaker); "" otherwise.
	Key string
	// Attempt is the attempt the event is about, from 1, for a retry
	// policy's events, a retry budget's refusal and a hedge's events; 0
	// otherwise.
	Attempt int
	// Delay is the wait before the next attempt (EventRetry), the
	// latency a chaos stage added (EventChaos), or the delay after which
	// a hedge was sent (EventHedge).
	Delay time.Duration
	// Err is the error the event is about; see each EventType.
	Err error
}

// EventSource is a stage that reports its events to observers with the
// call's context. This package's stages all are; a stage of your own can
// be one too, and then ObserveEvents and everything built on it (the
// log/slog and OpenTelemetry helpers) take it like the others.
type EventSource interface {
	Stage
	// ObserveEvents adds f to the stage's observers of events. f is
	// called on the goroutine of the call the event is about, with its
	// context, never with a lock held; it must be quick and safe for
	// concurrent use. A nil f is ignored.
	ObserveEvents(f func(context.Context, Event))
}

// ObserveEvents adds f to the observers of events of each stage: each
// must be an EventSource, or a Guard (each of its stages that is one).
// It checks every stage before it adds f to any, so on error nothing has
// changed. Adding f twice to a stage calls it twice.
func ObserveEvents(f func(context.Context, Event), stages ...Stage) error {
	if f == nil {
		return fmt.Errorf("resilience: ObserveEvents: %w", &ConfigError{Field: "ObserveEvents", Value: "nil", Reason: "the func to report events to is required"})
	}
	sources, err := eventSources("ObserveEvents", stages)
	if err != nil {
		return err
	}
	for _, s := range sources {
		s.ObserveEvents(f)
	}
	return nil
}

// eventSources returns the EventSources among stages, a Guard's taken one
// by one, or an error naming each stage that is none.
func eventSources(fn string, stages []Stage) ([]EventSource, error) {
	if len(stages) == 0 {
		return nil, fmt.Errorf("resilience: %s: no stage given: pass the guard or the stages to observe", fn)
	}
	var (
		out  []EventSource
		errs []error
	)
	for i, s := range stages {
		switch s := s.(type) {
		case *Guard:
			if s == nil || s.links == nil {
				errs = append(errs, fmt.Errorf("resilience: %s: stage %d: %w", fn, i, errGuardNotMade))
				continue
			}
			for _, gs := range s.stages {
				if es, ok := gs.(EventSource); ok {
					out = append(out, es)
				}
			}
			continue
		case EventSource:
			if !isNil(s) {
				out = append(out, s)
				continue
			}
		}
		if isNil(s) {
			errs = append(errs, fmt.Errorf("resilience: %s: stage %d is nil", fn, i))
		} else {
			errs = append(errs, fmt.Errorf("resilience: %s: stage %d, %q of kind %q (%T), reports no events: implement resilience.EventSource", fn, i, s.Name(), s.Kind(), s))
		}
	}
	return out, errors.Join(errs...)
}

// events holds a stage's observers of events.
type events struct {
	f atomic.Pointer[func(context.Context, Event)]
}

// add adds f to the observers.
func (e *events) add(f func(context.Context, Event)) {
	if f == nil {
		return
	}
	for {
		old := e.f.Load()
		g := f
		if old != nil {
			prev := *old
			g = func(ctx context.Context, ev Event) { prev(ctx, ev); f(ctx, ev) }
		}
		if e.f.CompareAndSwap(old, &g) {
			return
		}
	}
}

// on reports whether anyone observes the events: a stage checks it before
// it builds an Event.
func (e *events) on() bool { return e.f.Load() != nil }

// emit reports ev to the observers, if any.
func (e *events) emit(ctx context.Context, ev Event) {
	if f := e.f.Load(); f != nil {
		(*f)(ctx, ev)
	}
}
