// Package resilredis guards github.com/redis/go-redis/v9 clients with the
// policies of package resilience, as a redis.Hook: every command and
// pipeline runs through a Guard, any Guard, every stage of it in order.
//
//	rdb := redis.NewClient(&redis.Options{
//		Addr: addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
//	})
//	err := resilredis.Attach(rdb, resilredis.Config{Guard: presets.Redis()})
package resilredis

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// Config configures a Hook.
type Config struct {
	// Guard protects the calls to one Redis server or cluster. Required;
	// presets.Redis() is made for it, and any guard will do: each command
	// runs through every one of its stages, in order, whatever they are
	// (time limits, retries, bulkheads, breakers, stages of your own), with
	// or without a breaker or a retry. A time limit inside the retry bounds
	// each attempt, and one outside bounds the whole call:
	//
	//	guard, err := resilience.NewGuard(resilience.GuardConfig{
	//		Name:   "sessions",
	//		Stages: []resilience.Stage{total, retry, breaker, perAttempt},
	//	})
	//
	// A guard whose time limit abandons calls (TimeoutConfig.Abandon) is
	// refused: an abandoned command would go on writing into the command
	// the caller already has back. A Hedge in the guard
	// (resilience.NewHedge, inside the retry, outside the breaker) hedges
	// the read-only commands alone: see Hook.
	Guard *resilience.Guard

	// RetryWrites lets every command be retried after a failure. Default
	// false: only read-only commands are retried, and any command that
	// failed before reaching the server (no connection could be made, or
	// none was free in the pool), because a write that timed out, a
	// per-attempt time limit of the guard included, may have been applied:
	// INCR run twice counts twice, SET NX run twice reports that the key
	// was taken, by the first attempt.
	RetryWrites bool

	// Key, if set, is the key of every command through the hook, for a
	// guard with a breaker per key (Preset.BreakerPerKey, a
	// *resilience.KeyedBreaker): the hook puts it in each call's context
	// with resilience.WithKey, in place of any key there. AttachCluster
	// and AttachRing give each node of a Cluster or Ring client its
	// address as its key, so that one failing node opens its own breaker
	// alone; set Key yourself for clients of your own sharding, one per
	// shard, sharing one guard. With a guard that has no stage per key (a
	// KeyedBreaker, a resilience.Keyed family), Key is not used. It costs two allocations per command.
	Key string
}

