// Package metrics exports what the resilience policies do as Prometheus
// metrics.
//
// Make one Metrics per registry, and instrument each policy (or each
// preset's guard) once:
//
//	m, err := metrics.New(registry) // a prometheus.Registerer of your choice
//	if err != nil {
//		return err
//	}
//	users := presets.GRPC()
//	if err := m.Instrument(users); err != nil {
//		return err
//	}
//
// Nothing is registered on the global registry unless you pass it
// (prometheus.DefaultRegisterer). Every series is labelled with the policy's
// name and values from small fixed sets: never an error's text, never
// anything that grows with traffic. The one label that comes from the
// calls, a keyed breaker's key, is opt-in (Config.KeyLabels) and capped.
//
// # Series
//
// A circuit breaker named N gives 16 series and a histogram (10 buckets,
// so 13 more series):
//
//	resilience_circuit_breaker_state{name="N",state}                        gauge, 1 for the current state, 0 for the others
//	    state: closed, open, half-open
//	resilience_circuit_breaker_state_transitions_total{name="N",from,to}    counter
//	    from -> to: closed -> open, open -> half-open, open -> closed, half-open -> open, half-open -> closed
//	resilience_circuit_breaker_calls_total{name="N",state,result}           counter
//	    closed: success, failure, ignored; half-open: success, failure, ignored, rejected; open: rejected
//	resilience_circuit_breaker_open_duration_seconds{name="N"}             histogram
//
// The state is the one the breaker was in when the call arrived. The open
// duration is observed when the breaker closes again, and measures the time
// since it left closed: its whole outage, half-open probes and reopenings
// included.
//
// A timeout policy named N gives 4 series, a retry policy 2 histograms and
// a counter, a bulkhead 3 series:
//
//	resilience_timeout_operations_total{name="N",result}   counter; result: success, error, timeout, canceled
//	resilience_retry_attempts{name="N",result}             histogram of attempts per call; result: success, failure
//	resilience_retry_deadline_skipped_total{name="N"}      counter of calls whose next retry the deadline could not fit
//	resilience_bulkhead_in_use{name="N"}                   gauge
//	resilience_bulkhead_max_concurrent{name="N"}           gauge
//	resilience_bulkhead_rejections_total{name="N"}         counter
//
// A retry is not started when the call's deadline could not fit the wait
// before it, or, with RetryConfig.Latency, the wait and the attempt's
// predicted latency: the call ends with resilience.ErrRetryDeadline, and
// counts once in resilience_retry_deadline_skipped_total (and as a
// failure in resilience_retry_attempts). Only the policy's own stop
// counts: a call that ends with a nested policy's, as it is or wrapped in
// this one's for another cause, does not.
//
// A stage of your own that implements resilience.Observable gives, for kind K and name N,
//
//	resilience_K_calls_total{name="N",result}   counter, one series per result it reports
//	resilience_K_G{name="N"}                    gauge, for each gauge G it reports
//
// A *resilience.KeyedBreaker is one of those, of kind keyed_breaker: its
// family's calls (success, failure, ignored, rejected, capped) and its
// keys, ejected and ejection_limit gauges. With Config.KeyLabels set to
// L > 0 it also has series per key, for at most L keys and "other":
//
//	resilience_keyed_breaker_key_calls_total{name="N",key,result}   counter; result: success, failure, ignored, rejected
//	resilience_keyed_breaker_key_state{name="N",key,state}          gauge, keys in the state; state: closed, open, half-open
//
// The first L keys seen at a scrape (the busiest first, among those seen
// at once) take a key label value of their own for good; every other key
// is counted under key="other", whose state series count the keys in each
// state. A labelled key whose breaker was evicted is in no state (0 for
// all three) until it is called again, and its counter goes on from where
// it was. Keys are whatever callers send (hosts, shards, tenants), so
// without the cap they would be a label of unbounded cardinality.
//
// Every series is created, at zero, when its policy is instrumented, so
// that rates and alerts work from the first scrape.
//
// # Cost
//
// The series a call touches are resolved when the policy is instrumented,
// so recording a call is an atomic add, with no allocation, no map lookup
// and no label formatting. The calls counter spreads over cache lines when
// cores contend for it (see counter.go). The state and in-use gauges are
// read from the policies at scrape time and cost calls nothing.
// docs/PERFORMANCE.md has the figures.
package metrics

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/observe"
)

