package resilience

import (
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"
)

// TestSoonerDecidesAsTimeUntil: sooner, which reads the clock only when
// its floor cannot settle the question, answers as time.Until(deadline) < d
// does, whatever the floor, for deadlines with and without a monotonic
// reading, and a stale floor is moved up to now.
func TestSoonerDecidesAsTimeUntil(t *testing.T) {
	defer clockFloor.Store(clockFloor.Load())
	for i := range 2000 {
		// A floor anywhere from an hour before the process began to now.
		clockFloor.Store(int64(time.Since(clockBase)) - rand.Int64N(int64(time.Hour)))
		d := time.Duration(1 + rand.Int64N(int64(2*time.Hour)))
		// A deadline from an hour ago to three hours ahead, kept 50ms
		// away from now+d, so that the time the test takes cannot move it
		// across.
		off := time.Duration(rand.Int64N(int64(4*time.Hour))) - time.Hour
		if diff := off - d; diff > -50*time.Millisecond && diff < 50*time.Millisecond {
			continue
		}
		deadline := time.Now().Add(off)
		if i%4 == 0 {
			deadline = deadline.Round(0) // a wall time, as from WithDeadline(time.Unix(...))
		}
		floor := clockFloor.Load()
		got := sooner(deadline, d)
		if want := time.Until(deadline) < d; got != want {
			t.Fatalf("sooner(now%+v, %v) = %v, want %v (floor %v)", off, d, got, want, time.Duration(floor))
		}
		if f := clockFloor.Load(); f < floor || f > int64(time.Since(clockBase)) {
			t.Fatalf("floor moved from %v to %v: not a moment past", time.Duration(floor), time.Duration(f))
		}
	}
	// A deadline sooner than d from a floor already past settles it with
	// no clock read: the floor stays where it was.
	clockFloor.Store(int64(time.Since(clockBase)))
	floor := clockFloor.Load()
	if !sooner(time.Now().Add(time.Minute), time.Hour) || clockFloor.Load() != floor {
		t.Error("a deadline a minute away under a limit of an hour: not settled by the floor")
	}
	// One the floor cannot settle reads the clock, and moves the floor.
	clockFloor.Store(floor - int64(2*time.Hour))
	if !sooner(time.Now().Add(time.Minute), time.Hour) || clockFloor.Load() < floor {
		t.Error("a stale floor was not moved up to now")
	}
}

// TestSoonerInABubbleKeepsTheFloor: a deadline made outside a synctest
// bubble, decided inside one, whose clock has no monotonic reading,
// leaves the process's floor as it was.
func TestSoonerInABubbleKeepsTheFloor(t *testing.T) {
	defer clockFloor.Store(clockFloor.Load())
	clockFloor.Store(int64(time.Since(clockBase)) - int64(2*time.Hour))
	floor := clockFloor.Load()
	deadline := time.Now().Add(time.Minute) // a monotonic reading, from outside
	synctest.Test(t, func(t *testing.T) {
		sooner(deadline, time.Hour)
	})
	if clockFloor.Load() != floor {
		t.Errorf("the floor moved from %v to %v inside a bubble", time.Duration(floor), time.Duration(clockFloor.Load()))
	}
}
