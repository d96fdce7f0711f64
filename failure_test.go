package resilience_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/resilience-go/resilience"
)

var (
	errNotFound = errors.New("not found")
	errDown     = errors.New("unavailable")
	errInvalid  = errors.New("invalid argument")
	errShutdown = errors.New("client shutting down")
)

// classify is a dependency's error model, as an integration would write it.
func classify(_ context.Context, err error) resilience.Outcome {
	switch {
	case errors.Is(err, errNotFound):
		return resilience.Success
	case errors.Is(err, errInvalid):
		return resilience.PermanentFailure
	case errors.Is(err, errShutdown):
		return resilience.Ignored
	}
	return resilience.Failure
}

// TestGuardClassifyTellsEveryStage: one Classify on a guard decides, for
// its retry, its breaker and a fallback around it alike, what is an
// answer, a failure worth retrying, a failure not worth it, and nothing.
func TestGuardClassifyTellsEveryStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			err      error
			attempts int     // calls made for one Do
			rate     float64 // the breaker's error rate after them
			fallback bool    // a fallback around the guard stands in
		}{
			{errNotFound, 1, 0, false},
			{errDown, 3, 1, true},
			{errInvalid, 1, 1, true},
			{errShutdown, 1, 0, false},
		} {
			retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2}))
			breaker := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: resilience.Off, MinCalls: 1, ErrorRateThreshold: 1}))
			breaker.Disable() // measure, never open
			g := must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{retry, breaker}, Classify: classify}))
			fallback := must(resilience.NewFallback(resilience.FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return -1, nil }}))
			attempts := 0
			v, err := resilience.Compose(fallback, resilience.For[int](g)).Do(context.Background(), func(context.Context) (int, error) {
				attempts++
				return 0, tc.err
			})
			if attempts != tc.attempts {
				t.Errorf("%v: %d attempts, want %d", tc.err, attempts, tc.attempts)
			}
			if got := breaker.ErrorRate(); got != tc.rate {
				t.Errorf("%v: breaker error rate %v, want %v", tc.err, got, tc.rate)
			}
			if tc.fallback != (v == -1 && err == nil) {
				t.Errorf("%v: Do = %v, %v; fallback wanted: %v", tc.err, v, err, tc.fallback)
			}
			if !tc.fallback && (!errors.Is(err, tc.err) || err.Error() != tc.err.Error()) {
				t.Errorf("%v: the caller got %v, want the call's own error", tc.err, err)
			}
		}
	})
}

// TestAnswer: an error marked with Answer is the dependency's answer to
// every stage, and reaches the caller as itself.
func TestAnswer(t *testing.T) {
	if resilience.Answer(nil) != nil {
		t.Error("Answer(nil) is not nil")
	}
	answered := resilience.Answer(errNotFound)
	if !errors.Is(answered, errNotFound) || answered.Error() != errNotFound.Error() || !resilience.IsAnswer(answered) || resilience.IsAnswer(errNotFound) {
		t.Errorf("Answer(%v) = %v: want the same message, errors.Is through the mark, and IsAnswer", errNotFound, answered)
	}
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 2})
	retry := resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3})))
	tries := 0
	for range 5 {
		retry.Do(context.Background(), func(context.Context) (int, error) {
			tries++
			return p.Do(context.Background(), func(context.Context) (int, error) { return 0, answered })
		})
	}
	if tries != 5 || b.State() != resilience.Closed {
		t.Errorf("5 answers: %d attempts and a breaker %v; want 5 and closed", tries, b.State())
	}
}

// TestBreakerClassifyPermanentFailure: a breaker's own Classify may report
// a PermanentFailure, which it counts as a failure.
func TestBreakerClassifyPermanentFailure(t *testing.T) {
	b, p := newBreaker(t, resilience.BreakerConfig{FailureThreshold: 2, Classify: classify})
	p.Do(context.Background(), func(context.Context) (int, error) { return 0, errInvalid })
	p.Do(context.Background(), func(context.Context) (int, error) { return 0, errInvalid })
	if b.State() != resilience.Open {
		t.Errorf("two permanent failures: state %v, want open", b.State())
	}
}
