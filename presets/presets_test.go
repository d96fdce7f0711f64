package presets_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
	"github.com/resilience-go/resilience/presets"
)

func TestMain(m *testing.M) { testcheck.VerifyTestMain(m) }

var errDown = errors.New("dependency down")

// want builds the preset the presets table describes, spelled out in full so
// that a changed default or a typo in presets.go shows up here.
func want(name string, timeout time.Duration, failures int, cooldown time.Duration, retries int, attempt time.Duration) resilience.Preset {
	p := resilience.Preset{
		Name:    name,
		Timeout: resilience.TimeoutConfig{Duration: timeout},
		Breaker: resilience.BreakerConfig{
			FailureThreshold:   failures,
			OpenTimeout:        cooldown,
			SuccessThreshold:   2,
			ErrorRateThreshold: 0.5,
			WindowSize:         100,
			MinCalls:           20,
		},
	}
	if attempt > 0 {
		p.AttemptTimeout = &resilience.TimeoutConfig{Duration: attempt}
	}
	if retries > 0 {
		p.Retry = &resilience.RetryConfig{
			MaxRetries:        retries,
			InitialBackoff:    100 * time.Millisecond,
			MaxBackoff:        10 * time.Second,
			BackoffMultiplier: 2,
			Jitter:            true,
		}
		p.RetryBudget = &resilience.RetryBudgetConfig{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}
		p.Latency = &resilience.LatencyConfig{} // the last 10s of answers, for retries the deadline cannot fit
	}
	return p
}

// perHost gives p a breaker per host, as the presets table says: up to
// 10,000 hosts, 10% of them open at once.
func perHost(p resilience.Preset) resilience.Preset {
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{MaxKeys: 10000, MaxEjectedPercent: 10}
	return p
}

// pushedBack gives p a Pushback, as the package doc says of the presets
// whose dependencies send Retry-After hints: the defaults, refusing calls
// at once during a period of at most a minute.
func pushedBack(p resilience.Preset) resilience.Preset {
	p.Pushback = &resilience.PushbackConfig{}
	return p
}

var table = []struct {
	name   string
	config func() resilience.Preset
	guard  func() *resilience.Guard
	want   resilience.Preset
}{
	{"gRPC", presets.GRPCConfig, presets.GRPC, pushedBack(want("grpc", 30*time.Second, 5, 60*time.Second, 3, 10*time.Second))},
	{"database", presets.DatabaseConfig, presets.Database, want("database", 10*time.Second, 10, 30*time.Second, 0, 0)},
	{"Redis", presets.RedisConfig, presets.Redis, want("redis", 5*time.Second, 3, 15*time.Second, 2, 2*time.Second)},
	{"external HTTP", presets.ExternalHTTPConfig, presets.ExternalHTTP, pushedBack(perHost(want("external-http", 60*time.Second, 5, 120*time.Second, 5, 20*time.Second)))},
	{"Kafka", presets.KafkaConfig, presets.Kafka, want("kafka", 5*time.Second, 5, 30*time.Second, 3, 2*time.Second)},
	{"object storage", presets.ObjectStorageConfig, presets.ObjectStorage, pushedBack(want("object-storage", 120*time.Second, 5, 60*time.Second, 5, 0))},
}

// withoutFuncs returns a copy of p with its func fields nil (Classify, the
// breaker's Classify and OnStateChange, the retry's Retryable and OnRetry),
// for comparing the rest: a func equals nothing but a nil func. p's Retry
// is copied, not changed.
func withoutFuncs(p resilience.Preset) resilience.Preset {
	p.Classify = nil
	p.Breaker.Classify, p.Breaker.OnStateChange = nil, nil
	if p.Retry != nil {
		r := *p.Retry
		r.Retryable, r.OnRetry = nil, nil
		p.Retry = &r
	}
	return p
}

