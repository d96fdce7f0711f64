package window_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/resilience-go/resilience/window"
)

type recorder interface {
	Record(failure, slow bool) uint64
}

// benchRecord records a mix that is mostly successes, with a failure every
// 16 calls and a slow call every 64, the way a healthy dependency looks.
func benchRecord(b *testing.B, w recorder) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w.Record(i&15 == 0, i&63 == 0)
		i++
	}
}

func benchRecordParallel(b *testing.B, w recorder) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			w.Record(i&15 == 0, i&63 == 0)
			i++
		}
	})
}

func mustCount(b *testing.B, size int) *window.Count {
	w, err := window.NewCount(size)
	if err != nil {
		b.Fatal(err)
	}
	// Fill the ring first so that every record displaces an outcome.
	for i := range size {
		w.Record(i&15 == 0, i&63 == 0)
	}
	return w
}

// BenchmarkCountRecord shows that recording is O(1): the cost at a window
// of 1,000,000 stays close to the cost at 100.
func BenchmarkCountRecord(b *testing.B) {
	for _, size := range []int{100, 1_000_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchRecord(b, mustCount(b, size)) })
	}
}

func BenchmarkCountRecordParallel(b *testing.B) {
	for _, size := range []int{100, 1_000_000} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) { benchRecordParallel(b, mustCount(b, size)) })
	}
}

// BenchmarkCountVsMutex sets the lock-free window against the same ring
// under a mutex (the test reference): alone, then with writers on every
// core, then with many more writers than cores, as in a busy server.
func BenchmarkCountVsMutex(b *testing.B) {
	const size = 100
	b.Run("impl=lockfree/goroutines=1", func(b *testing.B) { benchRecord(b, mustCount(b, size)) })
	b.Run("impl=mutex/goroutines=1", func(b *testing.B) { benchRecord(b, newRefCount(size)) })
	for _, perCPU := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("impl=lockfree/goroutines=%dxGOMAXPROCS", perCPU), func(b *testing.B) {
			b.SetParallelism(perCPU)
			benchRecordParallel(b, mustCount(b, size))
		})
		b.Run(fmt.Sprintf("impl=mutex/goroutines=%dxGOMAXPROCS", perCPU), func(b *testing.B) {
			b.SetParallelism(perCPU)
			benchRecordParallel(b, newRefCount(size))
		})
	}
}

func BenchmarkCountCounts(b *testing.B) {
	w := mustCount(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Counts()
	}
}

// BenchmarkTimeRecordAt leaves the clock out, so that it measures the
// window and not time.Now.
func BenchmarkTimeRecordAt(b *testing.B) {
	for _, buckets := range []int{10, 1000} {
		b.Run(fmt.Sprintf("buckets=%d", buckets), func(b *testing.B) {
			start := time.Now()
			w, err := window.NewTimeAt(start, time.Minute, buckets)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w.RecordAt(start, i&15 == 0, i&63 == 0)
				i++
			}
		})
	}
}
