// Package resilotel exports what the resilience stages do as OpenTelemetry
// metrics, and puts what they do to a call on the call's span.
//
// It is a module of its own, so that neither the core nor a service on
// Prometheus (package metrics) pulls in OpenTelemetry. Make one Metrics
// per MeterProvider, yours, and instrument each guard once:
//
//	m, err := resilotel.New(provider) // never the global one unless you pass it
//	if err != nil {
//		return err
//	}
//	users := presets.GRPC()
//	if err := m.Instrument(users); err != nil {
//		return err
//	}
//	if err := resilotel.TraceEvents(users); err != nil { // span events
//		return err
//	}
//
// The instruments, their units and attributes, and how they map to the
// Prometheus series of package metrics are in docs/OTEL.md. Every
// attribute comes from a small fixed set (the stage's name, a state, a
// result), never from an error's text.
//
// A retry policy's resilience.retry.deadline_skipped counts the calls it
// ended with its own resilience.ErrRetryDeadline: the retry not started
// because the call's deadline could not fit its wait, or, with
// RetryConfig.Latency, its wait and the attempt's predicted latency. A
// call that ends with a nested policy's stop, as it is or wrapped in the
// outer policy's for another cause, counts for the nested one only.
//
// # Cost
//
// The counters are observable: a call adds one to an atomic the observers
// keep, and the SDK reads them when it collects, so every combination is
// reported from the first collection, at zero, and a call through a closed
// breaker allocates nothing. The histograms are recorded as calls end,
// with attribute sets made when the stage is instrumented.
package resilotel

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/observe"
)

// ScopeName is the instrumentation scope of the meter: this package's
// import path.
const ScopeName = "github.com/resilience-go/resilience/resilotel"

// Version is the scope's version.
const Version = "0.2.0"

// Buckets of the histograms, those of package metrics.
var (
	// OpenDurationBuckets are the bounds, in seconds, of
	// resilience.circuit_breaker.open.duration.
	OpenDurationBuckets = []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600}
	// RetryAttemptsBuckets are the bounds of resilience.retry.attempts.
	RetryAttemptsBuckets = []float64{1, 2, 3, 4, 5, 6, 8, 11}
)

// The attribute keys.
var (
	attrName   = attribute.Key("resilience.name")
	attrState  = attribute.Key("resilience.state")
	attrResult = attribute.Key("resilience.result")
	attrFrom   = attribute.Key("resilience.from")
	attrTo     = attribute.Key("resilience.to")
)

// Metrics makes OpenTelemetry instruments for resilience stages, from one
// MeterProvider. It is safe for concurrent use.
type Metrics struct {
	meter metric.Meter

	breakerCalls       metric.Int64ObservableCounter
	breakerState       metric.Int64ObservableGauge
	breakerTransitions metric.Int64ObservableCounter
	openDuration       metric.Float64Histogram
	timeoutOps         metric.Int64ObservableCounter
	retryAttempts      metric.Int64Histogram
	retryDeadline      metric.Int64ObservableCounter
	bulkheadInUse      metric.Int64ObservableGauge
	bulkheadMax        metric.Int64ObservableGauge
	bulkheadRejections metric.Int64ObservableCounter

	mu        sync.Mutex // guards the maps; no stage's code runs under it
	breakers  map[string]*breakerData
	timeouts  map[string]*timeoutData
	retries   map[string]*retryData
	bulkheads map[string]*bulkheadData
	kinds     map[string]*kindData
}

