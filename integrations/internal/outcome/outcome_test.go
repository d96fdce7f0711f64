package outcome

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

func TestResult(t *testing.T) {
	answer := errors.New("not found")
	failed := errors.New("connection refused")
	timeout := &resilience.TimeoutError{Err: &Failure{Err: failed}}
	open := resilience.ErrOpen
	for _, tc := range []struct {
		name          string
		err, answered error
		want          error
	}{
		{"success", nil, nil, nil},
		{"an answer", nil, answer, answer},
		{"a failure", &Failure{Err: failed}, failed, failed},
		{"a permanent failure", resilience.Permanent(&Failure{Err: failed}), failed, failed},
		{"a time-out", timeout, failed, timeout},
		{"the policies' own", open, nil, open},
	} {
		if got := Result(tc.err, tc.answered); got != tc.want {
			t.Errorf("%s: Result = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFailureUnwraps(t *testing.T) {
	failed := errors.New("reset")
	f := &Failure{Err: failed, CtxErr: context.Canceled}
	if !errors.Is(f, failed) || !errors.Is(f, context.Canceled) || f.Error() != "reset" {
		t.Errorf("Failure %v does not match both its errors", f)
	}
	if errors.Is(&Failure{Err: failed}, context.Canceled) {
		t.Error("a Failure without a context error matches context.Canceled")
	}
}

func TestCheck(t *testing.T) {
	p := resilience.Preset{Name: "dep", Timeout: resilience.TimeoutConfig{Duration: time.Second}}
	g, _ := p.Build()
	if err := Check("pkg", "Config.Guard", g); err != nil {
		t.Errorf("a cooperative guard: %v", err)
	}
	only, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{g.Timeout()}})
	if err := Check("pkg", "Config.Guard", only); err != nil {
		t.Errorf("a guard with a time limit alone: %v", err)
	}
	abandons, _ := resilience.NewTimeout(resilience.TimeoutConfig{Name: "inner", Duration: time.Second, Abandon: true})
	inner, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{g, abandons}})
	for _, tc := range []struct {
		name string
		g    *resilience.Guard
		want string
	}{
		{"nil", nil, "pkg: Config.Guard is nil"},
		{"zero", &resilience.Guard{}, "pkg: Config.Guard is a zero resilience.Guard"},
		{"an inner time limit that abandons", inner, `pkg: Config.Guard: the time limit "inner" abandons calls (TimeoutConfig.Abandon)`},
	} {
		if err := Check("pkg", "Config.Guard", tc.g); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// Hedge finds a guard's Hedge, in a nested guard too, and nothing in a
// guard without one.
func TestHedgeOfAGuard(t *testing.T) {
	h, err := resilience.NewHedge(resilience.HedgeConfig{Name: "h", Delay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := resilience.NewBreaker(resilience.BreakerConfig{Name: "b"})
	inner, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{h}})
	with, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{inner, b}})
	without, _ := resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{b}})
	if got := Hedge(with); got != h {
		t.Errorf("Hedge(a guard holding one, nested) = %v", got)
	}
	if got := Hedge(without); got != nil {
		t.Errorf("Hedge(a guard without one) = %v", got)
	}
	if got := Hedge(nil); got != nil {
		t.Errorf("Hedge(nil) = %v", got)
	}
}
