package resilience

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// BulkheadConfig configures a bulkhead.
type BulkheadConfig struct {
	// Name identifies the bulkhead in errors and metrics.
	Name string

	// MaxConcurrent is how many calls may run at once. Required.
	MaxConcurrent int

	// MaxWait is how long a call may wait for a free slot when all are
	// taken; waiting also ends when the caller's context does. Default 0:
	// a call that finds the bulkhead full is rejected at once.
	MaxWait time.Duration
}

// Bulkhead limits how many calls to a dependency run at once, so that a
// slow dependency cannot tie up every goroutine, connection and byte of
// memory the service has.
//
// A call that finds all MaxConcurrent slots taken waits, in line, up to
// MaxWait for one to come free, and is then rejected with a
// *BulkheadFullError, which matches ErrBulkheadFull. A caller whose context
// ends while waiting gets the context's error, and the bulkhead is left as
// if it had never asked. A slot is given back whatever happens to the call,
// a panic included.
//
// Taking and giving back a slot are single atomic operations when the
// bulkhead is not full; only waiting takes a lock.
//
// A Bulkhead is a Stage: use it in chains with For. Acquire, TryAcquire and
// Release are the same machinery for callers who cannot wrap a function. It
// is safe for concurrent use. Make one with NewBulkhead: the zero Bulkhead
// has no slots, and Acquire (and so Do) returns an error matching
// ErrInvalidConfig that says so.
type Bulkhead struct {
	inUse   atomic.Int64 // slots taken
	waiting atomic.Int64 // len(waiters), readable without mu
	_       [48]byte

	max     int64
	maxWait time.Duration
	full    *BulkheadFullError
	obs     atomic.Pointer[BulkheadObserver] // nil until Observe
	ev      events

	mu      sync.Mutex
	waiters []*bulkheadWaiter // in arrival order
}

type bulkheadWaiter struct {
	ready chan struct{} // closed when the waiter is given a slot
}

// NewBulkhead returns a bulkhead configured by cfg, or an error naming
// every invalid field of cfg.
func NewBulkhead(cfg BulkheadConfig) (*Bulkhead, error) {
	ck := checker{typ: "BulkheadConfig"}
	ck.check(cfg.MaxConcurrent > 0, "MaxConcurrent", cfg.MaxConcurrent, "must be positive")
	ck.check(cfg.MaxWait >= 0, "MaxWait", cfg.MaxWait, "must not be negative")
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &Bulkhead{
		max:     int64(cfg.MaxConcurrent),
		maxWait: cfg.MaxWait,
		full:    &BulkheadFullError{Name: cfg.Name, MaxConcurrent: cfg.MaxConcurrent},
	}, nil
}

// Kind returns KindBulkhead.
func (*Bulkhead) Kind() string { return KindBulkhead }

// Run runs call under the bulkhead, as Do does: it is the bulkhead as a Stage for
// code that has only an error to pass through.
func (x *Bulkhead) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// Name returns the bulkhead's name.
func (b *Bulkhead) Name() string {
	if b.full == nil { // a zero Bulkhead
		return ""
	}
	return b.full.Name
}

// InUse returns how many slots are taken, by calls running or, with a
// Timeout that abandons calls inside the bulkhead (see TimeoutConfig.Abandon),
// by abandoned calls still running.
func (b *Bulkhead) InUse() int { return int(b.inUse.Load()) }

// MaxConcurrent returns how many calls may run at once.
func (b *Bulkhead) MaxConcurrent() int { return int(b.max) }

