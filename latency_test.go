package resilience

// The tests of Latency are white-box (package resilience): the stages
// that consult a Latency on every call use its unexported recordAt and
// recent, which are tested here with the rest.

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func newTestLatency(t testing.TB, cfg LatencyConfig) *Latency {
	t.Helper()
	l, err := NewLatency(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// latencyReference is the model Latency is checked against: every sample
// with the time it was recorded, and the exact quantile of those in the
// window (the sample of rank ceil(q × n) among the n sorted), the window
// being the same slots Latency keeps.
type latencyReference struct {
	base  time.Time
	width time.Duration // Window / 5
	min   int
	at    []time.Time
	ds    []time.Duration

	sorted []time.Duration // the window at the moment looked at, if set
}

func (r *latencyReference) record(at time.Time, d time.Duration) {
	r.at = append(r.at, at)
	r.ds = append(r.ds, d)
}

func (r *latencyReference) slot(t time.Time) int64 { return int64(t.Sub(r.base) / r.width) }

// window returns the samples in the window at now, sorted: those of now's
// slot and of the 4 before it.
func (r *latencyReference) window(now time.Time) []time.Duration {
	cur := r.slot(now)
	var in []time.Duration
	for i, at := range r.at {
		if r.slot(at) > cur-5 {
			in = append(in, r.ds[i])
		}
	}
	slices.Sort(in)
	return in
}

// quantile returns the q-quantile of the window at now, or of sorted if
// it is set: the window at now, sorted by window.
func (r *latencyReference) quantile(now time.Time, q float64) (time.Duration, bool) {
	in := r.sorted
	if in == nil {
		in = r.window(now)
	}
	if !(q > 0 && q <= 1) || len(in) == 0 || len(in) < r.min {
		return 0, false
	}
	rank := int(math.Ceil(q * float64(len(in))))
	return in[min(max(rank, 1), len(in))-1], true
}

// relErr returns |got - want| / want.
func relErr(got, want time.Duration) float64 {
	return math.Abs(float64(got-want)) / float64(want)
}

// TestLatencyBuckets: every latency from the floor to the ceiling falls
// in a bucket whose midpoint is within 1/64 of it, buckets follow the
// latencies' order, and latencies out of the range go to the first and
// last buckets.
func TestLatencyBuckets(t *testing.T) {
	if latencyBuckets != 864 {
		t.Fatalf("%d buckets, want 27 octaves × 32 = 864", latencyBuckets)
	}
	for _, tc := range []struct {
		d      time.Duration
		bucket int
	}{
		{1, 0},
		{1023, 0},
		{1024, 0},
		{1055, 0},
		{1056, 1},
		{2047, 31},
		{2048, 32},
		{2048 + 64, 33},
		{1<<37 - 1, 863},
		{1 << 37, 863},
		{math.MaxInt64, 863},
	} {
		if got := latencyBucket(tc.d); got != tc.bucket {
			t.Errorf("latencyBucket(%d) = %d, want %d", tc.d, got, tc.bucket)
		}
	}
	if got := latencyMidpoint(0); got != 1040 {
		t.Errorf("midpoint of bucket 0 = %d, want 1040", got)
	}
	if got, want := latencyMidpoint(863), time.Duration(1<<37-1<<30); got != want {
		t.Errorf("midpoint of the last bucket = %d, want %d", got, want)
	}
	// Each bucket starts where the one before ends: its lowest latency
	// is in it, and the one before that in the bucket before.
	for i := 1; i < latencyBuckets; i++ {
		e := i>>5 + 10
		lo := time.Duration(1<<e + int64(i&31)<<(e-5))
		if latencyBucket(lo) != i || latencyBucket(lo-1) != i-1 {
			t.Fatalf("bucket %d starts at %d ns: latencyBucket gives %d for it, %d for the one before; want %d, %d",
				i, lo, latencyBucket(lo), latencyBucket(lo-1), i, i-1)
		}
		if mid := latencyMidpoint(i); mid != lo+time.Duration(1)<<(e-6) {
			t.Fatalf("midpoint of bucket %d = %d, want %d", i, mid, lo+time.Duration(1)<<(e-6))
		}
	}
	// Random latencies, spread log-uniformly over the range: each is
	// within 1/64 of its bucket's midpoint, and the buckets follow the
	// latencies' order.
	r := rand.New(rand.NewPCG(1, 2))
	ds := make([]time.Duration, 100000)
	for i := range ds {
		d := time.Duration(math.Exp(math.Log(latencyFloor) + r.Float64()*(math.Log(latencyCeiling)-math.Log(latencyFloor))))
		ds[i] = min(max(d, latencyFloor), latencyCeiling-1)
	}
	slices.Sort(ds)
	for i, d := range ds {
		b := latencyBucket(d)
		if e := relErr(latencyMidpoint(b), d); e > 1.0/64 {
			t.Fatalf("%d ns: midpoint %d of bucket %d is %.4f off, want at most 1/64", d, latencyMidpoint(b), b, e)
		}
		if i > 0 && b < latencyBucket(ds[i-1]) {
			t.Fatalf("%d ns in bucket %d, below %d ns's %d", d, b, ds[i-1], latencyBucket(ds[i-1]))
		}
	}
}

// latencyDistributions draw latencies in the model's range.
var latencyDistributions = map[string]func(r *rand.Rand) time.Duration{
	"uniform": func(r *rand.Rand) time.Duration {
		return time.Microsecond + time.Duration(r.Int64N(int64(100*time.Millisecond)))
	},
	"lognormal": func(r *rand.Rand) time.Duration {
		return time.Duration(math.Exp(math.Log(float64(5*time.Millisecond)) + 1.5*r.NormFloat64()))
	},
	"heavy tail": func(r *rand.Rand) time.Duration {
		if r.Float64() < 0.02 {
			return time.Duration(float64(50*time.Millisecond) * (1 + 0.1*r.NormFloat64()))
		}
		return time.Duration(float64(time.Millisecond) * (1 + 0.1*r.NormFloat64()))
	},
	"constant": func(*rand.Rand) time.Duration { return 3 * time.Millisecond },
	"log-uniform over the range": func(r *rand.Rand) time.Duration {
		return time.Duration(math.Exp(math.Log(latencyFloor) + r.Float64()*(math.Log(latencyCeiling)-math.Log(latencyFloor))))
	},
}

var latencyQuantiles = []float64{0.5, 0.9, 0.95, 0.99, 0.999}

// TestLatencyQuantileMatchesReference: for random samples of many
// distributions, recorded at random moments over two windows, every
// quantile of the model, and of recent's snapshot, is within 1/64 (under
// 2%) of the exact quantile of the samples in the same window, and both
// agree on whether there is data.
func TestLatencyQuantileMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for name, draw := range latencyDistributions {
		t.Run(name, func(t *testing.T) {
			for trial := range 40 {
				window := time.Duration(1+r.IntN(60)) * time.Second
				minSamples := 1 + r.IntN(100)
				l := newTestLatency(t, LatencyConfig{Window: window, MinSamples: minSamples})
				ref := &latencyReference{base: l.base, width: l.width, min: minSamples}
				n := 1 + r.IntN(3000)
				// Increasing moments over two windows.
				at := make([]time.Duration, n)
				for i := range at {
					at[i] = time.Duration(r.Int64N(int64(2 * window)))
				}
				slices.Sort(at)
				for i := range n {
					d := draw(r)
					for d < latencyFloor || d >= latencyCeiling {
						d = draw(r)
					}
					now := l.base.Add(at[i])
					l.recordAt(now, d)
					ref.record(now, d)
				}
				// Looked at from the last sample, and later.
				last := l.base.Add(at[n-1])
				for _, later := range []time.Duration{0, window / 5, window / 2, window} {
					now := last.Add(later)
					ref.sorted = ref.window(now)
					if got, want := int(l.samples(now)), len(ref.sorted); got != want {
						t.Fatalf("trial %d, %v after the last sample: %d samples, want %d", trial, later, got, want)
					}
					for _, q := range latencyQuantiles {
						want, wantOK := ref.quantile(now, q)
						got, ok := l.quantileAt(now, q)
						if ok != wantOK || ok && relErr(got, want) > 1.0/64 {
							t.Fatalf("trial %d (%d samples, window %v, MinSamples %d), %v after the last: Quantile(%v) = %v, %v; want %v, %v within 1/64",
								trial, n, window, minSamples, later, q, got, ok, want, wantOK)
						}
						// recent refreshes (its snapshot is at least
						// latencyRefresh old, or none) and answers as
						// Quantile does at that moment.
						if rg, rok := l.recent(now, q); rg != got || rok != ok {
							t.Fatalf("trial %d: recent(%v) = %v, %v; Quantile %v, %v", trial, q, rg, rok, got, ok)
						}
					}
				}
			}
		})
	}
}

// TestLatencyWindowSlides: a sample counts for 4/5 Window at least and
// Window at most; then it leaves, and the quantiles change.
func TestLatencyWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newTestLatency(t, LatencyConfig{Window: 10 * time.Second, MinSamples: 1})
		quantile := func(q float64) time.Duration {
			t.Helper()
			d, ok := l.Quantile(q)
			if !ok {
				t.Fatalf("Quantile(%v): no data, with %d samples", q, l.Samples())
			}
			return d
		}
		near := func(got, want time.Duration) bool { return relErr(got, want) <= 1.0/64 }

		for range 100 {
			l.Record(time.Millisecond)
		}
		time.Sleep(4 * time.Second)
		for range 300 {
			l.Record(100 * time.Millisecond)
		}
		if n := l.Samples(); n != 400 {
			t.Fatalf("at 4s: %d samples, want 400", n)
		}
		if p := quantile(0.2); !near(p, time.Millisecond) {
			t.Errorf("at 4s: p20 = %v, want about 1ms", p)
		}
		time.Sleep(4*time.Second - time.Nanosecond) // the first samples are almost 8s old: 4/5 Window
		if n := l.Samples(); n != 400 {
			t.Errorf("just under 8s: %d samples, want 400: samples within 4/5 Window stay", n)
		}
		if p := quantile(0.2); !near(p, time.Millisecond) {
			t.Errorf("just under 8s: p20 = %v, want about 1ms", p)
		}
		time.Sleep(2*time.Second + time.Nanosecond) // 10s: the first samples are a Window old
		if n := l.Samples(); n != 300 {
			t.Errorf("at 10s: %d samples, want 300: the samples a Window old left", n)
		}
		if p := quantile(0.2); !near(p, 100*time.Millisecond) {
			t.Errorf("at 10s: p20 = %v, want about 100ms, the first samples gone", p)
		}
		time.Sleep(4 * time.Second) // 14s: the second batch is a Window old
		if n := l.Samples(); n != 0 {
			t.Errorf("at 14s: %d samples, want 0", n)
		}
		if d, ok := l.Quantile(0.5); ok {
			t.Errorf("at 14s, an empty window: Quantile = %v, true; want no data", d)
		}

		// A sample recorded late in its slot stays until its slot leaves:
		// 8s and a bit later, within Window.
		time.Sleep(2*time.Second - time.Millisecond) // 15.999s, at the end of slot 7
		l.Record(time.Second)
		time.Sleep(8*time.Second - time.Nanosecond) // 23.999s: slot 11, which counts slot 7
		if n := l.Samples(); n != 1 {
			t.Errorf("a sample 8s old (of the end of its slot): %d samples, want 1", n)
		}
		time.Sleep(time.Millisecond + time.Nanosecond) // 24s: slot 12
		if n := l.Samples(); n != 0 {
			t.Errorf("a sample 8.001s old, its slot gone: %d samples, want 0", n)
		}
		// The slots recycled in turn hold only their new samples.
		for range 7 {
			l.Record(10 * time.Millisecond)
		}
		if n, p := l.Samples(), quantile(1); n != 7 || !near(p, 10*time.Millisecond) {
			t.Errorf("after the slot came round again: %d samples, max %v; want 7, about 10ms", n, p)
		}
	})
}

