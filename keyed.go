package resilience

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
)

// KindKeyedBreaker is the Kind of a KeyedBreaker.
const KindKeyedBreaker = "keyed_breaker"

// Defaults of KeyedBreakerConfig.
const (
	DefaultMaxKeys           = 10000
	DefaultMaxEjectedPercent = 10
)

// KeyedBreakerConfig configures a KeyedBreaker. The zero value of every
// field but Breaker's stands for its default, given in the field's comment.
type KeyedBreakerConfig struct {
	// Name names the family, and each of its breakers: errors, state
	// changes and metrics carry it, with the key. Default Breaker.Name; if
	// both are set they must be the same.
	Name string

	// Breaker configures the breaker of each key, the same for all.
	// Breaker.OnStateChange is called for the breakers of every key, with
	// StateChange.Key saying which.
	Breaker BreakerConfig

	// MaxKeys is how many keys have a breaker at once. A call with a key
	// that has none when MaxKeys have one evicts the breaker of a key
	// little used of late, and starts a
	// fresh, closed breaker for the new key. Default 10,000; at most
	// 2^31-1. Size it above the number of hosts, shards or tenants you
	// expect, so that only keys nobody calls any more are evicted.
	MaxKeys int

	// MaxEjectedPercent caps how many of the keys that have a breaker may
	// be open (or half-open) at once, as a percentage of them, rounded
	// down; one may always be open. A breaker that would open beyond the
	// cap stays closed, and its calls go on: when that many keys fail at
	// once, the fault is likely the caller's or the whole dependency's,
	// not the keys'. Envoy's and gRPC's outlier detection cap ejection the
	// same way, at 10% by default. From 1 to 100 (no cap); default 10.
	MaxEjectedPercent int

	// OnCapped, if set, is called when the cap first holds a key's breaker
	// closed in a closed period: once until that breaker next opens or is
	// reset. It is never called with a lock held, from the goroutine of the
	// call whose failure would have opened the breaker; keep it short.
	OnCapped func(CappedEvent)
}

// CappedEvent describes a breaker that the ejection cap of its
// KeyedBreaker held closed.
type CappedEvent struct {
	// Name is the family's name, Key the key whose breaker stayed closed.
	Name, Key string
	// Ejected is how many keys were open or half-open, Limit how many the
	// cap allowed.
	Ejected, Limit int
}

// KeyedBreaker is a family of circuit breakers, one per key, made on
// demand from one config: one per host, shard, tenant or node of a
// dependency, so that one failing host is cut off while the others go on
// being called. A shared breaker would open for all of them, turning a
// partial failure into a total one.
//
// A KeyedBreaker is a Stage: a call through it goes through the breaker of
// the key that WithKey put in its context (the key "" if none). The
// integrations supply the key: a resilhttp Transport the request's scheme,
// host and port, resilredis the node's address, resilgrpc the target (and
// the method, if asked). Breaker gives the breaker of a key, for calls made
// with Allow and Done.
//
// # Bounds
//
// At most MaxKeys keys have a breaker at once: whatever keys callers send,
// the family's memory is bounded (see docs/PERFORMANCE.md for the figure
// per key), and it starts no goroutine. Keys are evicted by the CLOCK
// algorithm, an approximation of least-recently-used: each call marks its
// key used, and the key to evict is the first unmarked one the clock's
// hand finds, clearing marks as it goes. A key that callers go on calling,
// an open one included, is not evicted while MaxKeys are enough for the
// keys called between two turns of the hand.
//
// At most MaxEjectedPercent of the keys may be open or half-open at once
// (at least one). When the cap holds a breaker closed, the family counts
// it (the "capped" count of Stats, OnCapped): the dependency as a whole is
// then failing, which is for a breaker around the whole dependency to act
// on. Put a plain Breaker outside the KeyedBreaker for that, with a higher
// threshold: it sees every failure the cap lets through, and ignores the
// family's rejections (as any breaker ignores the refusals of the stages
// inside it). ForceOpen on a
// key's breaker opens it whatever the cap.
//
// # Cost
//
// A call whose key has a breaker finds it with one lock-free map lookup
// and no allocation; a new key takes a lock and makes the breaker (about a
// kilobyte). A call with no key in ctx costs a context lookup more than a
// call through a plain Breaker.
//
// A KeyedBreaker is safe for concurrent use. Make one with
// NewKeyedBreaker: the zero KeyedBreaker runs no call.
type KeyedBreaker struct {
	name     string
	settings breakerSettings // of each key's breaker, but its key
	maxKeys  int
	percent  int
	onCapped func(CappedEvent)

	// read is what calls look keys up in, without a lock: a map never
	// written once published, replaced by one made from all when enough
	// calls have missed it (as sync.Map did before Go 1.24, here with
	// string keys: a lookup is one hash of the key and a probe or two).
	// It may lack keys added since, which all has, and hold keys evicted
	// since, marked gone.
	read    atomic.Pointer[map[string]*keyEntry]
	obs     atomic.Pointer[BreakerObserver] // nil until Observe
	live    atomic.Int64
	ejected atomic.Int64 // live keys whose breaker is not closed
	capped  atomic.Uint64
	ev      events

	// The counts of the keys evicted, so that Stats only grows.
	evicted [4]atomic.Uint64

	mu     sync.Mutex           // held to add or evict a key; guards the fields below
	all    map[string]*keyEntry // the live keys
	misses int                  // lookups since read was made that did not find their key in it
	ring   []*keyEntry          // the live keys, in the clock's order
	hand   int                  // the next entry the clock looks at
}

