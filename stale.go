package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrStale matches the error that comes with a value a StaleCache served
// in place of a failed call (see StaleError). The value is usable, only
// old: a caller that takes it checks for ErrStale first,
//
//	v, err := cache.Do(ctx, fetch)
//	if err != nil && !errors.Is(err, resilience.ErrStale) {
//		return err
//	}
//
// and anything else that matches the error (the failure's own sentinels,
// ErrRejected for a breaker that was open) describes why the fresh call
// failed, not the value.
var ErrStale = errors.New("resilience: stale value")

// DefaultStaleEntries is the default StaleCacheConfig.MaxEntries.
const DefaultStaleEntries = 1000

// StaleCacheConfig configures a StaleCache for calls returning T. The
// zero value of every field stands for its default, given in the field's
// comment; MaxAge alone is required.
type StaleCacheConfig[T any] struct {
	// Name names the cache in its errors and events.
	Name string

	// MaxAge is how old a value may be and still be served: a value
	// stored MaxAge ago is served, one stored longer ago never is, and is
	// dropped when a failed call finds it. Required, above 0.
	MaxAge time.Duration

	// MaxEntries is how many keys the cache holds values for at most:
	// storing a value for one more key evicts the key that was stored or
	// served least recently. Not negative; default DefaultStaleEntries
	// (1000). The cache holds at most MaxEntries values of T and their
	// keys, whatever keys its callers send.
	MaxEntries int

	// Key returns the key a call's value is stored under, from the call's
	// context. Default: the key WithKey put in ctx (see KeyFrom), and ""
	// for a call made without one, so that every call without a key
	// shares one value. It is called without a lock held, once for each
	// call that succeeds or fails with an error the cache covers, and
	// must be safe for concurrent use.
	Key func(ctx context.Context) string

	// Serve reports whether a failed call's error is one the cache covers
	// with a stored value. Default: every failure, rejections (ErrRejected:
	// an open breaker, a full bulkhead, a rate limit) and time-outs
	// included. Whatever it says, a call whose caller's context has ended
	// returns its own error, and an answer (see Answer), or an error a
	// Guard's Classify marked as ignored, is returned as it is: Serve is
	// not asked about those. It is called without a lock held, and must be
	// safe for concurrent use.
	Serve func(err error) bool

	// OnStale, if not nil, is called each time the cache serves a stale
	// value, after it has been taken from the cache and before Do
	// returns, on the goroutine that called Do, with no lock held. Calls
	// of Do on several goroutines call it concurrently.
	OnStale func(StaleEvent)
}

// StaleEvent describes a stale value a StaleCache served.
type StaleEvent struct {
	Name string        // the cache's name
	Key  string        // the key the value was stored under
	Age  time.Duration // how long ago it was stored, at most MaxAge
	Err  error         // the failure it stood in for
}

// StaleCache is a policy that keeps the result of the last call that
// succeeded for each key, and serves it in place of a call that fails, as
// long as it is no older than MaxAge: a read path that would rather show
// a value a minute old than an error.
//
// A value it serves comes with a *StaleError, not with a nil error: a
// caller that does not look cannot take an old value for a fresh one, and
// one errors.Is(err, ErrStale) tells the caller who wants it that the
// value is there and how old it is (see StaleAge). Without a stored value
// young enough, the call's own result and error come back unchanged.
//
// Every call that succeeds stores its result under its key (see
// StaleCacheConfig.Key), replacing the one before, timed with time.Now,
// so that tests of code using it can run under testing/synctest. A call
// whose fn panics stores nothing: the panic goes on up the stack.
//
// A StaleCache belongs outside the policies whose failures it covers, as a
// Fallback does: put it first in Compose,
//
//	users := resilience.Compose(cache, resilience.For[*User](timeout, retry, breaker))
//
// so that the retries and the breaker see the dependency's real failures.
// Inside a retry its stale values would be retried as failures after all,
// and it would cover one attempt rather than the call.
//
// A StaleCache is bounded (MaxEntries keys, evicted least recently used
// first), keeps no goroutine, and takes a lock only around its map work,
// never while a call, Key, Serve or OnStale runs. It is safe for
// concurrent use. Make one with NewStaleCache: the zero StaleCache runs no
// call (Do returns an error matching ErrInvalidConfig that says so).
type StaleCache[T any] struct {
	cfg StaleCacheConfig[T] // defaults filled in

	fresh, stale, miss, passed atomic.Uint64 // calls, by how they ended (see Stats)
	entries                    atomic.Int64  // len(m), for Len and Stats

	mu  sync.Mutex                // guards what follows; no callback runs under it
	m   map[string]*staleEntry[T] // nil in a zero StaleCache
	lru staleEntry[T]             // the sentinel of a ring: lru.next is the most recently used
}

