package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// KindThrottle is the kind of a Throttler.
const KindThrottle = "throttle"

// ErrThrottled matches the rejection of a call by a Throttler: the
// dependency has been accepting too few of the requests sent to it, and
// the throttler turned the call away without sending it. Such errors match
// ErrRejected too.
var ErrThrottled = errors.New("resilience: call throttled")

// ThrottlerConfig configures an adaptive throttler. The zero value of
// every field stands for its default, given in the field's comment.
type ThrottlerConfig struct {
	// Name identifies the throttler in errors and metrics.
	Name string

	// K is how many requests per accept the throttler sends before it
	// starts rejecting calls: over the window it rejects each call with
	// probability max(0, (requests − K × accepts) / (requests + 1)), so
	// that the dependency sees about K requests for each one it accepts.
	// Finite and at least 1; default 2, the SRE book's. A lower K sheds
	// sooner and wastes less of an overloaded dependency's time on
	// requests it turns down; a higher one reacts later and lets more of
	// them through.
	K float64

	// Window is how far back requests and accepts count. Default 2
	// minutes, the SRE book's. A shorter window forgets an overload
	// sooner, and recovers sooner; it also follows a noisy dependency
	// more closely.
	Window time.Duration

	// Buckets is how many parts the window is cut into: requests and
	// accepts leave the window one bucket, Window / Buckets, at a time.
	// From 1 to 1000; default 60 (2-second buckets in the default window:
	// the probability moves in steps of about 1/60th of the window's
	// counts, while a look at the whole window stays a walk of 60 small
	// buckets). Window must be at least Buckets nanoseconds.
	Buckets int

	// Accepted reports whether the dependency accepted a call that
	// returned err, an error (a call that returns nil is always an
	// accept). It receives the context the call was made with. Default
	// DefaultAccepted. Whatever it says, a call is not counted at all,
	// neither as a request nor as an accept, when it ended in a rejection
	// by another stage (ErrRejected: the dependency was not asked), in
	// the caller's own cancellation (context.Canceled with the call's
	// context done), in an error a Guard's Classify marked Ignored, or in
	// the error of a stage used as its zero value; Accepted is not asked
	// about those. It must be safe for concurrent use; it is never called
	// with a lock held.
	Accepted func(ctx context.Context, err error) bool
}

// Defaults of ThrottlerConfig.
const (
	DefaultThrottlerK       = 2.0
	DefaultThrottlerWindow  = 2 * time.Minute
	DefaultThrottlerBuckets = 60
	maxThrottlerBuckets     = 1000
)

// DefaultAccepted is the accept predicate a Throttler uses when its
// config has none. A call counts as accepted when the dependency answered
// it, whatever the answer: no error, or any error except these.
//
//   - An error marked with Overloaded (an HTTP 429 or 503, a gRPC
//     RESOURCE_EXHAUSTED or UNAVAILABLE, as the integrations mark them) is
//     not an accept: the dependency said it is overloaded. The mark wins
//     over Answer: an overload is the one answer a throttler is about.
//   - An error marked with Answer, or classified Success by a Guard's
//     Classify (a "not found", a refused payment) is an accept: the
//     dependency did the work of answering.
//   - A time-out is not an accept: an error matching ErrTimeout,
//     context.DeadlineExceeded or os.ErrDeadlineExceeded, or one with a
//     Timeout() bool method that reports true, as net.Error's do. A
//     dependency too slow to answer in time is the first sign of overload.
//     A call made with a deadline already past counts so too: the
//     throttler does not look at the clock to tell.
//   - Every other error is an accept: a failure that says nothing of
//     load (a malformed request, a refused connection resilhttp does not
//     mark) is the breaker's business, not the throttler's. resilgrpc
//     marks every Unavailable, and grpc-go reports its own failure to
//     connect with that code too: behind resilgrpc, a throttler counts a
//     server it cannot reach as an overloaded one.
//
// A rejection by a stage (ErrRejected), the caller's cancellation
// (context.Canceled while ctx is done) and an error a Guard's Classify
// marked Ignored are neither requests nor accepts: a Throttler counts
// none of them and never asks its predicate about them. DefaultAccepted
// reports false for them, as they are not accepts.
func DefaultAccepted(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		return true
	case IsOverloaded(err):
		return false
	case uncountable(ctx, err):
		return false
	}
	if markOf(err) == Success {
		return true
	}
	return !isTimeout(err)
}

// uncountable reports whether a call that ended in err says nothing of
// whether the dependency accepts requests: it was not sent, or the caller
// gave up on it.
func uncountable(ctx context.Context, err error) bool {
	return errors.Is(err, ErrRejected) ||
		ctx.Err() != nil && errors.Is(err, context.Canceled) ||
		markOf(err) == Ignored ||
		isNotMade(err)
}

