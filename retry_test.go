package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// attempts records when each attempt of a call started, relative to the
// first, and fails all but the last of them.
type attempts struct {
	start    time.Time
	at       []time.Duration
	succeedN int // attempt that succeeds; 0: never
	err      error
}

func (a *attempts) call(context.Context) (int, error) {
	if a.at == nil {
		a.start = time.Now()
	}
	a.at = append(a.at, time.Since(a.start))
	if len(a.at) == a.succeedN {
		return len(a.at), nil
	}
	if a.err != nil {
		return 0, a.err
	}
	return 0, errBoom
}

// gaps returns the waits between attempts.
func (a *attempts) gaps() []time.Duration {
	var g []time.Duration
	for i := 1; i < len(a.at); i++ {
		g = append(g, a.at[i]-a.at[i-1])
	}
	return g
}

func TestRetryBackoffSequenceIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{
			MaxRetries: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second, BackoffMultiplier: 2,
		}))
		a := &attempts{succeedN: 5}
		v, err := resilience.For[int](r).Do(context.Background(), a.call)
		if err != nil || v != 5 {
			t.Fatalf("Do = %v, %v; want 5, nil (success on the 5th attempt)", v, err)
		}
		want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
		if diff := testcheck.Diff(want, a.gaps()); diff != "" {
			t.Errorf("waits between attempts (-want +got):\n%s", diff)
		}
	})
}

func TestRetryBackoffIsCappedByMaxBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{
			MaxRetries: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, BackoffMultiplier: 3,
		}))
		a := &attempts{}
		resilience.For[int](r).Do(context.Background(), a.call)
		want := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond, 300 * time.Millisecond}
		if diff := testcheck.Diff(want, a.gaps()); diff != "" {
			t.Errorf("waits between attempts (-want +got):\n%s", diff)
		}
	})
}

func TestRetryDefaultsAreTheSeeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 8}))
		a := &attempts{}
		resilience.For[int](r).Do(context.Background(), a.call)
		ms := time.Millisecond
		want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10000 * ms}
		if diff := testcheck.Diff(want, a.gaps()); diff != "" {
			t.Errorf("default waits (-want +got):\n%s", diff)
		}
	})
}

// TestRetryJitterBounds draws many waits and checks each lies within
// [0.7, 1.3] of the exponential sequence and never above MaxBackoff, and
// that the draws do spread over that range.
func TestRetryJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const calls = 2000
		maxBackoff := time.Second
		// 100, 200, 400, 800ms; the last can reach only 1s/800ms = 1.25.
		base := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
		top := []float64{1.3, 1.3, 1.3, 1.25}
		lo := []float64{2, 2, 2, 2}
		hi := make([]float64, len(base))
		var events []resilience.RetryEvent
		r := must(resilience.NewRetry(resilience.RetryConfig{
			MaxRetries: 4, InitialBackoff: 100 * time.Millisecond, MaxBackoff: maxBackoff, Jitter: true,
			OnRetry: func(e resilience.RetryEvent) { events = append(events, e) },
		}))
		p := resilience.For[int](r)
		for range calls {
			events = events[:0]
			a := &attempts{}
			p.Do(context.Background(), a.call)
			if len(events) != 4 {
				t.Fatalf("%d retries reported, want 4", len(events))
			}
			for i, e := range events {
				if e.Attempt != i+1 {
					t.Fatalf("retry event %d for attempt %d", i, e.Attempt)
				}
				if gap := a.gaps()[i]; gap != e.Delay {
					t.Fatalf("reported delay %v, but waited %v", e.Delay, gap)
				}
				if e.Delay > maxBackoff {
					t.Fatalf("delay %v exceeds MaxBackoff %v", e.Delay, maxBackoff)
				}
				f := float64(e.Delay) / float64(base[i])
				if f < 0.7 || f > top[i] {
					t.Fatalf("retry %d: delay %v is %.4f × %v, outside [0.7, %v]", i+1, e.Delay, f, base[i], top[i])
				}
				lo[i], hi[i] = min(lo[i], f), max(hi[i], f)
			}
		}
		for i := range base {
			if lo[i] > 0.72 || hi[i] < top[i]-0.02 {
				t.Errorf("retry %d: factors spread over [%.3f, %.3f], want close to [0.7, %v]", i+1, lo[i], hi[i], top[i])
			}
		}
		if hi[3] > top[3] {
			t.Errorf("retry 4: largest factor %.4f, above the cap's %v", hi[3], top[3])
		}
	})
}

func TestRetryGivesUpWithAttemptCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{Name: "api", MaxRetries: 2}))
		a := &attempts{}
		_, err := resilience.For[int](r).Do(context.Background(), a.call)
		var re *resilience.RetryError
		if !errors.As(err, &re) {
			t.Fatalf("error %T (%v), want *RetryError", err, err)
		}
		if re.Attempts != 3 || len(a.at) != 3 {
			t.Errorf("RetryError.Attempts = %d, calls made = %d; want 3 and 3", re.Attempts, len(a.at))
		}
		if !errors.Is(err, errBoom) || !errors.Is(err, resilience.ErrRetriesExhausted) {
			t.Errorf("error %v should match the last error and ErrRetriesExhausted", err)
		}
		if got, want := err.Error(), `resilience: retry "api" gave up after 3 attempts: boom`; got != want {
			t.Errorf("error text %q, want %q", got, want)
		}
	})
}

func TestRetryNoRetriesByDefault(t *testing.T) {
	r := must(resilience.NewRetry(resilience.RetryConfig{}))
	a := &attempts{}
	_, err := resilience.For[int](r).Do(context.Background(), a.call)
	if len(a.at) != 1 {
		t.Errorf("%d attempts with MaxRetries 0, want 1", len(a.at))
	}
	if !errors.Is(err, resilience.ErrRetriesExhausted) || !errors.Is(err, errBoom) {
		t.Errorf("error %v, want the call's error, retries exhausted", err)
	}
}

func TestRetryWhatIsNeverRetried(t *testing.T) {
	open := &resilience.OpenError{Name: "b", State: resilience.Open}
	full := &resilience.BulkheadFullError{Name: "bh", MaxConcurrent: 1}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"permanent", resilience.Permanent(errBoom)},
		{"backoff permanent", backoff.Permanent(errBoom)},
		{"wrapped permanent", fmt.Errorf("query: %w", resilience.Permanent(errBoom))},
		{"breaker rejection", open},
		{"bulkhead rejection", full},
		{"cancelled", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))
			a := &attempts{err: tc.err}
			_, err := resilience.For[int](r).Do(context.Background(), a.call)
			if len(a.at) != 1 {
				t.Errorf("%d attempts, want 1", len(a.at))
			}
			if err != tc.err {
				t.Errorf("error %v, want the call's own error unchanged", err)
			}
		})
	}
}

func TestRetryPredicate(t *testing.T) {
	errTransient := errors.New("transient")
	r := must(resilience.NewRetry(resilience.RetryConfig{
		MaxRetries: 5, InitialBackoff: time.Nanosecond,
		Retryable: func(err error) bool { return errors.Is(err, errTransient) },
	}))
	n := 0
	_, err := resilience.For[int](r).Do(context.Background(), func(context.Context) (int, error) {
		n++
		if n < 3 {
			return 0, errTransient
		}
		return 0, errBoom
	})
	if n != 3 {
		t.Errorf("%d attempts, want 3: stop at the first error the predicate rejects", n)
	}
	var re *resilience.RetryError
	if !errors.As(err, &re) || re.Attempts != 3 || re.Err != errBoom || re.Cause != nil {
		t.Errorf("error %#v, want a RetryError after 3 attempts ending with errBoom and no cause", err)
	}
}

func TestRetryPermanentWinsOverPredicate(t *testing.T) {
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, Retryable: func(error) bool { return true }}))
	a := &attempts{err: resilience.Permanent(errBoom)}
	resilience.For[int](r).Do(context.Background(), a.call)
	if len(a.at) != 1 {
		t.Errorf("%d attempts, want 1: Permanent is final whatever the predicate says", len(a.at))
	}
}

func TestRetrySleepEndsWithTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, InitialBackoff: time.Second}))
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(300*time.Millisecond, cancel)
		start := time.Now()
		a := &attempts{}
		_, err := resilience.For[int](r).Do(ctx, a.call)
		if got := time.Since(start); got != 300*time.Millisecond {
			t.Errorf("returned after %v, want 300ms: the wait must end with the context", got)
		}
		if len(a.at) != 1 {
			t.Errorf("%d attempts, want 1", len(a.at))
		}
		if !errors.Is(err, context.Canceled) || !errors.Is(err, errBoom) {
			t.Errorf("error %v, want one matching both context.Canceled and the last error", err)
		}
	})
}

func TestRetryDoesNotSleepPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5}))
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		start := time.Now()
		a := &attempts{}
		_, err := resilience.For[int](r).Do(ctx, a.call)
		// Attempts at 0 and 100ms; the next would start at 300ms, after
		// the deadline, so the policy returns at once at 100ms.
		if got := time.Since(start); got != 100*time.Millisecond {
			t.Errorf("returned after %v, want 100ms", got)
		}
		var re *resilience.RetryError
		if !errors.As(err, &re) || re.Attempts != 2 || !errors.Is(err, resilience.ErrRetryDeadline) || !errors.Is(err, errBoom) {
			t.Errorf("error %v, want a RetryError after 2 attempts, matching ErrRetryDeadline and the last error", err)
		}
	})
}

func TestRetryAfterHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, MaxBackoff: 10 * time.Second}))
		hints := []time.Duration{3 * time.Second, time.Minute, -time.Second}
		a := &attempts{succeedN: 4}
		call := func(ctx context.Context) (int, error) {
			v, err := a.call(ctx)
			if err != nil {
				err = resilience.RetryAfter(err, hints[len(a.at)-1])
			}
			return v, err
		}
		if _, err := resilience.For[int](r).Do(context.Background(), call); err != nil {
			t.Fatal(err)
		}
		// The hint sets the wait, capped by MaxBackoff, and never below 0.
		want := []time.Duration{3 * time.Second, 10 * time.Second, 0}
		if diff := testcheck.Diff(want, a.gaps()); diff != "" {
			t.Errorf("waits (-want +got):\n%s", diff)
		}
	})
}

// TestRetryOutsideBreakerStopsAtRejection: retrying into an open breaker
// would only add load, so the retry stops there.
func TestRetryOutsideBreakerStopsAtRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 2}))
		r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5}))
		a := &attempts{}
		_, err := resilience.For[int](r, b).Do(context.Background(), a.call)
		if len(a.at) != 2 {
			t.Errorf("%d calls reached the dependency, want 2 (then the breaker opened)", len(a.at))
		}
		var re *resilience.RetryError
		if !errors.As(err, &re) || re.Attempts != 3 || !errors.Is(err, resilience.ErrOpen) {
			t.Errorf("error %v, want a RetryError after 3 attempts, the last rejected by the breaker", err)
		}
	})
}

func TestRetryPanicGoesThrough(t *testing.T) {
	r := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3}))
	defer func() {
		if got := recover(); got != "kaput" {
			t.Errorf("recovered %v, want the call's panic", got)
		}
	}()
	resilience.For[int](r).Do(context.Background(), func(context.Context) (int, error) { panic("kaput") })
}

func TestWithRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := &attempts{succeedN: 3}
		v, err := resilience.WithRetry(context.Background(), resilience.RetryConfig{MaxRetries: 3}, a.call)
		if v != 3 || err != nil {
			t.Errorf("WithRetry = %v, %v; want 3, nil", v, err)
		}
		a = &attempts{}
		_, err = resilience.WithRetry(context.Background(), resilience.RetryConfig{MaxRetries: -1}, a.call)
		if !errors.Is(err, resilience.ErrInvalidConfig) || len(a.at) != 0 {
			t.Errorf("WithRetry with MaxRetries -1: %v after %d calls; want a config error and no call", err, len(a.at))
		}
	})
}

// firstWaits draws the wait a retry policy would take after a first
// failed attempt, n times, without waiting: the caller's context ends as
// each wait begins.
func firstWaits(t *testing.T, cfg resilience.RetryConfig, n int) []time.Duration {
	t.Helper()
	var waits []time.Duration
	var cancel context.CancelFunc
	cfg.MaxRetries = 1
	cfg.OnRetry = func(e resilience.RetryEvent) {
		waits = append(waits, e.Delay)
		cancel()
	}
	p := resilience.For[int](must(resilience.NewRetry(cfg)))
	for range n {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		p.Do(ctx, fail)
		cancel()
	}
	if len(waits) != n {
		t.Fatalf("%d waits drawn, want %d", len(waits), n)
	}
	return waits
}

// TestRetryWaitsStayInRangeForHugeIntervals: with intervals near the
// largest Duration, every wait, jittered or not, lies in [0, MaxBackoff].
func TestRetryWaitsStayInRangeForHugeIntervals(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, maxBackoff := range []time.Duration{225 * year, 250 * year, time.Duration(math.MaxInt64)} {
		for _, jitter := range []bool{false, true} {
			waits := firstWaits(t, resilience.RetryConfig{InitialBackoff: maxBackoff, MaxBackoff: maxBackoff, Jitter: jitter}, 500)
			for _, w := range waits {
				if w < 0 || w > maxBackoff {
					t.Fatalf("MaxBackoff %v, jitter %v: wait %v outside [0, MaxBackoff]", maxBackoff, jitter, w)
				}
				if !jitter && w != maxBackoff {
					t.Fatalf("MaxBackoff %v without jitter: wait %v, want MaxBackoff", maxBackoff, w)
				}
			}
		}
	}
}