// keyEntry is one key's breaker and its counts.
type keyEntry struct {
	k   *KeyedBreaker
	key string
	b   *Breaker
	// used: called since the clock's hand last passed (CLOCK's reference
	// bit). Set only when clear, so that a key called all the time is not
	// written to on every call.
	used atomic.Bool
	gone atomic.Bool      // evicted
	n    [4]atomic.Uint64 // calls by CallResult
	obs  BreakerObserver
}

func (e *keyEntry) count(s State, r CallResult) {
	e.n[r].Add(1)
	if o := e.k.obs.Load(); o != nil && o.Call != nil {
		o.Call(s, r)
	}
}

func (e *keyEntry) changed(c StateChange) {
	if o := e.k.obs.Load(); o != nil && o.StateChange != nil {
		o.StateChange(c)
	}
}

// Observe adds o to the observers of every key's breaker, those made
// already and those to come: o.Call sees every call through the family,
// o.StateChange every key's transitions, with StateChange.Key saying
// which.
func (k *KeyedBreaker) Observe(o BreakerObserver) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if old := k.obs.Load(); old != nil {
		o = BreakerObserver{Call: join2(old.Call, o.Call), StateChange: join1(old.StateChange, o.StateChange)}
	}
	k.obs.Store(&o)
}

// NewKeyedBreaker returns a family of breakers configured by cfg, or an
// error naming every invalid field of cfg and of cfg.Breaker.
func NewKeyedBreaker(cfg KeyedBreakerConfig) (*KeyedBreaker, error) {
	ck := checker{typ: "KeyedBreakerConfig"}
	ck.check(cfg.Name == "" || cfg.Breaker.Name == "" || cfg.Name == cfg.Breaker.Name, "Name", strconv.Quote(cfg.Name),
		"differs from Breaker.Name ("+strconv.Quote(cfg.Breaker.Name)+"): set one of them")
	ck.check(cfg.MaxKeys >= 0 && int64(cfg.MaxKeys) <= 1<<31-1, "MaxKeys", cfg.MaxKeys, "must be from 0 (the default, "+strconv.Itoa(DefaultMaxKeys)+") to 2^31-1")
	ck.check(cfg.MaxEjectedPercent >= 0 && cfg.MaxEjectedPercent <= 100, "MaxEjectedPercent", cfg.MaxEjectedPercent, "must be a percentage from 1 to 100, or 0 for the default ("+strconv.Itoa(DefaultMaxEjectedPercent)+")")
	bc := cfg.Breaker
	bc.Name = or(cfg.Name, cfg.Breaker.Name)
	s, err := bc.settings()
	if err != nil {
		ck.errs = append(ck.errs, err)
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	return &KeyedBreaker{
		name:     bc.Name,
		settings: s,
		maxKeys:  or(cfg.MaxKeys, DefaultMaxKeys),
		percent:  or(cfg.MaxEjectedPercent, DefaultMaxEjectedPercent),
		onCapped: cfg.OnCapped,
	}, nil
}

// Name returns the family's name.
func (k *KeyedBreaker) Name() string { return k.name }

// ObserveEvents adds f to the observers of k's events: EventRejected, with
// the key, for each call the breaker of its key turns away. It implements
// EventSource.
func (k *KeyedBreaker) ObserveEvents(f func(context.Context, Event)) { k.ev.add(f) }

// Kind returns KindKeyedBreaker.
func (*KeyedBreaker) Kind() string { return KindKeyedBreaker }

// Run runs call under the breaker of the key in ctx, as Do does.
func (k *KeyedBreaker) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(k, ctx, call)
}

