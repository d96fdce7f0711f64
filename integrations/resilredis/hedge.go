package resilredis

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// A Hedge in the guard (resilience.NewHedge) sends a second copy of a
// command that is slower than usual, and takes the first answer. go-redis
// hands the Hook one command object, which the server's reply is read
// into: two attempts running next on it at once would write into it at
// the same time, and the one that lost could write into it after the
// caller has it back. So the Hook hedges only a command it can give each
// attempt a copy of, and whose reply it can copy back:
//
//   - a read-only command (see RetryWrites), not blocking, whose command
//     type is one of those listed in copyReply: *redis.Cmd (Client.Do),
//     *redis.StringCmd, *redis.StatusCmd, *redis.IntCmd, *redis.BoolCmd,
//     *redis.FloatCmd, *redis.DurationCmd, *redis.TimeCmd,
//     *redis.SliceCmd, *redis.StringSliceCmd, *redis.IntSliceCmd,
//     *redis.FloatSliceCmd, *redis.BoolSliceCmd, *redis.MapStringStringCmd,
//     *redis.ZSliceCmd, *redis.ScanCmd and *redis.XMessageSliceCmd. Each
//     attempt runs on a copy of the command of its own (Cmder.Clone), and
//     once the guard returns the winner's reply is copied into the
//     caller's command: no attempt ever writes into it.
//   - everything else runs under resilience.Unhedged: a write, which may
//     not be sent twice at once; a blocking command, which would hold two
//     connections for its wait; a pipeline or a transaction; and a read
//     of any other command type. Each is retried as before, never hedged.
//
// A guard with no Hedge pays for none of it: NewHook looks for one once.

// reply is what one hedged attempt got: its own copy of the command, and
// the error next returned.
type reply struct {
	cmd redis.Cmder
	err error
}

// runHedged runs cmd, a read-only command of a type copyReply knows,
// through the guard, each attempt on a copy of cmd of its own, and copies
// the reply the guard returned into cmd.
func (h *Hook) runHedged(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	if h.key != "" {
		ctx = resilience.WithKey(ctx, h.key)
	}
	ctx = context.WithValue(ctx, guarded{}, h)
	var attempts atomic.Int32
	r, err := outcome.Run(ctx, h.guard, false, func(ctx context.Context) (reply, error) {
		h.wire.Sent(int(attempts.Add(1)))
		c := cmd.Clone()
		c.SetErr(nil)
		r, ok := leave(ctx, func() error { return next(ctx, c) })
		if !ok {
			// Another attempt won (context.Canceled, which no breaker
			// counts), or a time limit ended this one (a deadline, a
			// failure as a read time-out is): it goes on in the
			// background, into c alone.
			err := ctx.Err()
			return reply{err: err}, h.classify(err, true)
		}
		r.cmd = c
		return r, h.classify(r.err, true)
	})
	if attempts.Load() == 0 {
		h.wire.Unsent()
	}
	if r.cmd != nil {
		copyReply(cmd, r.cmd)
	}
	err = outcome.Result(err, r.err)
	cmd.SetErr(err)
	return err
}

// copyReply copies the value src holds into dst, src being a copy of dst
// made by Clone, and reports whether dst's type is one it knows: with a
// nil src it copies nothing, and only tells. The types are those of
// go-redis's read commands whose value SetVal sets whole.
func copyReply(dst, src redis.Cmder) bool {
	switch d := dst.(type) {
	case *redis.Cmd:
		if s, ok := src.(*redis.Cmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.StringCmd:
		if s, ok := src.(*redis.StringCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.StatusCmd:
		if s, ok := src.(*redis.StatusCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.IntCmd:
		if s, ok := src.(*redis.IntCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.BoolCmd:
		if s, ok := src.(*redis.BoolCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.FloatCmd:
		if s, ok := src.(*redis.FloatCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.DurationCmd:
		if s, ok := src.(*redis.DurationCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.TimeCmd:
		if s, ok := src.(*redis.TimeCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.SliceCmd:
		if s, ok := src.(*redis.SliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.StringSliceCmd:
		if s, ok := src.(*redis.StringSliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.IntSliceCmd:
		if s, ok := src.(*redis.IntSliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.FloatSliceCmd:
		if s, ok := src.(*redis.FloatSliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.BoolSliceCmd:
		if s, ok := src.(*redis.BoolSliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.MapStringStringCmd:
		if s, ok := src.(*redis.MapStringStringCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.ZSliceCmd:
		if s, ok := src.(*redis.ZSliceCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.ScanCmd:
		if s, ok := src.(*redis.ScanCmd); ok {
			d.SetVal(s.Val())
		}
	case *redis.XMessageSliceCmd:
		if s, ok := src.(*redis.XMessageSliceCmd); ok {
			d.SetVal(s.Val())
		}
	default:
		return false
	}
	return true
}

// hedgeable reports whether cmd may be hedged: see copyReply.
func hedgeable(cmd redis.Cmder) bool { return copyReply(cmd, nil) }

// leave runs call on a goroutine of its own, and returns what it returned,
// ok, or, as soon as ctx ends, nothing: go-redis reads a reply until the
// socket's deadline, which a cancelled context does not move, so the
// attempt that loses to a hedge, the first on the caller's goroutine
// among them, would otherwise keep the caller waiting for an answer no
// one will read. The call goes on alone then, writing into the attempt's
// own command, until its reply comes or its read times out (the context's
// deadline, or Options.ReadTimeout), and puts its connection back in the
// pool. A panic in call is raised again on the caller's goroutine, or on
// the call's own if the caller has left.
func leave(ctx context.Context, call func() error) (r reply, ok bool) {
	f := &flight{done: make(chan struct{})}
	go f.run(call)
	select {
	case <-f.done:
	case <-ctx.Done():
		if !f.taken.Swap(true) {
			return reply{}, false // the call is the goroutine's now
		}
		<-f.done // it has just ended
	}
	if f.panicked {
		panic(f.pv)
	}
	return reply{err: f.err}, true
}

// flight is a call that leave runs: its result, once done is closed.
// taken is set by the first of the call's end and its caller's leaving:
// whichever comes second owns the result.
type flight struct {
	done     chan struct{}
	taken    atomic.Bool
	err      error
	panicked bool
	pv       any
}

func (f *flight) run(call func() error) {
	f.panicked = true
	defer func() {
		if f.panicked {
			f.pv = recover()
		}
		if f.taken.Swap(true) {
			// The caller has left: the result is no one's.
			if f.panicked {
				panic(f.pv)
			}
			return
		}
		close(f.done)
	}()
	f.err = call()
	f.panicked = false
}
