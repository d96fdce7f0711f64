package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// tracer is a policy that records when it is entered and left.
func tracer[T any](name string, log *[]string) resilience.PolicyFunc[T] {
	return func(ctx context.Context, next resilience.Func[T]) (T, error) {
		*log = append(*log, "enter "+name)
		v, err := next(ctx)
		*log = append(*log, "leave "+name)
		return v, err
	}
}

func TestComposeFirstIsOutermost(t *testing.T) {
	var log []string
	p := resilience.Compose(tracer[int]("a", &log), tracer[int]("b", &log), tracer[int]("c", &log))
	p.Do(context.Background(), func(context.Context) (int, error) {
		log = append(log, "call")
		return 0, nil
	})
	want := []string{"enter a", "enter b", "enter c", "call", "leave c", "leave b", "leave a"}
	if diff := testcheck.Diff(want, log); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestComposeFlattensAndMixesStages(t *testing.T) {
	var log []string
	b := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1}))
	inner := resilience.Compose(tracer[int]("b", &log), resilience.For[int](b), tracer[int]("c", &log))
	p := resilience.Compose(tracer[int]("a", &log), inner)
	p.Do(context.Background(), func(context.Context) (int, error) {
		log = append(log, "call")
		return 0, errBoom
	})
	want := []string{"enter a", "enter b", "enter c", "call", "leave c", "leave b", "leave a"}
	if diff := testcheck.Diff(want, log); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	// The breaker between b and c saw the failure; c is now unreachable.
	log = nil
	p.Do(context.Background(), ok)
	want = []string{"enter a", "enter b", "leave b", "leave a"}
	if diff := testcheck.Diff(want, log); diff != "" {
		t.Errorf("with the breaker open (-want +got):\n%s", diff)
	}
}

func TestPolicyFuncAlone(t *testing.T) {
	double := resilience.PolicyFunc[int](func(ctx context.Context, next resilience.Func[int]) (int, error) {
		v, err := next(ctx)
		return 2 * v, err
	})
	if v, err := double.Do(context.Background(), ok); v != 2 || err != nil {
		t.Errorf("Do = %v, %v; want 2, nil", v, err)
	}
}

func TestEmptyChainRunsTheCall(t *testing.T) {
	for name, p := range map[string]resilience.Policy[int]{
		"For":     resilience.For[int](),
		"Compose": resilience.Compose[int](),
	} {
		if v, err := p.Do(context.Background(), ok); v != 1 || err != nil {
			t.Errorf("%s: Do = %v, %v; want 1, nil", name, v, err)
		}
	}
}

func TestNilFuncIsAnError(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	fb := must(resilience.NewFallback(resilience.FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return 0, nil }}))
	for name, p := range map[string]resilience.Policy[int]{
		"For":        resilience.For[int](b),
		"PolicyFunc": tracer[int]("x", new([]string)),
		"Fallback":   fb,
	} {
		if _, err := p.Do(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "nil Func") {
			t.Errorf("%s: Do(ctx, nil) = %v, want an error about the nil Func", name, err)
		}
	}
}

func TestNilPolicyPanicsWhenBuilding(t *testing.T) {
	var nilBreaker *resilience.Breaker
	var nilFunc resilience.PolicyFunc[int]
	for name, build := range map[string]func(){
		"For nil stage":       func() { resilience.For[int](nil) },
		"For nil *Breaker":    func() { resilience.For[int](nilBreaker) },
		"Compose nil":         func() { resilience.Compose[int](nil) },
		"Compose nil func":    func() { resilience.Compose[int](nilFunc) },
		"Compose nil for 2nd": func() { resilience.Compose(tracer[int]("a", new([]string)), nil) },
	} {
		func() {
			defer func() {
				r := recover()
				if msg := fmt.Sprint(r); r == nil || !strings.HasPrefix(msg, "resilience: ") {
					t.Errorf("%s: recovered %v, want a panic from resilience", name, r)
				}
			}()
			build()
		}()
	}
}

func TestFallback(t *testing.T) {
	errNotFound := errors.New("not found")
	fb := must(resilience.NewFallback(resilience.FallbackConfig[string]{
		Handle: func(err error) bool { return !errors.Is(err, errNotFound) },
		Func: func(ctx context.Context, err error) (string, error) {
			return "cached", nil
		},
	}))
	for _, tc := range []struct {
		name    string
		ctx     func() context.Context
		call    resilience.Func[string]
		want    string
		wantErr error
	}{
		{"success", context.Background, func(context.Context) (string, error) { return "fresh", nil }, "fresh", nil},
		{"handled", context.Background, func(context.Context) (string, error) { return "", errBoom }, "cached", nil},
		{"not handled", context.Background, func(context.Context) (string, error) { return "", errNotFound }, "", errNotFound},
		{"caller gone", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, func(ctx context.Context) (string, error) { return "", ctx.Err() }, "", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := fb.Do(tc.ctx(), tc.call)
			if v != tc.want || err != tc.wantErr {
				t.Errorf("Do = %q, %v; want %q, %v", v, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestFallbackOutsideABreaker(t *testing.T) {
	b := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 1}))
	fb := must(resilience.NewFallback(resilience.FallbackConfig[string]{
		Func: func(_ context.Context, err error) (string, error) {
			if errors.Is(err, resilience.ErrOpen) {
				return "degraded", nil
			}
			return "", err
		},
	}))
	p := resilience.Compose(fb, resilience.For[string](b))
	if _, err := p.Do(context.Background(), func(context.Context) (string, error) { return "", errBoom }); err != errBoom {
		t.Fatalf("first call: %v, want errBoom passed on by the fallback", err)
	}
	v, err := p.Do(context.Background(), func(context.Context) (string, error) { return "fresh", nil })
	if v != "degraded" || err != nil {
		t.Errorf("with the breaker open: %q, %v; want the fallback's degraded answer", v, err)
	}
}

// TestEveryKindOfLinkInOneChain runs a call through one of each policy:
// the result and the error must come through every layer.
func TestEveryKindOfLinkInOneChain(t *testing.T) {
	var log []string
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{FailureThreshold: 10}))
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Nanosecond}))
	cooperative := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute}))
	abandoning := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Minute, Abandon: true}))
	fallback := must(resilience.NewFallback(resilience.FallbackConfig[string]{
		Func: func(_ context.Context, err error) (string, error) { return "fallback: " + err.Error(), nil },
	}))
	p := resilience.Compose(
		fallback,
		tracer[string]("outer", &log),
		resilience.For[string](cooperative, retry),
		tracer[string]("inner", &log),
		resilience.For[string](abandoning, breaker, bulkhead),
	)
	calls := 0
	v, err := p.Do(context.Background(), func(context.Context) (string, error) {
		calls++
		if calls < 3 {
			return "", errBoom
		}
		return "third time lucky", nil
	})
	if v != "third time lucky" || err != nil {
		t.Fatalf("Do = %q, %v; want the third attempt's result", v, err)
	}
	want := []string{"enter outer", "enter inner", "leave inner", "enter inner", "leave inner", "enter inner", "leave inner", "leave outer"}
	if diff := testcheck.Diff(want, log); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	v, err = p.Do(context.Background(), func(context.Context) (string, error) { return "", errBoom })
	if !strings.HasPrefix(v, "fallback: resilience: retry gave up after 3 attempts: boom") || err != nil {
		t.Errorf("Do = %q, %v; want the fallback's answer built from the retry's error", v, err)
	}
	if bulkhead.InUse() != 0 {
		t.Errorf("bulkhead holds %d slots after the calls, want 0", bulkhead.InUse())
	}
}