// New makes the instruments from a meter of mp, which must not be nil:
// pass otel.GetMeterProvider() to use the global one.
func New(mp metric.MeterProvider) (*Metrics, error) {
	if mp == nil || reflect.ValueOf(mp).Kind() == reflect.Pointer && reflect.ValueOf(mp).IsNil() {
		return nil, errors.New("resilotel: New: nil metric.MeterProvider (pass otel.GetMeterProvider() to use the global one)")
	}
	meter := mp.Meter(ScopeName, metric.WithInstrumentationVersion(Version))
	m := &Metrics{
		meter:     meter,
		breakers:  map[string]*breakerData{},
		timeouts:  map[string]*timeoutData{},
		retries:   map[string]*retryData{},
		bulkheads: map[string]*bulkheadData{},
		kinds:     map[string]*kindData{},
	}
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	m.breakerCalls, err = meter.Int64ObservableCounter("resilience.circuit_breaker.calls", metric.WithUnit("{call}"),
		metric.WithDescription("Calls through circuit breakers, by the state they arrived in and how they ended."))
	try(err)
	m.breakerState, err = meter.Int64ObservableGauge("resilience.circuit_breaker.state", metric.WithUnit("{state}"),
		metric.WithDescription("Current state of circuit breakers: 1 for the state they are in, 0 for the others."))
	try(err)
	m.breakerTransitions, err = meter.Int64ObservableCounter("resilience.circuit_breaker.transitions", metric.WithUnit("{transition}"),
		metric.WithDescription("State transitions of circuit breakers."))
	try(err)
	m.openDuration, err = meter.Float64Histogram("resilience.circuit_breaker.open.duration", metric.WithUnit("s"),
		metric.WithDescription("How long circuit breakers stayed away from closed, from opening until closed again."),
		metric.WithExplicitBucketBoundaries(OpenDurationBuckets...))
	try(err)
	m.timeoutOps, err = meter.Int64ObservableCounter("resilience.timeout.operations", metric.WithUnit("{call}"),
		metric.WithDescription("Calls under timeout policies, by how they ended."))
	try(err)
	m.retryAttempts, err = meter.Int64Histogram("resilience.retry.attempts", metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts made by retry policies per call, by whether the call finally succeeded."),
		metric.WithExplicitBucketBoundaries(RetryAttemptsBuckets...))
	try(err)
	m.retryDeadline, err = meter.Int64ObservableCounter("resilience.retry.deadline_skipped", metric.WithUnit("{attempt}"),
		metric.WithDescription("Retries not started because the call's deadline could not fit them: the wait before them, or (with RetryConfig.Latency) the wait and the attempt's predicted latency."))
	try(err)
	m.bulkheadInUse, err = meter.Int64ObservableGauge("resilience.bulkhead.in_use", metric.WithUnit("{call}"),
		metric.WithDescription("Calls running in bulkheads."))
	try(err)
	m.bulkheadMax, err = meter.Int64ObservableGauge("resilience.bulkhead.max_concurrent", metric.WithUnit("{call}"),
		metric.WithDescription("Calls bulkheads let run at once."))
	try(err)
	m.bulkheadRejections, err = meter.Int64ObservableCounter("resilience.bulkhead.rejections", metric.WithUnit("{call}"),
		metric.WithDescription("Calls turned away by bulkheads."))
	try(err)
	if len(errs) == 0 {
		_, err = meter.RegisterCallback(m.observe, m.breakerCalls, m.breakerState, m.breakerTransitions,
			m.timeoutOps, m.retryDeadline, m.bulkheadInUse, m.bulkheadMax, m.bulkheadRejections)
		try(err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("resilotel: New: making the instruments: %w", err)
	}
	return m, nil
}

var states = [...]resilience.State{resilience.Closed, resilience.Open, resilience.HalfOpen}

// The calls a breaker can see, by state, and the transitions it can make:
// those of package metrics.
var (
	breakerCalls = [len(states)][]resilience.CallResult{
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

// breakerData is an instrumented breaker: its counts, and the attribute
// sets they are reported with.
type breakerData struct {
	breaker     *resilience.Breaker
	calls       [len(states)][4]atomic.Int64
	callAttrs   [len(states)][4]metric.MeasurementOption // nil where impossible
	transitions [len(states)][len(states)]atomic.Int64
	transAttrs  [len(states)][len(states)]metric.MeasurementOption
	stateAttrs  [len(states)]metric.MeasurementOption
}

type timeoutData struct {
	timeout *resilience.Timeout
	results [4]atomic.Int64
	attrs   [4]metric.MeasurementOption
}

type retryData struct {
	retry    *resilience.Retry
	deadline atomic.Int64 // calls the policy ended with its own ErrRetryDeadline
	attrs    metric.MeasurementOption
}

type bulkheadData struct {
	bulkhead   *resilience.Bulkhead
	rejections atomic.Int64
	attrs      metric.MeasurementOption
}

func withAttrs(kv ...attribute.KeyValue) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(kv...))
}

// observe reports the observable instruments of the built-in stages. The
// lists are copied under the lock and read outside it.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	m.mu.Lock()
	breakers := make([]*breakerData, 0, len(m.breakers))
	for _, b := range m.breakers {
		breakers = append(breakers, b)
	}
	timeouts := make([]*timeoutData, 0, len(m.timeouts))
	for _, t := range m.timeouts {
		timeouts = append(timeouts, t)
	}
	retries := make([]*retryData, 0, len(m.retries))
	for _, r := range m.retries {
		retries = append(retries, r)
	}
	bulkheads := make([]*bulkheadData, 0, len(m.bulkheads))
	for _, b := range m.bulkheads {
		bulkheads = append(bulkheads, b)
	}
	m.mu.Unlock()

	for _, b := range breakers {
		for s, results := range breakerCalls {
			for _, r := range results {
				o.ObserveInt64(m.breakerCalls, b.calls[s][r].Load(), b.callAttrs[s][r])
			}
		}
		for _, t := range breakerTransitions {
			o.ObserveInt64(m.breakerTransitions, b.transitions[t[0]][t[1]].Load(), b.transAttrs[t[0]][t[1]])
		}
		current := b.breaker.State() // a pure read: it runs no hook
		for _, s := range states {
			v := int64(0)
			if s == current {
				v = 1
			}
			o.ObserveInt64(m.breakerState, v, b.stateAttrs[s])
		}
	}
	for _, t := range timeouts {
		for _, r := range timeoutResults {
			o.ObserveInt64(m.timeoutOps, t.results[r].Load(), t.attrs[r])
		}
	}
	for _, r := range retries {
		o.ObserveInt64(m.retryDeadline, r.deadline.Load(), r.attrs)
	}
	for _, b := range bulkheads {
		o.ObserveInt64(m.bulkheadInUse, int64(b.bulkhead.InUse()), b.attrs)
		o.ObserveInt64(m.bulkheadMax, int64(b.bulkhead.MaxConcurrent()), b.attrs)
		o.ObserveInt64(m.bulkheadRejections, b.rejections.Load(), b.attrs)
	}
	return nil
}

