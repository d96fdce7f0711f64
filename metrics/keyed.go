package metrics

import (
	"cmp"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resilience-go/resilience"
)

// A KeyedBreaker is an Observable stage: its family's series
// (resilience_keyed_breaker_calls_total and the keys, ejected and
// ejection_limit gauges) come from its Stats, as any stage's of its own
// kind. With Config.KeyLabels above zero it also has series per key,
// collected here:
//
//	resilience_keyed_breaker_key_calls_total{name="N",key,result}   counter; result: success, failure, ignored, rejected
//	resilience_keyed_breaker_key_state{name="N",key,state}          gauge: keys in the state; state: closed, open, half-open
//
// The first KeyLabels keys seen at a scrape take a key label value of
// their own, for good; every other key is counted under key="other".

// otherKey is the key label value of the keys without one of their own.
const otherKey = "other"

// keyResults are the results of the per-key calls counter, in the order
// of the counts kept for each key.
var keyResults = [...]string{"success", "failure", "ignored", "rejected"}

// keyedSeries is an instrumented KeyedBreaker and the running totals of
// its per-key series.
type keyedSeries struct {
	k     *resilience.KeyedBreaker
	limit int // Config.KeyLabels

	// mu is held through a whole scrape of k, reads and updates: two
	// scrapes that applied their reads out of order would take the older
	// counts for a new breaker's and count them again.
	mu      sync.Mutex
	labeled []*keyTotals // the keys with a label value of their own, in the order they took it
	byKey   map[string]*keyTotals
	other   [len(keyResults)]uint64 // exported for key="other"
}

// keyTotals is the running total of one labelled key.
type keyTotals struct {
	key string
	// b is the breaker its counts were last read from, nil while the key
	// has none; last holds those counts.
	b     *resilience.Breaker
	last  [len(keyResults)]uint64
	total [len(keyResults)]uint64 // exported: only grows
}

func newKeyedSeries(k *resilience.KeyedBreaker, limit int) *keyedSeries {
	return &keyedSeries{k: k, limit: limit, byKey: map[string]*keyTotals{}}
}

// labelable reports whether key may have a label value of its own: a
// label value must be UTF-8, and "other" is the bucket's.
func labelable(key string) bool { return key != otherKey && utf8.ValidString(key) }

// counts returns cs as counts by keyResults; results it does not know are
// left out.
func counts(cs []resilience.Count) [len(keyResults)]uint64 {
	var n [len(keyResults)]uint64
	for _, c := range cs {
		if i := slices.Index(keyResults[:], c.Result); i >= 0 {
			n[i] = c.N
		}
	}
	return n
}