// Buckets of the histograms.
var (
	// OpenDurationBuckets are the bounds, in seconds, of
	// resilience_circuit_breaker_open_duration_seconds: from a second to
	// an hour, around the presets' cooldowns of 15s to 120s.
	OpenDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}
	// RetryAttemptsBuckets are the bounds of resilience_retry_attempts.
	RetryAttemptsBuckets = []float64{1, 2, 3, 4, 5, 6, 8, 11}
)

// Metrics is a set of Prometheus collectors for resilience policies. It is
// itself a prometheus.Collector, registered by New. It is safe for
// concurrent use.
type Metrics struct {
	transitions   *prometheus.CounterVec
	calls         *prometheus.Desc
	openDuration  *prometheus.HistogramVec
	timeoutOps    *prometheus.CounterVec
	retryAttempts *prometheus.HistogramVec
	retryDeadline *prometheus.CounterVec
	rejections    *prometheus.CounterVec
	state         *prometheus.Desc
	inUse         *prometheus.Desc
	maxConcurrent *prometheus.Desc
	keyCalls      *prometheus.Desc
	keyState      *prometheus.Desc

	cfg Config
	reg prometheus.Registerer // where the collectors of other kinds go

	mu        sync.Mutex             // guards the maps
	kinds     map[string]*kindSeries // stages of other kinds, by kind
	breakers  map[string]*breakerSeries
	bulkheads map[string]*resilience.Bulkhead
	retries   map[string]*resilience.Retry
	timeouts  map[string]*resilience.Timeout
	keyed     map[string]*keyedSeries // by name; only with cfg.KeyLabels > 0
}

// Config configures a Metrics. The zero Config is New's.
type Config struct {
	// KeyLabels is how many keys of each *resilience.KeyedBreaker have
	// series of their own (resilience_keyed_breaker_key_calls_total and
	// resilience_keyed_breaker_key_state, labelled with the key): the
	// first KeyLabels keys seen, the rest counted together under
	// key="other". 0, the default, gives no series per key at all, only
	// the family's. Each key takes 7 series; keep KeyLabels to the hosts
	// or shards you would chart one by one.
	KeyLabels int
}

// check returns a *resilience.ConfigError for each invalid field.
func (c Config) check() error {
	if c.KeyLabels < 0 {
		return &resilience.ConfigError{Field: "metrics.Config.KeyLabels", Value: c.KeyLabels,
			Reason: "must be 0 (no series per key, the default) or the most keys to give series of their own"}
	}
	return nil
}

// New makes the collectors and registers them with reg.
//
// If reg already holds the collectors of an earlier New, New returns that
// Metrics instead, so that packages sharing a registry can each call New.
// A registry holding other collectors of the same metric names is an
// error, as is a nil reg.
//
// New is NewWithConfig with the zero Config, except that it returns the
// Metrics already on reg whatever that one's Config.
func New(reg prometheus.Registerer) (*Metrics, error) {
	return newWith("New", reg, Config{}, false)
}

// NewWithConfig is New with cfg. A cfg with an invalid field is an error
// naming it, which matches resilience.ErrInvalidConfig. If reg already
// holds the collectors of an earlier New or NewWithConfig, NewWithConfig
// returns that Metrics if it has the same Config, and an error if not.
func NewWithConfig(reg prometheus.Registerer, cfg Config) (*Metrics, error) {
	return newWith("NewWithConfig", reg, cfg, true)
}

