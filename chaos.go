package resilience

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"
)

// KindChaos is the kind of a Chaos stage.
const KindChaos = "chaos"

// ErrChaos is the error a Chaos stage injects when its config names none.
var ErrChaos = errors.New("resilience: fault injected by a chaos stage")

// ChaosConfig configures a Chaos stage. The zero value of every field
// stands for its default, given in the field's comment.
type ChaosConfig struct {
	// Name identifies the stage in errors and metrics.
	Name string

	// Rate is the share of calls that get a fault, from 0 to 1. Default
	// 0: none, until SetRate says otherwise.
	Rate float64

	// Err is the error a faulted call returns, without the call being
	// run: make it what the code under test would see from the
	// dependency (a *net.OpError, a status error, an error marked
	// Overloaded). Default ErrChaos. Set NoError for latency alone.
	Err error

	// NoError injects no error: a faulted call waits Latency, then runs.
	NoError bool

	// Latency is how long a faulted call waits before it returns its
	// error, or runs (NoError); the wait ends early, with the context's
	// error, if the call's context ends. Default 0.
	Latency time.Duration

	// Match, if set, says which calls may get a fault: one for which it
	// returns false runs untouched, and does not count toward Rate. It
	// receives the call's context; it must be safe for concurrent use.
	Match func(ctx context.Context) bool

	// Seed fixes which calls get a fault: two stages with the same Seed
	// and Rate fault the same calls, in the order they arrive. Default 0:
	// a seed of its own, drawn at random.
	Seed uint64

	// Disabled makes the stage start switched off (Enable switches it
	// on): a chaos stage can sit in a production chain, off.
	Disabled bool
}

// Chaos is a stage that injects faults into the calls through it: an
// error in place of the call, latency before it, or both, for a share of
// the calls (Rate), those a predicate picks (Match), switchable at run
// time (Enable, Disable, SetRate). It is for testing what is built around
// a dependency (a fallback, a retry's settings, a caller's deadline)
// without a broken dependency, as Polly's chaos strategies and Envoy's
// fault filter do. Put it innermost, where the dependency would be, so
// that every other stage sees its faults as the dependency's.
//
// # Which calls
//
// Calls are numbered as they arrive (those Match turns down, and all of
// them while the stage is off or at rate 0, not counted), and cut into
// blocks of 1,000: of the calls of each block, a share Rate get a fault,
// exactly, the fractions carried from block to block, at places the Seed
// shuffles. Rate is taken in millionths: a rate of 0.3 faults exactly
// 3,000 of 10,000 calls, 0.0049 exactly 49, with any seed, and a Seed
// fixes which: a test whose calls arrive in the same order (one after the
// other, under testing/synctest or not) gets the same faults on every
// run. A rate changed at run time holds from the next call on; the count
// is exact for each stretch of whole blocks at one rate.
//
// Stats counts "passed" (run untouched), "injected" (given the error) and
// "delayed" (made to wait Latency: with NoError such calls then run, and
// are counted there alone; one whose context ended during the wait is
// counted there alone too).
//
// A Chaos stage is safe for concurrent use; a call that it leaves alone
// costs a few atomic operations and no allocation. Make one with NewChaos:
// the zero Chaos runs no call, and returns an error that says so.
type Chaos struct {
	name    string
	err     error // nil with NoError
	latency time.Duration
	match   func(context.Context) bool
	seed    uint64

	on   atomic.Bool
	rate atomic.Uint64 // float64 bits
	n    atomic.Uint64 // calls counted toward Rate

	passed, injected, delayed atomic.Uint64
	ev                        events
}

// ObserveEvents adds f to the observers of c's events: EventChaos for each
// call it faults. It implements EventSource.
func (c *Chaos) ObserveEvents(f func(context.Context, Event)) { c.ev.add(f) }

// chaosBlock is how many calls the schedule shuffles at once.
const chaosBlock = 1000

// NewChaos returns a chaos stage configured by cfg, or an error naming
// every invalid field of cfg.
func NewChaos(cfg ChaosConfig) (*Chaos, error) {
	ck := checker{typ: "ChaosConfig"}
	ck.check(cfg.Rate >= 0 && cfg.Rate <= 1, "Rate", cfg.Rate, "must be from 0 to 1")
	ck.check(cfg.Latency >= 0, "Latency", cfg.Latency, "must not be negative")
	ck.check(!cfg.NoError || cfg.Err == nil, "Err", cfg.Err, "must be unset with NoError, which injects no error")
	ck.check(!cfg.NoError || cfg.Latency > 0, "Latency", cfg.Latency, "must be above 0 with NoError: a fault of neither error nor latency is none")
	if err := ck.err(); err != nil {
		return nil, err
	}
	c := &Chaos{name: cfg.Name, err: cfg.Err, latency: cfg.Latency, match: cfg.Match, seed: cfg.Seed}
	if c.err == nil && !cfg.NoError {
		c.err = ErrChaos
	}
	if c.seed == 0 {
		c.seed = rand.Uint64() | 1
	}
	c.rate.Store(math.Float64bits(cfg.Rate))
	c.on.Store(!cfg.Disabled)
	return c, nil
}