// Hook guards every command and pipeline of a go-redis client with a
// Guard: every stage of it, in order, each attempt through the stages
// inside the retry. A time-out is the error of the Timeout stage that
// ended the call, which its observers and metrics count; a command a
// stage refused to run (an open breaker, a full bulkhead) fails with the
// stage's error, which matches resilience.ErrRejected.
//
// What counts as a failure: an error of the network or the connection
// pool, a time-out, and the server errors that say it cannot serve now
// (LOADING, BUSY, TRYAGAIN, MASTERDOWN, CLUSTERDOWN, READONLY). Everything
// else the server answers, redis.Nil (a missing key) and errors such as
// WRONGTYPE included, is a success for the breaker and is never retried:
// the server is up and answered.
//
// A blocking command (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
// BZPOPMAX, BZMPOP, XREAD and XREADGROUP with BLOCK, WAIT, WAITAOF) waits
// as long as it asked the server to: each Timeout stage of the guard is
// lengthened, for that command, by the command's own timeout, so that a
// BLPOP of 3s under a per-attempt limit of 2s is cut at 5s, not 2s, and a
// command that waits forever (timeout 0, BLOCK 0) has no time limit but
// its caller's context. The empty answer at its timeout (redis.Nil) is an
// answer; a command its caller's context ended before the server was due
// to answer is neither counted nor retried; a connection error is a
// failure as for any command. A pipeline waits the sum of its blocking
// commands' waits. While the guard's breaker is not closed, a blocking
// command is refused at once with an error matching resilience.ErrRejected,
// so that idle consumers do not hold the breaker's probes: probes are
// short commands. A blocking command holds a slot of a bulkhead in the
// guard for its whole wait, and counts as slow to a breaker with a
// SlowCallThreshold below its wait: leave blocking commands out of such a
// guard, with a Hook of their own. A command sent with Client.Do is read
// under Options.ReadTimeout, which go-redis lengthens only for its typed
// blocking methods: give such a client a ReadTimeout above the waits. The guard's other stages are the same
// objects, in the same order; its Classify, if it has one, is not applied
// to blocking commands, and their time-outs are not reported to the
// observers of its Timeout stages.
//
// A Hedge in the guard sends a second copy of a slow command, and takes
// the first answer, for the read-only commands (those retried without
// RetryWrites) whose reply the Hook can copy: those of the types go-redis
// gives its common reads, *redis.Cmd (Client.Do), *redis.StringCmd,
// *redis.StatusCmd, *redis.IntCmd, *redis.BoolCmd, *redis.FloatCmd,
// *redis.DurationCmd, *redis.TimeCmd, *redis.SliceCmd,
// *redis.StringSliceCmd, *redis.IntSliceCmd, *redis.FloatSliceCmd,
// *redis.BoolSliceCmd, *redis.MapStringStringCmd, *redis.ZSliceCmd,
// *redis.ScanCmd and *redis.XMessageSliceCmd. Each attempt of such a
// command runs on a copy of it of its own (Cmder.Clone), and the winner's
// reply is copied into the caller's command once the guard returns, so
// that no attempt ever writes into it, the one that lost least of all.
// Every other command runs under resilience.Unhedged, retried as before
// and never hedged: a write, which must not run twice at once, a
// blocking command, a pipeline or a transaction, and a read of any other
// type. go-redis does not stop reading a reply when the command's context
// is cancelled, only at its deadline: an attempt that lost is left to
// finish on a goroutine of its own, into its own copy, and holds its
// connection until its reply comes or its read times out (a per-attempt
// time limit of the guard, or Options.ReadTimeout). A guard without a
// Hedge costs nothing more: the Hook looks for one (a *resilience.Hedge,
// or a resilience.Keyed family of them) once, when it is made, and does
// not know of a stage of your own that runs a call twice at once.
//
// Three client options matter: go-redis retries failed commands
// (Options.MaxRetries, default 3) and failed dials (Options.DialerRetries,
// default 5) itself, inside the guard's attempt, and it ignores the
// deadline of a command's context unless Options.ContextTimeoutEnabled is
// true. Set MaxRetries: -1, DialerRetries: 1 and ContextTimeoutEnabled:
// true, so that the guard's retry, with its backoff and its breaker, is
// the only one, and its time limits reach the socket; Attach checks them.
//
// A Hook is safe for concurrent use. Make one with NewHook: the zero Hook
// runs no command, and sets on each an error that says so.
type Hook struct {
	guard       *resilience.Guard
	blocking    *resilience.Guard // for blocking commands: see blockingGuard
	retryWrites bool
	key         string        // Config.Key, if the guard is keyed
	wire        *outcome.Wire // guard's: every command and pipeline counts into it
	hedged      bool          // the guard has a Hedge: see hedge.go
}

// NewHook returns a Hook configured by cfg, or an error if cfg.Guard is
// nil, the zero Guard, or has a time limit that abandons calls.
func NewHook(cfg Config) (*Hook, error) {
	if err := outcome.Check("resilredis", "Config.Guard", cfg.Guard); err != nil {
		return nil, err
	}
	blocking, err := blockingGuard(cfg.Guard)
	if err != nil {
		return nil, err
	}
	h := &Hook{guard: cfg.Guard, blocking: blocking, retryWrites: cfg.RetryWrites, wire: outcome.WireOf(cfg.Guard), hedged: outcome.Hedge(cfg.Guard) != nil}
	if outcome.Keyed(cfg.Guard) {
		h.key = cfg.Key
	}
	return h, nil
}