func newWith(fn string, reg prometheus.Registerer, cfg Config, strict bool) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("metrics: %s: nil prometheus.Registerer (pass prometheus.DefaultRegisterer to use the global registry)", fn)
	}
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("metrics: %s: %w", fn, err)
	}
	m := newMetrics()
	m.cfg = cfg
	m.reg = reg
	if err := reg.Register(m); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*Metrics); ok {
				if strict && existing.cfg != cfg {
					return nil, fmt.Errorf("metrics: %s: the registry already holds the collectors of a Metrics with %+v, not %+v: make the Metrics of a registry once, with one Config", fn, existing.cfg, cfg)
				}
				return existing, nil
			}
		}
		return nil, fmt.Errorf("metrics: %s: registering the resilience collectors: %w", fn, err)
	}
	return m, nil
}

func newMetrics() *Metrics {
	return &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resilience_circuit_breaker_state_transitions_total",
			Help: "State transitions of circuit breakers.",
		}, []string{"name", "from", "to"}),
		calls: prometheus.NewDesc("resilience_circuit_breaker_calls_total",
			"Calls through circuit breakers, by the state they arrived in and how they ended.",
			[]string{"name", "state", "result"}, nil),
		openDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resilience_circuit_breaker_open_duration_seconds",
			Help:    "How long circuit breakers stayed away from closed, from opening until closed again.",
			Buckets: OpenDurationBuckets,
		}, []string{"name"}),
		timeoutOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resilience_timeout_operations_total",
			Help: "Calls under timeout policies, by how they ended.",
		}, []string{"name", "result"}),
		retryAttempts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resilience_retry_attempts",
			Help:    "Attempts made by retry policies per call, by whether the call finally succeeded.",
			Buckets: RetryAttemptsBuckets,
		}, []string{"name", "result"}),
		retryDeadline: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resilience_retry_deadline_skipped_total",
			Help: "Retries not started because the call's deadline could not fit them: the wait before them, or (with RetryConfig.Latency) the wait and the attempt's predicted latency.",
		}, []string{"name"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resilience_bulkhead_rejections_total",
			Help: "Calls turned away by bulkheads.",
		}, []string{"name"}),
		state: prometheus.NewDesc("resilience_circuit_breaker_state",
			"Current state of circuit breakers: 1 for the state they are in, 0 for the others.",
			[]string{"name", "state"}, nil),
		inUse: prometheus.NewDesc("resilience_bulkhead_in_use",
			"Calls running in bulkheads.", []string{"name"}, nil),
		maxConcurrent: prometheus.NewDesc("resilience_bulkhead_max_concurrent",
			"Calls bulkheads let run at once.", []string{"name"}, nil),
		keyCalls: prometheus.NewDesc("resilience_keyed_breaker_key_calls_total",
			"Calls through the breakers of keyed breakers, by key (the first keys seen; the others as key=\"other\") and how they ended.",
			[]string{"name", "key", "result"}, nil),
		keyState: prometheus.NewDesc("resilience_keyed_breaker_key_state",
			"Keys of keyed breakers in each state: for a labelled key, 1 for the state its breaker is in and 0 for the others; for key=\"other\", how many of the other keys are in it.",
			[]string{"name", "key", "state"}, nil),
		kinds:     map[string]*kindSeries{},
		breakers:  map[string]*breakerSeries{},
		bulkheads: map[string]*resilience.Bulkhead{},
		retries:   map[string]*resilience.Retry{},
		timeouts:  map[string]*resilience.Timeout{},
		keyed:     map[string]*keyedSeries{},
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.transitions.Describe(ch)
	ch <- m.calls
	m.openDuration.Describe(ch)
	m.timeoutOps.Describe(ch)
	m.retryAttempts.Describe(ch)
	m.retryDeadline.Describe(ch)
	m.rejections.Describe(ch)
	ch <- m.state
	ch <- m.inUse
	ch <- m.maxConcurrent
	// Described whatever the Config, so that every Metrics has the same
	// descriptors and New finds the one already on a registry.
	ch <- m.keyCalls
	ch <- m.keyState
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.transitions.Collect(ch)
	m.openDuration.Collect(ch)
	m.timeoutOps.Collect(ch)
	m.retryAttempts.Collect(ch)
	m.retryDeadline.Collect(ch)
	m.rejections.Collect(ch)

	// Take the lists under the lock and read the stages outside it, so
	// that nothing the stages do (a hook that calls Instrument, say) can
	// ever wait on a scrape, nor a scrape on a slow reader of ch.
	type named[S any] struct {
		name  string
		stage S
	}
	m.mu.Lock()
	breakers := make([]named[*breakerSeries], 0, len(m.breakers))
	for name, b := range m.breakers {
		breakers = append(breakers, named[*breakerSeries]{name, b})
	}
	bulkheads := make([]named[*resilience.Bulkhead], 0, len(m.bulkheads))
	for name, b := range m.bulkheads {
		bulkheads = append(bulkheads, named[*resilience.Bulkhead]{name, b})
	}
	keyed := make([]*keyedSeries, 0, len(m.keyed))
	for _, k := range m.keyed {
		keyed = append(keyed, k)
	}
	m.mu.Unlock()

	for _, nb := range breakers {
		name, b := nb.name, nb.stage
		for s, results := range breakerCalls {
			for _, r := range results {
				ch <- prometheus.MustNewConstMetric(m.calls, prometheus.CounterValue, float64(b.calls[s][r].load()), name, s.String(), r.String())
			}
		}
		current := b.breaker.State() // a pure read: it runs no hook
		for _, s := range states {
			v := 0.0
			if s == current {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, name, s.String())
		}
	}
	for _, nb := range bulkheads {
		ch <- prometheus.MustNewConstMetric(m.inUse, prometheus.GaugeValue, float64(nb.stage.InUse()), nb.name)
		ch <- prometheus.MustNewConstMetric(m.maxConcurrent, prometheus.GaugeValue, float64(nb.stage.MaxConcurrent()), nb.name)
	}
	for _, k := range keyed {
		for _, s := range k.collect(m.keyCalls, m.keyState) {
			ch <- s
		}
	}
}

