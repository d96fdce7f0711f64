package resilience_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/internal/testcheck"
)

// staleCache returns a cache for ints configured by cfg, failing the
// test if cfg is refused.
func staleCache(t *testing.T, cfg resilience.StaleCacheConfig[int]) *resilience.StaleCache[int] {
	t.Helper()
	c, err := resilience.NewStaleCache(cfg)
	if err != nil {
		t.Fatalf("NewStaleCache(%+v): %v", cfg, err)
	}
	return c
}

// returns is a call that returns v and err.
func returns(v int, err error) resilience.Func[int] {
	return func(context.Context) (int, error) { return v, err }
}

// keyed returns a context carrying key, as WithKey puts it.
func keyed(key string) context.Context { return resilience.WithKey(context.Background(), key) }

// TestStaleServesTheLastGoodValue: a covered failure gets the value the
// last successful call stored, with a *StaleError that carries the
// cache's name, the key, the value's exact age and the failure, matches
// ErrStale and the failure alike, and is reported to OnStale once.
func TestStaleServesTheLastGoodValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []resilience.StaleEvent
		c := staleCache(t, resilience.StaleCacheConfig[int]{
			Name:    "users",
			MaxAge:  time.Minute,
			OnStale: func(e resilience.StaleEvent) { events = append(events, e) },
		})
		ctx := keyed("ada")
		if v, err := c.Do(ctx, returns(1, nil)); v != 1 || err != nil {
			t.Fatalf("first call: %v, %v; want 1, <nil>", v, err)
		}
		time.Sleep(2 * time.Second)
		if v, err := c.Do(ctx, returns(2, nil)); v != 2 || err != nil {
			t.Fatalf("second call: %v, %v; want 2, <nil>", v, err)
		}
		time.Sleep(3 * time.Second)

		v, err := c.Do(ctx, returns(-1, errBoom))
		if v != 2 {
			t.Errorf("failed call: value %d, want 2, the last one stored", v)
		}
		var se *resilience.StaleError
		if !errors.As(err, &se) {
			t.Fatalf("failed call: err %v (%T), want a *StaleError", err, err)
		}
		want := resilience.StaleError{Name: "users", Key: "ada", Age: 3 * time.Second, Err: errBoom}
		if d := testcheck.Diff(want, *se); d != "" {
			t.Errorf("StaleError:\n%s", d)
		}
		if !errors.Is(err, resilience.ErrStale) || !errors.Is(err, errBoom) {
			t.Errorf("errors.Is(err, ErrStale) = %v, errors.Is(err, errBoom) = %v; want both true", errors.Is(err, resilience.ErrStale), errors.Is(err, errBoom))
		}
		if errors.Is(errBoom, resilience.ErrStale) {
			t.Error("errBoom matches ErrStale")
		}
		if got, want := err.Error(), `resilience: stale cache "users" served the value of key "ada" stored 3s ago: boom`; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if age, ok := resilience.StaleAge(fmt.Errorf("get user: %w", err)); age != 3*time.Second || !ok {
			t.Errorf("StaleAge(wrapped) = %v, %v; want 3s, true", age, ok)
		}
		if age, ok := resilience.StaleAge(errBoom); age != 0 || ok {
			t.Errorf("StaleAge(errBoom) = %v, %v; want 0, false", age, ok)
		}
		wantEvents := []resilience.StaleEvent{{Name: "users", Key: "ada", Age: 3 * time.Second, Err: errBoom}}
		if d := testcheck.Diff(wantEvents, events); d != "" {
			t.Errorf("OnStale events:\n%s", d)
		}
	})
}