// DialHook returns next unchanged: dialing happens inside a command's call,
// which the guard already bounds and counts.
func (h *Hook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook guards one command.
func (h *Hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.guard == nil {
			cmd.SetErr(errZeroHook)
			return errZeroHook
		}
		if ctx.Value(guarded{}) == h {
			return next(ctx, cmd) // part of a guarded call: see guarded
		}
		wait, blocks := blockingWait(cmd)
		readOnly := isReadOnly(cmd)
		if h.hedged {
			if readOnly && !blocks && hedgeable(cmd) {
				return h.runHedged(ctx, cmd, next)
			}
			ctx = resilience.Unhedged(ctx) // see hedge.go
		}
		return h.run(ctx, readOnly, blocks, wait, func(ctx context.Context) error { return next(ctx, cmd) })
	}
}

// ProcessPipelineHook guards a pipeline, or a MULTI/EXEC transaction, as a
// single call: it is retried only if every command in it is read-only, or
// it failed before reaching the server.
func (h *Hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.guard == nil {
			for _, cmd := range cmds {
				cmd.SetErr(errZeroHook)
			}
			return errZeroHook
		}
		if ctx.Value(guarded{}) == h {
			return next(ctx, cmds)
		}
		readOnly := true
		for _, cmd := range cmds {
			if !isReadOnly(cmd) {
				readOnly = false
				break
			}
		}
		wait, blocks := pipelineWait(cmds)
		if h.hedged {
			ctx = resilience.Unhedged(ctx) // the commands are the caller's: see hedge.go
		}
		return h.run(ctx, readOnly, blocks, wait, func(ctx context.Context) error { return next(ctx, cmds) })
	}
}

// run runs call, one command or a pipeline, through the guard.
//
// A write that may not be retried is marked permanent on each failure
// that may have reached the server, rather than run at most once (see
// resilience.AtMostOnce): one that failed before leaving the client is
// retried, since it cannot have been applied. The mark holds under a
// per-attempt time limit too: the limit's error wraps the one it cut the
// command with, so no retry of the guard sends the write again.
//
// A call that blocks (see blockingWait) runs through h.blocking, wait on
// its context; one its caller's context ended before the server was due
// to answer is not the server's failure (see classifyBlocking).
func (h *Hook) run(ctx context.Context, readOnly, blocks bool, wait time.Duration, call func(context.Context) error) error {
	caller, g := ctx, h.guard
	if h.key != "" {
		ctx = resilience.WithKey(ctx, h.key)
	}
	ctx = context.WithValue(ctx, guarded{}, h)
	if blocks {
		// A breaker that is not closed lets a few probes through to find
		// out whether the server is back: an idle BLPOP would hold a probe
		// for its whole wait, and a few idle consumers every probe, while
		// every other command is turned away. Blocking commands wait for
		// the breaker to close.
		if s, ok := h.notClosed(ctx); ok {
			return &blockingRefusedError{state: s}
		}
		ctx, g = context.WithValue(ctx, waitKey{}, wait), h.blocking
	}
	var answered error
	attempt := 0
	_, err := outcome.Run(ctx, g, false, func(ctx context.Context) (struct{}, error) {
		var started time.Time
		if blocks {
			started = time.Now()
		}
		attempt++
		h.wire.Sent(attempt)
		err := call(ctx)
		answered = err
		failed := h.classify(err, readOnly)
		if failed != nil && blocks && gaveUp(caller, started, wait) {
			failed = &outcome.Failure{Err: err, CtxErr: callerErr(caller)}
		}
		return struct{}{}, failed
	})
	if attempt == 0 {
		h.wire.Unsent()
	}
	return outcome.Result(err, answered)
}

// notClosed returns the state of a breaker a call with ctx would run
// through that is not closed, if there is one: the guard's Breaker, or the
// breaker of the call's key in its KeyedBreaker (a key that has none yet
// is closed); a guard may have both, one for the whole server around one
// per node.
func (h *Hook) notClosed(ctx context.Context) (resilience.State, bool) {
	if b := h.guard.Breaker(); b != nil {
		if s := b.State(); s != resilience.Closed {
			return s, true
		}
	}
	if k := h.guard.KeyedBreaker(); k != nil {
		key, _ := resilience.KeyFrom(ctx)
		if b, ok := k.Lookup(key); ok {
			if s := b.State(); s != resilience.Closed {
				return s, true
			}
		}
	}
	return resilience.Closed, false
}