// isTimeout reports whether err is a time-out.
func isTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	t, ok := as[interface{ Timeout() bool }](err)
	return ok && t.Timeout()
}

// Throttler is client-side adaptive throttling, as the Google SRE book
// describes it ("Handling Overload"): a client that sees its dependency
// turn requests down rejects some of its own calls before sending them,
// so that an overloaded dependency does not spend what capacity it has
// left refusing requests. Over a sliding window of the last Window, it
// counts requests (every call it was asked to run, those it rejected
// itself included) and accepts (calls the dependency accepted, see
// ThrottlerConfig.Accepted), and rejects each new call with probability
//
//	max(0, (requests − K × accepts) / (requests + 1))
//
// While the dependency accepts everything, the probability is 0. Once it
// accepts less than one request in K, the throttler sheds the excess:
// the dependency goes on seeing about K requests for each one it accepts,
// so that it can tell when it has capacity again, and the probability
// falls back as accepts come back. A call the throttler rejects does not
// run, returns a *ThrottledError, which matches ErrThrottled and
// ErrRejected (so a Retry does not retry it), and counts as a request
// that was not accepted: that is what makes the probability settle where
// the dependency's accepts are. Put the throttler inside a Retry, so that
// each attempt is a request and the retrying stops at the throttler's
// first rejection, and outside a Breaker, which would count the
// throttler's rejections as failures (the throttler, for its part, does
// not count the breaker's):
//
//	resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{timeout, retry, throttler, breaker}})
//
// Once the dependency accepts everything again, the overload's requests
// leave the window within a Window and a bucket; what keeps rejecting
// after that is only the throttler's own rejections since the recovery,
// which count as requests not accepted. While the dependency accepted at
// least about 1/K of what it was sent (which the throttler itself sees
// to), those are few next to the accepts, and every call is admitted
// within a Window and a bucket (measured: about half a Window). After a
// total outage, when the window holds almost no accepts, the probability
// is close to 1 and the few calls that get through have to win the
// accepts back: recovery then takes a few Windows, which a shorter
// Window shortens. So does a new throttler whose very first calls meet
// an overloaded dependency.
//
// The throttler reads no clock while the window holds no request that
// was not accepted (the window is clean): requests then equal accepts,
// and the probability is 0 whatever the counts. A call that is accepted
// then costs one atomic addition to a running count. Only a call that is
// not accepted makes the throttler look at the clock: it moves the window
// on to now and spreads the accepts counted since it last looked evenly
// over the time since then, dropping the part older than the window, and
// counts the call. That is the one approximation: the accepts of a clean
// spell are taken to have come at an even rate over it. From then on
// (the window is dirty) every call is counted in its bucket, exactly,
// and draws against the probability when it is above 0 (math/rand/v2's
// per-thread generator, no lock): it reads the clock before it runs and
// after, and takes a mutex to be counted, never around the call or the
// Accepted predicate. When the last request that was not accepted leaves
// the window, the window is clean again. The window at any time is the
// current bucket and the Buckets − 1 before it.
//
// A call that panics goes on up the stack and is not counted in the
// window: a panic is a bug of the caller's, not an answer of the
// dependency's.
//
// A Throttler is a Stage: use it in chains with For, Do and Guards. It is
// an Observable (resilience_throttle_calls_total{result="admitted|rejected"}
// and resilience_throttle_reject_probability), and is safe for concurrent
// use. Make one with NewThrottler: the zero Throttler runs no call (Do
// returns an error matching ErrInvalidConfig that says so).
type Throttler struct {
	// Read by every call; only state is ever written, and only when the
	// window turns clean or dirty.
	state    atomic.Uint32 // 0 for a zero Throttler, else throttleClean or throttleDirty
	name     string
	k        float64
	width    int64 // of a bucket, in nanoseconds
	accepted func(context.Context, error) bool
	t0       time.Time // times are nanoseconds since t0
	_        [64]byte

	// clean counts the accepts counted without the clock, ever: the one
	// word an accepted call writes while the window is clean.
	clean atomic.Uint64
	_     [64]byte

	counted   atomic.Uint64 // admitted calls counted with the clock
	uncounted atomic.Uint64 // admitted calls not counted in the window
	rejected  atomic.Uint64 // calls the throttler rejected
	ev        events
	prob      atomic.Uint64 // the probability at the last look, as float64 bits
	headK     atomic.Int64  // the newest bucket's number at the last look

	mu       sync.Mutex // guards what follows; no callback runs under it
	last     int64      // when the throttler last looked at the clock
	seen     uint64     // clean at that look
	head     int64      // the newest bucket's number: its start over width
	accepts  float64    // accepts in the window
	failures uint64     // requests in the window that were not accepted
	buckets  []throttleBucket
}

// The states of a Throttler's window.
const (
	throttleClean = 1 + iota // no request that was not accepted
	throttleDirty
)