// TestPresetValues checks every preset against the presets table.
func TestPresetValues(t *testing.T) {
	for _, tc := range table {
		if diff := testcheck.Diff(withoutFuncs(tc.want), withoutFuncs(tc.config())); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		// The gRPC preset classifies gRPC codes; the others leave it to
		// each stage's defaults.
		got := tc.config().Classify
		if tc.want.Name == "grpc" {
			if got == nil || reflect.ValueOf(got).Pointer() != reflect.ValueOf(presets.ClassifyGRPC).Pointer() {
				t.Errorf("%s: Classify is not ClassifyGRPC", tc.name)
			}
		} else if got != nil {
			t.Errorf("%s: Classify is set", tc.name)
		}
		g := tc.guard()
		var breaker resilience.Stage = g.Breaker()
		breakerKind := "breaker "
		if tc.want.BreakerPerKey != nil {
			breaker, breakerKind = g.KeyedBreaker(), "keyed_breaker "
			if g.Breaker() != nil {
				t.Errorf("%s: a breaker per host, and a shared one", tc.name)
			}
		}
		if g.Name() != tc.want.Name || breaker.Name() != tc.want.Name || g.Timeout().Duration() != tc.want.Timeout.Duration {
			t.Errorf("%s: guard %q, breaker %q, timeout %v", tc.name, g.Name(), breaker.Name(), g.Timeout().Duration())
		}
		if (g.Retry() == nil) != (tc.want.Retry == nil) {
			t.Errorf("%s: Retry() = %v", tc.name, g.Retry())
		}
		// The order: Timeout → Retry → RetryBudget → Pushback → Breaker →
		// AttemptTimeout → Latency.
		wantStages := []string{"timeout " + tc.want.Name}
		if tc.want.Retry != nil {
			wantStages = append(wantStages, "retry "+tc.want.Name, "retry_budget "+tc.want.Name)
			if g.RetryBudget() == nil {
				t.Errorf("%s: a preset that retries has no retry budget", tc.name)
			}
		}
		if tc.want.Pushback != nil && tc.want.BreakerPerKey != nil {
			// A Pushback per key, as the breakers.
			wantStages = append(wantStages, "keyed_pushback "+tc.want.Name)
		} else if tc.want.Pushback != nil {
			wantStages = append(wantStages, "pushback "+tc.want.Name)
			pushbacks := 0
			for _, st := range g.Stages() {
				if pb, ok := st.(*resilience.Pushback); ok {
					pushbacks++
					if !pb.Until().IsZero() {
						t.Errorf("%s: a new guard's Pushback has a period until %v", tc.name, pb.Until())
					}
				}
			}
			if pushbacks != 1 {
				t.Errorf("%s: %d Pushback stages, want 1", tc.name, pushbacks)
			}
		}
		wantStages = append(wantStages, breakerKind+tc.want.Name)
		ss := g.Stages()
		if a := tc.want.AttemptTimeout; a != nil {
			wantStages = append(wantStages, "timeout "+tc.want.Name+".attempt")
			var last *resilience.Timeout
			for i := len(ss) - 1; i >= 0 && last == nil; i-- {
				last, _ = ss[i].(*resilience.Timeout)
			}
			if last == nil || last.Duration() != a.Duration || last == g.Timeout() {
				t.Errorf("%s: the innermost Timeout is not a %v per attempt", tc.name, a.Duration)
			}
		}
		if tc.want.Latency != nil {
			wantStages = append(wantStages, "latency "+tc.want.Name)
			if l, ok := ss[len(ss)-1].(*resilience.Latency); !ok || l.Samples() != 0 {
				t.Errorf("%s: the innermost stage is not a new Latency", tc.name)
			}
		}
		var gotStages []string
		for _, st := range g.Stages() {
			gotStages = append(gotStages, st.Kind()+" "+st.Name())
		}
		if diff := testcheck.Diff(wantStages, gotStages); diff != "" {
			t.Errorf("%s: stages (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestPresetConfigsAreFresh: changing one preset's config changes neither
// the next one handed out nor a guard built before.
func TestPresetConfigsAreFresh(t *testing.T) {
	a := presets.GRPCConfig()
	a.Retry.MaxRetries = 9
	if b := presets.GRPCConfig(); b.Retry.MaxRetries != 3 {
		t.Errorf("a change to one GRPCConfig leaked into the next: MaxRetries %d", b.Retry.MaxRetries)
	}
	if one, two := presets.GRPC(), presets.GRPC(); one.Breaker() == two.Breaker() {
		t.Error("two GRPC() guards share a breaker")
	}
}

// TestRedisOpensAfterThreeFailuresAndProbesAfter15s runs the Redis preset
// as configured, to the nanosecond: 3 failures in a row open it (one call
// and its 2 retries), and it probes again 15s later.
func TestRedisOpensAfterThreeFailuresAndProbesAfter15s(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		redis := presets.Redis()
		calls := 0
		_, err := resilience.Do(context.Background(), redis, func(context.Context) (string, error) {
			calls++
			return "", errDown
		})
		if calls != 3 || !errors.Is(err, errDown) {
			t.Fatalf("calls = %d, err = %v; want 3 attempts ending in errDown", calls, err)
		}
		opened := time.Now()
		if s := redis.Breaker().State(); s != resilience.Open {
			t.Fatalf("state after 3 failures = %v, want Open", s)
		}

		// While open, calls fail fast and say when the breaker will probe.
		_, err = resilience.Do(context.Background(), redis, func(context.Context) (string, error) {
			calls++
			return "v", nil
		})
		var oe *resilience.OpenError
		if !errors.As(err, &oe) || oe.RetryAfter() != 15*time.Second || calls != 3 {
			t.Fatalf("while open: err = %v, calls %d; want an OpenError due in 15s and no call", err, calls)
		}

		time.Sleep(15*time.Second - 1)
		if s := redis.Breaker().State(); s != resilience.Open {
			t.Fatalf("1ns before 15s: state %v, want Open", s)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait() // let the breaker's timer run, as a real clock would have
		if s := redis.Breaker().State(); s != resilience.HalfOpen || time.Since(opened) != 15*time.Second {
			t.Fatalf("at %v: state %v, want HalfOpen at 15s", time.Since(opened), s)
		}

		// Two successful probes close it.
		for range 2 {
			if v, err := resilience.Do(context.Background(), redis, func(context.Context) (string, error) { return "v", nil }); err != nil || v != "v" {
				t.Fatalf("probe: %q, %v", v, err)
			}
		}
		if s := redis.Breaker().State(); s != resilience.Closed {
			t.Errorf("after 2 good probes: state %v, want Closed", s)
		}
	})
}

// TestDatabaseNeverRetries: a failing query runs once.
func TestDatabaseNeverRetries(t *testing.T) {
	db := presets.Database()
	calls := 0
	_, err := resilience.Do(context.Background(), db, func(context.Context) (int64, error) {
		calls++
		return 0, errDown
	})
	if calls != 1 || err != errDown {
		t.Errorf("calls = %d, err = %v; want 1 call and its error unchanged", calls, err)
	}
}

// TestTimeoutCoversRetries: the gRPC preset's 30s bounds a call and all its
// retries; a dependency that hangs gets attempts of 10s each, the first two
// cut by the per-attempt limit, the third by the total, at 30s exactly.
func TestTimeoutCoversRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		grpc := presets.GRPC()
		var ends []time.Duration
		start := time.Now()
		_, err := resilience.Do(context.Background(), grpc, func(ctx context.Context) (int, error) {
			began := time.Now()
			<-ctx.Done()
			ends = append(ends, time.Since(began))
			return 0, ctx.Err()
		})
		var te *resilience.TimeoutError
		if !errors.As(err, &te) || te.Name != "grpc" || time.Since(start) != 30*time.Second {
			t.Errorf("err = %v after %v; want the total's timeout after 30s", err, time.Since(start))
		}
		if len(ends) != 3 || ends[0] != 10*time.Second || ends[1] != 10*time.Second || ends[2] >= 10*time.Second {
			t.Errorf("attempts lasted %v; want 10s, 10s and what the total left", ends)
		}
	})
}