// blockingRefusedError is the error of a blocking command sent while the
// guard's breaker is not closed: it matches resilience.ErrRejected, so no
// retry repeats it.
type blockingRefusedError struct{ state resilience.State }

func (e *blockingRefusedError) Error() string {
	return "resilredis: a blocking command waits for the breaker to close; it is " + e.state.String()
}

func (e *blockingRefusedError) Is(target error) bool { return target == resilience.ErrRejected }

// guarded marks the context of a call guarded by a Hook, the Hook its
// value. go-redis runs the commands that set up a new connection (HELLO,
// CLIENT SETINFO, SELECT) through the client's hooks, inside the call that
// needed the connection: they are part of that call, which the guard
// already bounds and counts, so they pass straight through. Guarding them
// again would count one failure twice, and a half-open breaker would
// reject the set-up of its own probe.
type guarded struct{}

// classify turns what a command returned into what the policies see: nil
// for an answer from a working server, an error for a failure, marked
// permanent when it may not be retried.
func (h *Hook) classify(err error, readOnly bool) error {
	if !IsFailure(err) {
		return nil
	}
	failed := error(&outcome.Failure{Err: err})
	if !readOnly && !h.retryWrites && !neverSent(err) {
		failed = resilience.Permanent(failed)
	}
	return failed
}

// IsFailure reports whether err, returned by a go-redis command, says that
// the server could not serve it: see Hook.
func IsFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, prefix := range unavailable {
			if strings.HasPrefix(msg, prefix) {
				return true
			}
		}
		return false
	}
	return true
}

// unavailable are the prefixes of the server errors that mean it cannot
// serve now, rather than that the command was wrong.
var unavailable = []string{"LOADING ", "BUSY ", "TRYAGAIN ", "MASTERDOWN ", "CLUSTERDOWN ", "READONLY ", "ERR max number of clients"}

// neverSent reports whether err happened before the command left the
// client, so that sending it again cannot apply it twice.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" || errors.Is(err, redis.ErrPoolTimeout)
}

// isReadOnly reports whether cmd only reads, so that running it twice is
// harmless: a command the server flags readonly, or one that only answers
// (see harmless). A container of subcommands (XINFO, OBJECT, MEMORY) is
// looked up by its subcommand, "xinfo|stream", as the server lists it.
func isReadOnly(cmd redis.Cmder) bool {
	name := cmd.Name()
	if _, ok := readOnly[name]; ok {
		return true
	}
	if _, ok := containers[name]; !ok {
		return false
	}
	args := cmd.Args()
	if len(args) < 2 {
		return false
	}
	sub, ok := text(args[1])
	if !ok {
		return false
	}
	_, ok = readOnly[name+"|"+strings.ToLower(sub)]
	return ok
}

// readOnly holds the commands that redis-server flags readonly (COMMAND
// INFO), as of Redis 7.4, subcommands as "container|subcommand", and the
// harmless ones. TestReadOnlyTableMatchesTheServer holds it to the server
// the tests run. Module commands (RedisJSON, RediSearch...) are not in it:
// they are not retried without RetryWrites.
var readOnly = map[string]struct{}{}

// containers are the commands whose subcommands are in readOnly.
var containers = map[string]struct{}{}

// harmless are the commands that the server does not flag readonly,
// since they read no key, but that only answer: running one twice changes
// nothing.
var harmless = []string{"ping", "echo", "time", "info", "lastsave"}