// TestStaleMaxAge: a value exactly MaxAge old is served; one a nanosecond
// older is not, the call's own result and error come back, and the value
// is dropped. Serving a value does not make it younger.
func TestStaleMaxAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const maxAge = 10 * time.Second
		c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: maxAge})
		c.Do(keyed("a"), returns(1, nil))
		c.Do(keyed("b"), returns(2, nil))
		if c.Len() != 2 {
			t.Fatalf("Len() = %d after storing two keys, want 2", c.Len())
		}
		time.Sleep(maxAge)

		v, err := c.Do(keyed("a"), returns(-1, errBoom))
		if age, ok := resilience.StaleAge(err); v != 1 || !ok || age != maxAge {
			t.Errorf("at exactly MaxAge: %v, %v; want 1 served at age %v", v, err, maxAge)
		}
		time.Sleep(time.Nanosecond)

		for _, key := range []string{"b", "a"} { // "a" was served, and is as old as "b"
			v, err := c.Do(keyed(key), returns(-1, errBoom))
			if v != -1 || err != errBoom {
				t.Errorf("key %q at MaxAge + 1ns: %v, %v; want the call's own -1, boom", key, v, err)
			}
		}
		if c.Len() != 0 {
			t.Errorf("Len() = %d, want 0: both values were found too old and dropped", c.Len())
		}
		want := []resilience.Count{{Result: "fresh", N: 2}, {Result: "stale", N: 1}, {Result: "miss", N: 2}, {Result: "passed", N: 0}}
		if d := testcheck.Diff(want, c.Stats().Calls); d != "" {
			t.Errorf("Stats().Calls:\n%s", d)
		}
	})
}

// TestStaleLeavesUncoveredErrorsAlone: an error Serve turns down, an
// answer and the caller's own cancellation come back as they were, with
// the call's own value, although a value is stored; Serve is asked about
// none but the first.
func TestStaleLeavesUncoveredErrorsAlone(t *testing.T) {
	errNotCovered := errors.New("not covered")
	answer := resilience.Answer(errors.New("not found"))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		err   error
		asked bool // Serve is asked about the error
	}{
		{"Serve false", context.Background(), errNotCovered, true},
		{"answer", context.Background(), answer, false},
		{"caller cancelled", cancelled, context.Canceled, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked []error
			c := staleCache(t, resilience.StaleCacheConfig[int]{
				MaxAge: time.Hour,
				Serve: func(err error) bool {
					asked = append(asked, err)
					return err != errNotCovered
				},
			})
			c.Do(context.Background(), returns(1, nil))
			v, err := c.Do(tc.ctx, returns(-1, tc.err))
			if v != -1 || err != tc.err {
				t.Errorf("%v, %v; want -1, %v unchanged", v, err, tc.err)
			}
			if got := len(asked) == 1 && asked[0] == tc.err; got != tc.asked {
				t.Errorf("Serve asked about %v, want asked about the error: %v", asked, tc.asked)
			}
			if got := c.Stats().Calls[3]; got != (resilience.Count{Result: "passed", N: 1}) {
				t.Errorf("Stats: %+v, want passed 1", got)
			}
		})
	}
}

// TestStaleCoversRejectionsAndTimeouts: by default, the rejection of an
// open breaker and the error of a timeout inside the cache are covered,
// and the stale error still matches them.
func TestStaleCoversRejectionsAndTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Hour})
		breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db"}))
		timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Duration: time.Second}))
		p := resilience.Compose(c, resilience.For[int](timeout, breaker))
		if v, err := p.Do(context.Background(), returns(7, nil)); v != 7 || err != nil {
			t.Fatalf("first call: %v, %v; want 7, <nil>", v, err)
		}

		slow := func(ctx context.Context) (int, error) { <-ctx.Done(); return -1, ctx.Err() }
		v, err := p.Do(context.Background(), slow)
		if age, ok := resilience.StaleAge(err); v != 7 || !ok || age != time.Second || !errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("timed out: %v, %v; want 7, a stale error 1s old matching ErrTimeout", v, err)
		}

		breaker.ForceOpen()
		ran := false
		v, err = p.Do(context.Background(), func(context.Context) (int, error) { ran = true; return 8, nil })
		if ran {
			t.Error("the call ran through an open breaker")
		}
		if !errors.Is(err, resilience.ErrStale) || !errors.Is(err, resilience.ErrOpen) || !errors.Is(err, resilience.ErrRejected) || v != 7 {
			t.Errorf("breaker open: %v, %v; want 7, an error matching ErrStale, ErrOpen and ErrRejected", v, err)
		}
	})
}

type tenantKey struct{}