// observeBreakers adds o to the observers of g's breaker, or of each of
// its breakers per key.
func observeBreakers(g *resilience.Guard, o resilience.BreakerObserver) {
	if k := g.KeyedBreaker(); k != nil {
		k.Observe(o)
		return
	}
	g.Breaker().Observe(o)
}

// TestAttemptTimeoutRetriesAHungAttempt: in each preset with a per-attempt
// limit, an attempt that hangs is cut at that limit, counted by the
// breaker, and retried within the total, which succeeds.
func TestAttemptTimeoutRetriesAHungAttempt(t *testing.T) {
	for _, tc := range table {
		if tc.want.AttemptTimeout == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := tc.guard()
				failures := 0
				observeBreakers(g, resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
					if r == resilience.CallFailed {
						failures++
					}
				}})
				var attempts []time.Duration
				start := time.Now()
				v, err := resilience.Do(context.Background(), g, func(ctx context.Context) (string, error) {
					began := time.Now()
					if len(attempts) == 0 {
						<-ctx.Done()
						attempts = append(attempts, time.Since(began))
						return "", ctx.Err()
					}
					attempts = append(attempts, time.Since(began))
					return "answer", nil
				})
				limit := tc.want.AttemptTimeout.Duration
				if err != nil || v != "answer" || len(attempts) != 2 || attempts[0] != limit {
					t.Fatalf("got %q, %v after attempts %v; want the answer, the first attempt cut at %v", v, err, attempts, limit)
				}
				if took := time.Since(start); took >= tc.want.Timeout.Duration || took < limit {
					t.Errorf("the call took %v, want between %v and the total %v", took, limit, tc.want.Timeout.Duration)
				}
				if failures != 1 {
					t.Errorf("the breaker counted %d failures, want the hung attempt's 1", failures)
				}
			})
		})
	}
}

