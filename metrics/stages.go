package metrics

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
)

// The series of stages of any other kind than the four above come from
// resilience.Observable, one collector per kind: for a stage of kind K
// named N,
//
//	resilience_K_calls_total{name="N",result}   counter, one series per result the stage reports
//	resilience_K_G{name="N"}                    gauge, one per gauge G the stage reports
//
// Every stage of one kind reports the same results and gauges.

// wordRE is what a kind, a result and a gauge name may be: a word that
// fits a Prometheus metric name.
var wordRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

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

// shape returns the results and gauges s reports, or an error saying what
// is wrong with them.
func shape(s resilience.Observable) (results, gauges []string, help []string, err error) {
	st := s.Stats()
	var errs []error
	for _, c := range st.Calls {
		if !wordRE.MatchString(c.Result) || slices.Contains(results, c.Result) {
			errs = append(errs, fmt.Errorf("result %q: each must be a lowercase word ([a-z][a-z0-9_]*), once", c.Result))
		}
		results = append(results, c.Result)
	}
	for _, g := range st.Gauges {
		if !wordRE.MatchString(g.Name) || g.Name == "calls_total" || slices.Contains(gauges, g.Name) {
			errs = append(errs, fmt.Errorf("gauge %q: each must be a lowercase word ([a-z][a-z0-9_]*) other than calls_total, once", g.Name))
		}
		gauges = append(gauges, g.Name)
		help = append(help, g.Help)
	}
	if len(results) == 0 && len(gauges) == 0 {
		errs = append(errs, errors.New("Stats reports no count and no gauge"))
	}
	return results, gauges, help, errors.Join(errs...)
}

// checkObservable reports why s cannot be instrumented, if it cannot.
func (m *Metrics) checkObservable(s resilience.Observable) error {
	kind, name := s.Kind(), s.Name()
	what := fmt.Sprintf("stage %q of kind %q (%T)", name, kind, s)
	if !wordRE.MatchString(kind) {
		return fmt.Errorf("%s: its kind names its series (resilience_<kind>_...), so it must be a lowercase word ([a-z][a-z0-9_]*)", what)
	}
	if name == "" {
		return fmt.Errorf("%s has no name: its name labels its series", what)
	}
	results, gauges, _, err := shape(s)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if ks := m.kinds[kind]; ks != nil {
		if !slices.Equal(results, ks.results) || !slices.Equal(gauges, ks.gauges) {
			return fmt.Errorf("%s reports results %q and gauges %q, but the stages of its kind already instrumented report %q and %q: every stage of a kind must report the same",
				what, results, gauges, ks.results, ks.gauges)
		}
		ks.mu.Lock()
		seen := ks.stages[name]
		ks.mu.Unlock()
		if seen != nil && seen != s {
			return fmt.Errorf("another stage of kind %q named %q is already instrumented: give each its own name", kind, name)
		}
	}
	return nil
}

// newKindSeries makes the collector for the kind of s, which checkObservable
// accepted.
func newKindSeries(s resilience.Observable) *kindSeries {
	kind := s.Kind()
	results, gauges, help, _ := shape(s)
	ks := &kindSeries{
		kind:    kind,
		results: results,
		gauges:  gauges,
		stages:  map[string]resilience.Observable{},
	}
	if len(results) > 0 {
		ks.calls = prometheus.NewDesc("resilience_"+kind+"_calls_total",
			"Calls through "+kind+" stages, by how they ended.", []string{"name", "result"}, nil)
	}
	for i, g := range gauges {
		h := help[i]
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