// TryAcquire takes a slot if one is free and nobody is waiting for one, and
// reports whether it did. A slot taken must be given back with Release.
func (b *Bulkhead) TryAcquire() bool {
	if b.waiting.Load() != 0 {
		return false // do not jump the line
	}
	for {
		n := b.inUse.Load()
		if n >= b.max {
			return false
		}
		if b.inUse.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Acquire takes a slot, waiting up to MaxWait for one if none is free. It
// returns a *BulkheadFullError if none came free in time, or ctx's error if
// ctx ended first; either way no slot is held. A slot taken must be given
// back with Release.
func (b *Bulkhead) Acquire(ctx context.Context) error {
	if b.TryAcquire() {
		return nil
	}
	if b.full == nil { // set by NewBulkhead, always
		return errBulkheadNotMade
	}
	if b.maxWait == 0 {
		b.rejected(ctx)
		return b.full
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.wait(ctx)
}

func (b *Bulkhead) wait(ctx context.Context) error {
	w := &bulkheadWaiter{ready: make(chan struct{})}
	b.mu.Lock()
	b.waiters = append(b.waiters, w)
	b.waiting.Add(1)
	// A slot may have come free since TryAcquire looked. Release checks
	// waiting after freeing its slot, and we check the slots after raising
	// waiting, so one of the two always sees the other: no lost wake-up.
	b.grantLocked()
	b.mu.Unlock()

	t := time.NewTimer(b.maxWait)
	defer t.Stop()
	select {
	case <-w.ready:
		return nil
	case <-t.C:
		if b.leave(w) {
			b.rejected(ctx)
			return b.full
		}
		return nil // given a slot just as the wait ran out: keep it
	case <-ctx.Done():
		if !b.leave(w) {
			b.Release() // given a slot just as ctx ended: hand it on
		}
		return ctx.Err()
	}
}

// rejected reports a rejection of a call with ctx to b's observers, if
// any.
func (b *Bulkhead) rejected(ctx context.Context) {
	if o := b.obs.Load(); o != nil && o.Rejected != nil {
		o.Rejected()
	}
	if b.ev.on() {
		b.ev.emit(ctx, Event{Type: EventRejected, Kind: KindBulkhead, Name: b.full.Name, Err: b.full})
	}
}

// ObserveEvents adds f to the observers of b's events: EventRejected for
// each call it turns away. It implements EventSource.
func (b *Bulkhead) ObserveEvents(f func(context.Context, Event)) { b.ev.add(f) }

// leave takes w out of the line, and reports false if it had already been
// given a slot.
func (b *Bulkhead) leave(w *bulkheadWaiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.waiting.Add(-1)
			return true
		}
	}
	return false
}

// grantLocked hands free slots to waiters, first come first served. b.mu
// is held.
func (b *Bulkhead) grantLocked() {
	for len(b.waiters) > 0 {
		n := b.inUse.Load()
		if n >= b.max {
			return
		}
		if !b.inUse.CompareAndSwap(n, n+1) {
			continue
		}
		w := b.waiters[0]
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		b.waiting.Add(-1)
		close(w.ready)
	}
}

// Release gives back a slot taken by Acquire or TryAcquire. Releasing a
// slot that was never taken is a programming error, and panics.
func (b *Bulkhead) Release() {
	if b.inUse.Add(-1) < 0 {
		b.inUse.Add(1)
		panic("resilience: Bulkhead.Release without a slot taken")
	}
	if b.waiting.Load() != 0 {
		b.mu.Lock()
		b.grantLocked()
		b.mu.Unlock()
	}
}

// bulkheadDo runs the rest of a chain in a slot of b.
func bulkheadDo[T any](b *Bulkhead, ctx context.Context, n next[T]) (T, error) {
	if err := b.Acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	defer b.Release()
	return n.call(ctx)
}

// A slot follows the call it was taken for. A Timeout that abandons calls
// returns to the caller at its deadline while the call goes on running on
// a goroutine of its own; a bulkhead around it that gave its slot back
// then would let more calls run than it has slots. So a bulkhead with an
// abandoning Timeout inside it in the same chain (bulkheadDoLending) puts a
// slotOwner in the context, and the Timeout lends the slots it finds there
// to the goroutine that runs the call (see timeoutAbandon):
//
//   - a call that returns in time gives them back to the caller;
//   - an abandoned call keeps them until it returns, and releases them then;
//   - a caller whose slot went with an abandoned call (a retry between the
//     bulkhead and the Timeout, trying again) takes a new one before the
//     next attempt runs, waiting or being rejected as any call would.
//
// So every call running inside the bulkhead holds one of its slots, and
// InUse counts abandoned calls still running.
//
// The owners belong to the chain: the protected call itself gets a
// context without them, so that another chain it calls, abandoning calls
// of its own, cannot lend or take back this chain's slots. Within the
// chain, each slotOwner is touched by one goroutine at a time: the
// caller's, or the goroutine it lent the slots to, which hands them back
// through the channel that carries its result.
type slotOwner struct {
	b      *Bulkhead
	has    bool // holds a slot of b
	parent *slotOwner
}

type slotOwnerKey struct{}

func ownerFrom(ctx context.Context) *slotOwner {
	o, _ := ctx.Value(slotOwnerKey{}).(*slotOwner)
	return o
}

// bulkheadDoLending is bulkheadDo for a bulkhead whose slot may have to
// follow an abandoned call. It costs two contexts, a closure and a
// slotOwner per call, beside the goroutine and channel the abandoning
// Timeout costs anyway.
func bulkheadDoLending[T any](b *Bulkhead, ctx context.Context, n next[T]) (T, error) {
	if err := b.Acquire(ctx); err != nil {
		var zero T
		return zero, err
	}
	o := &slotOwner{b: b, has: true, parent: ownerFrom(ctx)}
	defer func() {
		if o.has {
			b.Release()
		}
	}()
	fn := n.fn
	n.fn = func(ctx context.Context) (T, error) {
		if ownerFrom(ctx) != nil {
			ctx = context.WithValue(ctx, slotOwnerKey{}, (*slotOwner)(nil))
		}
		return fn(ctx)
	}
	return n.call(context.WithValue(ctx, slotOwnerKey{}, o))
}

// reclaim makes sure every owner in the chain from o holds its slot,
// taking a new one where an abandoned call took the old one. On error,
// the slots it did take stay with their owners, which give them back when
// their bulkheads return.
func (o *slotOwner) reclaim(ctx context.Context) error {
	for x := o; x != nil; x = x.parent {
		if x.has {
			continue
		}
		if err := x.b.Acquire(ctx); err != nil {
			return err
		}
		x.has = true
	}
	return nil
}

// lend moves the slots of the chain from o to a new chain, for a goroutine
// that will run the call; o holds none of them afterwards. A nil o lends
// nothing.
func (o *slotOwner) lend() *slotOwner {
	if o == nil {
		return nil
	}
	c := &slotOwner{b: o.b, has: o.has, parent: o.parent.lend()}
	o.has = false
	return c
}

// takeBack returns to the chain from o the slots that lent, the chain o
// lent them to, still holds.
func (o *slotOwner) takeBack(lent *slotOwner) {
	for ; o != nil; o, lent = o.parent, lent.parent {
		o.has, lent.has = lent.has, false
	}
}

// release gives back every slot the chain from o holds.
func (o *slotOwner) release() {
	for ; o != nil; o = o.parent {
		if o.has {
			o.has = false
			o.b.Release()
		}
	}
}

// BulkheadFullError is the error of a call rejected by a bulkhead. It
// matches ErrBulkheadFull and ErrRejected. Each bulkhead builds its own once; treat it as
// read-only.
type BulkheadFullError struct {
	// Name is the bulkhead's name (BulkheadConfig.Name).
	Name string
	// MaxConcurrent is the bulkhead's limit.
	MaxConcurrent int
}

// Error describes the error.
func (e *BulkheadFullError) Error() string {
	return fmt.Sprintf("resilience: bulkhead %q is full (%d calls in flight)", e.Name, e.MaxConcurrent)
}

// Is reports whether target is ErrBulkheadFull or ErrRejected.
func (e *BulkheadFullError) Is(target error) bool {
	return target == ErrBulkheadFull || target == ErrRejected
}

// BulkheadObserver receives the events of a bulkhead. How many slots are
// in use is a read of InUse, at any time, and needs no event.
type BulkheadObserver struct {
	// Rejected is called each time Acquire, or a call through the
	// bulkhead, is turned away because no slot came free in time.
	// TryAcquire's failures are not reported: the caller asked only
	// whether a slot was free.
	Rejected func()
}

// Observe adds o to the observers of b.
func (b *Bulkhead) Observe(o BulkheadObserver) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.obs.Load(); old != nil {
		o = BulkheadObserver{Rejected: join0(old.Rejected, o.Rejected)}
	}
	b.obs.Store(&o)
}
