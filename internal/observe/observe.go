// Package observe holds what the exporters of this repository (package
// metrics for Prometheus, resilotel for OpenTelemetry) share: which
// stages of a guard have something to report, and what a
// resilience.Observable stage says of itself, checked the same way for
// both.
package observe

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"

	"github.com/resilience-go/resilience"
)

// WordRE is what a kind, a result and a gauge name may be: a word that
// fits a Prometheus metric name and an OpenTelemetry instrument name.
var WordRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// BuiltinKinds are the kinds of the stages with instruments of their
// own: a stage of another type may not take them.
var BuiltinKinds = []string{resilience.KindBreaker, resilience.KindBulkhead, resilience.KindGuard, resilience.KindRetry, resilience.KindTimeout}

// Flatten returns stages with each made Guard replaced by those of its
// stages that report something (the four built-in ones and any
// Observable); a nil or zero Guard stays, for the exporter to report.
func Flatten(stages []resilience.Stage) []resilience.Stage {
	var flat []resilience.Stage
	for _, s := range stages {
		if g, ok := s.(*resilience.Guard); ok && g != nil && g.Stages() != nil {
			for _, gs := range g.Stages() {
				switch gs.(type) {
				case *resilience.Breaker, *resilience.Timeout, *resilience.Retry, *resilience.Bulkhead, resilience.Observable:
					flat = append(flat, gs)
				} // a stage that reports nothing is left out
			}
			continue
		}
		flat = append(flat, s)
	}
	return flat
}

// Snap is what an Observable stage says of itself, read once, outside
// every lock of the exporter.
type Snap struct {
	Kind, Name      string
	Results, Gauges []string
	Help            []string
	Err             error // what is wrong with the results and gauges
}

// Snapshot reads s's kind, name, results and gauges. reserved is the
// gauge name the exporter takes for the calls counter ("calls_total",
// "calls"), which no gauge may have.
func Snapshot(s resilience.Observable, reserved string) *Snap {
	sn := &Snap{Kind: s.Kind(), Name: s.Name()}
	st := s.Stats()
	var errs []error
	for _, c := range st.Calls {
		if !WordRE.MatchString(c.Result) || slices.Contains(sn.Results, c.Result) {
			errs = append(errs, fmt.Errorf("result %q: each must be a lowercase word ([a-z][a-z0-9_]*), once", c.Result))
		}
		sn.Results = append(sn.Results, c.Result)
	}
	for _, g := range st.Gauges {
		if !WordRE.MatchString(g.Name) || g.Name == reserved || slices.Contains(sn.Gauges, g.Name) {
			errs = append(errs, fmt.Errorf("gauge %q: each must be a lowercase word ([a-z][a-z0-9_]*) other than %s, once", g.Name, reserved))
		}
		sn.Gauges = append(sn.Gauges, g.Name)
		sn.Help = append(sn.Help, g.Help)
	}
	if len(sn.Results) == 0 && len(sn.Gauges) == 0 {
		errs = append(errs, errors.New("its Stats reports no count and no gauge"))
	}
	sn.Err = errors.Join(errs...)
	return sn
}

// SameShape reports an error if sn reports other results or gauges than
// the first stage of its kind in the same Instrument call, and records sn
// as that first stage otherwise.
func SameShape(sn *Snap, first map[string]*Snap) error {
	f, ok := first[sn.Kind]
	if !ok {
		first[sn.Kind] = sn
		return nil
	}
	if !slices.Equal(sn.Results, f.Results) || !slices.Equal(sn.Gauges, f.Gauges) {
		return fmt.Errorf("stage %q of kind %q reports results %q and gauges %q, but stage %q of its kind reports %q and %q: every stage of a kind must report the same",
			sn.Name, sn.Kind, sn.Results, sn.Gauges, f.Name, f.Results, f.Gauges)
	}
	return nil
}

// SameAs reports an error if sn reports other results or gauges than the
// kind's stages already instrumented, which report results and gauges.
func SameAs(what string, sn *Snap, results, gauges []string) error {
	if !slices.Equal(sn.Results, results) || !slices.Equal(sn.Gauges, gauges) {
		return fmt.Errorf("%s reports results %q and gauges %q, but the stages of its kind already instrumented report %q and %q: every stage of a kind must report the same",
			what, sn.Results, sn.Gauges, results, gauges)
	}
	return nil
}

// IsNil reports whether s holds a nil pointer.
func IsNil(s any) bool {
	v := reflect.ValueOf(s)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// Same reports whether a and b are the same stage; stages of a type that
// cannot be compared are never the same.
func Same(a, b resilience.Stage) bool {
	t := reflect.TypeOf(a)
	return t == reflect.TypeOf(b) && t.Comparable() && a == b
}

// Builtin reports whether s is one of the four stages with instruments
// of their own.
func Builtin(s resilience.Stage) bool {
	switch s.(type) {
	case *resilience.Breaker, *resilience.Timeout, *resilience.Retry, *resilience.Bulkhead:
		return true
	}
	return false
}

// Snapshots returns the snapshot of each stage of flat that is an
// Observable of another kind than the four built-in ones, nil for the
// others. It runs the stages' own code: call it before taking a lock.
func Snapshots(flat []resilience.Stage, reserved string) []*Snap {
	snaps := make([]*Snap, len(flat))
	for i, s := range flat {
		if o, ok := s.(resilience.Observable); ok && !Builtin(s) && !IsNil(s) {
			snaps[i] = Snapshot(o, reserved)
		}
	}
	return snaps
}

// CheckAll checks the stages of one Instrument call, flat with their
// snapshots: check says what is wrong with a stage on its own, and
// CheckAll adds what is wrong between them (two stages of a kind with one
// name, or reporting other results or gauges). It returns every error,
// each prefixed with prefix, joined; nil if every stage may be
// instrumented.
func CheckAll(prefix string, flat []resilience.Stage, snaps []*Snap, check func(resilience.Stage, *Snap) error) error {
	var errs []error
	type key struct{ kind, name string }
	batch := map[key]resilience.Stage{} // the stages of this call
	shapes := map[string]*Snap{}        // the first of each kind in this call
	for i, s := range flat {
		err := check(s, snaps[i])
		if err == nil && snaps[i] != nil {
			err = SameShape(snaps[i], shapes)
		}
		if err == nil {
			k := key{s.Kind(), s.Name()}
			if sn := snaps[i]; sn != nil {
				k = key{sn.Kind, sn.Name}
			}
			if other, ok := batch[k]; ok && !Same(other, s) {
				err = fmt.Errorf("two stages of kind %s named %q: give each its own name", k.kind, k.name)
			}
			batch[k] = s
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
		}
	}
	return errors.Join(errs...)
}