// Instrument attaches instruments to each stage: a *resilience.Breaker,
// *resilience.Retry, *resilience.Timeout or *resilience.Bulkhead, a stage
// of any kind that implements resilience.Observable (a KeyedBreaker, a
// RateLimiter, a Throttler, a RetryBudget, a Keyed family, a Chaos stage,
// one of your own), or a *resilience.Guard (each of those among its
// stages; a stage in a guard that reports nothing is left out).
//
// Each stage must have a name, unique among the stages of its kind on
// this Metrics. Instrumenting a stage again does nothing. Instrument
// checks every stage before it instruments any, so on error nothing has
// changed. These are the rules of package metrics, whose Instrument the
// same guard may also be given.
func (m *Metrics) Instrument(stages ...resilience.Stage) error {
	flat := observe.Flatten(stages) // a guard as its stages; a zero one stays, for check to report
	// What the stages of other kinds say of themselves is read before the
	// lock is taken: it is their code, which must not run under it.
	snaps := observe.Snapshots(flat, "calls")
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := observe.CheckAll("resilotel: Instrument", flat, snaps, m.check); err != nil {
		return err
	}
	if err := m.makeKinds(snaps); err != nil {
		return err
	}
	for i, s := range flat {
		switch s := s.(type) {
		case *resilience.Breaker:
			if m.breakers[s.Name()] == nil {
				m.breakers[s.Name()] = m.instrumentBreaker(s)
			}
		case *resilience.Timeout:
			if m.timeouts[s.Name()] == nil {
				m.timeouts[s.Name()] = instrumentTimeout(s)
			}
		case *resilience.Retry:
			if m.retries[s.Name()] == nil {
				m.retries[s.Name()] = m.instrumentRetry(s)
			}
		case *resilience.Bulkhead:
			if m.bulkheads[s.Name()] == nil {
				m.bulkheads[s.Name()] = instrumentBulkhead(s)
			}
		default:
			if sn := snaps[i]; sn != nil {
				kd := m.kinds[sn.Kind]
				if kd.stages[sn.Name] == nil {
					kd.stages[sn.Name] = &kindStage{stage: s.(resilience.Observable), attrs: withAttrs(attrName.String(sn.Name))}
					for _, r := range kd.results {
						kd.stages[sn.Name].results = append(kd.stages[sn.Name].results, withAttrs(attrName.String(sn.Name), attrResult.String(r)))
					}
				}
			}
		}
	}
	return nil
}

