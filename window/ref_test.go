package window_test

import (
	"sync"
	"time"

	"github.com/resilience-go/resilience/window"
)

// refCount is the obvious implementation of a count window: a ring of
// outcomes and two running totals under one mutex. It is the model the
// lock-free window is checked against, and the baseline it is benchmarked
// against.
type refCount struct {
	mu       sync.Mutex
	ring     []uint8
	next     int
	failures int64
	slow     int64
}

func newRefCount(size int) *refCount { return &refCount{ring: make([]uint8, size)} }

func (r *refCount) Record(failure, slow bool) uint64 {
	var v uint8
	if failure {
		v |= 1
	}
	if slow {
		v |= 2
	}
	r.mu.Lock()
	i := r.next % len(r.ring)
	old := r.ring[i]
	r.ring[i] = v
	r.next++
	r.failures += int64(v&1) - int64(old&1)
	r.slow += int64(v>>1) - int64(old>>1)
	n := uint64(r.next)
	r.mu.Unlock()
	return n
}

func (r *refCount) Reset() {
	r.mu.Lock()
	clear(r.ring)
	r.next, r.failures, r.slow = 0, 0, 0
	r.mu.Unlock()
}

func (r *refCount) Counts() window.Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return window.Counts{Total: int64(min(r.next, len(r.ring))), Failures: r.failures, Slow: r.slow}
}

// refTime is the obvious implementation of a time window: every outcome
// with its time stamp, under a mutex; Counts filters by bucket.
type refTime struct {
	mu      sync.Mutex
	start   time.Time
	width   time.Duration
	buckets int64
	events  []refEvent
}

type refEvent struct {
	epoch         int64
	failure, slow bool
}

func newRefTime(start time.Time, period time.Duration, buckets int) *refTime {
	return &refTime{start: start, width: period / time.Duration(buckets), buckets: int64(buckets)}
}

func (r *refTime) epoch(t time.Time) int64 { return int64(max(t.Sub(r.start), 0) / r.width) }

func (r *refTime) RecordAt(t time.Time, failure, slow bool) {
	r.mu.Lock()
	r.events = append(r.events, refEvent{r.epoch(t), failure, slow})
	r.mu.Unlock()
}

func (r *refTime) Reset() {
	r.mu.Lock()
	r.events = r.events[:0]
	r.mu.Unlock()
}

func (r *refTime) CountsAt(t time.Time) window.Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.epoch(t)
	var c window.Counts
	for _, e := range r.events {
		if e.epoch > now-r.buckets && e.epoch <= now {
			c.Total++
			if e.failure {
				c.Failures++
			}
			if e.slow {
				c.Slow++
			}
		}
	}
	return c
}
