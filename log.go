package resilience

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultLogInterval is LogConfig.Interval's default.
const DefaultLogInterval = 10 * time.Second

// LogConfig configures LogEvents.
type LogConfig struct {
	// Logger is where the lines go. Required.
	Logger *slog.Logger

	// Interval is the least time between two lines about events of one
	// type from one stage (one line for the rejections of a bulkhead,
	// one for its family's, however many keys): the first event of a
	// burst is logged at once, the ones that follow within Interval are
	// counted, and the next line logged carries how many were left out
	// (attribute "suppressed"). A breaker's state changes are not
	// limited; a keyed breaker's, which thousands of keys may make at
	// once, are. Default DefaultLogInterval (10s); a negative Interval
	// logs every event.
	Interval time.Duration
}

// Log is LogEvents with a LogConfig of logger and the defaults: one line
// to log what the stages do through a logger of the caller's,
//
//	if err := resilience.Log(logger, guard); err != nil { ... }
//
// A breaker's state changes are logged (level Warn when it opens, Info
// otherwise), and, rate-limited, a retry policy giving up (Warn),
// rejections (Warn), time-outs (Warn), retries, hedges sent or refused
// by their budget, and chaos faults (Debug), each line with structured attributes: "dependency" (the
// stage's name), "stage" (its kind), and as the event has them "key",
// "from", "to", "attempt", "delay", "error", "cause" (why a retry gave
// up) and "suppressed" (the lines left out before this one).
func Log(logger *slog.Logger, stages ...Stage) error {
	return LogEvents(LogConfig{Logger: logger}, stages...)
}

// LogEvents logs the events and state changes of each stage through
// cfg.Logger, as Log says; each stage must be an EventSource or a Guard
// (each of its stages that is one). An invalid cfg or stage is an error
// naming it, and then nothing has changed.
//
// A line costs nothing when the logger's level is above the event's: the
// event is dropped after one call to the handler's Enabled, before any
// attribute is built.
func LogEvents(cfg LogConfig, stages ...Stage) error {
	if cfg.Logger == nil {
		return &ConfigError{Field: "LogConfig.Logger", Value: "nil", Reason: "is required: the *slog.Logger to log to"}
	}
	interval := cfg.Interval
	if interval == 0 {
		interval = DefaultLogInterval
	}
	sources, err := eventSources("LogEvents", stages)
	if err != nil {
		return err
	}
	for _, s := range sources {
		l := &stageLog{logger: cfg.Logger, interval: interval, base: time.Now()}
		s.ObserveEvents(l.event)
		switch s := s.(type) {
		case *Breaker:
			s.Observe(BreakerObserver{StateChange: func(c StateChange) { l.stateChange(KindBreaker, c, false) }})
		case *KeyedBreaker:
			s.Observe(BreakerObserver{StateChange: func(c StateChange) { l.stateChange(KindKeyedBreaker, c, true) }})
		}
	}
	return nil
}

// stageLog logs one stage's events, each type limited on its own.
type stageLog struct {
	logger   *slog.Logger
	interval time.Duration
	base     time.Time // the limits' times are since base, on the monotonic clock
	// By EventType; then a keyed breaker's state changes to open, and
	// its others, so that keys closing never hide one opening.
	limits [EventHedge + 3]logLimit
}

const (
	limitOpened = EventHedge + 1
	limitOther  = EventHedge + 2
)

// logLimit lets one line through per interval, and counts the others.
type logLimit struct {
	last       atomic.Int64 // when the last line went out, in nanoseconds since the stageLog's base, plus 1; 0 for never
	suppressed atomic.Uint64
}

// admit reports whether a line may go out now, which is since base, and
// how many were left out since the last one. A line left out is counted
// in the next line that goes out: none is lost.
func (l *logLimit) admit(since time.Duration, interval time.Duration) (bool, uint64) {
	if interval < 0 {
		return true, 0
	}
	now := int64(since) + 1
	last := l.last.Load()
	if (last != 0 && now-last < int64(interval)) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}

var eventLevels = [...]slog.Level{
	EventRetry:    slog.LevelDebug,
	EventGaveUp:   slog.LevelWarn,
	EventRejected: slog.LevelWarn,
	EventTimeout:  slog.LevelWarn,
	EventChaos:    slog.LevelDebug,
	EventHedge:    slog.LevelDebug,
}

var eventMessages = [...]string{
	EventRetry:    "resilience: retrying",
	EventGaveUp:   "resilience: retry gave up",
	EventRejected: "resilience: call rejected",
	EventTimeout:  "resilience: call timed out",
	EventChaos:    "resilience: chaos fault injected",
	EventHedge:    "resilience: hedge sent",
}

func (l *stageLog) event(ctx context.Context, e Event) {
	if e.Type == 0 || int(e.Type) >= len(eventLevels) {
		return // a type of a later version, or of a stage of the user's
	}
	level, msg := eventLevels[e.Type], eventMessages[e.Type]
	if e.Type == EventRejected && e.Kind == KindHedge {
		// A hedge refused, not the call: it goes on with its attempts.
		level, msg = slog.LevelDebug, "resilience: hedge refused by its budget"
	}
	if !l.logger.Enabled(ctx, level) {
		return
	}
	ok, suppressed := l.limits[e.Type].admit(time.Since(l.base), l.interval)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 7)
	attrs = append(attrs, slog.String("dependency", e.Name), slog.String("stage", e.Kind))
	if e.Key != "" {
		attrs = append(attrs, slog.String("key", e.Key))
	}
	if e.Attempt > 0 {
		attrs = append(attrs, slog.Int("attempt", e.Attempt))
	}
	if e.Type == EventRetry || e.Type == EventHedge || e.Type == EventChaos && e.Delay > 0 {
		attrs = append(attrs, slog.Duration("delay", e.Delay))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
	}
	var re *RetryError
	if e.Type == EventGaveUp && errors.As(e.Err, &re) && re.Cause != nil {
		attrs = append(attrs, slog.String("cause", re.Cause.Error()))
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	l.logger.LogAttrs(ctx, level, msg, attrs...)
}

func (l *stageLog) stateChange(kind string, c StateChange, limited bool) {
	level := slog.LevelInfo
	if c.To == Open {
		level = slog.LevelWarn
	}
	ctx := context.Background() // a transition is the dependency's, not one call's
	if !l.logger.Enabled(ctx, level) {
		return
	}
	var suppressed uint64
	if limited {
		limit := &l.limits[limitOther]
		if c.To == Open {
			limit = &l.limits[limitOpened]
		}
		var ok bool
		if ok, suppressed = limit.admit(time.Since(l.base), l.interval); !ok {
			return
		}
	}
	attrs := make([]slog.Attr, 0, 6)
	attrs = append(attrs, slog.String("dependency", c.Name), slog.String("stage", kind))
	if c.Key != "" {
		attrs = append(attrs, slog.String("key", c.Key))
	}
	attrs = append(attrs, slog.String("from", c.From.String()), slog.String("to", c.To.String()))
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed", suppressed))
	}
	l.logger.LogAttrs(ctx, level, fmt.Sprintf("resilience: circuit breaker %s", c.To), attrs...)
}