// TestStaleKeysKeptApart: each key has its own value, with WithKey's keys
// by default and with a Key function's; calls without a key share "".
func TestStaleKeysKeptApart(t *testing.T) {
	t.Run("WithKey", func(t *testing.T) {
		c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Hour})
		c.Do(keyed("a"), returns(1, nil))
		c.Do(keyed("b"), returns(2, nil))
		for _, tc := range []struct {
			ctx  context.Context
			want int
		}{{keyed("a"), 1}, {keyed("b"), 2}, {keyed("c"), -1}, {context.Background(), -1}} {
			if v, _ := c.Do(tc.ctx, returns(-1, errBoom)); v != tc.want {
				key, _ := resilience.KeyFrom(tc.ctx)
				t.Errorf("key %q: %d, want %d", key, v, tc.want)
			}
		}
		c.Do(context.Background(), returns(3, nil))
		if v, err := c.Do(keyed(""), returns(-1, errBoom)); v != 3 || !errors.Is(err, resilience.ErrStale) {
			t.Errorf(`key "" set with WithKey: %v, %v; want 3, the value of the calls without a key`, v, err)
		}
	})
	t.Run("Key", func(t *testing.T) {
		c := staleCache(t, resilience.StaleCacheConfig[int]{
			MaxAge: time.Hour,
			Key:    func(ctx context.Context) string { s, _ := ctx.Value(tenantKey{}).(string); return s },
		})
		tenant := func(s string) context.Context {
			// WithKey's key is the same for both: the Key function's wins.
			return context.WithValue(keyed("shared"), tenantKey{}, s)
		}
		c.Do(tenant("x"), returns(1, nil))
		c.Do(tenant("y"), returns(2, nil))
		for key, want := range map[string]int{"x": 1, "y": 2, "z": -1} {
			v, err := c.Do(tenant(key), returns(-1, errBoom))
			var se *resilience.StaleError
			if v != want || (want > 0) != (errors.As(err, &se) && se.Key == key) {
				t.Errorf("tenant %q: %v, %v; want %d", key, v, err, want)
			}
		}
	})
}

// TestStaleIsBounded: a million distinct keys through a cache of 1000
// entries leave it 1000 entries, the last 1000 keys stored, and the heap
// no bigger than those need.
func TestStaleIsBounded(t *testing.T) {
	const entries, keys = 1000, 1_000_000
	c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Hour, MaxEntries: entries})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keys {
		c.Do(keyed(strconv.Itoa(i)), returns(i, nil))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if c.Len() != entries {
		t.Errorf("Len() = %d, want %d", c.Len(), entries)
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after %d keys through %d entries: %+d bytes", keys, entries, growth)
	if growth > 2<<20 {
		t.Errorf("heap grew by %d bytes, want at most 2 MB for %d entries", growth, entries)
	}
	for _, tc := range []struct {
		key  int
		want int
	}{{keys - 1, keys - 1}, {keys - entries, keys - entries}, {keys - entries - 1, -1}, {0, -1}} {
		if v, _ := c.Do(keyed(strconv.Itoa(tc.key)), returns(-1, errBoom)); v != tc.want {
			t.Errorf("key %d: %d, want %d", tc.key, v, tc.want)
		}
	}
	runtime.KeepAlive(c)
}

// TestStaleEvictsLeastRecentlyUsed: a full cache makes room by evicting
// the key stored or served least recently.
func TestStaleEvictsLeastRecentlyUsed(t *testing.T) {
	c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Hour, MaxEntries: 3})
	store := func(key string, v int) { c.Do(keyed(key), returns(v, nil)) }
	serve := func(key string) int { v, _ := c.Do(keyed(key), returns(-1, errBoom)); return v }
	store("a", 1)
	store("b", 2)
	store("c", 3)
	if got := serve("a"); got != 1 { // a served: b is now the least recent
		t.Fatalf("a: %d, want 1", got)
	}
	store("d", 4) // evicts b; d, a, c
	if got := serve("b"); got != -1 {
		t.Errorf("b: %d, want -1: b was the least recently used", got)
	}
	store("c", 30) // stored again: c, d, a
	store("e", 5)  // evicts a; e, c, d
	for key, want := range map[string]int{"a": -1, "b": -1, "c": 30, "d": 4, "e": 5} {
		if got := serve(key); got != want {
			t.Errorf("%s: %d, want %d", key, got, want)
		}
	}
	if c.Len() != 3 {
		t.Errorf("Len() = %d, want 3", c.Len())
	}
}

