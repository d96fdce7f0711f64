package resilredis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"golang.org/x/time/rate"
)

// KindFleetRateLimit is the kind of a RateLimiter, as Kind reports it: its
// series are resilience_fleet_rate_limit_calls_total{name,result} and
// resilience_fleet_rate_limit_redis_up{name}.
const KindFleetRateLimit = "fleet_rate_limit"

// Defaults of RateLimitConfig.
const (
	DefaultRateLimitPeriod       = time.Second
	DefaultRateLimitRedisTimeout = 50 * time.Millisecond
	DefaultRateLimitRedisBackoff = time.Second
)

// ErrRateLimited matches the rejection of a call by a RateLimiter over its
// quota (see RateLimitedError). Such a rejection matches
// resilience.ErrRateLimited, as a local limiter's does, and
// resilience.ErrRejected too: the call did not run, and no retry repeats it.
var ErrRateLimited = errors.New("resilredis: rate limit exceeded")

// RateLimitConfig configures a RateLimiter. The zero value of a field
// stands for its default, given in the field's comment, where it has one.
//
// Every replica that shares a quota must be given the same Key, Rate,
// Period and Burst: Redis keeps one number per key (when the next call is
// due), and reads it with the limits of whichever replica asks.
type RateLimitConfig struct {
	// Name identifies the limiter in errors and metrics. Default: Key.
	Name string

	// Key names the shared quota: every limiter with the same Key, on
	// every replica, draws on one quota. The Redis key is "rate:" followed
	// by Key (go-redis/redis_rate's prefix). Default: Name; one of the two
	// must be set.
	Key string

	// Rate is how many calls the whole fleet may make per Period. Required,
	// at least 1.
	Rate int

	// Period is the time Rate is counted over. Default 1s.
	Period time.Duration

	// Burst is how many calls the fleet may make at once after a quiet
	// spell (GCRA's burst: the whole of what may go at once, not extra on
	// top of Rate). Default: Rate.
	Burst int

	// Replicas is how many replicas share the quota. Required, at least 1.
	// While Redis cannot be reached, each replica admits its own share of
	// the quota, Rate/Replicas per Period with a burst of Burst/Replicas
	// (at least 1), so that the fleet as a whole stays within the quota
	// without Redis. Set it to the number of replicas that normally run;
	// see RateLimiter.
	Replicas int

	// MaxWait is how long a call over the quota may wait, in all, for the
	// quota to admit it: a call told to come back within MaxWait (and
	// before its context's deadline) waits and asks again, and is rejected
	// otherwise. Waiting ends when the caller's context does. Default 0: a
	// call over the quota is rejected at once.
	MaxWait time.Duration

	// RedisTimeout is how long a call waits for Redis's answer before
	// deciding by the local share instead. Default 50ms. It bounds the
	// command's context, which go-redis honours only with
	// Options.ContextTimeoutEnabled: NewRateLimiter checks it. A caller's
	// deadline that comes sooner bounds the wait instead, and a call whose
	// deadline passes while it waits for Redis returns its context's
	// error, as it would from the call itself: keep RedisTimeout well below
	// the callers' deadlines.
	RedisTimeout time.Duration

	// RedisBackoff is how long the limiter decides by the local share,
	// without asking Redis, after Redis failed to answer: each back-off is
	// RedisBackoff times a random factor in [0.7, 1.3], so that the
	// replicas do not come back to Redis all at once. Default 1s.
	RedisBackoff time.Duration
}