// TestLatencyMinSamples: under MinSamples samples a quantile has no data,
// and the gauges read 0; from MinSamples on it has.
func TestLatencyMinSamples(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newTestLatency(t, LatencyConfig{MinSamples: 10})
		for i := range 9 {
			l.Record(time.Duration(i+1) * time.Millisecond)
		}
		if d, ok := l.Quantile(0.5); ok || d != 0 {
			t.Errorf("9 samples of 10: Quantile = %v, %v; want 0, false", d, ok)
		}
		if d, ok := l.recent(time.Now(), 0.5); ok || d != 0 {
			t.Errorf("9 samples of 10: recent = %v, %v; want 0, false", d, ok)
		}
		for _, g := range l.Stats().Gauges {
			if g.Name != "samples" && g.Value != 0 {
				t.Errorf("9 samples of 10: gauge %s = %v, want 0", g.Name, g.Value)
			}
		}
		l.Record(10 * time.Millisecond)
		if d, ok := l.Quantile(0.5); !ok || relErr(d, 5*time.Millisecond) > 1.0/64 {
			t.Errorf("10 samples: Quantile(0.5) = %v, %v; want about 5ms, true", d, ok)
		}
		time.Sleep(latencyRefresh)
		if d, ok := l.recent(time.Now(), 0.5); !ok || relErr(d, 5*time.Millisecond) > 1.0/64 {
			t.Errorf("10 samples: recent(0.5) = %v, %v; want about 5ms, true", d, ok)
		}
		if g := l.Stats().Gauges; g[0].Value != 10 || relErr(time.Duration(g[1].Value*1e9), 5*time.Millisecond) > 1.0/64 {
			t.Errorf("10 samples: gauges %v; want 10 samples, p50 about 0.005", g)
		}
		// Latencies of 0 or less are not samples.
		l.Record(0)
		l.Record(-time.Second)
		if n := l.Samples(); n != 10 {
			t.Errorf("after Record(0) and Record(-1s): %d samples, want 10", n)
		}
	})
}

