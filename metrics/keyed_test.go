package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
)

// call makes n calls with key through s, each failing if fails.
func call(s resilience.Stage, key string, n int, fails bool) {
	for range n {
		f := ok
		if fails {
			f = fail
		}
		resilience.Do(resilience.WithKey(context.Background(), key), s, f)
	}
}

const (
	keyCalls = "resilience_keyed_breaker_key_calls_total"
	keyState = "resilience_keyed_breaker_key_state"
)

// TestKeyedBreakerFamilySeries: a KeyedBreaker is exported through its
// Stats like any Observable stage, found in a guard, and without
// Config.KeyLabels has no series per key at all, whatever its traffic.
func TestKeyedBreakerFamilySeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "hosts", Breaker: resilience.BreakerConfig{FailureThreshold: 1}}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "hosts", Stages: []resilience.Stage{k}}))
	if g.KeyedBreaker() != k {
		t.Fatal("the guard's KeyedBreaker is not k")
	}
	if err := m.Instrument(g); err != nil {
		t.Fatal(err)
	}
	call(g, "a", 2, false)
	call(g, "b", 1, true) // opens b
	call(g, "b", 1, false)
	want := `
# HELP resilience_keyed_breaker_calls_total Calls through keyed_breaker stages, by how they ended.
# TYPE resilience_keyed_breaker_calls_total counter
resilience_keyed_breaker_calls_total{name="hosts",result="capped"} 0
resilience_keyed_breaker_calls_total{name="hosts",result="failure"} 1
resilience_keyed_breaker_calls_total{name="hosts",result="ignored"} 0
resilience_keyed_breaker_calls_total{name="hosts",result="rejected"} 1
resilience_keyed_breaker_calls_total{name="hosts",result="success"} 2
# HELP resilience_keyed_breaker_ejected Keys whose breaker is open or half-open.
# TYPE resilience_keyed_breaker_ejected gauge
resilience_keyed_breaker_ejected{name="hosts"} 1
# HELP resilience_keyed_breaker_ejection_limit How many keys' breakers the ejection cap lets be open at once.
# TYPE resilience_keyed_breaker_ejection_limit gauge
resilience_keyed_breaker_ejection_limit{name="hosts"} 1
# HELP resilience_keyed_breaker_keys Keys that have a breaker.
# TYPE resilience_keyed_breaker_keys gauge
resilience_keyed_breaker_keys{name="hosts"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"resilience_keyed_breaker_calls_total", "resilience_keyed_breaker_keys", "resilience_keyed_breaker_ejected", "resilience_keyed_breaker_ejection_limit"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{keyCalls, keyState} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 0 {
			t.Errorf("%s: %d series, %v; want none without Config.KeyLabels", name, n, err)
		}
	}
}

// TestKeyedBreakerKeySeries: with KeyLabels 2, the keys a and b of a
// family of three have series of their own and c is counted as "other",
// its state too; before any call only "other" exists, at zero.
func TestKeyedBreakerKeySeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 2}))
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "api", Breaker: resilience.BreakerConfig{FailureThreshold: 2}}))
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "api", Stages: []resilience.Stage{k}}))
	if err := m.Instrument(g); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP resilience_keyed_breaker_key_calls_total Calls through the breakers of keyed breakers, by key (the first keys seen; the others as key="other") and how they ended.
# TYPE resilience_keyed_breaker_key_calls_total counter
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="failure"} 0
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="ignored"} 0
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="rejected"} 0
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="success"} 0
# HELP resilience_keyed_breaker_key_state Keys of keyed breakers in each state: for a labelled key, 1 for the state its breaker is in and 0 for the others; for key="other", how many of the other keys are in it.
# TYPE resilience_keyed_breaker_key_state gauge
resilience_keyed_breaker_key_state{key="other",name="api",state="closed"} 0
resilience_keyed_breaker_key_state{key="other",name="api",state="half-open"} 0
resilience_keyed_breaker_key_state{key="other",name="api",state="open"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), keyCalls, keyState); err != nil {
		t.Error(err)
	}

	call(g, "a", 4, false)
	call(g, "b", 3, false)
	call(g, "b", 1, true)
	call(g, "c", 2, true) // opens c
	call(g, "c", 1, false)
	want = `
