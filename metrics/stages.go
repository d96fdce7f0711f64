package metrics

import (
	"fmt"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/observe"
)

// The series of stages of any other kind than the four above come from
// resilience.Observable, one collector per kind: for a stage of kind K
// named N,
//
//	resilience_K_calls_total{name="N",result}   counter, one series per result the stage reports
//	resilience_K_G{name="N"}                    gauge, one per gauge G the stage reports
//
// Every stage of one kind reports the same results and gauges.

// kindSeries is the collector of the stages of one kind.
type kindSeries struct {
	kind    string
	results []string
	gauges  []string
	calls   *prometheus.Desc
	gauge   []*prometheus.Desc

	mu     sync.Mutex
	stages map[string]resilience.Observable // by name
}

// checkObservable reports why s, snapped as sn, cannot be instrumented, if
// it cannot. m.mu is held.
func (m *Metrics) checkObservable(s resilience.Observable, sn *observe.Snap) error {
	what := fmt.Sprintf("stage %q of kind %q (%T)", sn.Name, sn.Kind, s)
	if !observe.WordRE.MatchString(sn.Kind) {
		return fmt.Errorf("%s: its kind names its series (resilience_<kind>_...), so it must be a lowercase word ([a-z][a-z0-9_]*)", what)
	}
	if slices.Contains(observe.BuiltinKinds, sn.Kind) {
		return fmt.Errorf("%s: the kind %q is this library's own stage's: give yours a kind of its own", what, sn.Kind)
	}
	if sn.Name == "" {
		return fmt.Errorf("%s has no name: its name labels its series", what)
	}
	if sn.Err != nil {
		return fmt.Errorf("%s: %w", what, sn.Err)
	}
	if ks := m.kinds[sn.Kind]; ks != nil {
		if err := observe.SameAs(what, sn, ks.results, ks.gauges); err != nil {
			return err
		}
		ks.mu.Lock()
		seen := ks.stages[sn.Name]
		ks.mu.Unlock()
		if seen != nil && !observe.Same(seen, s) {
			return fmt.Errorf("another stage of kind %q named %q is already instrumented: give each its own name", sn.Kind, sn.Name)
		}
	}
	return nil
}

// newKindSeries makes the collector for the kind of the stage snapped as
// sn, which checkObservable accepted.
func newKindSeries(sn *observe.Snap) *kindSeries {
	kind := sn.Kind
	ks := &kindSeries{
		kind:    kind,
		results: sn.Results,
		gauges:  sn.Gauges,
		stages:  map[string]resilience.Observable{},
	}
	if len(sn.Results) > 0 {
		ks.calls = prometheus.NewDesc("resilience_"+kind+"_calls_total",
			"Calls through "+kind+" stages, by how they ended.", []string{"name", "result"}, nil)
	}
	for i, g := range sn.Gauges {
		h := sn.Help[i]
		if h == "" {
			h = "The " + g + " of " + kind + " stages."
		}
		ks.gauge = append(ks.gauge, prometheus.NewDesc("resilience_"+kind+"_"+g, h, []string{"name"}, nil))
	}
	return ks
}

// Describe implements prometheus.Collector.
func (ks *kindSeries) Describe(ch chan<- *prometheus.Desc) {
	if ks.calls != nil {
		ch <- ks.calls
	}
	for _, d := range ks.gauge {
		ch <- d
	}
}

// Collect implements prometheus.Collector. The stages are read outside
// the lock, as Metrics.Collect reads its own.
func (ks *kindSeries) Collect(ch chan<- prometheus.Metric) {
	ks.mu.Lock()
	stages := make(map[string]resilience.Observable, len(ks.stages))
	for name, s := range ks.stages {
		stages[name] = s
	}
	ks.mu.Unlock()
	for name, s := range stages {
		st := s.Stats()
		if len(st.Calls) != len(ks.results) || len(st.Gauges) != len(ks.gauges) {
			ch <- prometheus.NewInvalidMetric(ks.Desc(), fmt.Errorf("stage %q of kind %q changed the results or gauges its Stats reports", name, ks.kind))
			continue
		}
		for i, c := range st.Calls {
			if c.Result != ks.results[i] {
				ch <- prometheus.NewInvalidMetric(ks.calls, fmt.Errorf("stage %q of kind %q reported result %q where it had reported %q", name, ks.kind, c.Result, ks.results[i]))
				continue
			}
			ch <- prometheus.MustNewConstMetric(ks.calls, prometheus.CounterValue, float64(c.N), name, c.Result)
		}
		for i, g := range st.Gauges {
			if g.Name != ks.gauges[i] {
				ch <- prometheus.NewInvalidMetric(ks.gauge[i], fmt.Errorf("stage %q of kind %q reported gauge %q where it had reported %q", name, ks.kind, g.Name, ks.gauges[i]))
				continue
			}
			ch <- prometheus.MustNewConstMetric(ks.gauge[i], prometheus.GaugeValue, g.Value, name)
		}
	}
}

// Desc returns a descriptor of the kind's series, for errors.
func (ks *kindSeries) Desc() *prometheus.Desc {
	if ks.calls != nil {
		return ks.calls
	}
	return ks.gauge[0]
}
