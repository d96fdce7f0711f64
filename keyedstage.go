package resilience

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
)

// KeyedConfig configures a Keyed family. The zero value of every field
// stands for its default, given in the field's comment.
type KeyedConfig struct {
	// Name names the family. Default the name of the stage New makes for
	// the key "".
	Name string

	// MaxKeys is how many keys have a stage at once. A call with a key
	// that has none when MaxKeys have one evicts the stage of a key
	// little used of late (CLOCK, as KeyedBreaker) and with no call
	// running through it, and makes a fresh one for the new key. Default
	// 10,000; at most 2^31-1.
	MaxKeys int

	// Key returns the key of a call with ctx. Default KeyFrom, the key
	// WithKey put in ctx ("" if none). Give a family its own key, from a
	// context value of your own, when the context's key is another's: in a
	// guard with a KeyedBreaker, a resilhttp Transport or resilgrpc
	// interceptor replaces it with the host or target, while a limit per
	// tenant wants the tenant. (Without a KeyedBreaker they leave the
	// caller's key alone.)
	Key func(ctx context.Context) string
}

// Keyed is a family of stages of one sort, one per key, made on demand by
// a function of the key: a Bulkhead or a RateLimiter per tenant, so that
// one tenant's burst takes its own share and no other's. A call through
// the family runs through the stage of its key.
//
// For breakers, use KeyedBreaker: it caps how many keys may be open at
// once. A Retry, a RetryBudget, a Timeout, a Hedge or a Latency per key
// is refused: a retry budget bounds the retries to a whole dependency, a
// hedge and a latency model follow the whole dependency's answers (and a
// Hold keeps a hedge's winner open only for a guard's own stages), and
// the others keep no state across calls that a key would need.
//
// # Bounds
//
// At most MaxKeys keys have a stage at once, whatever keys callers send,
// and the family starts no goroutine. A stage is evicted only while no
// call runs through it, so that a key's bulkhead is never two at once: a
// call for a new key while every one of the MaxKeys keys has a call
// running is refused with a *KeyedFullError. An evicted key starts afresh
// when it is next called (a rate limiter with a full burst). Make MaxKeys
// larger than the number of keys you expect to be active at once.
//
// # Cost
//
// A call whose key has a stage finds it with one lock-free lookup
// (sync.Map) and three atomic additions on the key's own slot, and runs
// through it as the chain runs that stage anywhere: with no allocation
// for this package's stages (TestHappyPathAllocatesNothing), as a stage of
// your own costs in any chain. A new key calls New, outside any lock of
// the family, then takes the family's lock to add it.
//
// A Keyed family is safe for concurrent use. Make one with NewKeyed: the
// zero Keyed runs no call.
type Keyed[S Stage] struct {
	name, kind string
	newStage   func(key string) (S, error)
	maxKeys    int
	key        func(context.Context) string
	results    []string // the results Stats counts, in order: "calls", then the stages' own

	index sync.Map // key → *keyedSlot[S], the live keys
	live  atomic.Int64
	full  atomic.Uint64 // calls refused with a KeyedFullError
	ev    events

	mu       sync.Mutex // held to add or evict a key; guards the fields below. No callback under it.
	ring     []*keyedSlot[S]
	hand     int
	retiring []*keyedSlot[S] // evicted, their counts not yet added to evicted
	evicted  []uint64        // the counts of evicted stages, by results
}

// keyedSlot is one key's stage.
type keyedSlot[S Stage] struct {
	slotBase
	key   string
	stage S
}

// slotBase is what the chain sees of a key's slot, whatever the stage's
// type: familyDo counts a call in it while the call runs.
type slotBase struct {
	busy     atomic.Int64  // calls running through the stage
	calls    atomic.Uint64 // calls made through it
	rejected atomic.Uint64 // for a Bulkhead: calls it turned away
	used     atomic.Bool   // called since the clock's hand last passed
	gone     atomic.Bool   // evicted
}