# HELP resilience_keyed_breaker_key_calls_total Calls through the breakers of keyed breakers, by key (the first keys seen; the others as key="other") and how they ended.
# TYPE resilience_keyed_breaker_key_calls_total counter
resilience_keyed_breaker_key_calls_total{key="a",name="api",result="failure"} 0
resilience_keyed_breaker_key_calls_total{key="a",name="api",result="ignored"} 0
resilience_keyed_breaker_key_calls_total{key="a",name="api",result="rejected"} 0
resilience_keyed_breaker_key_calls_total{key="a",name="api",result="success"} 4
resilience_keyed_breaker_key_calls_total{key="b",name="api",result="failure"} 1
resilience_keyed_breaker_key_calls_total{key="b",name="api",result="ignored"} 0
resilience_keyed_breaker_key_calls_total{key="b",name="api",result="rejected"} 0
resilience_keyed_breaker_key_calls_total{key="b",name="api",result="success"} 3
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="failure"} 2
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="ignored"} 0
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="rejected"} 1
resilience_keyed_breaker_key_calls_total{key="other",name="api",result="success"} 0
# HELP resilience_keyed_breaker_key_state Keys of keyed breakers in each state: for a labelled key, 1 for the state its breaker is in and 0 for the others; for key="other", how many of the other keys are in it.
# TYPE resilience_keyed_breaker_key_state gauge
resilience_keyed_breaker_key_state{key="a",name="api",state="closed"} 1
resilience_keyed_breaker_key_state{key="a",name="api",state="half-open"} 0
resilience_keyed_breaker_key_state{key="a",name="api",state="open"} 0
resilience_keyed_breaker_key_state{key="b",name="api",state="closed"} 1
resilience_keyed_breaker_key_state{key="b",name="api",state="half-open"} 0
resilience_keyed_breaker_key_state{key="b",name="api",state="open"} 0
resilience_keyed_breaker_key_state{key="other",name="api",state="closed"} 0
resilience_keyed_breaker_key_state{key="other",name="api",state="half-open"} 0
resilience_keyed_breaker_key_state{key="other",name="api",state="open"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), keyCalls, keyState); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.CollectAndLint(m, keyCalls, keyState); err != nil || len(problems) != 0 {
		t.Errorf("promlint: %v, %+v", err, problems)
	}

	// The label values are taken: a fourth key, and a key named "other",
	// are counted as "other".
	call(g, "d", 1, false)
	call(g, "other", 1, false)
	s := scrape(t, reg, "api")
	if got := s.calls["other"]["success"]; got != 2 {
		t.Errorf(`key="other" success %v, want 2 (d's and the key "other"'s)`, got)
	}
	if got := s.state["other"]["closed"]; got != 2 {
		t.Errorf(`key="other" closed %v, want 2`, got)
	}
	if len(s.calls) != 3 || len(s.state) != 3 {
		t.Errorf("key label values %v, want a, b and other", s.calls)
	}
}

// keyScrape is one scrape of a family's per-key series: calls by key and
// result, states by key and state, and the family's calls by result.
type keyScrape struct {
	calls, state map[string]map[string]float64
	family       map[string]float64
}

func scrape(t *testing.T, reg prometheus.Gatherer, name string) keyScrape {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	s := keyScrape{calls: map[string]map[string]float64{}, state: map[string]map[string]float64{}, family: map[string]float64{}}
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			l := labels(metric)
			if l["name"] != name {
				continue
			}
			switch mf.GetName() {
			case keyCalls:
				put(s.calls, l["key"], l["result"], metric.GetCounter().GetValue())
			case keyState:
				put(s.state, l["key"], l["state"], metric.GetGauge().GetValue())
			case "resilience_keyed_breaker_calls_total":
				s.family[l["result"]] = metric.GetCounter().GetValue()
			}
		}
	}
	return s
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

func put(m map[string]map[string]float64, a, b string, v float64) {
	if m[a] == nil {
		m[a] = map[string]float64{}
	}
	m[a][b] = v
}

// checkNext fails t if a counter of next is below its value in prev, a
// counter of prev is missing from next, or next has more than limit+1
// key label values.
func checkNext(t *testing.T, prev, next keyScrape, limit int) {
	t.Helper()
	for key, rs := range prev.calls {
		for r, v := range rs {
			if w, ok := next.calls[key][r]; !ok || w < v {
				t.Errorf("calls{key=%q,result=%q} went from %v to %v (present %v)", key, r, v, w, ok)
			}
		}
	}
	if len(next.calls) > limit+1 || len(next.state) > limit+1 {
		t.Errorf("%d and %d key label values, want at most %d: %v", len(next.calls), len(next.state), limit+1, next.calls)
	}
}