func (m *Metrics) instrumentBreaker(b *resilience.Breaker) *breakerData {
	name := b.Name()
	d := &breakerData{breaker: b}
	for s, results := range breakerCalls {
		for _, r := range results {
			d.callAttrs[s][r] = withAttrs(attrName.String(name), attrState.String(resilience.State(s).String()), attrResult.String(r.String()))
		}
	}
	for _, t := range breakerTransitions {
		d.transAttrs[t[0]][t[1]] = withAttrs(attrName.String(name), attrFrom.String(t[0].String()), attrTo.String(t[1].String()))
	}
	for _, s := range states {
		d.stateAttrs[s] = withAttrs(attrName.String(name), attrState.String(s.String()))
	}
	openAttrs := []metric.RecordOption{withAttrs(attrName.String(name))}
	var (
		mu   sync.Mutex
		left time.Time // when the breaker left closed; zero while closed
	)
	b.Observe(resilience.BreakerObserver{
		Call: func(s resilience.State, r resilience.CallResult) {
			if uint(s) < uint(len(d.calls)) && uint(r) < uint(len(d.calls[s])) && d.callAttrs[s][r] != nil {
				d.calls[s][r].Add(1)
			}
		},
		StateChange: func(c resilience.StateChange) {
			if uint(c.From) < uint(len(states)) && uint(c.To) < uint(len(states)) {
				d.transitions[c.From][c.To].Add(1)
			}
			mu.Lock()
			var open time.Duration
			closed := false
			switch {
			case c.From == resilience.Closed:
				left = c.At
			case c.To == resilience.Closed && !left.IsZero():
				open, closed = c.At.Sub(left), true
				left = time.Time{}
			}
			mu.Unlock()
			if closed {
				m.openDuration.Record(context.Background(), open.Seconds(), openAttrs...)
			}
		},
	})
	return d
}

func instrumentTimeout(t *resilience.Timeout) *timeoutData {
	d := &timeoutData{timeout: t}
	for _, r := range timeoutResults {
		d.attrs[r] = withAttrs(attrName.String(t.Name()), attrResult.String(r.String()))
	}
	t.Observe(resilience.TimeoutObserver{Done: func(r resilience.TimeoutResult) {
		if uint(r) < uint(len(d.results)) {
			d.results[r].Add(1)
		}
	}})
	return d
}

func (m *Metrics) instrumentRetry(r *resilience.Retry) *retryData {
	name := r.Name()
	d := &retryData{retry: r, attrs: withAttrs(attrName.String(name))}
	success := []metric.RecordOption{withAttrs(attrName.String(name), attrResult.String("success"))}
	failure := []metric.RecordOption{withAttrs(attrName.String(name), attrResult.String("failure"))}
	h := m.retryAttempts
	r.Observe(resilience.RetryObserver{Done: func(attempts int, err error) {
		if err == nil {
			h.Record(context.Background(), int64(attempts), success...)
			return
		}
		h.Record(context.Background(), int64(attempts), failure...)
		if stoppedByDeadline(name, attempts, err) {
			d.deadline.Add(1)
		}
	}})
	return d
}

// stoppedByDeadline reports whether err, with which a call through the
// retry policy named name ended after attempts attempts, is the policy's
// own stop before the deadline: a *resilience.RetryError of its name and
// attempts whose Cause is resilience.ErrRetryDeadline. errors.Is(err,
// resilience.ErrRetryDeadline) would say so of a nested policy's stop too,
// which the call may return as it is (an error the outer policy does not
// retry) or wrapped in the outer's for another cause (its retries
// exhausted): the first *resilience.RetryError in err is the outer's own,
// if it made one. Package metrics decides alike.
func stoppedByDeadline(name string, attempts int, err error) bool {
	re, ok := errors.AsType[*resilience.RetryError](err)
	return ok && re.Cause == resilience.ErrRetryDeadline && re.Name == name && re.Attempts == attempts
}

func instrumentBulkhead(b *resilience.Bulkhead) *bulkheadData {
	d := &bulkheadData{bulkhead: b, attrs: withAttrs(attrName.String(b.Name()))}
	b.Observe(resilience.BulkheadObserver{Rejected: func() { d.rejections.Add(1) }})
	return d
}