// staleEntry is a stored value, and its place in the cache's ring of
// entries, most recently stored or served first.
type staleEntry[T any] struct {
	key        string
	v          T
	stored     time.Time
	prev, next *staleEntry[T]
}

// NewStaleCache returns a stale-value cache configured by cfg, or an error
// naming every invalid field of cfg.
func NewStaleCache[T any](cfg StaleCacheConfig[T]) (*StaleCache[T], error) {
	ck := checker{typ: "StaleCacheConfig"}
	ck.check(cfg.MaxAge > 0, "MaxAge", cfg.MaxAge, "is required, and must be above 0")
	ck.check(cfg.MaxEntries >= 0, "MaxEntries", cfg.MaxEntries, "must not be negative (0 for the default)")
	if err := ck.err(); err != nil {
		return nil, err
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultStaleEntries
	}
	if cfg.Key == nil {
		cfg.Key = keyOf
	}
	c := &StaleCache[T]{cfg: cfg, m: make(map[string]*staleEntry[T])}
	c.lru.next, c.lru.prev = &c.lru, &c.lru
	return c, nil
}

// keyOf is the default StaleCacheConfig.Key.
func keyOf(ctx context.Context) string {
	k, _ := KeyFrom(ctx)
	return k
}

var errStaleNotMade error = &notMadeError{"StaleCache", "NewStaleCache"}

// Name returns the cache's name.
func (c *StaleCache[T]) Name() string { return c.cfg.Name }

// Do runs fn. If it succeeds, Do stores its result and returns it. If it
// fails with an error the cache covers and a value stored for the call's
// key is no older than MaxAge, Do returns that value and a *StaleError
// wrapping fn's error; otherwise it returns what fn returned.
func (c *StaleCache[T]) Do(ctx context.Context, fn Func[T]) (T, error) {
	if fn == nil {
		var zero T
		return zero, errNilFunc
	}
	return c.run(ctx, next[T]{fn: fn})
}

func (c *StaleCache[T]) run(ctx context.Context, n next[T]) (T, error) {
	if c.m == nil { // set by NewStaleCache, always
		var zero T
		return zero, errStaleNotMade
	}
	v, err := n.call(ctx)
	if err == nil {
		c.put(c.cfg.Key(ctx), v)
		c.fresh.Add(1)
		return v, nil
	}
	if ctx.Err() != nil || markOf(err) != Failure || (c.cfg.Serve != nil && !c.cfg.Serve(err)) {
		c.passed.Add(1)
		return v, err
	}
	key := c.cfg.Key(ctx)
	old, age, ok := c.get(key)
	if !ok {
		c.miss.Add(1)
		return v, err
	}
	c.stale.Add(1)
	if c.cfg.OnStale != nil {
		c.cfg.OnStale(StaleEvent{Name: c.cfg.Name, Key: key, Age: age, Err: err})
	}
	return old, &StaleError{Name: c.cfg.Name, Key: key, Age: age, Err: err}
}