// TestStaleStats: each call is counted once, by how it ended, and the
// entries gauge follows Len.
func TestStaleStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errNotCovered := errors.New("not covered")
		c := staleCache(t, resilience.StaleCacheConfig[int]{
			MaxAge: time.Minute,
			Serve:  func(err error) bool { return err != errNotCovered },
		})
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		script := []struct {
			ctx context.Context
			fn  resilience.Func[int]
		}{
			{keyed("a"), returns(1, nil)},                                               // fresh
			{keyed("b"), returns(2, nil)},                                               // fresh
			{keyed("a"), returns(0, errBoom)},                                           // stale
			{keyed("a"), returns(0, errBoom)},                                           // stale
			{keyed("c"), returns(0, errBoom)},                                           // miss
			{keyed("a"), returns(0, errNotCovered)},                                     // passed
			{keyed("a"), returns(0, resilience.Answer(errBoom))},                        // passed
			{cancelled, func(ctx context.Context) (int, error) { return 0, ctx.Err() }}, // passed
		}
		for _, s := range script {
			c.Do(s.ctx, s.fn)
		}
		time.Sleep(time.Minute + 1)
		c.Do(keyed("b"), returns(0, errBoom)) // miss, and b dropped

		st := c.Stats()
		if len(st.Gauges) != 1 || st.Gauges[0].Help == "" {
			t.Fatalf("Gauges = %+v, want one, with a help line", st.Gauges)
		}
		st.Gauges[0].Help = ""
		want := resilience.Stats{
			Calls: []resilience.Count{
				{Result: "fresh", N: 2},
				{Result: "stale", N: 2},
				{Result: "miss", N: 2},
				{Result: "passed", N: 3},
			},
			Gauges: []resilience.Gauge{{Name: "entries", Value: 1}},
		}
		if d := testcheck.Diff(want, st); d != "" {
			t.Errorf("Stats:\n%s", d)
		}
	})
}

// TestStaleConfig: NewStaleCache reports every invalid field at once, each
// in a ConfigError naming it, and accepts the smallest valid config.
func TestStaleConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    resilience.StaleCacheConfig[int]
		fields []string
	}{
		{"MaxAge unset", resilience.StaleCacheConfig[int]{}, []string{"StaleCacheConfig.MaxAge"}},
		{"MaxAge negative", resilience.StaleCacheConfig[int]{MaxAge: -time.Second}, []string{"StaleCacheConfig.MaxAge"}},
		{"MaxEntries negative", resilience.StaleCacheConfig[int]{MaxAge: time.Second, MaxEntries: -1}, []string{"StaleCacheConfig.MaxEntries"}},
		{"both", resilience.StaleCacheConfig[int]{MaxAge: -1, MaxEntries: -5}, []string{"StaleCacheConfig.MaxAge", "StaleCacheConfig.MaxEntries"}},
		{"valid", resilience.StaleCacheConfig[int]{MaxAge: 1}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := resilience.NewStaleCache(tc.cfg)
			var fields []string
			if err != nil {
				for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
					var ce *resilience.ConfigError
					if !errors.As(e, &ce) {
						t.Fatalf("%v (%T) is not a ConfigError", e, e)
					}
					fields = append(fields, ce.Field)
				}
			}
			if d := testcheck.Diff(tc.fields, fields); d != "" {
				t.Errorf("fields reported (%v):\n%s", err, d)
			}
			if (err == nil) != (c != nil) || (err != nil && !errors.Is(err, resilience.ErrInvalidConfig)) {
				t.Errorf("NewStaleCache = %v, %v; want a cache or an error matching ErrInvalidConfig", c, err)
			}
		})
	}
}