// TestLatencyQuantileBadQ: a q out of (0, 1], or NaN, has no quantile.
func TestLatencyQuantileBadQ(t *testing.T) {
	l := newTestLatency(t, LatencyConfig{MinSamples: 1})
	for range 100 {
		l.Record(time.Millisecond)
	}
	for _, q := range []float64{0, -1, 1.5, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1 + 1e-15} {
		if d, ok := l.Quantile(q); ok || d != 0 {
			t.Errorf("Quantile(%v) = %v, %v; want 0, false", q, d, ok)
		}
		if d, ok := l.recent(time.Now(), q); ok || d != 0 {
			t.Errorf("recent(%v) = %v, %v; want 0, false", q, d, ok)
		}
	}
	for _, q := range []float64{1e-9, 0.5, 1} {
		if d, ok := l.Quantile(q); !ok || relErr(d, time.Millisecond) > 1.0/64 {
			t.Errorf("Quantile(%v) = %v, %v; want about 1ms, true", q, d, ok)
		}
	}
}

// TestLatencyRecent: recent answers as Quantile did when it took its
// snapshot, keeps that answer for 100ms whatever is recorded since, and
// then takes a fresh one.
func TestLatencyRecent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newTestLatency(t, LatencyConfig{MinSamples: 1})
		if d, ok := l.recent(time.Now(), 0.5); ok {
			t.Errorf("no samples: recent = %v, true; want no data", d)
		}
		// The empty window's snapshot stands for 100ms.
		l.Record(time.Millisecond)
		if d, ok := l.recent(time.Now(), 0.5); ok {
			t.Errorf("a sample after the snapshot: recent = %v, true; want the snapshot's no data", d)
		}
		time.Sleep(latencyRefresh)
		for range 99 {
			l.Record(time.Millisecond)
		}
		for _, q := range latencyQuantiles {
			want, wantOK := l.Quantile(q)
			if got, ok := l.recent(time.Now(), q); got != want || ok != wantOK || !ok {
				t.Errorf("at the refresh: recent(%v) = %v, %v; want Quantile's %v, %v", q, got, ok, want, wantOK)
			}
		}
		for range 100 {
			l.Record(10 * time.Millisecond)
		}
		time.Sleep(latencyRefresh - time.Nanosecond)
		if got, _ := l.recent(time.Now(), 0.9); relErr(got, time.Millisecond) > 1.0/64 {
			t.Errorf("just under 100ms after the refresh: recent(0.9) = %v, want the snapshot's 1ms", got)
		}
		if now, _ := l.Quantile(0.9); relErr(now, 10*time.Millisecond) > 1.0/64 {
			t.Errorf("Quantile(0.9) = %v, want about 10ms", now)
		}
		time.Sleep(time.Nanosecond)
		for _, q := range latencyQuantiles {
			want, _ := l.Quantile(q)
			if got, ok := l.recent(time.Now(), q); got != want || !ok {
				t.Errorf("100ms after the refresh: recent(%v) = %v, %v; want Quantile's %v", q, got, ok, want)
			}
		}
		if got, _ := l.recent(time.Now(), 0.9); relErr(got, 10*time.Millisecond) > 1.0/64 {
			t.Errorf("after the refresh: recent(0.9) = %v, want about 10ms", got)
		}
		// A moment before the snapshot's, as from a goroutine whose clock
		// read came first, is answered from it.
		before := l.snap.Load()
		if _, ok := l.recent(time.Now().Add(-time.Second), 0.5); !ok || l.snap.Load() != before {
			t.Error("recent with an earlier moment took a fresh snapshot")
		}
	})
}