// RateLimiter is a rate limit shared by every replica of a service, a
// quota for the whole fleet kept in Redis with the generic cell rate
// algorithm (GCRA) of github.com/go-redis/redis_rate: each call asks Redis,
// in one round trip of a Lua script, whether the fleet may make one more
// call now, and runs only if it may. Redis's clock decides, so the
// replicas' clocks do not matter, and the script reads and writes the key
// in one step, so that no two replicas both take the last call.
//
// A call over the quota waits up to MaxWait for the quota to admit it, and
// is otherwise rejected with a *RateLimitedError, which matches
// ErrRateLimited and resilience.ErrRejected and says when to try again.
//
// # When Redis cannot be reached
//
// No call fails because Redis is down, slow, or answers something that is
// not the script's answer: a call that gets an error, or no answer within
// RedisTimeout, is decided by a local limiter (golang.org/x/time/rate)
// holding this replica's share of the quota, Rate/Replicas per Period,
// with a burst of Burst/Replicas rounded down (at least 1). That is each
// replica's fair share: with Replicas replicas each admitting its share,
// the fleet admits Rate per Period, as with Redis, while Redis is gone.
// The share is a fixed fraction, not a measure of the replicas that are
// running: with fewer replicas than Replicas the fleet admits less than
// the quota while Redis is gone, with more, more; and a Burst smaller than
// Replicas gives each replica a burst of 1, Replicas in all.
//
// After a failure the limiter decides by the local share for RedisBackoff
// (jittered) without asking Redis, so that a dead Redis is not sent a
// command per call; then one call asks Redis again, the others still
// deciding locally meanwhile, and its answer switches the limiter back to
// the shared quota. Each switch may let a little more through than the
// quota for a moment: the local limiter starts with its share of the
// burst, and when Redis comes back the calls made locally were not counted
// there.
//
// # The client
//
// The limiter sends its commands through the client it is given, hooks
// and all: with a Hook of this package whose breaker is open, say, the
// limiter decides by the local share. Two options of the client matter:
//
//   - Options.ContextTimeoutEnabled must be true, or go-redis ignores the
//     deadline of RedisTimeout and waits for its own ReadTimeout (3s by
//     default) for a slow Redis. NewRateLimiter refuses a *redis.Client,
//     *redis.ClusterClient or *redis.Ring without it.
//   - Options.MaxRetries: -1 is best. go-redis retries a failed command
//     itself (3 times by default), within RedisTimeout; a retry seldom
//     fits in it, and one of a command that reached Redis counts the call
//     twice against the quota.
//
// The documented options of Attach (MaxRetries: -1, DialerRetries: 1,
// ContextTimeoutEnabled: true) suit the limiter too, so one client can
// serve both.
//
// A RateLimiter is a resilience.Stage, for a Guard, resilience.For and
// resilience.Do, and a resilience.Observable: its calls are counted as
// "admitted" and "rejected" by the shared quota, "admitted_local" and
// "rejected_local" by the local share, and "canceled" when the caller's
// context ended first; its gauge "redis_up" is 1 while it asks Redis and 0
// while it decides by the local share. It is safe for concurrent use.
// Make one with NewRateLimiter: the zero RateLimiter runs no call, and
// returns an error matching resilience.ErrInvalidConfig that says so.
type RateLimiter struct {
	name, key string
	limit     redis_rate.Limit
	gcra      *redis_rate.Limiter
	local     *rate.Limiter
	perSecond float64 // the local share's rate
	maxWait   time.Duration
	timeout   time.Duration
	backoff   time.Duration
	epoch     time.Time // the origin of downUntil, for a monotonic clock

	// downUntil is 0 while Redis answers; after a failure, the time since
	// epoch until which the limiter does not ask it.
	downUntil atomic.Int64
	probing   atomic.Bool // a call is asking Redis after a back-off

	admitted, rejected, admittedLocal, rejectedLocal, canceled atomic.Uint64

	events atomic.Pointer[func(context.Context, resilience.Event)] // nil until ObserveEvents
}

// ObserveEvents adds f to the observers of l's events: EventRejected for
// each call it does not admit, by the shared quota or the local share
// alike. It implements resilience.EventSource, so that resilience.Log and
// resilotel.TraceEvents report its rejections with the other stages'.
func (l *RateLimiter) ObserveEvents(f func(context.Context, resilience.Event)) {
	if f == nil || l == nil {
		return
	}
	for {
		old := l.events.Load()
		g := f
		if old != nil {
			prev := *old
			g = func(ctx context.Context, e resilience.Event) { prev(ctx, e); f(ctx, e) }
		}
		if l.events.CompareAndSwap(old, &g) {
			return
		}
	}
}