// TestKeyedBreakerKeySeriesSurviveEviction: keys evicted, made anew, and
// made anew between two scrapes keep counters that never go down; the
// per-key counts add up to the family's; a key without a breaker is in
// no state; and there are never more than KeyLabels+1 key label values.
func TestKeyedBreakerKeySeriesSurviveEviction(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 2}))
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "shards", MaxKeys: 3, Breaker: resilience.BreakerConfig{FailureThreshold: 100}}))
	if err := m.Instrument(k); err != nil {
		t.Fatal(err)
	}
	live := func(want ...string) {
		t.Helper()
		if k.Len() != len(want) {
			t.Fatalf("%d keys, want %v", k.Len(), want)
		}
		for _, key := range want {
			if _, ok := k.Lookup(key); !ok {
				t.Fatalf("%s has no breaker; want %v to have one", key, want)
			}
		}
	}
	var prev keyScrape
	step := func(what string, want map[string]float64) keyScrape {
		t.Helper()
		s := scrape(t, reg, "shards")
		checkNext(t, prev, s, 2)
		got := map[string]float64{}
		var sum float64
		for key, rs := range s.calls {
			got[key] = rs["success"]
			sum += rs["success"]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: successes by key %v, want %v", what, got, want)
		}
		if sum != s.family["success"] {
			t.Errorf("%s: the keys' successes add up to %v, the family's are %v", what, sum, s.family["success"])
		}
		prev = s
		return s
	}

	call(k, "a", 3, false)
	call(k, "b", 2, false)
	call(k, "c", 1, false)
	step("a, b and c", map[string]float64{"a": 3, "b": 2, "other": 1})

	call(k, "d", 1, false) // clears every mark, evicts a
	live("b", "c", "d")
	s := step("a evicted", map[string]float64{"a": 3, "b": 2, "other": 2})
	if fmt.Sprint(s.state["a"]) != "map[closed:0 half-open:0 open:0]" {
		t.Errorf("state of a, evicted: %v, want no state", s.state["a"])
	}
	if got := s.state["other"]["closed"]; got != 2 {
		t.Errorf(`key="other" closed %v, want 2 (c, d)`, got)
	}

	call(k, "a", 1, false) // a anew, evicting b
	live("a", "c", "d")
	step("a back, b evicted", map[string]float64{"a": 4, "b": 2, "other": 2})

	// a evicted and made anew between two scrapes, with more calls than
	// its old breaker had when last scraped.
	call(k, "e", 1, false) // evicts c
	call(k, "f", 1, false) // clears every mark, evicts d
	call(k, "g", 1, false) // evicts a
	call(k, "a", 2, false) // evicts e
	live("a", "f", "g")
	step("a made anew between scrapes", map[string]float64{"a": 6, "b": 2, "other": 5})

	call(k, "b", 1, false) // b anew
	live("a", "b", "g")
	s = step("b back", map[string]float64{"a": 6, "b": 3, "other": 5})
	if got := s.state["b"]["closed"]; got != 1 {
		t.Errorf("b closed %v, want 1", got)
	}

	// Many more keys: all of them "other".
	for i := range 20 {
		call(k, fmt.Sprint("x", i), 1, false)
		step(fmt.Sprint("x", i), map[string]float64{"a": 6, "b": 3, "other": float64(6 + i)})
	}
}

// TestKeyedBreakerKeySeriesUnderLoad: scrapes run while calls through
// many keys evict one another; no counter ever goes down and the label
// values stay capped. Run with -race.
func TestKeyedBreakerKeySeriesUnderLoad(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := must(metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 3}))
	k := must(resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Name: "load", MaxKeys: 4, MaxEjectedPercent: 100, Breaker: resilience.BreakerConfig{FailureThreshold: 3}}))
	if err := m.Instrument(k); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 2000 {
				call(k, fmt.Sprint(i%(5+w)), 1, i%7 == 0)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var prev keyScrape
	for n := 0; ; n++ {
		s := scrape(t, reg, "load")
		checkNext(t, prev, s, 3)
		prev = s
		select {
		case <-done:
			if n == 0 {
				t.Log("the calls ended before a second scrape")
			}
			return
		default:
		}
	}
}