// TestRetryJitterSpreadsWaitsAtTheCap: once the backoff has reached
// MaxBackoff, jittered waits stay spread over [0.7, 1] × MaxBackoff, so that
// clients that have backed off that far do not retry in step.
func TestRetryJitterSpreadsWaitsAtTheCap(t *testing.T) {
	const draws = 5000
	maxBackoff := 10 * time.Second
	for _, initial := range []time.Duration{maxBackoff, 9 * time.Second} {
		waits := firstWaits(t, resilience.RetryConfig{InitialBackoff: initial, MaxBackoff: maxBackoff, Jitter: true}, draws)
		counts := map[time.Duration]int{}
		lo, hi := maxBackoff, time.Duration(0)
		for _, w := range waits {
			counts[w]++
			lo, hi = min(lo, w), max(hi, w)
			if w < initial*7/10 || w > maxBackoff {
				t.Fatalf("initial %v: wait %v outside [0.7 × %v, %v]", initial, w, initial, maxBackoff)
			}
		}
		for w, n := range counts {
			if n > draws/50 {
				t.Errorf("initial %v: %d of %d waits are exactly %v; the jitter collapsed", initial, n, draws, w)
			}
		}
		if lo > initial*7/10+100*time.Millisecond || hi < maxBackoff-100*time.Millisecond {
			t.Errorf("initial %v: waits spread over [%v, %v], want close to [%v, %v]", initial, lo, hi, initial*7/10, maxBackoff)
		}
	}
}

// TestRetryReturnsTheLastValue: a call given up on returns what its last
// attempt returned, as it would without the retry.
func TestRetryReturnsTheLastValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := 0
		call := func(context.Context) (int, error) { n++; return 10 * n, errBoom }
		cases := []struct {
			name string
			cfg  resilience.RetryConfig
			want int
		}{
			{"retries exhausted", resilience.RetryConfig{MaxRetries: 2}, 30},
			{"not retryable", resilience.RetryConfig{MaxRetries: 2, Retryable: func(error) bool { return false }}, 10},
			{"stopped by the predicate after a retry", resilience.RetryConfig{MaxRetries: 5, Retryable: func(error) bool { return n < 2 }}, 20},
		}
		for _, tc := range cases {
			n = 0
			v, err := resilience.For[int](must(resilience.NewRetry(tc.cfg))).Do(context.Background(), call)
			if v != tc.want || !errors.Is(err, errBoom) {
				t.Errorf("%s: Do = %v, %v; want %v and the last error", tc.name, v, err, tc.want)
			}
		}
		// Stopped before the deadline.
		n = 0
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		if v, _ := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5}))).Do(ctx, call); v != 20 {
			t.Errorf("stopped before the deadline: value %v, want 20", v)
		}
	})
}

// TestRetryStoppedByTheDeadlineIsADeadline: a retry that will not start an
// attempt it cannot finish in time reports a deadline, and a timeout when
// a Timeout's limit set that deadline, keeping its attempt count.
func TestRetryStoppedByTheDeadlineIsADeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5, InitialBackoff: 400 * time.Millisecond}))
		timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "limit", Duration: time.Second}))

		// Attempts at 0 and 400ms; the next would start at 1.2s.
		start := time.Now()
		_, err := resilience.For[int](timeout, retry).Do(context.Background(), fail)
		if got := time.Since(start); got != 400*time.Millisecond {
			t.Errorf("returned after %v, want 400ms", got)
		}
		var re *resilience.RetryError
		for _, target := range []error{resilience.ErrTimeout, context.DeadlineExceeded, resilience.ErrRetryDeadline, errBoom} {
			if !errors.Is(err, target) {
				t.Errorf("under a Timeout: %v does not match %v", err, target)
			}
		}
		if !errors.As(err, &re) || re.Attempts != 2 {
			t.Errorf("under a Timeout: %v, want a RetryError of 2 attempts inside", err)
		}
		if !strings.Contains(err.Error(), "2 attempts") {
			t.Errorf("message %q does not say how many attempts were made", err)
		}

		// The caller's own deadline: a deadline, not the Timeout's.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = resilience.For[int](retry).Do(ctx, fail)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("caller's deadline: %v, want a match for context.DeadlineExceeded and not ErrTimeout", err)
		}
		if !errors.As(err, &re) || re.Attempts != 2 {
			t.Errorf("caller's deadline: %v, want a RetryError of 2 attempts", err)
		}
		// A shorter caller deadline under a Timeout is the caller's.
		ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err = resilience.For[int](timeout, retry).Do(ctx, fail)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("caller's shorter deadline under a Timeout: %v, want context.DeadlineExceeded and not ErrTimeout", err)
		}
	})
}

