package outcome

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/resilience-go/resilience"
)

// KindWire is the kind of a Wire.
const KindWire = "wire"

// Wire counts the calls an integration runs through one guard and the
// attempts of them that it sends: the amplification the guard's retries
// cause, as the dependency sees it. Every integration that guards calls
// with a guard counts into the guard's one Wire (see WireOf).
//
// A call is counted once: when its first attempt is sent (Sent(1)), or
// when it ends without any (Unsent). Each later attempt is counted as it
// is sent. So the happy path, a call sent once, costs one atomic
// addition, and every count only grows, whatever moment Stats reads it.
type Wire struct {
	first atomic.Uint64 // calls whose first attempt was sent: the one count every call touches
	_     [56]byte      // keeps first on a cache line of its own
	later atomic.Uint64 // attempts after a call's first
	never atomic.Uint64 // calls that ended without sending anything
	name  string
}

// wires holds the Wire of each guard, until the guard is collected: a
// Wire holds nothing of its guard but its name.
var wires sync.Map // weak.Pointer[resilience.Guard] -> *Wire

// WireOf returns g's Wire, made on first use. A nil g gets a Wire of its
// own, with no name, which nothing counts into.
func WireOf(g *resilience.Guard) *Wire {
	if g == nil {
		return &Wire{}
	}
	key := weak.Make(g)
	if w, ok := wires.Load(key); ok {
		return w.(*Wire)
	}
	w, loaded := wires.LoadOrStore(key, &Wire{name: g.Name()})
	if !loaded {
		runtime.AddCleanup(g, func(key weak.Pointer[resilience.Guard]) { wires.Delete(key) }, key)
	}
	return w.(*Wire)
}

// Sent counts an attempt about to be sent: the call's first when n is 1,
// a later one otherwise. n counts the call's attempts, from 1, as the
// integration sends them.
func (w *Wire) Sent(n int) {
	if w == nil { // a zero integration's: counted nowhere
		return
	}
	if n == 1 {
		w.first.Add(1)
		return
	}
	w.later.Add(1)
}

// Unsent counts a call that ended without sending any attempt: a stage
// of the guard refused it, or its context ended first.
func (w *Wire) Unsent() {
	if w != nil {
		w.never.Add(1)
	}
}

// Calls returns the calls counted so far.
func (w *Wire) Calls() uint64 { return w.never.Load() + w.first.Load() }

// Attempts returns the attempts sent so far.
func (w *Wire) Attempts() uint64 { return w.later.Load() + w.first.Load() }

// Name returns the name of the Wire's guard.
func (w *Wire) Name() string { return w.name }

// Kind returns KindWire.
func (*Wire) Kind() string { return KindWire }

// Run runs call as it is, and counts nothing: a Wire is a Stage so that
// exporters of resilience.Observable stages export it, and the
// integrations count into it themselves.
func (*Wire) Run(ctx context.Context, call func(context.Context) error) error {
	if call == nil {
		return errNilCall
	}
	return call(ctx)
}

var errNilCall = errors.New("resilience: the wire counter's Run called with a nil function")

// Stats returns the calls and the attempts counted, as the results "call"
// and "attempt", and the gauge "amplification": attempts per call, 0
// before any call.
func (w *Wire) Stats() resilience.Stats {
	// Each count is read once, and a later Stats reads counts at least
	// as large.
	first, later, never := w.first.Load(), w.later.Load(), w.never.Load()
	calls, attempts := first+never, first+later
	amp := 0.0
	if calls > 0 {
		amp = float64(attempts) / float64(calls)
	}
	return resilience.Stats{
		Calls: []resilience.Count{{Result: "call", N: calls}, {Result: "attempt", N: attempts}},
		Gauges: []resilience.Gauge{{Name: "amplification", Value: amp,
			Help: "Attempts sent per call through the guard since it was made: 1 when nothing is retried."}},
	}
}