type throttleBucket struct {
	accepts  float64 // accepts counted or spread into the bucket
	failures uint64  // requests not accepted, the throttler's rejections included
}

var errThrottlerNotMade error = &notMadeError{"Throttler", "NewThrottler"}

// NewThrottler returns an adaptive throttler configured by cfg, or an
// error naming every invalid field of cfg.
func NewThrottler(cfg ThrottlerConfig) (*Throttler, error) {
	ck := checker{typ: "ThrottlerConfig"}
	ck.check(cfg.K == 0 || cfg.K >= 1 && !math.IsInf(cfg.K, 1), "K", cfg.K, "must be a finite number of at least 1")
	ck.check(cfg.Window >= 0, "Window", cfg.Window, "must not be negative")
	ck.check(cfg.Buckets >= 0 && cfg.Buckets <= maxThrottlerBuckets, "Buckets", cfg.Buckets, "must be from 0 to 1000")
	if err := ck.err(); err != nil {
		return nil, err
	}
	cfg.K = or(cfg.K, DefaultThrottlerK)
	cfg.Window = or(cfg.Window, DefaultThrottlerWindow)
	cfg.Buckets = or(cfg.Buckets, DefaultThrottlerBuckets)
	ck.check(cfg.Window >= time.Duration(cfg.Buckets), "Window", cfg.Window, fmt.Sprintf("must be at least Buckets (%d) nanoseconds", cfg.Buckets))
	if err := ck.err(); err != nil {
		return nil, err
	}
	t := &Throttler{
		name:     cfg.Name,
		k:        cfg.K,
		width:    int64(cfg.Window) / int64(cfg.Buckets),
		accepted: or2(cfg.Accepted, DefaultAccepted),
		t0:       time.Now(),
		buckets:  make([]throttleBucket, cfg.Buckets),
	}
	t.state.Store(throttleClean)
	return t, nil
}

// Name returns the throttler's name.
func (t *Throttler) Name() string { return t.name }

// Kind returns KindThrottle.
func (*Throttler) Kind() string { return KindThrottle }

// Run runs call under the throttler, as Do does: it is the throttler as a
// Stage for code that has only an error to pass through.
func (t *Throttler) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(t, ctx, call)
}

// RejectProbability returns the probability with which the throttler
// rejects a call now: 0 while the window is clean, without a look at the
// clock; otherwise it moves the window on to now first.
func (t *Throttler) RejectProbability() float64 {
	if t.state.Load() != throttleDirty {
		return 0
	}
	now := t.now()
	t.mu.Lock()
	t.advance(now)
	p := t.settle()
	t.mu.Unlock()
	return p
}

// Stats returns how many calls the throttler admitted and rejected, and
// the probability with which it rejected calls at its last look.
func (t *Throttler) Stats() Stats {
	return Stats{
		Calls: []Count{
			{Result: "admitted", N: t.clean.Load() + t.counted.Load() + t.uncounted.Load()},
			{Result: "rejected", N: t.rejected.Load()},
		},
		Gauges: []Gauge{{
			Name:  "reject_probability",
			Help:  "Probability, from 0 to 1, with which the throttler rejects a call, as of the last call it counted with the clock; 0 while the dependency accepts every call.",
			Value: math.Float64frombits(t.prob.Load()),
		}},
	}
}

// ObserveEvents adds f to the observers of t's events: EventRejected for
// each call it turns away. It implements EventSource.
func (t *Throttler) ObserveEvents(f func(context.Context, Event)) { t.ev.add(f) }

// throttleDo runs the rest of a chain under t.
func throttleDo[T any](t *Throttler, ctx context.Context, n next[T]) (T, error) {
	if t.state.Load() != throttleClean {
		return throttleDoDirty(t, ctx, n)
	}
	// If the call panics (or calls runtime.Goexit), ended is still false
	// when the deferred function runs: the call was admitted, and is not
	// counted in the window.
	ended := false
	defer func() {
		if !ended {
			t.uncounted.Add(1)
		}
	}()
	var (
		v   T
		err error
	)
	if n.c == nil { // n.call, by hand: the compiler will not inline it
		v, err = n.fn(ctx)
	} else {
		v, err = n.c.Do(ctx, n.fn)
	}
	ended = true
	if err == nil {
		t.clean.Add(1)
	} else {
		t.finish(ctx, err, true)
	}
	return v, err
}

// throttleDoDirty is throttleDo while the window is dirty, or for a zero
// Throttler.
func throttleDoDirty[T any](t *Throttler, ctx context.Context, n next[T]) (T, error) {
	if err := t.admit(ctx); err != nil {
		var zero T
		return zero, err
	}
	ended := false
	defer func() {
		if !ended {
			t.uncounted.Add(1)
		}
	}()
	v, err := n.call(ctx)
	ended = true
	t.finish(ctx, err, false)
	return v, err
}

