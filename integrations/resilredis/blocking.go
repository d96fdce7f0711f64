package resilredis

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// A blocking command (BLPOP, XREAD BLOCK, WAIT...) asks the server to
// hold it until there is something to answer or its own timeout passes:
// the wait is the server's answer to give, not a slow server. The Hook
// runs it through a guard of the same stages as Config.Guard, the same
// Retry, Breaker and Bulkhead objects, in the same order, in which each
// Timeout stage is lengthened by the command's own timeout; a command that
// waits forever (timeout 0, BLOCK 0) has no time limit of the guard's at
// all, only the caller's context.

// blockingWait reports whether cmd asks the server to block, and for how
// long at most: 0 means forever. It reads the timeout from the command's
// arguments, as the server does, so that it sees the commands built with
// Client.Do as well as go-redis's own; a timeout the server would refuse
// (negative, not a number) is not a wait, and the command runs under the
// guard's limits like any other.
func blockingWait(cmd redis.Cmder) (wait time.Duration, blocks bool) {
	args := cmd.Args()
	var (
		arg  any
		unit = time.Second
	)
	switch cmd.Name() {
	case "blpop", "brpop", "bzpopmin", "bzpopmax", "brpoplpush", "blmove":
		if len(args) < 3 {
			return 0, false
		}
		arg = args[len(args)-1]
	case "blmpop", "bzmpop":
		if len(args) < 2 {
			return 0, false
		}
		arg = args[1]
	case "wait", "waitaof":
		if len(args) < 3 {
			return 0, false
		}
		arg, unit = args[len(args)-1], time.Millisecond
	case "xread":
		arg, unit = blockOption(args, 1), time.Millisecond
	case "xreadgroup":
		arg, unit = blockOption(args, 4), time.Millisecond // after GROUP group consumer
	default:
		return 0, false
	}
	if arg == nil {
		return 0, false
	}
	n, ok := number(arg)
	if !ok || n < 0 || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false // the server refuses it: not a wait
	}
	if d := n * float64(unit); d < math.MaxInt64 {
		return time.Duration(d), true
	}
	return 0, true // longer than a Duration holds: forever, for us
}

// blockOption returns the argument of the BLOCK option of XREAD or
// XREADGROUP, looked for from args[start] up to STREAMS, after which
// every argument is a stream's name or ID; nil if there is none.
func blockOption(args []any, start int) any {
	for i := start; i < len(args); i++ {
		s, _ := text(args[i])
		switch strings.ToLower(s) {
		case "streams":
			return nil
		case "block":
			if i+1 < len(args) {
				return args[i+1]
			}
			return nil
		}
	}
	return nil
}

// number returns arg as the server would read a timeout: an integer or a
// decimal, sent as text or as a Go number.
func number(arg any) (float64, bool) {
	switch v := arg.(type) {
	case int:
		return float64(v), true
	case int8:
		return float64(v), true
	case int16:
		return float64(v), true
	case int32:
		return float64(v), true
	case int64:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint8:
		return float64(v), true
	case uint16:
		return float64(v), true
	case uint32:
		return float64(v), true
	case uint64:
		return float64(v), true
	case float32:
		return float64(v), true
	case float64:
		return v, true
	case time.Duration: // go-redis sends it as nanoseconds
		return float64(v.Nanoseconds()), true
	}
	s, ok := text(arg)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// text returns arg if it is sent as text.
func text(arg any) (string, bool) {
	switch v := arg.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case *string:
		if v != nil {
			return *v, true
		}
	}
	return "", false
}

// pipelineWait is blockingWait for a pipeline: the sum of the waits of
// its commands, which the server serves one after the other, each waiting
// its own time; forever if one waits forever. The commands of a
// MULTI/EXEC transaction never block: the server runs them at once.
func pipelineWait(cmds []redis.Cmder) (wait time.Duration, blocks bool) {
	if len(cmds) > 0 && cmds[0].Name() == "multi" {
		return 0, false
	}
	for _, cmd := range cmds {
		w, ok := blockingWait(cmd)
		if !ok {
			continue
		}
		if w == 0 || wait+w < wait { // forever, or more than a Duration holds
			return 0, true
		}
		wait, blocks = wait+w, true
	}
	return wait, blocks
}

// waitKey is the context key of a blocking command's wait, which the
// lengthened stages of the Hook's blocking guard read.
type waitKey struct{}

// lengthened is a Timeout stage of Config.Guard, in the guard a Hook runs
// blocking commands through: it bounds each call by the stage's limit
// plus the command's own wait, or not at all if the command waits
// forever. A time-out is a *resilience.TimeoutError with the stage's name.
type lengthened struct{ t *resilience.Timeout }

func (l lengthened) Name() string { return l.t.Name() }
func (lengthened) Kind() string   { return "blockingtimeout" }

func (l lengthened) Run(ctx context.Context, call func(context.Context) error) error {
	wait, ok := ctx.Value(waitKey{}).(time.Duration)
	switch {
	case !ok:
		return l.t.Run(ctx, call)
	case wait == 0:
		return call(ctx)
	}
	limit := l.t.Duration() + wait
	if limit < wait {
		return call(ctx) // more than a Duration holds: forever, for us
	}
	t, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: l.t.Name(), Duration: limit})
	if err != nil {
		return err
	}
	return t.Run(ctx, call)
}

// blockingGuard returns the guard a Hook runs blocking commands through:
// g's stages, in order, each Timeout lengthened (see lengthened).
func blockingGuard(g *resilience.Guard) (*resilience.Guard, error) {
	stages := g.Stages()
	for i, s := range stages {
		if t, ok := s.(*resilience.Timeout); ok {
			stages[i] = lengthened{t}
		}
	}
	return resilience.NewGuard(resilience.GuardConfig{Name: g.Name(), Stages: stages, Classify: classifyBlocking})
}

// classifyBlocking is the Classify of a blocking guard. A blocking
// command ended by its caller's context before the server was due to
// answer (see gaveUp) is Ignored, neither counted nor retried: the
// server may only have been waiting, as it was asked to.
func classifyBlocking(ctx context.Context, err error) resilience.Outcome {
	var f *outcome.Failure
	if errors.As(err, &f) && f.CtxErr != nil {
		return resilience.Ignored
	}
	return resilience.DefaultClassify(ctx, err)
}

// gaveUp reports whether the caller's context ended a blocking command
// before the server was due to answer it: before wait had passed since
// the attempt started, or at any time for a command that waits forever.
// The context counts as ended at its deadline, which go-redis sets on the
// socket: the read can fail a moment before the context's own timer fires.
func gaveUp(caller context.Context, started time.Time, wait time.Duration) bool {
	if callerErr(caller) == nil {
		return false
	}
	return wait == 0 || time.Since(started) < wait
}

// callerErr is ctx.Err(), or context.DeadlineExceeded once ctx's deadline
// has passed.
func callerErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}