// Breaker returns the breaker of key, making it if key has none (which may
// evict another key's): read its state, force it open, or make calls with
// its Allow and Done. Calls made through it count as calls through the
// family. Do not keep it: once its key is evicted, it is no longer the
// family's, and a later call with the key gets a new one.
func (k *KeyedBreaker) Breaker(key string) *Breaker {
	if k.maxKeys == 0 {
		return nil
	}
	return k.entry(key).b
}

// Lookup returns the breaker of key, if key has one. It only reads: it
// makes nothing and marks nothing.
func (k *KeyedBreaker) Lookup(key string) (*Breaker, bool) {
	if e := k.find(key); e != nil {
		return e.b, true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if e := k.all[key]; e != nil {
		return e.b, true
	}
	return nil, false
}

// Len returns how many keys have a breaker.
func (k *KeyedBreaker) Len() int { return int(k.live.Load()) }

// Ejected returns how many keys' breakers are open or half-open.
func (k *KeyedBreaker) Ejected() int { return int(k.ejected.Load()) }

// EjectionLimit returns how many keys' breakers may be open at once now:
// MaxEjectedPercent of Len, rounded down, and at least one.
func (k *KeyedBreaker) EjectionLimit() int { return int(k.limit()) }

func (k *KeyedBreaker) limit() int64 {
	return max(1, k.live.Load()*int64(k.percent)/100)
}

// breaker returns the breaker for a call with ctx: its key's.
func (k *KeyedBreaker) breaker(ctx context.Context) *Breaker {
	if k.maxKeys == 0 {
		return nil
	}
	key, _ := KeyFrom(ctx)
	return k.entry(key).b
}

// entry returns key's entry, making it if need be.
func (k *KeyedBreaker) entry(key string) *keyEntry {
	if e := k.find(key); e != nil {
		if !e.used.Load() {
			e.used.Store(true)
		}
		return e
	}
	return k.add(key)
}

// find returns key's entry if read has it and it is live.
func (k *KeyedBreaker) find(key string) *keyEntry {
	if m := k.read.Load(); m != nil {
		if e := (*m)[key]; e != nil && !e.gone.Load() {
			return e
		}
	}
	return nil
}

// add makes key's entry, evicting another key's if the family is full.
func (k *KeyedBreaker) add(key string) *keyEntry {
	k.mu.Lock()
	e := k.all[key]
	if e != nil { // read lacks it
		k.missed()
		k.mu.Unlock()
		e.used.Store(true)
		return e
	}
	e = &keyEntry{k: k, key: key}
	s := k.settings
	s.key = key
	e.b, _ = newBreaker(s) // s was checked by NewKeyedBreaker
	e.b.family = k
	e.b.famEv = &k.ev
	e.obs = BreakerObserver{Call: e.count, StateChange: e.changed}
	e.b.obs.Store(&e.obs)
	e.used.Store(true)

	var old *keyEntry
	if k.all == nil {
		k.all = make(map[string]*keyEntry)
	}
	if len(k.ring) < k.maxKeys {
		k.ring = append(k.ring, e)
		k.live.Add(1)
	} else {
		i := k.victim()
		old = k.ring[i]
		k.ring[i] = e
		old.gone.Store(true)
		delete(k.all, old.key)
	}
	k.all[key] = e
	k.missed()
	if old != nil {
		// Under k.mu, so that Stats never sees the key gone and its
		// counts not yet kept.
		k.evict(old)
	}
	k.mu.Unlock()
	return e
}

// missed counts a lookup that read could not answer, and makes a new read
// once there have been as many as there are keys: the copy costs one
// entry per miss. k.mu is held.
func (k *KeyedBreaker) missed() {
	if k.misses++; k.misses < len(k.all) {
		return
	}
	m := make(map[string]*keyEntry, len(k.all))
	for key, e := range k.all {
		m[key] = e
	}
	k.read.Store(&m)
	k.misses = 0
}

// victim returns the index in the ring of the entry to evict, moving the
// hand past it: the first one not used since the hand last passed. k.mu
// is held.
func (k *KeyedBreaker) victim() int {
	for {
		i := k.hand
		k.hand = (k.hand + 1) % len(k.ring)
		e := k.ring[i]
		if !e.used.Load() {
			return i
		}
		// At most one turn: the hand clears every mark it passes.
		e.used.Store(false)
	}
}

// evict retires an evicted entry's breaker and keeps its counts. k.mu is
// held (retire takes the breaker's lock inside it; nothing takes k.mu
// inside a breaker's).
func (k *KeyedBreaker) evict(e *keyEntry) {
	e.b.retire()
	for i := range e.n {
		k.evicted[i].Add(e.n[i].Load())
	}
}

// eject takes one of the family's ejection slots for a breaker about to
// open, if the cap leaves one.
func (k *KeyedBreaker) eject() bool {
	for {
		n := k.ejected.Load()
		if n >= k.limit() {
			return false
		}
		if k.ejected.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// forced accounts for a breaker forced from state from to state to.
func (k *KeyedBreaker) forced(from, to State) {
	switch {
	case from == Closed && to != Closed:
		k.ejected.Add(1)
	case from != Closed && to == Closed:
		k.ejected.Add(-1)
	}
}

// held records that the cap kept b closed in its period p.
func (k *KeyedBreaker) held(b *Breaker, p *period) {
	k.capped.Add(1)
	if k.onCapped != nil && !p.held.Load() && p.held.CompareAndSwap(false, true) {
		k.onCapped(CappedEvent{Name: k.name, Key: b.cfg.key, Ejected: int(k.ejected.Load()), Limit: int(k.limit())})
	}
}

// Stats returns the family's counts: calls by how they ended, whatever
// their key ("success", "failure", "ignored", "rejected"), and "capped",
// the failed calls after which the cap held a breaker closed (counted
// among the failures too); and the gauges "keys", "ejected" (keys open or
// half-open) and "ejection_limit". A call that was running through a key
// when the key was evicted may go uncounted.
func (k *KeyedBreaker) Stats() Stats {
	var n [4]uint64
	k.mu.Lock()
	for i := range n {
		n[i] = k.evicted[i].Load()
	}
	for _, e := range k.all {
		for i := range n {
			n[i] += e.n[i].Load()
		}
	}
	k.mu.Unlock()
	return Stats{
		Calls: []Count{
			{Result: "success", N: n[CallSucceeded]},
			{Result: "failure", N: n[CallFailed]},
			{Result: "ignored", N: n[CallIgnored]},
			{Result: "rejected", N: n[CallRejected]},
			{Result: "capped", N: k.capped.Load()},
		},
		Gauges: []Gauge{
			{Name: "keys", Help: "Keys that have a breaker.", Value: float64(k.live.Load())},
			{Name: "ejected", Help: "Keys whose breaker is open or half-open.", Value: float64(k.ejected.Load())},
			{Name: "ejection_limit", Help: "How many keys' breakers the ejection cap lets be open at once.", Value: float64(k.limit())},
		},
	}
}

// KeyStats is what a keyed stage reports of one key.
type KeyStats struct {
	Key string
	// State is the key's breaker's state.
	State State
	// Calls counts the key's calls by how they ended, as Stats does for
	// the whole family, since the key's breaker was made.
	Calls []Count
}

// Keys returns the stats of every key that has a breaker, in no
// particular order. It only reads.
func (k *KeyedBreaker) Keys() []KeyStats {
	var out []KeyStats
	k.each(func(e *keyEntry) {
		out = append(out, KeyStats{
			Key:   e.key,
			State: e.b.State(),
			Calls: []Count{
				{Result: "success", N: e.n[CallSucceeded].Load()},
				{Result: "failure", N: e.n[CallFailed].Load()},
				{Result: "ignored", N: e.n[CallIgnored].Load()},
				{Result: "rejected", N: e.n[CallRejected].Load()},
			},
		})
	})
	return out
}

// each calls f for every live key. It holds the lock that adding a key
// takes, never one a call holds while it runs.
func (k *KeyedBreaker) each(f func(*keyEntry)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, e := range k.all {
		f(e)
	}
}

var errKeyedBreakerNotMade error = &notMadeError{"KeyedBreaker", "NewKeyedBreaker"}

// keyedDo runs the rest of a chain under the breaker of the key in ctx.
func keyedDo[T any](k *KeyedBreaker, ctx context.Context, n next[T]) (T, error) {
	b := k.breaker(ctx)
	if b == nil {
		var zero T
		return zero, errKeyedBreakerNotMade
	}
	return breakerDo(b, ctx, n)
}