// collect returns the family's per-key series, to be sent once ks.mu is
// released: a slow reader of the channel never holds up another scrape.
//
// A labelled key's total adds, at each scrape, its calls since the last
// one: the difference of its counts when its breaker is the one read last
// time, all its counts when the breaker is new (the key was evicted and
// made again since; its old breaker's calls after the last scrape cannot
// be told apart any more, and fall to "other"). "other" is the family's
// total, evicted keys included, less the labelled keys' totals, and never
// goes down. So the per-key counts add up to the family's, and none of
// them ever decreases, whatever is evicted.
func (ks *keyedSeries) collect(calls, state *prometheus.Desc) []prometheus.Metric {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	name := ks.k.Name()

	// The labelled keys' breakers before their counts and after (see
	// update), the family's counts last: they then hold at least every
	// call counted for the keys.
	before := make(map[*keyTotals]*resilience.Breaker, len(ks.labeled))
	for _, t := range ks.labeled {
		before[t], _ = ks.k.Lookup(t.key)
	}
	keys := ks.k.Keys()
	live := make(map[*keyTotals]resilience.State, len(ks.labeled))
	var otherStates [len(states)]float64
	var fresh []resilience.KeyStats
	for _, kst := range keys {
		t := ks.byKey[kst.Key]
		if t == nil {
			if labelable(kst.Key) && len(ks.labeled) < ks.limit {
				fresh = append(fresh, kst)
			} else if uint(kst.State) < uint(len(otherStates)) {
				otherStates[kst.State]++
			}
			continue
		}
		live[t] = kst.State
		ks.update(t, kst, before[t], true)
	}
	// New keys take the label values left, the busiest first.
	slices.SortFunc(fresh, func(a, b resilience.KeyStats) int {
		return cmp.Or(cmp.Compare(sum(counts(b.Calls)), sum(counts(a.Calls))), cmp.Compare(a.Key, b.Key))
	})
	for _, kst := range fresh {
		if len(ks.labeled) == ks.limit {
			if uint(kst.State) < uint(len(otherStates)) {
				otherStates[kst.State]++
			}
			continue
		}
		t := &keyTotals{key: kst.Key}
		ks.labeled = append(ks.labeled, t)
		ks.byKey[t.key] = t
		live[t] = kst.State
		ks.update(t, kst, nil, false)
	}
	for _, t := range ks.labeled {
		if _, ok := live[t]; !ok { // evicted: its next breaker counts from zero
			t.b, t.last = nil, [len(keyResults)]uint64{}
		}
	}

	family := counts(ks.k.Stats().Calls)
	for i := range keyResults {
		var labeled uint64
		for _, t := range ks.labeled {
			labeled += t.total[i]
		}
		if family[i] > labeled {
			ks.other[i] = max(ks.other[i], family[i]-labeled)
		}
	}

	out := make([]prometheus.Metric, 0, (len(ks.labeled)+1)*(len(keyResults)+len(states)))
	for _, t := range ks.labeled {
		for i, r := range keyResults {
			out = append(out, prometheus.MustNewConstMetric(calls, prometheus.CounterValue, float64(t.total[i]), name, t.key, r))
		}
		s, ok := live[t]
		for _, st := range states {
			v := 0.0 // a key without a breaker is in no state
			if ok && s == st {
				v = 1
			}
			out = append(out, prometheus.MustNewConstMetric(state, prometheus.GaugeValue, v, name, t.key, st.String()))
		}
	}
	for i, r := range keyResults {
		out = append(out, prometheus.MustNewConstMetric(calls, prometheus.CounterValue, float64(ks.other[i]), name, otherKey, r))
	}
	for _, st := range states {
		out = append(out, prometheus.MustNewConstMetric(state, prometheus.GaugeValue, otherStates[st], name, otherKey, st.String()))
	}
	return out
}

// update adds to t's total the calls kst counts since t was last read:
// all of them if they are a new breaker's, else the difference. ks.mu is
// held.
//
// Which breaker kst's counts are is told by looking the key up before
// Keys (seen, if t had a label then) and after. The same breaker both
// times is the one Keys read. Two different ones, or none, mean the key
// was evicted or made anew meanwhile: the counts could be either's, and
// are left for the next scrape, which counts the newer breaker's in full.
// Taking them for the breaker found after would count the older one's
// twice. A key new to t has no earlier counts to mistake: its breaker is
// the one found after, or a newer one, whose counts the next scrape takes
// in full.
func (ks *keyedSeries) update(t *keyTotals, kst resilience.KeyStats, seen *resilience.Breaker, labeled bool) {
	b, _ := ks.k.Lookup(kst.Key)
	if labeled && (seen == nil || seen != b) {
		return
	}
	cur := counts(kst.Calls)
	anew := b != t.b
	for i := range cur {
		anew = anew || cur[i] < t.last[i]
	}
	for i := range cur {
		if anew {
			t.total[i] += cur[i]
		} else {
			t.total[i] += cur[i] - t.last[i]
		}
	}
	t.b, t.last = b, cur
}

func sum(n [len(keyResults)]uint64) uint64 {
	var s uint64
	for _, v := range n {
		s += v
	}
	return s
}