// NewRateLimiter returns a rate limiter drawing on the quota cfg.Key in
// the Redis that client serves, or an error naming every invalid field of
// cfg and option of client. The errors match resilience.ErrInvalidConfig.
// It sends nothing to Redis.
func NewRateLimiter(client redis.UniversalClient, cfg RateLimitConfig) (*RateLimiter, error) {
	var errs []error
	bad := func(ok bool, field string, value any, reason string) {
		if !ok {
			errs = append(errs, &resilience.ConfigError{Field: field, Value: value, Reason: reason})
		}
	}
	const c = "RateLimitConfig."
	bad(cfg.Key != "" || cfg.Name != "", c+"Key", fmt.Sprintf("%q", cfg.Key), "must not be empty: set Key, or Name, which it defaults to")
	bad(cfg.Rate > 0, c+"Rate", cfg.Rate, "must be at least 1")
	bad(cfg.Period >= 0, c+"Period", cfg.Period, "must not be negative (0 means 1s)")
	bad(cfg.Burst >= 0, c+"Burst", cfg.Burst, "must not be negative (0 means Rate)")
	bad(cfg.Replicas > 0, c+"Replicas", cfg.Replicas, "must be at least 1: the number of replicas that share the quota, each of which admits Rate/Replicas while Redis cannot be reached")
	bad(cfg.MaxWait >= 0, c+"MaxWait", cfg.MaxWait, "must not be negative")
	bad(cfg.RedisTimeout >= 0, c+"RedisTimeout", cfg.RedisTimeout, "must not be negative (0 means 50ms)")
	bad(cfg.RedisBackoff >= 0, c+"RedisBackoff", cfg.RedisBackoff, "must not be negative (0 means 1s)")
	errs = append(errs, checkClient(client)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg.Key = or(cfg.Key, cfg.Name)
	cfg.Name = or(cfg.Name, cfg.Key)
	cfg.Period = or(cfg.Period, DefaultRateLimitPeriod)
	cfg.Burst = or(cfg.Burst, cfg.Rate)
	cfg.RedisTimeout = or(cfg.RedisTimeout, DefaultRateLimitRedisTimeout)
	cfg.RedisBackoff = or(cfg.RedisBackoff, DefaultRateLimitRedisBackoff)

	// The local share: Rate/Replicas per Period, unrounded, and
	// Burst/Replicas rounded down, at least 1 (a limiter with no burst
	// admits nothing).
	perSecond := float64(cfg.Rate) / float64(cfg.Replicas) / cfg.Period.Seconds()
	burst := max(cfg.Burst/cfg.Replicas, 1)
	return &RateLimiter{
		name:      cfg.Name,
		key:       cfg.Key,
		limit:     redis_rate.Limit{Rate: cfg.Rate, Burst: cfg.Burst, Period: cfg.Period},
		gcra:      redis_rate.NewLimiter(client),
		local:     rate.NewLimiter(rate.Limit(perSecond), burst),
		perSecond: perSecond,
		maxWait:   cfg.MaxWait,
		timeout:   cfg.RedisTimeout,
		backoff:   cfg.RedisBackoff,
		epoch:     time.Now(),
	}, nil
}

// checkClient reports a nil client, and one of go-redis's clients that
// would not honour RedisTimeout.
func checkClient(client redis.UniversalClient) []error {
	var isNil, timeouts bool
	switch c := client.(type) {
	case nil:
		isNil = true
	case *redis.Client:
		isNil = c == nil
		timeouts = isNil || c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		isNil = c == nil
		timeouts = isNil || c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		isNil = c == nil
		timeouts = isNil || c.Options().ContextTimeoutEnabled
	default:
		timeouts = true // not ours to look into: see RateLimiter
	}
	if isNil {
		return []error{&resilience.ConfigError{Field: "client", Value: client, Reason: "NewRateLimiter needs a go-redis client"}}
	}
	if !timeouts {
		return []error{&resilience.ConfigError{Field: "Options.ContextTimeoutEnabled", Value: false,
			Reason: "go-redis would ignore the deadline of RedisTimeout and wait for its own ReadTimeout for a slow Redis; set it to true"}}
	}
	return nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Name returns the limiter's name.
func (l *RateLimiter) Name() string {
	if l == nil {
		return ""
	}
	return l.name
}

// Kind returns KindFleetRateLimit.
func (*RateLimiter) Kind() string { return KindFleetRateLimit }

// Key returns the name of the shared quota (RateLimitConfig.Key).
func (l *RateLimiter) Key() string {
	if l == nil {
		return ""
	}
	return l.key
}

// Stats returns how many calls the limiter admitted and rejected, by the
// shared quota and by the local share, how many it gave up on because
// their context ended, and whether it asks Redis now.
func (l *RateLimiter) Stats() resilience.Stats {
	up := 0.0
	if l.downUntil.Load() == 0 {
		up = 1
	}
	return resilience.Stats{
		Calls: []resilience.Count{
			{Result: "admitted", N: l.admitted.Load()},
			{Result: "rejected", N: l.rejected.Load()},
			{Result: "admitted_local", N: l.admittedLocal.Load()},
			{Result: "rejected_local", N: l.rejectedLocal.Load()},
			{Result: "canceled", N: l.canceled.Load()},
		},
		Gauges: []resilience.Gauge{{Name: "redis_up", Help: "1 while the limiter draws on the quota in Redis, 0 while Redis cannot be reached and it admits its local share.", Value: up}},
	}
}

// Run runs call if the quota admits it, waiting up to MaxWait for it to,
// and returns call's error; or, without running call, a *RateLimitedError
// if the quota does not admit it in time, or ctx's error if ctx ends
// first (a call whose ctx has already ended is not counted against the
// quota). No error of Redis ever reaches the caller: see RateLimiter.
func (l *RateLimiter) Run(ctx context.Context, call func(context.Context) error) error {
	if l == nil || l.gcra == nil {
		return errRateLimiterNotMade
	}
	if call == nil {
		return errNilCall
	}
	if err := l.Wait(ctx); err != nil {
		return err
	}
	return call(ctx)
}

// Wait takes one call from the quota, waiting up to MaxWait for it, for a
// caller that cannot wrap its call in a function: it returns nil when the
// call may be made, and is otherwise Run without the call.
func (l *RateLimiter) Wait(ctx context.Context) error {
	if l == nil || l.gcra == nil {
		return errRateLimiterNotMade
	}
	if err := ctx.Err(); err != nil {
		l.canceled.Add(1)
		return err
	}
	start := time.Now()
	for {
		ask, probe := l.asksRedis(time.Now())
		if !ask {
			return l.waitLocal(ctx, start)
		}
		res, err := l.ask(ctx, probe)
		switch {
		case err == nil && res.Allowed > 0:
			l.admitted.Add(1)
			return nil
		case err == nil:
			now := time.Now()
			if !l.mayWait(ctx, start, now, res.RetryAfter) {
				l.rejected.Add(1)
				return l.rejection(ctx, res.RetryAfter, false)
			}
			if err := sleep(ctx, res.RetryAfter); err != nil {
				l.canceled.Add(1)
				return err
			}
			// and ask again: another replica may have taken the call.
		case ctx.Err() != nil:
			l.canceled.Add(1)
			return ctx.Err()
		default:
			return l.waitLocal(ctx, start)
		}
	}
}

// asksRedis reports whether a call at now asks Redis, and whether it does
// so as the probe after a back-off, which must be handed back by ask.
func (l *RateLimiter) asksRedis(now time.Time) (ask, probe bool) {
	down := l.downUntil.Load()
	if down == 0 {
		return true, false
	}
	if int64(now.Sub(l.epoch)) < down || !l.probing.CompareAndSwap(false, true) {
		return false, false
	}
	return true, true
}

// ask asks Redis for one call, within RedisTimeout, and records whether
// Redis answered. A reply that is not the script's, which redis_rate
// would panic on, is an error; so is a refusal with no time to wait,
// which the script never gives. A call whose context ended changes
// nothing: the caller gave up, Redis did not fail.
func (l *RateLimiter) ask(ctx context.Context, probe bool) (res *redis_rate.Result, err error) {
	if probe {
		defer l.probing.Store(false)
	}
	defer func() {
		if err == nil && res == nil || err != nil && ctx.Err() != nil {
			return // panicking, or the caller gave up
		}
		if err == nil && res.Allowed <= 0 && res.RetryAfter <= 0 {
			err = errors.New("resilredis: the rate limit script refused a call with no time to wait")
		}
		if err != nil {
			d := time.Duration(float64(l.backoff) * (0.7 + 0.6*rand.Float64()))
			l.downUntil.Store(int64(time.Since(l.epoch) + d))
		} else {
			l.downUntil.Store(0)
		}
	}()
	rctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	return l.allow(rctx)
}

// allow is redis_rate's Allow, with the panic of its type assertions on a
// reply of the wrong shape turned into an error.
func (l *RateLimiter) allow(ctx context.Context) (res *redis_rate.Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			// Only a runtime error of redis_rate's own, reading a reply
			// of the wrong shape: a panic anywhere else (a nil pointer in
			// a client hook of the user's) is a bug, and goes on up the
			// stack.
			re, ok := r.(runtime.Error)
			if !ok || !panickedIn("github.com/go-redis/redis_rate/") {
				panic(r)
			}
			res, err = nil, fmt.Errorf("resilredis: a reply to the rate limit script that is not its own: %w", re)
		}
	}()
	return l.gcra.Allow(ctx, l.key, l.limit)
}