// put stores v under key, as the most recently used entry. The clock is
// read under the lock, so that entries are stamped in the order they are
// stored and no lookup finds an entry stamped after its own reading.
func (c *StaleCache[T]) put(key string, v T) {
	c.mu.Lock()
	now := time.Now()
	e := c.m[key]
	switch {
	case e != nil:
		e.unlink()
	case len(c.m) < c.cfg.MaxEntries:
		e = &staleEntry[T]{key: key}
		c.m[key] = e
	default:
		// Full: the least recently used entry makes room, and its
		// memory is reused for the new key.
		e = c.lru.prev
		e.unlink()
		delete(c.m, e.key)
		e.key = key
		c.m[key] = e
	}
	e.v, e.stored = v, now
	e.pushFront(&c.lru)
	c.entries.Store(int64(len(c.m)))
	c.mu.Unlock()
}

// get returns the value stored under key and its age, if there is one no
// older than MaxAge, and makes it the most recently used. A value older
// than MaxAge is dropped.
func (c *StaleCache[T]) get(key string) (v T, age time.Duration, ok bool) {
	c.mu.Lock()
	e := c.m[key]
	if e == nil {
		c.mu.Unlock()
		return v, 0, false
	}
	age = time.Since(e.stored)
	if age > c.cfg.MaxAge {
		e.unlink()
		delete(c.m, key)
		c.entries.Store(int64(len(c.m)))
		c.mu.Unlock()
		return v, 0, false
	}
	e.unlink()
	e.pushFront(&c.lru)
	v = e.v
	c.mu.Unlock()
	return v, age, true
}

func (e *staleEntry[T]) unlink() {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (e *staleEntry[T]) pushFront(head *staleEntry[T]) {
	e.prev, e.next = head, head.next
	head.next.prev = e
	head.next = e
}

// Len returns how many keys the cache holds a value for, stale ones not
// yet dropped included. It takes no lock.
func (c *StaleCache[T]) Len() int { return int(c.entries.Load()) }

// Stats returns how the calls the cache ran ended, and how many keys it
// holds a value for. The results, in this order:
//
//   - "fresh": the call succeeded, and its result was stored;
//   - "stale": the call failed, and a stored value was served instead;
//   - "miss": the call failed with an error the cache covers, and it had
//     no value young enough for the key;
//   - "passed": the call failed with an error the cache does not cover
//     (an answer, the caller's cancellation, or one Serve turned down),
//     returned as it was.
//
// and the gauge "entries" is Len. It takes no lock, and may be called at
// any time from any goroutine.
func (c *StaleCache[T]) Stats() Stats {
	return Stats{
		Calls: []Count{
			{Result: "fresh", N: c.fresh.Load()},
			{Result: "stale", N: c.stale.Load()},
			{Result: "miss", N: c.miss.Load()},
			{Result: "passed", N: c.passed.Load()},
		},
		Gauges: []Gauge{{Name: "entries", Help: "Keys the stale cache holds a value for.", Value: float64(c.entries.Load())}},
	}
}

// StaleError is the error that comes with a value a StaleCache served in
// place of a failed call. It matches ErrStale, and unwraps to the call's
// error.
type StaleError struct {
	Name string        // the cache's name
	Key  string        // the key the value was stored under
	Age  time.Duration // how long ago the value was stored, when it was served; at most MaxAge
	Err  error         // the call's error
}

// Error describes the error: the cache, the key, the value's age and the
// call's error.
func (e *StaleError) Error() string {
	return fmt.Sprintf("resilience: stale cache %q served the value of key %q stored %v ago: %v", e.Name, e.Key, e.Age, e.Err)
}

// Unwrap returns the call's error.
func (e *StaleError) Unwrap() error { return e.Err }

// Is reports whether target is ErrStale.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// StaleAge reports whether err comes with a stale value (it is, or wraps,
// a *StaleError), and how old the value was when it was served.
func StaleAge(err error) (age time.Duration, ok bool) {
	if e, ok := as[*StaleError](err); ok {
		return e.Age, true
	}
	return 0, false
}