var states = [...]resilience.State{resilience.Closed, resilience.Open, resilience.HalfOpen}

// The calls a breaker can see, by state, and the transitions it can make.
var (
	breakerCalls = map[resilience.State][]resilience.CallResult{
		resilience.Closed:   {resilience.CallSucceeded, resilience.CallFailed, resilience.CallIgnored},
		resilience.HalfOpen: {resilience.CallSucceeded, resilience.CallFailed, resilience.CallIgnored, resilience.CallRejected},
		resilience.Open:     {resilience.CallRejected},
	}
	breakerTransitions = [][2]resilience.State{
		{resilience.Closed, resilience.Open},
		{resilience.Open, resilience.HalfOpen},
		{resilience.Open, resilience.Closed},
		{resilience.HalfOpen, resilience.Open},
		{resilience.HalfOpen, resilience.Closed},
	}
	timeoutResults = []resilience.TimeoutResult{resilience.TimeoutSucceeded, resilience.TimeoutFailed, resilience.TimeoutExpired, resilience.TimeoutCanceled}
)

// Instrument attaches metrics to each stage: a *resilience.Breaker, a
// *resilience.Retry, a *resilience.Timeout, a *resilience.Bulkhead, a
// stage of any kind that implements resilience.Observable, or a
// *resilience.Guard (each of those among its stages; a stage in a guard
// that reports nothing is left out).
//
// Each stage must have a name, unique among the stages of its kind on
// this Metrics: two breakers named alike would fight over one series.
// Instrumenting a stage again does nothing. Instrument checks every stage
// before it instruments any, so on error nothing has changed.
func (m *Metrics) Instrument(stages ...resilience.Stage) error {
	flat := observe.Flatten(stages) // a guard as its stages; a zero one stays, for check to report
	// What the stages of other kinds say of themselves is read before the
	// lock is taken: it is their code, which must not run under it.
	snaps := observe.Snapshots(flat, "calls_total")
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := observe.CheckAll("metrics: Instrument", flat, snaps, m.check); err != nil {
		return err
	}
	if err := m.registerKinds(snaps); err != nil {
		return err
	}
	for _, s := range flat {
		switch s := s.(type) {
		case *resilience.Breaker:
			if m.breakers[s.Name()] == nil {
				m.breakers[s.Name()] = m.instrumentBreaker(s)
			}
		case *resilience.Timeout:
			if m.timeouts[s.Name()] == nil {
				m.timeouts[s.Name()] = s
				m.instrumentTimeout(s)
			}
		case *resilience.Retry:
			if m.retries[s.Name()] == nil {
				m.retries[s.Name()] = s
				m.instrumentRetry(s)
			}
		case *resilience.Bulkhead:
			if m.bulkheads[s.Name()] == nil {
				m.bulkheads[s.Name()] = s
				m.instrumentBulkhead(s)
			}
		case *resilience.KeyedBreaker:
			// Its family's series come from its Stats, below; its keys'
			// only if asked for.
			if m.cfg.KeyLabels > 0 && m.keyed[s.Name()] == nil {
				m.keyed[s.Name()] = newKeyedSeries(s, m.cfg.KeyLabels)
			}
		}
	}
	for i, sn := range snaps {
		if sn != nil {
			ks := m.kinds[sn.Kind]
			ks.mu.Lock()
			ks.stages[sn.Name] = flat[i].(resilience.Observable)
			ks.mu.Unlock()
		}
	}
	return nil
}

