package metrics

import (
	"sync"
	"testing"
)

// TestCounterIsExact: however increments are spread, a scrape sees them
// all.
func TestCounterIsExact(t *testing.T) {
	var c counter
	for range 1000 {
		c.inc()
	}
	if c.contended.Load() || c.load() != 1000 {
		t.Fatalf("one goroutine: contended %v, load %d; want false, 1000", c.contended.Load(), c.load())
	}
	c.contended.Store(true) // as after a collision
	for range 1000 {
		c.inc()
	}
	if n := c.load(); n != 2000 {
		t.Fatalf("after spreading: load %d, want 2000", n)
	}

	var d counter
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10_000 {
				d.inc()
			}
		})
	}
	wg.Wait()
	if n := d.load(); n != 160_000 {
		t.Errorf("16 goroutines: load %d, want 160000", n)
	}
}