// TestLatencyConcurrent, under -race: goroutines record while others read
// the quantiles, the samples and the stats; with no slot turning over,
// the window holds every sample recorded, in its buckets and its totals.
func TestLatencyConcurrent(t *testing.T) {
	l := newTestLatency(t, LatencyConfig{Window: time.Hour, MinSamples: 1})
	const writers, each = 8, 5000
	var (
		wg   sync.WaitGroup
		done atomic.Bool
	)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 5))
			for range each {
				l.recordAt(l.base, time.Duration(1000+r.Int64N(int64(time.Second))))
			}
		})
	}
	var readers sync.WaitGroup
	for g := range 4 {
		readers.Go(func() {
			for !done.Load() {
				switch g {
				case 0:
					l.Quantile(0.99)
				case 1:
					l.Stats()
				case 2:
					l.Samples()
				case 3:
					l.recent(l.base.Add(time.Duration(rand.Int64N(int64(time.Second)))), 0.95)
				}
			}
		})
	}
	wg.Wait()
	done.Store(true)
	readers.Wait()
	if n := l.samples(l.base); n != writers*each {
		t.Errorf("%d samples, want %d", n, writers*each)
	}
	var h [latencyBuckets]uint64
	if n := l.collect(l.base, &h); n != writers*each {
		t.Errorf("the buckets count %d samples, want %d", n, writers*each)
	}

	// With the slots turning over as they record, the counts never pass
	// what was recorded, and nothing races.
	l = newTestLatency(t, LatencyConfig{Window: time.Second, MinSamples: 1})
	var clock atomic.Int64 // nanoseconds since l.base
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				now := clock.Add(int64(time.Millisecond) / 4)
				l.recordAt(l.base.Add(time.Duration(now)), time.Duration(w*each+i+1000))
				if i%100 == 0 {
					l.quantileAt(l.base.Add(time.Duration(now)), 0.5)
				}
			}
		})
	}
	wg.Wait()
	if n := l.samples(l.base.Add(time.Duration(clock.Load()))); n > writers*each {
		t.Errorf("%d samples after turning slots over, more than the %d recorded", n, writers*each)
	}
}