// panickedIn reports whether the panic being recovered was raised by a
// function of the package whose path starts with pkg: the first frame
// under the runtime's panic frames, as a deferred function sees them.
func panickedIn(pkg string) bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	inRuntime := false
	for {
		f, more := frames.Next()
		switch {
		case strings.HasPrefix(f.Function, "runtime."):
			inRuntime = true
		case inRuntime:
			return strings.HasPrefix(f.Function, pkg)
		}
		if !more {
			return false
		}
	}
}

// waitLocal decides a call by the local share. A call that will not wait
// takes no reservation: one cancelled while others are taken may not
// give back its whole token (golang.org/x/time/rate restores only what
// the later reservations leave), and a busy replica would lose tokens
// to every rejection.
func (l *RateLimiter) waitLocal(ctx context.Context, start time.Time) error {
	now := time.Now()
	if l.local.AllowN(now, 1) {
		l.admittedLocal.Add(1)
		return nil
	}
	if d := l.untilToken(now); !l.mayWait(ctx, start, now, d) {
		l.rejectedLocal.Add(1)
		return l.rejection(ctx, d, true)
	}
	r := l.local.ReserveN(now, 1) // OK: the burst is at least 1
	d := r.DelayFrom(now)
	if d > 0 && !l.mayWait(ctx, start, now, d) { // others took the tokens since
		r.CancelAt(now)
		l.rejectedLocal.Add(1)
		return l.rejection(ctx, d, true)
	}
	if err := sleep(ctx, d); err != nil {
		r.Cancel() // the token goes back, for the calls that come next
		l.canceled.Add(1)
		return err
	}
	l.admittedLocal.Add(1)
	return nil
}