// admit decides whether a call may run while the window is dirty, and
// counts a call it rejects.
func (t *Throttler) admit(ctx context.Context) error {
	switch t.state.Load() {
	case throttleClean:
		return nil
	case 0:
		return errThrottlerNotMade
	}
	now := t.now()
	var p float64
	if now/t.width <= t.headK.Load() {
		// The window has not moved since the last look: nor has the
		// probability, but for accepts not yet spread.
		p = math.Float64frombits(t.prob.Load())
	} else {
		t.mu.Lock()
		t.advance(now)
		p = t.settle()
		t.mu.Unlock()
	}
	if p == 0 || rand.Float64() >= p {
		return nil
	}
	t.record(now, false)
	t.rejected.Add(1)
	err := &ThrottledError{Name: t.name, Probability: p}
	if t.ev.on() {
		t.ev.emit(ctx, Event{Type: EventRejected, Kind: KindThrottle, Name: t.name, Err: err})
	}
	return err
}

// finish counts a call that was admitted and ended with err; clean says
// it was admitted while the window was clean.
func (t *Throttler) finish(ctx context.Context, err error, clean bool) {
	switch {
	case err != nil && uncountable(ctx, err):
		t.uncounted.Add(1)
	case err == nil || t.accepted(ctx, err):
		if clean || t.state.Load() == throttleClean {
			t.clean.Add(1) // spread at the next look
			return
		}
		t.record(t.now(), true)
		t.counted.Add(1)
	default:
		t.record(t.now(), false)
		t.counted.Add(1)
	}
}

// now returns the time, in nanoseconds since t.t0.
func (t *Throttler) now() int64 { return int64(time.Since(t.t0)) }

// record counts a request at now, accepted or not, and returns the
// probability after it.
func (t *Throttler) record(now int64, accepted bool) float64 {
	t.mu.Lock()
	t.advance(now)
	b := &t.buckets[t.head%int64(len(t.buckets))]
	if accepted {
		b.accepts++
		t.accepts++
	} else {
		b.failures++
		t.failures++
	}
	p := t.settle()
	t.mu.Unlock()
	return p
}

// advance moves the window on to now, and spreads the accepts counted
// without the clock since the last look evenly over the time since then,
// the part older than the window dropped. t.mu is held.
func (t *Throttler) advance(now int64) {
	now = max(now, t.last) // calls made at once read the clock in any order
	nb := int64(len(t.buckets))
	if k := now / t.width; k > t.head {
		if k-t.head >= nb {
			clear(t.buckets)
		} else {
			for i := t.head + 1; i <= k; i++ {
				t.buckets[i%nb] = throttleBucket{}
			}
		}
		t.head = k
		t.accepts, t.failures = 0, 0
		for _, b := range t.buckets {
			t.accepts += b.accepts
			t.failures += b.failures
		}
	}
	total := t.clean.Load()
	fresh := float64(total - t.seen)
	t.seen = total
	from := t.last
	t.last = now
	if fresh == 0 {
		return
	}
	if now <= from {
		t.buckets[t.head%nb].accepts += fresh
		t.accepts += fresh
		return
	}
	span := float64(now - from)
	for k := max(from/t.width, t.head-nb+1); k <= t.head; k++ {
		start, end := max(from, k*t.width), min(now, (k+1)*t.width)
		if end > start {
			x := fresh * float64(end-start) / span
			t.buckets[k%nb].accepts += x
			t.accepts += x
		}
	}
}

// settle computes the probability of the window as it is, publishes it,
// and marks the window clean or dirty. t.mu is held.
func (t *Throttler) settle() float64 {
	p := 0.0
	want := uint32(throttleClean)
	if t.failures > 0 {
		want = throttleDirty
		requests := t.accepts + float64(t.failures)
		p = max(0, (requests-t.k*t.accepts)/(requests+1))
	}
	t.prob.Store(math.Float64bits(p))
	t.headK.Store(t.head)
	if t.state.Load() != want { // a store would evict the line every call reads
		t.state.Store(want)
	}
	return p
}

// ThrottledError is the error of a call rejected by a Throttler. It
// matches ErrThrottled and ErrRejected.
type ThrottledError struct {
	// Name is the throttler's name (ThrottlerConfig.Name).
	Name string
	// Probability is the probability with which the throttler was
	// rejecting calls when it rejected this one.
	Probability float64
}

// Error describes the error.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("resilience: throttler %q rejected the call (reject probability %.3f): the dependency accepts too few of its requests", e.Name, e.Probability)
}

// Is reports whether target is ErrThrottled or ErrRejected.
func (e *ThrottledError) Is(target error) bool {
	return target == ErrThrottled || target == ErrRejected
}
