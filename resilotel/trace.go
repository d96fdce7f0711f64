package resilotel

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/resilience-go/resilience"
)

// Span event names, one per resilience.EventType.
const (
	EventRetry    = "resilience.retry"
	EventGaveUp   = "resilience.retry.gave_up"
	EventRejected = "resilience.rejected"
	EventTimeout  = "resilience.timeout"
	EventChaos    = "resilience.chaos"
	EventHedge    = "resilience.hedge"
)

var eventNames = map[resilience.EventType]string{
	resilience.EventRetry:    EventRetry,
	resilience.EventGaveUp:   EventGaveUp,
	resilience.EventRejected: EventRejected,
	resilience.EventTimeout:  EventTimeout,
	resilience.EventChaos:    EventChaos,
	resilience.EventHedge:    EventHedge,
}

// TraceEvents adds what each stage does to a call to the span in that
// call's context, as span events: a retry with its attempt, its delay and
// the class of the error that made it; a retry given up; a rejection (a
// breaker open, a bulkhead full, a rate limit, a throttler, a retry
// budget's refusal, a hedge its budget refused); a time-out; a chaos
// fault; a hedge sent, with its attempt and the delay after which it
// went. Each stage must be a
// resilience.EventSource, or a Guard (each of its stages that is one).
// docs/OTEL.md lists the events and their attributes.
//
// It costs nothing when the span is not recording (or there is none):
// the event is dropped after one look at the span, before any attribute
// is built; and a call that runs as usual has no event at all.
func TraceEvents(stages ...resilience.Stage) error {
	if err := resilience.ObserveEvents(addEvent, stages...); err != nil {
		return fmt.Errorf("resilotel: TraceEvents: %w", err)
	}
	return nil
}

// addEvent adds e to the span in ctx, if it is recording.
func addEvent(ctx context.Context, e resilience.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	name, ok := eventNames[e.Type]
	if !ok {
		return // a type of a later version of the core
	}
	attrs := make([]attribute.KeyValue, 0, 6)
	attrs = append(attrs, attrName.String(e.Name), attrStage.String(e.Kind))
	if e.Key != "" {
		attrs = append(attrs, attrKey.String(e.Key))
	}
	if e.Attempt > 0 {
		attrs = append(attrs, attrAttempt.Int(e.Attempt))
	}
	if e.Type == resilience.EventRetry || e.Type == resilience.EventChaos || e.Type == resilience.EventHedge {
		attrs = append(attrs, attrDelay.Float64(e.Delay.Seconds()))
	}
	if e.Err != nil {
		attrs = append(attrs, attrErrorType.String(errorClass(e.Err)))
	}
	span.AddEvent(name, trace.WithAttributes(attrs...))
}

var (
	attrStage     = attribute.Key("resilience.stage")
	attrKey       = attribute.Key("resilience.key")
	attrAttempt   = attribute.Key("resilience.attempt")
	attrDelay     = attribute.Key("resilience.delay")
	attrErrorType = attribute.Key("error.type")
)

// errorClass is the error.type of err: what the library makes of it, in
// a word, or the Go type of the error it wraps when it is none of those.
// A retry given up is classed by why it stopped (a deadline: timeout;
// the caller: canceled; its budget: rejected), else by its last
// attempt's error.
func errorClass(err error) string {
	if c := knownClass(err); c != "" {
		return c
	}
	var re *resilience.RetryError
	if errors.As(err, &re) && re.Err != nil {
		err = re.Err
		if c := knownClass(err); c != "" {
			return c
		}
	}
	for { // the innermost error, which says most
		u := errors.Unwrap(err)
		if u == nil {
			return fmt.Sprintf("%T", err)
		}
		err = u
	}
}

func knownClass(err error) string {
	switch {
	case errors.Is(err, resilience.ErrRejected), errors.Is(err, resilience.ErrRetryBudget), errors.Is(err, resilience.ErrHedgeBudget):
		return "rejected" // a retry budget's refusal of a retry, a hedge budget's of a hedge, too
	case errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, resilience.ErrChaos):
		return "chaos"
	}
	return ""
}
