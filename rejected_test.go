package resilience_test

import (
	"context"
	"errors"
	"testing"

	"github.com/resilience-go/resilience"
)

// TestEveryRejectionMatchesErrRejected: each stage that can refuse a call
// refuses it with an error matching ErrRejected as well as its own
// sentinel, and the call does not run.
func TestEveryRejectionMatchesErrRejected(t *testing.T) {
	open := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	open.ForceOpen()
	full := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	if !full.TryAcquire() {
		t.Fatal("TryAcquire on an empty bulkhead failed")
	}
	defer full.Release()
	for _, tc := range []struct {
		name  string
		stage resilience.Stage
		own   error
	}{
		{"open breaker", open, resilience.ErrOpen},
		{"full bulkhead", full, resilience.ErrBulkheadFull},
	} {
		ran := false
		_, err := resilience.Do(context.Background(), tc.stage, func(context.Context) (int, error) { ran = true; return 1, nil })
		if ran || !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, tc.own) {
			t.Errorf("%s: ran %v, err %v; want no call and an error matching ErrRejected and %v", tc.name, ran, err, tc.own)
		}
	}
	if errors.Is(errBoom, resilience.ErrRejected) {
		t.Error("an ordinary error matches ErrRejected")
	}
}