// The instruments of stages of any other kind come from
// resilience.Observable: for a stage of kind K named N,
// resilience.K.calls{resilience.name=N, resilience.result} and a gauge
// resilience.K.G{resilience.name=N} for each gauge G it reports.

// kindData is the instruments of one kind, and its stages.
type kindData struct {
	kind            string
	results, gauges []string
	calls           metric.Int64ObservableCounter // nil if the kind reports no results
	gauge           []metric.Float64ObservableGauge
	stages          map[string]*kindStage // by name; guarded by Metrics.mu
}

type kindStage struct {
	stage   resilience.Observable
	attrs   metric.MeasurementOption   // the name alone
	results []metric.MeasurementOption // the name and each result
}

// check reports why s cannot be instrumented, if it cannot. m.mu is held.
func (m *Metrics) check(s resilience.Stage, sn *observe.Snap) error {
	switch s := s.(type) {
	case *resilience.Breaker:
		var seen *resilience.Breaker
		if s != nil && m.breakers[s.Name()] != nil {
			seen = m.breakers[s.Name()].breaker
		}
		return checkName(s, "breaker", "BreakerConfig", seen)
	case *resilience.Timeout:
		var seen *resilience.Timeout
		if s != nil && m.timeouts[s.Name()] != nil {
			seen = m.timeouts[s.Name()].timeout
		}
		return checkName(s, "timeout", "TimeoutConfig", seen)
	case *resilience.Retry:
		var seen *resilience.Retry
		if s != nil && m.retries[s.Name()] != nil {
			seen = m.retries[s.Name()].retry
		}
		return checkName(s, "retry policy", "RetryConfig", seen)
	case *resilience.Bulkhead:
		var seen *resilience.Bulkhead
		if s != nil && m.bulkheads[s.Name()] != nil {
			seen = m.bulkheads[s.Name()].bulkhead
		}
		return checkName(s, "bulkhead", "BulkheadConfig", seen)
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
	if _, ok := s.(resilience.Observable); ok && sn != nil {
		return m.checkObservable(s, sn)
	}
	return fmt.Errorf("stage %q of kind %q (%T) has nothing to report: implement resilience.Observable to give it instruments", s.Name(), s.Kind(), s)
}

// checkName reports why s cannot be instrumented next to seen, the stage
// of its kind instrumented under its name, if any.
func checkName[S interface {
	comparable
	Name() string
}](s S, kind, config string, seen S) error {
	var zero S
	if s == zero {
		return fmt.Errorf("nil %s", kind)
	}
	if s.Name() == "" {
		return fmt.Errorf("the %s has no name: set %s.Name (or Preset.Name), which is its resilience.name attribute", kind, config)
	}
	if seen != zero && seen != s {
		return fmt.Errorf("another %s named %q is already instrumented: give each its own name", kind, s.Name())
	}
	return nil
}

func (m *Metrics) checkObservable(s resilience.Stage, sn *observe.Snap) error {
	what := fmt.Sprintf("stage %q of kind %q (%T)", sn.Name, sn.Kind, s)
	if !observe.WordRE.MatchString(sn.Kind) {
		return fmt.Errorf("%s: its kind names its instruments (resilience.<kind>...), so it must be a lowercase word ([a-z][a-z0-9_]*)", what)
	}
	if slices.Contains(observe.BuiltinKinds, sn.Kind) {
		return fmt.Errorf("%s: the kind %q is this library's own stage's: give yours a kind of its own", what, sn.Kind)
	}
	if sn.Kind == breakerNamespace {
		return fmt.Errorf("%s: the kind %q names the breakers' instruments (resilience.%s...): give yours a kind of its own", what, sn.Kind, sn.Kind)
	}
	if sn.Name == "" {
		return fmt.Errorf("%s has no name: its name is its resilience.name attribute", what)
	}
	if sn.Err != nil {
		return fmt.Errorf("%s: %w", what, sn.Err)
	}
	for _, g := range append([]string{"calls"}, sn.Gauges...) {
		if n := "resilience." + sn.Kind + "." + g; len(n) > maxNameLen {
			return fmt.Errorf("%s: its instrument %s would be longer than the %d characters OpenTelemetry allows: shorten its kind or its gauges' names", what, n, maxNameLen)
		}
	}
	if kd := m.kinds[sn.Kind]; kd != nil {
		if err := observe.SameAs(what, sn, kd.results, kd.gauges); err != nil {
			return err
		}
		if seen := kd.stages[sn.Name]; seen != nil && !observe.Same(seen.stage, s) {
			return fmt.Errorf("another stage of kind %q named %q is already instrumented: give each its own name", sn.Kind, sn.Name)
		}
	}
	return nil
}

// breakerNamespace is the namespace of the breakers' instruments: a stage
// of kind circuit_breaker would make a second
// resilience.circuit_breaker.calls, which the SDK, unlike a Prometheus
// registry, does not refuse.
const breakerNamespace = "circuit_breaker"

// maxNameLen is the longest instrument name OpenTelemetry allows.
const maxNameLen = 255

// makeKinds makes the instruments of each kind snapped that has none yet,
// or, if the meter refuses one, of none: the callbacks it registered are
// unregistered again, so that a later Instrument starts afresh. m.mu is
// held.
func (m *Metrics) makeKinds(snaps []*observe.Snap) error {
	made := map[string]*kindData{}
	var regs []metric.Registration
	fail := func(kind string, err error) error {
		for _, r := range regs {
			_ = r.Unregister() // its instruments stay, with nothing to report
		}
		return fmt.Errorf("resilotel: Instrument: the instruments of kind %q: %w", kind, err)
	}
	for _, sn := range snaps {
		if sn == nil || m.kinds[sn.Kind] != nil || made[sn.Kind] != nil {
			continue
		}
		kd := &kindData{kind: sn.Kind, results: sn.Results, gauges: sn.Gauges, stages: map[string]*kindStage{}}
		var insts []metric.Observable
		if len(sn.Results) > 0 {
			c, err := m.meter.Int64ObservableCounter("resilience."+sn.Kind+".calls", metric.WithUnit("{call}"),
				metric.WithDescription("Calls through "+sn.Kind+" stages, by how they ended."))
			if err != nil {
				return fail(sn.Kind, err)
			}
			kd.calls = c
			insts = append(insts, c)
		}
		for i, g := range sn.Gauges {
			help := sn.Help[i]
			if help == "" {
				help = "The " + g + " of " + sn.Kind + " stages."
			}
			gi, err := m.meter.Float64ObservableGauge("resilience."+sn.Kind+"."+g, metric.WithDescription(help))
			if err != nil {
				return fail(sn.Kind, err)
			}
			kd.gauge = append(kd.gauge, gi)
			insts = append(insts, gi)
		}
		r, err := m.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
			m.observeKind(kd, o)
			return nil
		}, insts...)
		if err != nil {
			return fail(sn.Kind, err)
		}
		regs = append(regs, r)
		made[sn.Kind] = kd
	}
	for kind, kd := range made {
		m.kinds[kind] = kd
	}
	return nil
}