func init() {
	for _, name := range strings.Fields(`
		get mget getrange substr strlen lcs exists type ttl pttl expiretime pexpiretime
		getbit bitcount bitpos bitfield_ro
		hget hmget hgetall hkeys hvals hlen hexists hstrlen hrandfield hscan
		httl hpttl hexpiretime hpexpiretime
		lrange llen lindex lpos
		smembers sismember smismember scard srandmember sscan sinter sunion sdiff sintercard
		zrange zrangebyscore zrangebylex zrevrange zrevrangebyscore zrevrangebylex
		zscore zmscore zcard zcount zlexcount zrank zrevrank zrandmember zscan
		zdiff zinter zunion zintercard
		xrange xrevrange xlen xread xpending
		xinfo|stream xinfo|groups xinfo|consumers
		pfcount geopos geodist geohash geosearch georadius_ro georadiusbymember_ro
		sort_ro eval_ro evalsha_ro fcall_ro
		scan keys dbsize randomkey dump touch
		object|encoding object|freq object|idletime object|refcount
		memory|usage
		lolwut
	`) {
		readOnly[name] = struct{}{}
		if container, _, ok := strings.Cut(name, "|"); ok {
			containers[container] = struct{}{}
		}
	}
	for _, name := range harmless {
		readOnly[name] = struct{}{}
	}
}

// errZeroHook is what a Hook not made by NewHook answers.
var errZeroHook = errors.New("resilredis: a zero Hook cannot run commands: make it with NewHook")

// Attach adds to rdb a Hook made from cfg, after checking that rdb leaves
// retrying to the guard and honours its time limits. It returns an error
// naming every option of rdb that does not, and adds nothing then:
//
//   - Options.MaxRetries must be -1: go-redis retries a failed command
//     itself, 3 times by default (0), inside the guard's attempt.
//   - Options.DialerRetries must be 1: go-redis dials a new connection
//     up to 5 times by default (0 and negative alike), 100ms apart, inside
//     the guard's attempt.
//   - Options.ContextTimeoutEnabled must be true: otherwise go-redis
//     ignores the deadline of the command's context, and a time limit of
//     the guard waits for the client's own ReadTimeout.
//
// With them, one attempt of the guard is one command on the wire, over at
// most one dial:
//
//	rdb := redis.NewClient(&redis.Options{
//		Addr:                  addr,
//		MaxRetries:            -1,
//		DialerRetries:         1,
//		ContextTimeoutEnabled: true,
//	})
//	if err := resilredis.Attach(rdb, resilredis.Config{Guard: presets.Redis()}); err != nil {
//		...
//	}
//
// Attach is NewHook and rdb.AddHook, checked; a Hook added by hand works
// the same, unchecked.
func Attach(rdb *redis.Client, cfg Config) error {
	if rdb == nil {
		return errors.New("resilredis: Attach: the client is nil")
	}
	hook, err := NewHook(cfg)
	if err != nil {
		return err
	}
	if err := checkOptions(rdb.Options()); err != nil {
		return err
	}
	rdb.AddHook(hook)
	return nil
}

// checkOptions reports the options of a client, as go-redis has filled
// them in (MaxRetries -1 is 0 then, DialerRetries 0 is 5), that leave
// go-redis retrying or deaf to deadlines.
func checkOptions(opt *redis.Options) error {
	var bad []string
	if opt.MaxRetries != 0 {
		bad = append(bad, "Options.MaxRetries is "+strconv.Itoa(opt.MaxRetries)+
			" (0 means 3): go-redis retries failed commands itself, under the guard's retry; set MaxRetries: -1")
	}
	if opt.DialerRetries != 1 {
		bad = append(bad, "Options.DialerRetries is "+strconv.Itoa(opt.DialerRetries)+
			" (0 and negative mean 5): go-redis dials again itself, under the guard's retry; set DialerRetries: 1")
	}
	if !opt.ContextTimeoutEnabled {
		bad = append(bad, "Options.ContextTimeoutEnabled is false: go-redis ignores the deadlines of the guard's time limits; set it to true")
	}
	if len(bad) == 0 {
		return nil
	}
	return errors.New("resilredis: Attach: " + strings.Join(bad, "; "))
}

// Wire returns the count of the commands and pipelines run through g and
// of the attempts of them sent to Redis, with their ratio, the
// amplification g's retries cause, as a stage for package metrics to
// export (resilience_wire_calls_total{name,result="call|attempt"} and
// resilience_wire_amplification{name}). Every integration counts into the
// one Wire of a guard.
func Wire(g *resilience.Guard) resilience.Observable { return outcome.WireOf(g) }

// KindWire is the kind of the stage Wire returns.
const KindWire = outcome.KindWire
