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

// snap is what an Observable stage says of itself, read once, outside
// every lock of this package.
type snap struct {
	kind, name      string
	results, gauges []string
	help            []string
	err             error // what is wrong with the results and gauges
}

// builtinKinds are the kinds of the stages with series of their own: a
// stage of another type may not take them.
var builtinKinds = []string{resilience.KindBreaker, resilience.KindBulkhead, resilience.KindGuard, resilience.KindRetry, resilience.KindTimeout}

// snapshot reads s's kind, name, results and gauges.
func snapshot(s resilience.Observable) *snap {
	sn := &snap{kind: s.Kind(), name: s.Name()}
	st := s.Stats()
	var errs []error
	for _, c := range st.Calls {
		if !wordRE.MatchString(c.Result) || slices.Contains(sn.results, c.Result) {
			errs = append(errs, fmt.Errorf("result %q: each must be a lowercase word ([a-z][a-z0-9_]*), once", c.Result))
		}
		sn.results = append(sn.results, c.Result)
	}
	for _, g := range st.Gauges {
		if !wordRE.MatchString(g.Name) || g.Name == "calls_total" || slices.Contains(sn.gauges, g.Name) {
			errs = append(errs, fmt.Errorf("gauge %q: each must be a lowercase word ([a-z][a-z0-9_]*) other than calls_total, once", g.Name))
		}
		sn.gauges = append(sn.gauges, g.Name)
		sn.help = append(sn.help, g.Help)
	}
	if len(sn.results) == 0 && len(sn.gauges) == 0 {
		errs = append(errs, errors.New("its Stats reports no count and no gauge"))
	}
	sn.err = errors.Join(errs...)
	return sn
}

// checkObservable reports why s, snapped as sn, cannot be instrumented, if
// it cannot. m.mu is held.
func (m *Metrics) checkObservable(s resilience.Observable, sn *snap) error {
	what := fmt.Sprintf("stage %q of kind %q (%T)", sn.name, sn.kind, s)
	if !wordRE.MatchString(sn.kind) {
		return fmt.Errorf("%s: its kind names its series (resilience_<kind>_...), so it must be a lowercase word ([a-z][a-z0-9_]*)", what)
	}
	if slices.Contains(builtinKinds, sn.kind) {
		return fmt.Errorf("%s: the kind %q is this library's own stage's: give yours a kind of its own", what, sn.kind)
	}
	if sn.name == "" {
		return fmt.Errorf("%s has no name: its name labels its series", what)
	}
	if sn.err != nil {
		return fmt.Errorf("%s: %w", what, sn.err)
	}
	if ks := m.kinds[sn.kind]; ks != nil {
		if err := ks.sameAs(what, sn); err != nil {
			return err
		}
		ks.mu.Lock()
		seen := ks.stages[sn.name]
		ks.mu.Unlock()
		if seen != nil && !same(seen, s) {
			return fmt.Errorf("another stage of kind %q named %q is already instrumented: give each its own name", sn.kind, sn.name)
		}
	}
	return nil
}

// sameShape reports an error if sn reports other results or gauges than
// the first stage of its kind in the same Instrument call, and records sn
// as that first stage otherwise.
func sameShape(sn *snap, first map[string]*snap) error {
	f, ok := first[sn.kind]
	if !ok {
		first[sn.kind] = sn
		return nil
	}
	if !slices.Equal(sn.results, f.results) || !slices.Equal(sn.gauges, f.gauges) {
		return fmt.Errorf("stage %q of kind %q reports results %q and gauges %q, but stage %q of its kind reports %q and %q: every stage of a kind must report the same",
			sn.name, sn.kind, sn.results, sn.gauges, f.name, f.results, f.gauges)
	}
	return nil
}

// sameAs reports an error if sn reports other results or gauges than the
// kind's stages already instrumented.
func (ks *kindSeries) sameAs(what string, sn *snap) error {
	if !slices.Equal(sn.results, ks.results) || !slices.Equal(sn.gauges, ks.gauges) {
		return fmt.Errorf("%s reports results %q and gauges %q, but the stages of its kind already instrumented report %q and %q: every stage of a kind must report the same",
			what, sn.results, sn.gauges, ks.results, ks.gauges)
	}
	return nil
}

// newKindSeries makes the collector for the kind of the stage snapped as
// sn, which checkObservable accepted.
func newKindSeries(sn *snap) *kindSeries {
	kind := sn.kind
	ks := &kindSeries{
		kind:    kind,
		results: sn.results,
		gauges:  sn.gauges,
		stages:  map[string]resilience.Observable{},
	}
	if len(sn.results) > 0 {
		ks.calls = prometheus.NewDesc("resilience_"+kind+"_calls_total",
			"Calls through "+kind+" stages, by how they ended.", []string{"name", "result"}, nil)
	}
	for i, g := range sn.gauges {
		h := sn.help[i]
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