// TestLatencyConfig: each invalid field is named in the error, which
// matches ErrInvalidConfig; every invalid field is reported at once; the
// edges of each range and the zero config are valid, and the zero fields
// take their defaults.
func TestLatencyConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   LatencyConfig
		field string
	}{
		{"negative window", LatencyConfig{Window: -time.Second}, "LatencyConfig.Window"},
		{"window under 1s", LatencyConfig{Window: time.Second - 1}, "LatencyConfig.Window"},
		{"window over 1h", LatencyConfig{Window: time.Hour + 1}, "LatencyConfig.Window"},
		{"negative min samples", LatencyConfig{MinSamples: -1}, "LatencyConfig.MinSamples"},
		{"min samples over 1e6", LatencyConfig{MinSamples: 1e6 + 1}, "LatencyConfig.MinSamples"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLatency(tc.cfg)
			if l != nil || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewLatency = %v, %v; want nil and an error matching ErrInvalidConfig", l, err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field {
				t.Fatalf("error %v, want a *ConfigError for %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.HasPrefix(err.Error(), "resilience: ") {
				t.Errorf("message %q does not name %s", err, tc.field)
			}
		})
	}
	_, err := NewLatency(LatencyConfig{Window: time.Millisecond, MinSamples: -5})
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var ce *ConfigError
		if errors.As(e, &ce) {
			fields = append(fields, ce.Field)
		}
	}
	if want := []string{"LatencyConfig.Window", "LatencyConfig.MinSamples"}; !slices.Equal(fields, want) {
		t.Errorf("fields reported %v, want %v", fields, want)
	}

	for _, cfg := range []LatencyConfig{
		{},
		{Window: time.Second, MinSamples: 1},
		{Window: time.Hour, MinSamples: 1e6},
	} {
		if _, err := NewLatency(cfg); err != nil {
			t.Errorf("NewLatency(%+v): %v", cfg, err)
		}
	}
	l := newTestLatency(t, LatencyConfig{Name: "users"})
	if l.width != DefaultLatencyWindow/5 || l.min != DefaultLatencyMinSamples || l.Name() != "users" || l.Kind() != KindLatency {
		t.Errorf("zero config: slots of %v, MinSamples %d, name %q, kind %q; want %v, %d, users, %s",
			l.width, l.min, l.Name(), l.Kind(), DefaultLatencyWindow/5, DefaultLatencyMinSamples, KindLatency)
	}
}

// latencyCallStats returns the stage's "recorded" and "skipped" counts.
func latencyCallStats(l *Latency) (recorded, skipped uint64) {
	c := l.Stats().Calls
	return c[0].N, c[1].N
}

