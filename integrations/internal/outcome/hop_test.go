package outcome

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"
	"weak"

	"github.com/resilience-go/resilience"
)

func TestPushback(t *testing.T) {
	for _, tc := range []struct {
		values    []string
		wait      time.Duration
		retry, ok bool
	}{
		{nil, 0, false, false},
		{[]string{"1", "2"}, 0, false, false},
		{[]string{"-1"}, 0, false, true},
		{[]string{"-9223372036854775808"}, 0, false, true},
		{[]string{"x"}, 0, false, true},
		{[]string{""}, 0, false, true},
		{[]string{"1.5"}, 0, false, true},
		{[]string{"99999999999999999999"}, 0, false, true}, // not an int64: as grpc-go's Atoi
		{[]string{"0"}, 0, true, true},
		{[]string{"250"}, 250 * time.Millisecond, true, true},
		{[]string{"9223372036854775807"}, math.MaxInt64, true, true},
	} {
		wait, retry, ok := Pushback(tc.values)
		if wait != tc.wait || retry != tc.retry || ok != tc.ok {
			t.Errorf("Pushback(%q) = %v, %v, %v; want %v, %v, %v", tc.values, wait, retry, ok, tc.wait, tc.retry, tc.ok)
		}
	}
}

func TestLargest(t *testing.T) {
	for _, tc := range []struct {
		values []string
		lo, hi int
		want   int
		ok     bool
	}{
		{nil, 1, MaxAttempt, 0, false},
		{[]string{"3"}, 1, MaxAttempt, 3, true},
		{[]string{"0"}, 1, MaxAttempt, 0, false},
		{[]string{"0"}, 0, MaxAttempt, 0, true},
		{[]string{"2147483647"}, 1, MaxAttempt, MaxAttempt, true},
		{[]string{"2147483648"}, 1, MaxAttempt, 0, false},
		{[]string{"9999999999"}, 1, MaxAttempt, 0, false},
		{[]string{"12345678901"}, 1, MaxAttempt, 0, false},
		{[]string{"2", "x", "9", "5"}, 1, MaxAttempt, 9, true},
		{[]string{"-1", "+1", " 1", "1 ", "0x1", ""}, 0, MaxAttempt, 0, false},
	} {
		got, ok := Largest(tc.values, tc.lo, tc.hi)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Largest(%q, %d, %d) = %d, %v; want %d, %v", tc.values, tc.lo, tc.hi, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDontRetry(t *testing.T) {
	down := errors.New("down")
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{down, false},
		{resilience.Permanent(down), false},
		{&resilience.RetryError{Attempts: 3, Err: down, Cause: resilience.ErrRetriesExhausted}, true},
		{&resilience.RetryError{Attempts: 1, Err: down, Cause: resilience.ErrRetriesExhausted}, false}, // no retry made: MaxRetries 0
		{&resilience.RetryError{Err: down, Cause: resilience.ErrRetryBudget}, true},
		{&resilience.RetryError{Err: down, Cause: resilience.ErrRetryDeadline}, false},
		{resilience.Permanent(&NoRetry{Err: down}), true},
		{fmt.Errorf("wrapped: %w", &NoRetry{Err: down}), true},
	} {
		if got := DontRetry(tc.err); got != tc.want {
			t.Errorf("DontRetry(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if err := (&NoRetry{Err: down}); err.Error() != "down" || !errors.Is(err, down) {
		t.Errorf("NoRetry: %q, want the error's text, and errors.Is to see through it", err)
	}
}

// A guard has one Wire, whose counts only grow while calls are counted
// from many goroutines, and which goes when the guard goes.
func TestWire(t *testing.T) {
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "backend", Stages: []resilience.Stage{must(resilience.NewBreaker(resilience.BreakerConfig{}))}}))
	w := WireOf(g)
	if WireOf(g) != w || w.Name() != "backend" || w.Kind() != KindWire {
		t.Fatalf("WireOf(g): %p %q %q, want one Wire for g, named after it", w, w.Name(), w.Kind())
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 1000 {
				switch i % 4 {
				case 0:
					w.Unsent()
				case 1:
					w.Sent(2)
				default:
					w.Sent(1)
				}
			}
		})
	}
	var prevCalls, prevAttempts uint64
	for range 100 {
		st := w.Stats()
		c, a := st.Calls[0].N, st.Calls[1].N
		if c < prevCalls || a < prevAttempts {
			t.Fatalf("counts went down: %d calls, %d attempts after %d, %d", c, a, prevCalls, prevAttempts)
		}
		prevCalls, prevAttempts = c, a
	}
	wg.Wait()
	if c, a := w.Calls(), w.Attempts(); c != 3000 || a != 3000 {
		t.Errorf("%d calls, %d attempts; want 3000 and 3000", c, a)
	}
	if amp := w.Stats().Gauges[0].Value; amp != 1 {
		t.Errorf("amplification %v, want 1", amp)
	}

	// Once g is gone, so is its Wire.
	key := weak.Make(g)
	g = nil
	for range 100 {
		runtime.GC()
		if _, held := wires.Load(key); !held {
			return
		}
		time.Sleep(10 * time.Millisecond) // for the cleanup, which runs on a goroutine of its own
	}
	t.Error("the wire of a guard that was collected is still held")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