// observeKind reports the stages of one kind, read outside the lock.
// What a stage reports in another shape than when it was instrumented is
// left out, with an error to the SDK's error handler (otel.Handle), as
// package metrics reports it to the registry; the other stages' points
// are reported all the same.
func (m *Metrics) observeKind(kd *kindData, o metric.Observer) {
	type named struct {
		name  string
		stage *kindStage
	}
	m.mu.Lock()
	stages := make([]named, 0, len(kd.stages))
	for name, ks := range kd.stages {
		stages = append(stages, named{name, ks})
	}
	m.mu.Unlock()
	for _, n := range stages {
		ks := n.stage
		st := ks.stage.Stats()
		if len(st.Calls) != len(kd.results) || len(st.Gauges) != len(kd.gauges) {
			otel.Handle(fmt.Errorf("resilotel: stage %q of kind %q changed the results or gauges its Stats reports", n.name, kd.kind))
			continue
		}
		for i, c := range st.Calls {
			if c.Result != kd.results[i] {
				otel.Handle(fmt.Errorf("resilotel: stage %q of kind %q reported result %q where it had reported %q", n.name, kd.kind, c.Result, kd.results[i]))
				continue
			}
			o.ObserveInt64(kd.calls, int64(c.N), ks.results[i])
		}
		for i, g := range st.Gauges {
			if g.Name != kd.gauges[i] {
				otel.Handle(fmt.Errorf("resilotel: stage %q of kind %q reported gauge %q where it had reported %q", n.name, kd.kind, g.Name, kd.gauges[i]))
				continue
			}
			o.ObserveFloat64(kd.gauge[i], g.Value, ks.attrs)
		}
	}
}