// TestSharedBreakerAcrossResultTypes: two chains for one backend, of
// different result types, trip and recover together.
func TestSharedBreakerAcrossResultTypes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		kafka := presets.Kafka()
		produce := resilience.For[int64](kafka)       // offsets
		meta := resilience.For[map[string]int](kafka) // partitions per topic
		for range 5 {
			produce.Do(context.Background(), func(context.Context) (int64, error) { return 0, resilience.Permanent(errDown) })
		}
		if _, err := meta.Do(context.Background(), func(context.Context) (map[string]int, error) { return nil, nil }); !errors.Is(err, resilience.ErrOpen) {
			t.Errorf("metadata call after 5 failed produces: err = %v, want ErrOpen", err)
		}
	})
}

// TestPushbackPresetsHoldOffEveryCall: in the presets with a Pushback, a
// dependency's Retry-After of 30s holds off every call for 30s: the
// call's retry, 10s later (MaxBackoff), is refused and not retried, and
// so is the next call, neither reaching the dependency; once the 30s are
// over calls go through. In the others the hint sets only the wait of the
// call's own retry, and the next call reaches the dependency.
func TestPushbackPresetsHoldOffEveryCall(t *testing.T) {
	for _, tc := range table {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := tc.guard()
				calls := 0
				pushBack := func(context.Context) (int, error) {
					calls++
					return 0, resilience.RetryAfter(errDown, 30*time.Second)
				}
				start := time.Now()
				_, err := resilience.Do(context.Background(), g, pushBack)
				if tc.want.Pushback == nil {
					if !errors.Is(err, errDown) || errors.Is(err, resilience.ErrRejected) {
						t.Fatalf("err = %v, want errDown and no refusal", err)
					}
					ran := false
					if _, err := resilience.Do(context.Background(), g, func(context.Context) (int, error) { ran = true; return 1, nil }); err != nil || !ran {
						t.Errorf("the next call: ran %v, err %v; want it run: no Pushback here", ran, err)
					}
					return
				}
				var (
					pe *resilience.PushbackError
					re *resilience.RetryError
				)
				if calls != 1 || !errors.As(err, &re) || re.Attempts != 2 || !errors.As(err, &pe) || time.Since(start) != 10*time.Second {
					t.Fatalf("%d calls, err %v after %v; want 1 call, its retry refused by the pushback after 10s", calls, err, time.Since(start))
				}
				if want := start.Add(30 * time.Second); !pe.Until.Equal(want) || pe.Name != tc.want.Name {
					t.Errorf("PushbackError %+v; want %q until %v", pe, tc.want.Name, want)
				}
				ran := false
				_, err = resilience.Do(context.Background(), g, func(context.Context) (int, error) { ran = true; return 1, nil })
				if ran || !errors.Is(err, resilience.ErrPushback) || !errors.Is(err, resilience.ErrRejected) {
					t.Errorf("the next call, 10s in: ran %v, err %v; want it refused by the pushback", ran, err)
				}
				time.Sleep(20 * time.Second)
				if v, err := resilience.Do(context.Background(), g, func(context.Context) (int, error) { ran = true; return 1, nil }); !ran || v != 1 || err != nil {
					t.Errorf("at 30s: ran %v, %v, %v; want the call run", ran, v, err)
				}
			})
		})
	}
}