// TestRetryNeverRetriesARejection: whatever the predicate says, a call a
// breaker or bulkhead refused is not tried again.
func TestRetryNeverRetriesARejection(t *testing.T) {
	always := func(error) bool { return true }
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 4, Retryable: always}))

	full := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	if !full.TryAcquire() {
		t.Fatal("TryAcquire on an empty bulkhead failed")
	}
	defer full.Release()
	open := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	open.ForceOpen()

	for name, stage := range map[string]resilience.Stage{"bulkhead": full, "breaker": open} {
		var tries int
		counter := resilience.PolicyFunc[int](func(ctx context.Context, next resilience.Func[int]) (int, error) {
			tries++
			return next(ctx)
		})
		p := resilience.Compose(resilience.For[int](retry), counter, resilience.For[int](stage))
		_, err := p.Do(context.Background(), ok)
		if tries != 1 {
			t.Errorf("%s: %d attempts, want 1: a rejection was retried", name, tries)
		}
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRetryDeadlineBelongsToTheTimeoutThatSetIt: a retry that stops before
// the deadline of an inner Timeout is that Timeout's time-out, not the
// outer one's, whose limit was far off.
func TestRetryDeadlineBelongsToTheTimeoutThatSetIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		outer := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "outer", Duration: 10 * time.Second}))
		inner := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "inner", Duration: time.Second}))
		retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 5, InitialBackoff: 400 * time.Millisecond}))
		var results []resilience.TimeoutResult
		outer.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) { results = append(results, r) }})
		_, err := resilience.For[int](outer, inner, retry).Do(context.Background(), fail)
		var te *resilience.TimeoutError
		if !errors.As(err, &te) || te.Name != "inner" {
			t.Errorf("err = %v, want the inner Timeout's error", err)
		}
		if len(results) != 1 || results[0] != resilience.TimeoutFailed {
			t.Errorf("outer Timeout observed %v, want [failed]: its limit was not reached", results)
		}
	})
}

// NoBackoff retries at once, with no timer; a Retry-After hint is still
// waited; and the fields that set waits are refused beside it.
func TestRetryNoBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, NoBackoff: true})))
		calls := 0
		start := time.Now()
		_, err := r.Do(context.Background(), func(context.Context) (int, error) {
			calls++
			return 0, errBoom
		})
		if calls != 4 || !errors.Is(err, errBoom) || time.Since(start) != 0 {
			t.Errorf("%d calls, %v, after %v; want 4 calls at once", calls, err, time.Since(start))
		}
		calls = 0
		start = time.Now()
		r.Do(context.Background(), func(context.Context) (int, error) {
			if calls++; calls == 1 {
				return 0, resilience.RetryAfter(errBoom, 2*time.Second)
			}
			return 1, nil
		})
		if calls != 2 || time.Since(start) != 2*time.Second {
			t.Errorf("with a Retry-After of 2s: %d calls after %v; want 2 after 2s", calls, time.Since(start))
		}
	})
	ctx := context.Background()
	r := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, NoBackoff: true})))
	failsTwiceCalls = 0
	if n := testing.AllocsPerRun(100, func() { r.Do(ctx, failsTwice) }); n != 1 {
		t.Errorf("a call that fails twice, with no backoff, allocates %v times, want 1 (the retries' context, which carries Attempt)", n)
	}
	_, err := resilience.NewRetry(resilience.RetryConfig{NoBackoff: true, InitialBackoff: time.Second, BackoffMultiplier: 3, Jitter: true})
	for _, field := range []string{"RetryConfig.InitialBackoff", "RetryConfig.BackoffMultiplier", "RetryConfig.Jitter"} {
		if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "NoBackoff") {
			t.Errorf("NoBackoff with %s set: %v, want an error naming it", field, err)
		}
	}
}