// Name returns the stage's name.
func (c *Chaos) Name() string { return c.name }

// Kind returns KindChaos.
func (*Chaos) Kind() string { return KindChaos }

// Run runs call through the stage, as Do does.
func (c *Chaos) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(c, ctx, call)
}

// Enable switches the stage on.
func (c *Chaos) Enable() { c.on.Store(true) }

// Disable switches the stage off: every call runs untouched, and none
// counts toward Rate.
func (c *Chaos) Disable() { c.on.Store(false) }

// Enabled reports whether the stage is on.
func (c *Chaos) Enabled() bool { return c.on.Load() }

// SetRate sets the share of calls that get a fault, from 0 to 1, from the
// next call on; any other value is an error, and changes nothing.
func (c *Chaos) SetRate(rate float64) error {
	if !(rate >= 0 && rate <= 1) {
		return &ConfigError{Field: "Chaos.SetRate", Value: rate, Reason: "must be from 0 to 1"}
	}
	c.rate.Store(math.Float64bits(rate))
	return nil
}

// Rate returns the share of calls that get a fault.
func (c *Chaos) Rate() float64 { return math.Float64frombits(c.rate.Load()) }

// Stats returns how many calls ran untouched ("passed"), were given an
// error ("injected") and were delayed ("delayed", those given an error
// included).
func (c *Chaos) Stats() Stats {
	return Stats{Calls: []Count{
		{Result: "passed", N: c.passed.Load()},
		{Result: "injected", N: c.injected.Load()},
		{Result: "delayed", N: c.delayed.Load()},
	}}
}

// faults reports whether the call numbered n (from 0) gets a fault at
// rate r, taken in millionths: the block b of n has
// floor(m×(b+1)/1000) − floor(m×b/1000) faults for m millionths, and n's
// place in its block, shuffled by a permutation drawn from the seed and
// the block, says whether it is one of them.
func (c *Chaos) faults(n uint64, r float64) bool {
	m := uint64(math.Round(r * 1e6))
	if m == 0 {
		return false
	}
	if m >= 1e6 {
		return true
	}
	b, p := n/chaosBlock, n%chaosBlock
	k := m*(b+1)/1000 - m*b/1000
	return c.place(b, p) < k
}

// place returns where the permutation of block b puts place p, from 0 to
// 999: a four-round Feistel network on 10 bits, keyed by the seed and the
// block, walked until it lands below 1000 (a bijection of 0..1023 walked
// so is one of 0..999). Unlike a sum or a product, it makes neighbours
// in the block land apart as often as a random shuffle would.
func (c *Chaos) place(b, p uint64) uint64 {
	key := splitmix64(c.seed ^ (b+1)*0x9e3779b97f4a7c15)
	x := p
	for {
		l, r := x>>5, x&31
		for round := range uint64(4) {
			f := splitmix64(key^(round<<8|r)) & 31
			l, r = r, l^f
		}
		x = l<<5 | r
		if x < chaosBlock {
			return x
		}
	}
}

// splitmix64 is SplitMix64's finaliser: a well-mixed hash of x.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var errChaosNotMade error = &notMadeError{"Chaos", "NewChaos"}

// chaosDo runs the rest of a chain through c.
func chaosDo[T any](c *Chaos, ctx context.Context, n next[T]) (T, error) {
	if c.seed == 0 {
		var zero T
		return zero, errChaosNotMade
	}
	if !c.on.Load() || (c.match != nil && !c.match(ctx)) {
		c.passed.Add(1)
		return n.call(ctx)
	}
	r := math.Float64frombits(c.rate.Load())
	if r <= 0 || !c.faults(c.n.Add(1)-1, r) {
		c.passed.Add(1)
		return n.call(ctx)
	}
	if c.ev.on() {
		c.ev.emit(ctx, Event{Type: EventChaos, Kind: KindChaos, Name: c.name, Delay: c.latency, Err: c.err})
	}
	if c.latency > 0 {
		c.delayed.Add(1)
		var t *time.Timer
		err := sleep(ctx, c.latency, &t)
		t.Stop()
		if err != nil {
			var zero T
			return zero, err
		}
	}
	if c.err == nil {
		return n.call(ctx)
	}
	c.injected.Add(1)
	var zero T
	return zero, c.err
}

// String returns the stage's name and rate, for logs.
func (c *Chaos) String() string {
	return "chaos " + strconv.Quote(c.name) + " at rate " + strconv.FormatFloat(c.Rate(), 'g', -1, 64)
}