// TestLatencyStage: as a stage, a Latency times each call and records
// those the dependency answered (no error, or an error marked as an
// answer, by Answer or a Guard's Classify), and skips failures,
// time-outs and cancelled calls; it passes the result and the error on
// untouched.
func TestLatencyStage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		l := newTestLatency(t, LatencyConfig{Name: "users", MinSamples: 1})
		sleeps := func(d time.Duration, err error) Func[int] {
			return func(ctx context.Context) (int, error) {
				time.Sleep(d)
				return 7, err
			}
		}
		errNotFound := errors.New("not found")
		for range 10 {
			if v, err := Do(ctx, l, sleeps(10*time.Millisecond, nil)); v != 7 || err != nil {
				t.Fatalf("Do = %v, %v; want 7, nil", v, err)
			}
		}
		answer := Answer(errNotFound)
		if v, err := Do(ctx, l, sleeps(10*time.Millisecond, answer)); v != 7 || err != answer {
			t.Errorf("an answer: Do = %v, %v; want 7 and the answer", v, err)
		}
		// A Guard's Classify marks an error as an answer.
		guard, err := NewGuard(GuardConfig{
			Stages: []Stage{l},
			Classify: func(_ context.Context, err error) Outcome {
				if errors.Is(err, errNotFound) {
					return Success
				}
				return Failure
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Do(ctx, guard, sleeps(10*time.Millisecond, errNotFound)); !errors.Is(err, errNotFound) {
			t.Errorf("a classified answer: err = %v, want errNotFound", err)
		}
		if rec, skip := latencyCallStats(l); rec != 12 || skip != 0 {
			t.Errorf("after successes and answers: %d recorded, %d skipped; want 12, 0", rec, skip)
		}
		if n := l.Samples(); n != 12 {
			t.Errorf("%d samples, want 12", n)
		}

		// Failures, time-outs and cancelled calls are skipped, however long
		// they took.
		boom := errors.New("boom")
		if _, err := Do(ctx, l, sleeps(time.Second, boom)); err != boom {
			t.Errorf("a failure: err = %v, want boom", err)
		}
		if _, err := Do(ctx, l, sleeps(time.Second, Permanent(boom))); !errors.Is(err, boom) {
			t.Errorf("a permanent failure: err = %v, want boom", err)
		}
		timeout, err := NewTimeout(TimeoutConfig{Duration: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		waits := func(ctx context.Context) (int, error) {
			<-ctx.Done()
			return 0, ctx.Err()
		}
		if _, err := For[int](timeout, l).Do(ctx, waits); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a time-out: err = %v, want a deadline exceeded", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		if _, err := Do(cctx, l, waits); !errors.Is(err, context.Canceled) {
			t.Errorf("a cancelled call: err = %v, want context.Canceled", err)
		}
		if rec, skip := latencyCallStats(l); rec != 12 || skip != 4 {
			t.Errorf("after a failure, a permanent one, a time-out and a cancellation: %d recorded, %d skipped; want 12, 4", rec, skip)
		}
		if n := l.Samples(); n != 12 {
			t.Errorf("%d samples, want 12: the skipped calls left the model alone", n)
		}
		if d, ok := l.Quantile(1); !ok || relErr(d, 10*time.Millisecond) > 1.0/64 {
			t.Errorf("the slowest recorded call: %v, %v; want about 10ms", d, ok)
		}

		// Run records as Do does.
		if err := l.Run(ctx, func(context.Context) error { time.Sleep(time.Millisecond); return nil }); err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := l.Run(ctx, nil); err == nil {
			t.Error("Run with a nil call: no error")
		}
		if n := l.Samples(); n != 13 {
			t.Errorf("after Run: %d samples, want 13", n)
		}
		// A call too quick for the clock counts as the floor.
		if _, err := Do(ctx, l, func(context.Context) (int, error) { return 1, nil }); err != nil {
			t.Fatal(err)
		}
		if d, ok := l.Quantile(1e-9); !ok || d != latencyMidpoint(0) {
			t.Errorf("a call of no time: the fastest sample is %v, %v; want the floor's %v", d, ok, latencyMidpoint(0))
		}
	})
}

// TestLatencyZeroValue: the zero Latency runs no call, with an error
// matching ErrInvalidConfig that names NewLatency, which is not retried;
// its other methods answer "nothing".
func TestLatencyZeroValue(t *testing.T) {
	ctx := context.Background()
	var l Latency
	ran := false
	call := func(context.Context) (int, error) { ran = true; return 1, nil }
	retry, err := NewRetry(RetryConfig{MaxRetries: 3, InitialBackoff: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	tries := 0
	counted := PolicyFunc[int](func(ctx context.Context, next Func[int]) (int, error) {
		tries++
		return next(ctx)
	})
	for name, run := range map[string]func() error{
		"Do":             func() error { _, err := Do(ctx, &l, call); return err },
		"For":            func() error { _, err := For[int](&l).Do(ctx, call); return err },
		"inside a retry": func() error { _, err := Compose(For[int](retry), counted, For[int](&l)).Do(ctx, call); return err },
		"Run":            func() error { return l.Run(ctx, func(context.Context) error { ran = true; return nil }) },
	} {
		ran = false
		err := run()
		if ran {
			t.Errorf("%s: the zero Latency ran the call", name)
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "NewLatency") {
			t.Errorf("%s: err = %v, want an error matching ErrInvalidConfig naming NewLatency", name, err)
		}
	}
	if tries != 1 {
		t.Errorf("inside a retry: %d attempts, want 1: the zero Latency's error was retried", tries)
	}
	l.Record(time.Second)
	l.recordAt(time.Now(), time.Second)
	if d, ok := l.Quantile(0.5); ok || d != 0 {
		t.Errorf("Quantile = %v, %v; want 0, false", d, ok)
	}
	if d, ok := l.recent(time.Now(), 0.5); ok || d != 0 {
		t.Errorf("recent = %v, %v; want 0, false", d, ok)
	}
	if n := l.Samples(); n != 0 {
		t.Errorf("Samples = %d, want 0", n)
	}
	if s := l.Stats(); len(s.Calls) != 2 || len(s.Gauges) != 5 {
		t.Errorf("Stats = %+v, want 2 counts and 5 gauges", s)
	}
	if l.made() {
		t.Error("the zero Latency reports it was made")
	}
}

// TestLatencyPanic: a panic in the call goes up unchanged, is not
// recorded, and leaves the stage working.
func TestLatencyPanic(t *testing.T) {
	ctx := context.Background()
	l := newTestLatency(t, LatencyConfig{MinSamples: 1})
	func() {
		defer func() {
			if r := recover(); r != "call panicked" {
				t.Errorf("recovered %v, want the call's panic", r)
			}
		}()
		Do(ctx, l, func(context.Context) (int, error) { panic("call panicked") })
		t.Error("the panic did not reach the caller")
	}()
	if rec, skip := latencyCallStats(l); rec != 0 || skip != 0 || l.Samples() != 0 {
		t.Errorf("after a panic: %d recorded, %d skipped, %d samples; want none", rec, skip, l.Samples())
	}
	if v, err := Do(ctx, l, func(context.Context) (int, error) { return 1, nil }); v != 1 || err != nil || l.Samples() != 1 {
		t.Errorf("after the panic: %v, %v, %d samples; want 1, nil, 1", v, err, l.Samples())
	}
}

// TestLatencyStats: Stats reports the same counts and gauges in the same
// order on every call, with or without data, and the gauges follow the
// window.
func TestLatencyStats(t *testing.T) {
	l := newTestLatency(t, LatencyConfig{MinSamples: 1})
	names := func(s Stats) (ns []string) {
		for _, c := range s.Calls {
			ns = append(ns, c.Result)
		}
		for _, g := range s.Gauges {
			if g.Help == "" {
				ns = append(ns, g.Name+" (no help)")
			}
			ns = append(ns, g.Name)
		}
		return ns
	}
	want := []string{"recorded", "skipped", "samples", "p50_seconds", "p90_seconds", "p99_seconds", "p999_seconds"}
	if got := names(l.Stats()); !slices.Equal(got, want) {
		t.Errorf("empty: Stats names %v, want %v", got, want)
	}
	for i := range 1000 {
		l.Record(time.Duration(i+1) * time.Millisecond)
	}
	s := l.Stats()
	if got := names(s); !slices.Equal(got, want) {
		t.Errorf("with data: Stats names %v, want %v", got, want)
	}
	for i, want := range []float64{1000, 0.5, 0.9, 0.99, 0.999} {
		if g := s.Gauges[i]; math.Abs(g.Value-want)/want > 1.0/64 {
			t.Errorf("gauge %s = %v, want about %v", g.Name, g.Value, want)
		}
	}
}

func latencyNoop(context.Context) (int, error) { return 1, nil }

var latencyAnswer = Answer(errors.New("not found"))

func latencyAnswers(context.Context) (int, error) { return 0, latencyAnswer }

// TestLatencyAllocatesNothing: recording a sample, a call through the
// stage (answered or not), recent from its snapshot and Quantile
// allocate nothing.
func TestLatencyAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	l := newTestLatency(t, LatencyConfig{MinSamples: 1})
	l.Record(time.Millisecond)
	now := time.Now()
	l.recent(now, 0.5)
	p := For[int](l)
	for name, f := range map[string]func(){
		"Record":           func() { l.Record(time.Millisecond) },
		"recordAt":         func() { l.recordAt(now, time.Millisecond) },
		"Do":               func() { Do(ctx, l, latencyNoop) },
		"Do, an answer":    func() { Do(ctx, l, latencyAnswers) },
		"Do, a failure":    func() { Do(ctx, l, latencyFails) },
		"For":              func() { p.Do(ctx, latencyNoop) },
		"recent, snapshot": func() { l.recent(now, 0.95) },
		"Quantile":         func() { l.Quantile(0.99) },
		"Samples":          func() { l.Samples() },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

var errLatencyBoom = errors.New("boom")

func latencyFails(context.Context) (int, error) { return 0, errLatencyBoom }

// Benchmarks of the hot paths. Goal: recording a sample at most 15ns and
// no allocation on one goroutine (recordAt; Record reads the clock as
// well), no worse than twice that with every core recording; recent from
// its snapshot tens of ns.

// latencySpread is a spread of latencies over a few buckets, as a
// dependency's are.
var latencySpread = func() (ds [256]time.Duration) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := range ds {
		ds[i] = time.Duration(math.Exp(math.Log(float64(5*time.Millisecond)) + 0.5*r.NormFloat64()))
	}
	return ds
}()

// BenchmarkLatencyRecord: one sample recorded, with the clock read
// (Record) and without (recordAt, the cost the stage adds to its two
// clock reads).
func BenchmarkLatencyRecord(b *testing.B) {
	b.Run("Record", func(b *testing.B) {
		l := newTestLatency(b, LatencyConfig{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.Record(latencySpread[i&255])
			i++
		}
	})
	b.Run("recordAt", func(b *testing.B) {
		l := newTestLatency(b, LatencyConfig{})
		now := time.Now()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			l.recordAt(now, latencySpread[i&255])
			i++
		}
	})
	b.Run("stage", func(b *testing.B) {
		l := newTestLatency(b, LatencyConfig{})
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			Do(ctx, l, latencyNoop)
		}
	})
}

// BenchmarkLatencyRecordParallel: every core recording into one Latency.
func BenchmarkLatencyRecordParallel(b *testing.B) {
	b.Run("Record", func(b *testing.B) {
		l := newTestLatency(b, LatencyConfig{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(256)
			for pb.Next() {
				l.Record(latencySpread[i&255])
				i++
			}
		})
	})
	b.Run("recordAt", func(b *testing.B) {
		l := newTestLatency(b, LatencyConfig{})
		now := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(256)
			for pb.Next() {
				l.recordAt(now, latencySpread[i&255])
				i++
			}
		})
	})
}

