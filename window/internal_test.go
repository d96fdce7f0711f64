package window

import (
	"math/rand/v2"
	"testing"
)

func TestSlotMatchesModulo(t *testing.T) {
	sizes := []uint64{1, 2, 3, 7, 64, 100, 1000, 1 << 20, 1_000_000, 1<<31 - 1, 1<<63 + 1, ^uint64(0)}
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range sizes {
		g := newRing(size)
		check := func(i uint64) {
			t.Helper()
			if got, want := g.slot(i), i%size; got != want {
				t.Fatalf("size %d: slot(%d) = %d, want %d", size, i, got, want)
			}
		}
		for i := range uint64(5000) {
			check(i)
			check(^uint64(0) - i)
		}
		for range 100000 {
			check(r.Uint64())
		}
	}
}

func FuzzSlot(f *testing.F) {
	f.Add(uint64(12345), uint64(100))
	f.Add(^uint64(0), uint64(3))
	f.Add(uint64(1)<<40, uint64(1_000_000))
	f.Fuzz(func(t *testing.T, i, size uint64) {
		if size == 0 {
			return
		}
		g := newRing(size)
		if got, want := g.slot(i), i%size; got != want {
			t.Fatalf("size %d: slot(%d) = %d, want %d", size, i, got, want)
		}
	})
}
