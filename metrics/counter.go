package metrics

import (
	"sync"
	"sync/atomic"
)

// counter is a counter for the one series every call touches,
// resilience_circuit_breaker_calls_total, built as
// java.util.concurrent.LongAdder is.
//
// A prometheus.Counter is one atomic word. When every core counts calls at
// once, that word's cache line moves from core to core on each call, which
// more than doubled the cost of a closed breaker under b.RunParallel. So
// counter starts as one word, and the first time two increments collide
// it spreads the count over cache lines for good; a scrape sums them.
//
// Which line an increment adds to comes from a token kept in a sync.Pool:
// a pool hands out the tokens of the processor the goroutine runs on, so
// goroutines on different cores tend to add to different lines, without
// locking or allocating. Taking a token costs more than an uncontended
// add, which is why a counter that never sees contention never takes one.
type counter struct {
	base      atomic.Uint64
	contended atomic.Bool // set once, when an increment of base collides
	_         [55]byte    // keeps base's line apart from the cells
	cells     [stripes]struct {
		n atomic.Uint64
		_ [56]byte // one cell per cache line
	}
}

const stripes = 16

type token struct{ cell uint32 }

var (
	nextToken atomic.Uint32
	tokens    = sync.Pool{New: func() any { return &token{cell: nextToken.Add(1) % stripes} }}
)

func (c *counter) inc() {
	if !c.contended.Load() {
		n := c.base.Load()
		if c.base.CompareAndSwap(n, n+1) {
			return
		}
		c.contended.Store(true)
	}
	t := tokens.Get().(*token)
	c.cells[t.cell].n.Add(1)
	tokens.Put(t)
}

func (c *counter) load() uint64 {
	n := c.base.Load()
	for i := range c.cells {
		n += c.cells[i].n.Load()
	}
	return n
}