// BenchmarkLatencyRecent: a quantile from recent's snapshot, and with the
// time moving on 1µs a call, so that one call in 100,000 takes a fresh
// snapshot.
func BenchmarkLatencyRecent(b *testing.B) {
	l := newTestLatency(b, LatencyConfig{})
	for i := range 10000 {
		l.Record(latencySpread[i&255])
	}
	b.Run("snapshot", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			l.recent(now, 0.95)
		}
	})
	b.Run("refreshing", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Microsecond)
			l.recent(now, 0.95)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		now := time.Now()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				l.recent(now, 0.95)
			}
		})
	})
}

// BenchmarkLatencyQuantile: an exact quantile over the window's slots.
func BenchmarkLatencyQuantile(b *testing.B) {
	l := newTestLatency(b, LatencyConfig{})
	for i := range 10000 {
		l.Record(latencySpread[i&255])
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Quantile(0.99)
	}
}

// slotOf divides as the division it replaces does, at slot boundaries and
// far from them, for every width a config allows.
func TestLatencySlotOfDivides(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, window := range []time.Duration{time.Second, 3 * time.Second, 10 * time.Second, 7777777777, time.Hour} {
		l, err := NewLatency(LatencyConfig{Window: window})
		if err != nil {
			t.Fatal(err)
		}
		w := int64(l.width)
		check := func(n int64) {
			if got, want := l.slotOf(time.Duration(n)), n/w; got != want {
				t.Fatalf("width %d: slotOf(%d) = %d, want %d", w, n, got, want)
			}
		}
		check(0)
		for range 100000 {
			n := r.Int64N(1 << 62)
			check(n)
			k := n / w
			check(k * w)
			check(k*w - 1)
			if k*w+w-1 > 0 {
				check(k*w + w - 1)
			}
		}
		if got := l.slotOf(-5); got != 0 {
			t.Errorf("slotOf(-5) = %d, want 0", got)
		}
	}
}