// untilToken returns how long from now until the local share holds a
// token, at least 1ns: a token has just been found missing.
func (l *RateLimiter) untilToken(now time.Time) time.Duration {
	ns := math.Ceil((1 - l.local.TokensAt(now)) / l.perSecond * float64(time.Second))
	if ns >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return max(time.Duration(ns), 1)
}

// mayWait reports whether a call that started at start may wait d from
// now: within MaxWait of start, and before ctx's deadline.
func (l *RateLimiter) mayWait(ctx context.Context, start, now time.Time, d time.Duration) bool {
	if d <= 0 || now.Add(d).Sub(start) > l.maxWait {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || now.Add(d).Before(deadline) // a wait that would reach the deadline leaves the call no time
}

func (l *RateLimiter) rejection(ctx context.Context, after time.Duration, local bool) error {
	err := &RateLimitedError{Name: l.name, Key: l.key, Delay: max(after, 0), Local: local}
	if f := l.events.Load(); f != nil {
		(*f)(ctx, resilience.Event{Type: resilience.EventRejected, Kind: KindFleetRateLimit, Name: l.name, Err: err})
	}
	return err
}

// sleep waits d, or until ctx ends, and returns ctx's error then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RateLimitedError is the error of a call a RateLimiter did not admit. It
// matches ErrRateLimited and resilience.ErrRejected.
type RateLimitedError struct {
	// Name is the limiter's name (RateLimitConfig.Name).
	Name string
	// Key is the quota's name (RateLimitConfig.Key).
	Key string
	// Delay is how long after the rejection the quota expected to admit a
	// call: another caller may take that call first.
	Delay time.Duration
	// Local is true when the limiter decided by its local share, Redis
	// being unreachable.
	Local bool
}

// Error describes the error.
func (e *RateLimitedError) Error() string {
	d := e.Delay
	switch {
	case d >= time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		d = d.Round(time.Millisecond)
	}
	share := ""
	if e.Local {
		share = " (its local share: Redis cannot be reached)"
	}
	return fmt.Sprintf("resilredis: rate limiter %q is over its quota%s; retry in %v", e.Name, share, d)
}

// Is reports whether target is ErrRateLimited or resilience.ErrRejected.
func (e *RateLimitedError) Is(target error) bool {
	return target == ErrRateLimited || target == resilience.ErrRateLimited || target == resilience.ErrRejected
}

// RetryAfter returns Delay, for code that tells its own callers when to
// come back (a Retry-After header). A Retry never retries the rejection
// itself.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.Delay }

// rateLimiterNotMadeError is the error of a RateLimiter not made by
// NewRateLimiter. It matches resilience.ErrInvalidConfig.
type rateLimiterNotMadeError struct{}

func (rateLimiterNotMadeError) Error() string {
	return "resilredis: a zero RateLimiter cannot run calls: make it with NewRateLimiter"
}

func (rateLimiterNotMadeError) Is(target error) bool { return target == resilience.ErrInvalidConfig }

var (
	errRateLimiterNotMade error = rateLimiterNotMadeError{}
	errNilCall                  = errors.New("resilredis: RateLimiter.Run called with a nil call")
)