// NewKeyed returns a family of stages, one per key, each made by New for
// its key; or an error naming what is wrong with cfg or with the stage New
// makes for the key "", which NewKeyed makes to check it (and then keeps
// for that key). New must be safe for concurrent use, and make a stage
// that needs no closing: one made for a key that another call added first
// is dropped.
func NewKeyed[S Stage](cfg KeyedConfig, New func(key string) (S, error)) (*Keyed[S], error) {
	ck := checker{typ: "KeyedConfig"}
	ck.check(cfg.MaxKeys >= 0 && int64(cfg.MaxKeys) <= 1<<31-1, "MaxKeys", cfg.MaxKeys, "must be from 0 (the default, "+strconv.Itoa(DefaultMaxKeys)+") to 2^31-1")
	if New == nil {
		ck.errs = append(ck.errs, &ConfigError{Field: "NewKeyed", Value: "nil", Reason: "New, which makes the stage of a key, is required"})
		return nil, ck.err()
	}
	first, err := New("")
	if err != nil {
		ck.errs = append(ck.errs, fmt.Errorf("resilience: NewKeyed: New(\"\"): %w", err))
		return nil, ck.err()
	}
	if cerr := keyedStageError(first); cerr != nil {
		ck.errs = append(ck.errs, cerr)
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	k := &Keyed[S]{
		name:     or(cfg.Name, first.Name()),
		kind:     "keyed_" + first.Kind(),
		newStage: New,
		maxKeys:  or(cfg.MaxKeys, DefaultMaxKeys),
		key:      cfg.Key,
	}
	k.results = []string{"calls"}
	switch o := any(first).(type) {
	case Observable:
		for _, c := range o.Stats().Calls {
			if c.Result == "calls" || c.Result == "full" {
				return nil, &ConfigError{Field: "KeyedConfig.New", Value: fmt.Sprintf("%T", first),
					Reason: "makes stages whose Stats count a result named " + strconv.Quote(c.Result) + ", which the family counts itself"}
			}
			k.results = append(k.results, c.Result)
		}
	case *Bulkhead:
		k.results = append(k.results, "rejected")
	}
	k.evicted = make([]uint64, len(k.results))
	k.insert(k.newSlot("", first)) // the family is empty: it cannot be full
	return k, nil
}

// keyedStageError returns what is wrong with s as the stage of a key: nil,
// or of a sort that makes no sense per key.
func keyedStageError(s any) *ConfigError {
	bad := func(value, reason string) *ConfigError {
		return &ConfigError{Field: "KeyedConfig.New", Value: value, Reason: reason}
	}
	switch st := s.(type) {
	case nil:
		return bad("nil", "made a nil stage")
	case *Breaker, *KeyedBreaker:
		return bad(fmt.Sprintf("%T", st), "makes breakers: use NewKeyedBreaker, which caps how many keys may be open at once")
	case *RetryBudget:
		return bad("*RetryBudget", "makes retry budgets, which bound the retries to a whole dependency: give it one budget")
	case *Retry, *Timeout:
		return bad(fmt.Sprintf("%T", st), "makes stages that keep nothing per key: use one")
	case *Hedge, *Latency:
		return bad(fmt.Sprintf("%T", st), "makes stages that follow a whole dependency's answers, whose winners a Hold keeps open only as stages of a guard: use one")
	case family:
		return bad(fmt.Sprintf("%T", st), "makes keyed families: one family is enough")
	case *Guard:
		return bad("*Guard", "makes guards, whose breakers and bulkheads the family cannot see to: put the family in one guard instead")
	}
	if v := reflect.ValueOf(s); nilable[v.Kind()] && v.IsNil() {
		return bad(fmt.Sprintf("%T(nil)", s), "made a nil stage")
	}
	return nil
}

// nilable are the kinds of value that may be nil.
var nilable = map[reflect.Kind]bool{reflect.Pointer: true, reflect.Map: true, reflect.Slice: true, reflect.Func: true, reflect.Chan: true, reflect.Interface: true}

// Name returns the family's name.
func (k *Keyed[S]) Name() string { return k.name }

// Kind returns "keyed_" and the kind of the family's stages:
// "keyed_bulkhead", "keyed_rate_limit".
func (k *Keyed[S]) Kind() string { return k.kind }

var errKeyedNotMade error = &notMadeError{"Keyed", "NewKeyed"}

// Run runs call through the stage of the call's key (KeyedConfig.Key), as
// Do does.
func (k *Keyed[S]) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(k, ctx, call)
}

// family is a Keyed family as a chain sees it, whatever its type
// parameter.
type family interface {
	// enter returns the stage of the key of a call with ctx and its slot,
	// with the call counted in it as running; the caller ends the call
	// with slot.busy.Add(-1).
	enter(ctx context.Context) (stage any, slot *slotBase, err error)
	// self returns the *Keyed itself.
	self() any
}

func (k *Keyed[S]) enter(ctx context.Context) (any, *slotBase, error) {
	if k.newStage == nil {
		return nil, nil, errKeyedNotMade
	}
	var key string
	if k.key != nil {
		key = k.key(ctx)
	} else {
		key, _ = KeyFrom(ctx)
	}
	sl, err := k.slot(ctx, key)
	if err != nil {
		if _, full := err.(*KeyedFullError); full {
			k.full.Add(1)
			if k.ev.on() {
				k.ev.emit(ctx, Event{Type: EventRejected, Kind: k.kind, Name: k.name, Key: key, Err: err})
			}
		}
		return nil, nil, err
	}
	sl.calls.Add(1)
	return sl.stage, &sl.slotBase, nil
}