// TestStaleRace: goroutines storing and failing on overlapping keys, with
// evictions, never get another key's value, and every call is counted.
func TestStaleRace(t *testing.T) {
	const goroutines, calls, keys = 8, 2000, 16
	var hooked atomic.Uint64
	c := staleCache(t, resilience.StaleCacheConfig[int]{
		MaxAge:     time.Hour,
		MaxEntries: keys / 2,
		OnStale:    func(resilience.StaleEvent) { hooked.Add(1) },
	})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range calls {
				k := (g + i) % keys
				var err error
				if i%3 == 0 {
					err = errBoom
				}
				v, err := c.Do(keyed(strconv.Itoa(k)), returns(k*1000+g, err))
				if v/1000 != k {
					t.Errorf("key %d: got value %d, of key %d (%v)", k, v, v/1000, err)
					return
				}
				_ = c.Len()
				_ = c.Stats()
			}
		})
	}
	wg.Wait()
	var total uint64
	for _, n := range c.Stats().Calls {
		total += n.N
	}
	if st := c.Stats(); total != goroutines*calls || st.Calls[1].N != hooked.Load() || c.Len() > keys/2 {
		t.Errorf("Stats %+v, %d stale events, Len %d; want %d calls, a stale event per stale call, at most %d entries", st, hooked.Load(), c.Len(), goroutines*calls, keys/2)
	}
}

// TestStaleZeroAndNil: the zero StaleCache runs no call and says what to
// use instead; a nil Func is an error, as for every policy.
func TestStaleZeroAndNil(t *testing.T) {
	var zero resilience.StaleCache[int]
	ran := false
	for name, p := range map[string]resilience.Policy[int]{
		"alone":   &zero,
		"Compose": resilience.Compose[int](&zero, resilience.For[int](must(resilience.NewRetry(resilience.RetryConfig{})))),
	} {
		_, err := p.Do(context.Background(), func(context.Context) (int, error) { ran = true; return 1, nil })
		if ran || !errors.Is(err, resilience.ErrInvalidConfig) || !strings.Contains(err.Error(), "NewStaleCache") {
			t.Errorf("%s: ran %v, err %v; want no call, an error matching ErrInvalidConfig naming NewStaleCache", name, ran, err)
		}
	}
	if zero.Len() != 0 || zero.Stats().Calls[0].N != 0 {
		t.Errorf("zero StaleCache: Len %d, Stats %+v; want 0 and zero counts", zero.Len(), zero.Stats())
	}

	fallback := must(resilience.NewFallback(resilience.FallbackConfig[int]{Func: func(context.Context, error) (int, error) { return 0, nil }}))
	_, errNilFunc := fallback.Do(context.Background(), nil)
	c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Second})
	for _, p := range []*resilience.StaleCache[int]{&zero, c} {
		if _, err := p.Do(context.Background(), nil); err == nil || err != errNilFunc {
			t.Errorf("Do(ctx, nil) = %v, want %v, as Fallback.Do says", err, errNilFunc)
		}
	}
}

// TestStalePanicStoresNothing: a panic in the call goes on up the stack,
// and leaves the value stored before in place.
func TestStalePanicStoresNothing(t *testing.T) {
	c := staleCache(t, resilience.StaleCacheConfig[int]{MaxAge: time.Hour})
	panics := func(context.Context) (int, error) { panic("boom") }
	catch := func(ctx context.Context) (r any) {
		defer func() { r = recover() }()
		c.Do(ctx, panics)
		return nil
	}
	if r := catch(keyed("a")); r != "boom" || c.Len() != 0 {
		t.Fatalf("recovered %v, Len %d; want the panic, and nothing stored", r, c.Len())
	}
	c.Do(keyed("b"), returns(2, nil))
	if r := catch(keyed("b")); r != "boom" {
		t.Fatalf("recovered %v, want the panic", r)
	}
	if v, err := c.Do(keyed("b"), returns(-1, errBoom)); v != 2 || !errors.Is(err, resilience.ErrStale) {
		t.Errorf("after the panic: %v, %v; want 2, stale", v, err)
	}
	if v, err := c.Do(keyed("a"), returns(-1, errBoom)); v != -1 || err != errBoom {
		t.Errorf("key of the panic: %v, %v; want -1, boom: nothing stored", v, err)
	}
}