// registerKinds registers a collector for each kind of the stages snapped
// that has none yet, or none at all if one fails. m.mu is held.
func (m *Metrics) registerKinds(snaps []*observe.Snap) error {
	var added []*kindSeries
	for _, sn := range snaps {
		if sn == nil || m.kinds[sn.Kind] != nil {
			continue
		}
		ks := newKindSeries(sn)
		if err := m.reg.Register(ks); err != nil {
			for _, a := range added {
				m.reg.Unregister(a)
				delete(m.kinds, a.kind)
			}
			return fmt.Errorf("metrics: Instrument: registering the series of kind %q: %w", sn.Kind, err)
		}
		m.kinds[sn.Kind] = ks
		added = append(added, ks)
	}
	return nil
}

// check reports why s cannot be instrumented, if it cannot; sn is its
// snapshot, for a stage of another kind. m.mu is held.
func (m *Metrics) check(s resilience.Stage, sn *observe.Snap) error {
	switch s := s.(type) {
	case *resilience.Breaker:
		var seen *resilience.Breaker
		if bs := m.breakers[nameOf(s)]; bs != nil {
			seen = bs.breaker
		}
		return checkName(s, "breaker", "BreakerConfig", seen)
	case *resilience.Timeout:
		return checkName(s, "timeout", "TimeoutConfig", m.timeouts[nameOf(s)])
	case *resilience.Retry:
		return checkName(s, "retry policy", "RetryConfig", m.retries[nameOf(s)])
	case *resilience.Bulkhead:
		return checkName(s, "bulkhead", "BulkheadConfig", m.bulkheads[nameOf(s)])
	case *resilience.Guard:
		if s == nil {
			return errors.New("nil *resilience.Guard")
		}
		return errors.New("a zero resilience.Guard: make it with NewGuard, Preset.Build or a preset")
	case nil:
		return errors.New("nil stage")
	}
	if observe.IsNil(s) {
		return fmt.Errorf("nil %T", s)
	}
	if o, ok := s.(resilience.Observable); ok && sn != nil {
		return m.checkObservable(o, sn)
	}
	return fmt.Errorf("stage %q of kind %q (%T) has nothing to report: implement resilience.Observable to give it series", s.Name(), s.Kind(), s)
}

// named is a stage with a name: all of them.
type named interface {
	comparable
	Name() string
}

// nameOf returns s's name, or "" for a nil s.
func nameOf[S named](s S) string {
	var zero S
	if s == zero {
		return ""
	}
	return s.Name()
}