// self returns the family itself, for the chain to tell it from a type of
// the user's that embeds it (and may have a Run of its own).
func (k *Keyed[S]) self() any { return k }

// ObserveEvents adds f to the observers of k's events: those of every
// key's stage (EventRejected for a RateLimiter, Bulkhead or Throttler
// that turns a call away), reported with the family's kind and name and
// the key, and EventRejected for a call whose new key finds the family
// full (a *KeyedFullError). It implements EventSource.
func (k *Keyed[S]) ObserveEvents(f func(context.Context, Event)) { k.ev.add(f) }

// familyDo runs the rest of a chain through the stage of the call's key
// in f: a chain of one link, that stage, around the rest, on the stack.
// lends is the family's link's: a Bulkhead with an abandoning Timeout
// inside it.
func familyDo[T any](f family, lends bool, ctx context.Context, n next[T]) (T, error) {
	st, sl, err := f.enter(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	defer sl.busy.Add(-1)
	c := links{link: st, rest: (*links)(n.c), lends: lends}
	return (*chain[T])(&c).Do(ctx, n.fn)
}

// newSlot returns a slot for key's stage s, counting the rejections of a
// Bulkhead.
func (k *Keyed[S]) newSlot(key string, s S) *keyedSlot[S] {
	sl := &keyedSlot[S]{key: key, stage: s}
	if b, ok := any(s).(*Bulkhead); ok {
		b.Observe(BulkheadObserver{Rejected: func() { sl.rejected.Add(1) }})
	}
	if es, ok := any(s).(EventSource); ok {
		// The key's stage's events are the family's, with the key.
		es.ObserveEvents(func(ctx context.Context, e Event) {
			if k.ev.on() {
				e.Kind, e.Name, e.Key = k.kind, k.name, key
				k.ev.emit(ctx, e)
			}
		})
	}
	return sl
}

// Stage returns the stage of key, making it if key has none (which may
// evict another key's). Do not keep it: once its key is evicted, a later
// call with the key gets a new one.
func (k *Keyed[S]) Stage(key string) (S, error) {
	if k.newStage == nil {
		var none S
		return none, errKeyedNotMade
	}
	sl, err := k.slot(context.Background(), key)
	if err != nil {
		var none S
		return none, err
	}
	sl.busy.Add(-1)
	return sl.stage, nil
}

// Lookup returns the stage of key, if key has one. It only reads.
func (k *Keyed[S]) Lookup(key string) (S, bool) {
	if v, ok := k.index.Load(key); ok {
		return v.(*keyedSlot[S]).stage, true
	}
	var none S
	return none, false
}

// Len returns how many keys have a stage.
func (k *Keyed[S]) Len() int { return int(k.live.Load()) }

// slot returns key's slot with a call counted in it as running, making
// the slot if key has none, unless ctx has ended.
func (k *Keyed[S]) slot(ctx context.Context, key string) (*keyedSlot[S], error) {
	for {
		if v, ok := k.index.Load(key); ok {
			sl := v.(*keyedSlot[S])
			sl.busy.Add(1)
			if !sl.gone.Load() {
				if !sl.used.Load() {
					sl.used.Store(true)
				}
				return sl, nil
			}
			sl.busy.Add(-1) // evicted between the two loads: look again
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err // an ended call makes nothing, and evicts no one
		}
		s, err := k.newStage(key) // user code: no lock held
		if err == nil {
			if cerr := keyedStageError(s); cerr != nil {
				err = cerr
			}
		}
		if err != nil {
			return nil, fmt.Errorf("resilience: keyed %q: making the stage of key %q: %w", k.name, key, err)
		}
		sl := k.newSlot(key, s)
		sl.busy.Add(1)
		sl.used.Store(true)
		won, err := k.insert(sl)
		if err != nil {
			return nil, err
		}
		if won != sl {
			sl = won // another call added key first; s is dropped
			if sl == nil {
				continue
			}
		}
		return sl, nil
	}
}

// insert adds sl for its key unless the key has a live slot, evicting
// another key's if the family is full, and returns the key's slot with a
// running call counted in it (sl itself if it was added; nil if the key's
// slot was evicted meanwhile); or a *KeyedFullError if every key has a
// call running and none can be evicted. The evicted stage's counts are added to the
// family's after the lock is let go: its Stats may be code of the user's.
func (k *Keyed[S]) insert(sl *keyedSlot[S]) (*keyedSlot[S], error) {
	k.mu.Lock()
	if v, ok := k.index.Load(sl.key); ok {
		k.mu.Unlock()
		have := v.(*keyedSlot[S])
		have.busy.Add(1)
		if have.gone.Load() {
			have.busy.Add(-1)
			return nil, nil
		}
		have.used.Store(true)
		return have, nil
	}
	var old *keyedSlot[S]
	if len(k.ring) < k.maxKeys {
		k.ring = append(k.ring, sl)
		k.live.Add(1)
	} else {
		i := k.victim()
		if i < 0 {
			k.mu.Unlock()
			return nil, &KeyedFullError{Name: k.name, Key: sl.key, MaxKeys: k.maxKeys}
		}
		old = k.ring[i]
		k.ring[i] = sl
		old.gone.Store(true)
		k.index.Delete(old.key)
		k.retiring = append(k.retiring, old)
	}
	k.index.Store(sl.key, sl)
	k.mu.Unlock()
	if old != nil {
		k.retire(old)
	}
	return sl, nil
}

// victim returns the index in the ring of the slot to evict, moving the
// hand past it: the first one not used since the hand last passed and
// with no call running; or -1 if after two turns every slot is busy. k.mu
// is held.
func (k *Keyed[S]) victim() int {
	for range 2*len(k.ring) + 1 {
		i := k.hand
		k.hand = (k.hand + 1) % len(k.ring)
		sl := k.ring[i]
		if !sl.used.Load() && idle(sl) {
			// A call may be taking the slot now: it counts itself busy,
			// then looks at gone; here gone is set, then busy looked at.
			// One of the two sees the other.
			sl.gone.Store(true)
			if idle(sl) {
				return i
			}
			sl.gone.Store(false)
		}
		sl.used.Store(false)
	}
	return -1
}

// idle reports whether no call runs through sl's stage: none through the
// family, and, for a Bulkhead, no slot of it held, such as one an
// abandoned call took with it (see bulkheadDoLending).
func idle[S Stage](sl *keyedSlot[S]) bool {
	if sl.busy.Load() != 0 {
		return false
	}
	if b, ok := any(sl.stage).(*Bulkhead); ok && b.InUse() != 0 {
		return false
	}
	return true
}

// retire adds an evicted slot's counts to the family's. Until it has, Stats
// counts the slot among the retiring ones, so that the family's counts
// never go down.
func (k *Keyed[S]) retire(old *keyedSlot[S]) {
	n := k.counts(old)
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := range n {
		k.evicted[i] += n[i]
	}
	for i, sl := range k.retiring {
		if sl == old {
			k.retiring = append(k.retiring[:i], k.retiring[i+1:]...)
			break
		}
	}
}

// counts returns the counts of sl, in the order of k.results.
func (k *Keyed[S]) counts(sl *keyedSlot[S]) []uint64 {
	n := make([]uint64, len(k.results))
	n[0] = sl.calls.Load()
	switch o := any(sl.stage).(type) {
	case Observable:
		for _, c := range o.Stats().Calls {
			for i, r := range k.results[1:] {
				if r == c.Result {
					n[i+1] += c.N
					break
				}
			}
		}
	case *Bulkhead:
		n[1] = sl.rejected.Load()
	}
	return n
}

// Stats returns the family's counts, summed over its keys, those evicted
// included: "calls", the calls made through the stages; the stages' own
// counts if they are Observable (a RateLimiter's "admitted", "waited",
// "rejected"), or "rejected" for bulkheads; and "full", the calls refused
// because every key was busy (KeyedFullError). Its gauge "keys" is how
// many keys have a stage.
func (k *Keyed[S]) Stats() Stats {
	k.mu.Lock()
	slots := make([]*keyedSlot[S], 0, len(k.ring)+len(k.retiring))
	slots = append(slots, k.ring...)
	slots = append(slots, k.retiring...)
	n := append([]uint64(nil), k.evicted...)
	k.mu.Unlock()
	for _, sl := range slots {
		for i, c := range k.counts(sl) {
			n[i] += c
		}
	}
	st := Stats{Gauges: []Gauge{{Name: "keys", Help: "Keys that have a stage.", Value: float64(k.live.Load())}}}
	for i, r := range k.results {
		st.Calls = append(st.Calls, Count{Result: r, N: n[i]})
	}
	st.Calls = append(st.Calls, Count{Result: "full", N: k.full.Load()})
	return st
}

// KeyedFullError is the error of a call whose key has no stage when every
// one of the MaxKeys keys of its Keyed family has a call running through
// its stage, so that none can be evicted to make room. It matches
// ErrRejected: the call is not run. Raise MaxKeys above the keys that are
// busy at once.
type KeyedFullError struct {
	Name, Key string
	MaxKeys   int
}

func (e *KeyedFullError) Error() string {
	return fmt.Sprintf("resilience: keyed %q: all %d keys have calls running, so key %q cannot have a stage; raise MaxKeys", e.Name, e.MaxKeys, e.Key)
}

// Is reports whether target is ErrRejected.
func (e *KeyedFullError) Is(target error) bool { return target == ErrRejected }