// TestKeyLabelsConfig: a negative KeyLabels is an error naming the
// field; a registry's Metrics has one Config.
func TestKeyLabelsConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	_, err := metrics.NewWithConfig(reg, metrics.Config{KeyLabels: -1})
	if err == nil || !strings.Contains(err.Error(), "metrics.Config.KeyLabels -1") || !errors.Is(err, resilience.ErrInvalidConfig) {
		t.Errorf("KeyLabels -1: %v; want an invalid-config error naming metrics.Config.KeyLabels", err)
	}
	var ce *resilience.ConfigError
	if !errors.As(err, &ce) || ce.Field != "metrics.Config.KeyLabels" {
		t.Errorf("KeyLabels -1: %#v, want a *resilience.ConfigError for metrics.Config.KeyLabels", ce)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("the failed NewWithConfig registered something: %v, %v", mfs, err)
	}

	a := must(metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 5}))
	if b, err := metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 5}); err != nil || b != a {
		t.Errorf("NewWithConfig again with the same Config = %p, %v; want the first, %p", b, err, a)
	}
	if b, err := metrics.New(reg); err != nil || b != a {
		t.Errorf("New on the registry = %p, %v; want the Metrics already there, %p", b, err, a)
	}
	if _, err := metrics.NewWithConfig(reg, metrics.Config{}); err == nil || !strings.Contains(err.Error(), "KeyLabels:5") {
		t.Errorf("NewWithConfig with another Config: %v; want an error saying which the registry has", err)
	}
	// And the other way round: New first.
	reg = prometheus.NewRegistry()
	a = must(metrics.New(reg))
	if b, err := metrics.NewWithConfig(reg, metrics.Config{}); err != nil || b != a {
		t.Errorf("NewWithConfig(Config{}) after New = %p, %v; want the first, %p", b, err, a)
	}
	if _, err := metrics.NewWithConfig(reg, metrics.Config{KeyLabels: 1}); err == nil {
		t.Error("NewWithConfig with KeyLabels after New: no error")
	}
	if _, err := metrics.NewWithConfig(nil, metrics.Config{}); err == nil || !strings.Contains(err.Error(), "nil prometheus.Registerer") {
		t.Errorf("NewWithConfig(nil): %v", err)
	}
}

// TestKeyedFamilySeries: a Keyed family of bulkheads and one of rate
// limiters are exported through their Stats, one series per result and
// the number of keys, with no key label.
func TestKeyedFamilySeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	bh := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "tenants"}, func(string) (*resilience.Bulkhead, error) {
		return resilience.NewBulkhead(resilience.BulkheadConfig{Name: "tenants", MaxConcurrent: 1})
	}))
	rl := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "quota"}, func(string) (*resilience.RateLimiter, error) {
		return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "quota", Rate: 1, Burst: 1})
	}))
	for _, s := range []resilience.Stage{bh, rl} {
		if err := m.Instrument(s); err != nil {
			t.Fatal(err)
		}
	}
	call(bh, "a", 2, false)
	call(bh, "b", 1, false)
	call(rl, "a", 2, false) // the second is over a's quota
	want := `
# HELP resilience_keyed_bulkhead_calls_total Calls through keyed_bulkhead stages, by how they ended.
# TYPE resilience_keyed_bulkhead_calls_total counter
resilience_keyed_bulkhead_calls_total{name="tenants",result="calls"} 3
resilience_keyed_bulkhead_calls_total{name="tenants",result="full"} 0
resilience_keyed_bulkhead_calls_total{name="tenants",result="rejected"} 0
# HELP resilience_keyed_bulkhead_keys Keys that have a stage.
# TYPE resilience_keyed_bulkhead_keys gauge
resilience_keyed_bulkhead_keys{name="tenants"} 3
# HELP resilience_keyed_rate_limit_calls_total Calls through keyed_rate_limit stages, by how they ended.
# TYPE resilience_keyed_rate_limit_calls_total counter
resilience_keyed_rate_limit_calls_total{name="quota",result="admitted"} 1
resilience_keyed_rate_limit_calls_total{name="quota",result="calls"} 2
resilience_keyed_rate_limit_calls_total{name="quota",result="full"} 0
resilience_keyed_rate_limit_calls_total{name="quota",result="rejected"} 1
resilience_keyed_rate_limit_calls_total{name="quota",result="waited"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"resilience_keyed_bulkhead_calls_total", "resilience_keyed_bulkhead_keys", "resilience_keyed_rate_limit_calls_total"); err != nil {
		t.Error(err)
	}
}

// TestChaosSeries: a chaos stage is exported through its Stats.
func TestChaosSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := must(metrics.New(reg))
	c := must(resilience.NewChaos(resilience.ChaosConfig{Name: "users", Rate: 0.5, Seed: 1}))
	if err := m.Instrument(c); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		resilience.Do(context.Background(), c, ok)
	}
	want := `
# HELP resilience_chaos_calls_total Calls through chaos stages, by how they ended.
# TYPE resilience_chaos_calls_total counter
resilience_chaos_calls_total{name="users",result="delayed"} 0
resilience_chaos_calls_total{name="users",result="injected"} 500
resilience_chaos_calls_total{name="users",result="passed"} 500
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resilience_chaos_calls_total"); err != nil {
		t.Error(err)
	}
}