// checkName reports why s cannot be instrumented next to seen, the stage
// of its kind already instrumented under its name, if any.
func checkName[S named](s S, kind, config string, seen S) error {
	var zero S
	if s == zero {
		return fmt.Errorf("nil %s", kind)
	}
	name := s.Name()
	if name == "" {
		return fmt.Errorf("the %s has no name: set %s.Name (or Preset.Name), which labels its series", kind, config)
	}
	if seen != zero && seen != s {
		return fmt.Errorf("another %s named %q is already instrumented: give each its own name", kind, name)
	}
	return nil
}

// breakerSeries is an instrumented breaker and its call counters.
type breakerSeries struct {
	breaker *resilience.Breaker
	calls   [len(states)][4]*counter // by state and result; nil where impossible
}

func (m *Metrics) instrumentBreaker(b *resilience.Breaker) *breakerSeries {
	name := b.Name()
	bs := &breakerSeries{breaker: b}
	for s, results := range breakerCalls {
		for _, r := range results {
			bs.calls[s][r] = new(counter)
		}
	}
	var transitions [len(states)][len(states)]prometheus.Counter
	for _, t := range breakerTransitions {
		transitions[t[0]][t[1]] = m.transitions.WithLabelValues(name, t[0].String(), t[1].String())
	}
	openDuration := m.openDuration.WithLabelValues(name)

	var (
		mu   sync.Mutex
		left time.Time // when the breaker left closed; zero while closed
	)
	b.Observe(resilience.BreakerObserver{
		Call: func(s resilience.State, r resilience.CallResult) {
			if uint(s) < uint(len(bs.calls)) && uint(r) < uint(len(bs.calls[s])) && bs.calls[s][r] != nil {
				bs.calls[s][r].inc()
			}
		},
		StateChange: func(c resilience.StateChange) {
			if uint(c.From) < uint(len(states)) && uint(c.To) < uint(len(states)) && transitions[c.From][c.To] != nil {
				transitions[c.From][c.To].Inc()
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case c.From == resilience.Closed:
				left = c.At
			case c.To == resilience.Closed && !left.IsZero():
				openDuration.Observe(c.At.Sub(left).Seconds())
				left = time.Time{}
			}
		},
	})
	return bs
}

func (m *Metrics) instrumentTimeout(t *resilience.Timeout) {
	var results [4]prometheus.Counter
	for _, r := range timeoutResults {
		results[r] = m.timeoutOps.WithLabelValues(t.Name(), r.String())
	}
	t.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
		if uint(r) < uint(len(results)) {
			results[r].Inc()
		}
	}})
}

func (m *Metrics) instrumentRetry(r *resilience.Retry) {
	name := r.Name()
	success := m.retryAttempts.WithLabelValues(name, "success")
	failure := m.retryAttempts.WithLabelValues(name, "failure")
	deadline := m.retryDeadline.WithLabelValues(name)
	r.Observe(resilience.RetryObserver{Done: func(attempts int, err error) {
		if err == nil {
			success.Observe(float64(attempts))
			return
		}
		failure.Observe(float64(attempts))
		if stoppedByDeadline(name, attempts, err) {
			deadline.Inc()
		}
	}})
}

// stoppedByDeadline reports whether err, with which a call through the
// retry policy named name ended after attempts attempts, is the policy's
// own stop before the deadline: a *resilience.RetryError of its name and
// attempts whose Cause is resilience.ErrRetryDeadline. errors.Is(err,
// resilience.ErrRetryDeadline) would say so of a nested policy's stop too,
// which the call may return as it is (an error the outer policy does not
// retry) or wrapped in the outer's for another cause (its retries
// exhausted): the first *resilience.RetryError in err is the outer's own,
// if it made one.
func stoppedByDeadline(name string, attempts int, err error) bool {
	re, ok := errors.AsType[*resilience.RetryError](err)
	return ok && re.Cause == resilience.ErrRetryDeadline && re.Name == name && re.Attempts == attempts
}

func (m *Metrics) instrumentBulkhead(b *resilience.Bulkhead) {
	rejections := m.rejections.WithLabelValues(b.Name())
	b.Observe(resilience.BulkheadObserver{Rejected: rejections.Inc})
}
