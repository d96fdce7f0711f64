package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/metrics"
	"github.com/resilience-go/resilience/presets"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// errSecret is an error whose text must never reach a label.
var errSecret = errors.New("user 7d1c-secret not found")

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func ok(context.Context) (int, error)   { return 1, nil }
func fail(context.Context) (int, error) { return 0, errSecret }

func hang(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

// scenario drives a breaker, a timeout, a retry and a bulkhead, all named
// "db", through every outcome, on the fake clock.
func scenario(t *testing.T, m *metrics.Metrics) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	// Breaker: Closed -> Open -> HalfOpen -> Closed, 10s away from closed.
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db", FailureThreshold: 2, OpenTimeout: 10 * time.Second, SuccessThreshold: 1}))
	timeout := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "db", Duration: time.Second}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "db", MaxRetries: 2, InitialBackoff: time.Second}))
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "db", MaxConcurrent: 1}))
	if err := m.Instrument(breaker, timeout, retry, bulkhead); err != nil {
		t.Fatal(err)
	}

	b := resilience.For[int](breaker)
	b.Do(ctx, ok)                                                                   // closed/success
	b.Do(cancelled, func(ctx context.Context) (int, error) { return 0, ctx.Err() }) // closed/ignored
	b.Do(ctx, fail)                                                                 // closed/failure
	b.Do(ctx, fail)                                                                 // closed/failure, opens
	b.Do(ctx, ok)                                                                   // open/rejected
	time.Sleep(10 * time.Second)
	synctest.Wait() // half-open
	b.Do(ctx, ok)   // half-open/success, closes

	// Timeout: one of each result.
	tp := resilience.For[int](timeout)
	tp.Do(ctx, ok)
	tp.Do(ctx, fail)
	tp.Do(ctx, hang)
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(time.Millisecond, cancel)
	tp.Do(cctx, hang)

	// Retry: success at once, success at the third attempt, failure after
	// three, a permanent failure after one, and a failure after one whose
	// retry is not started: its first wait, 1s, would pass the deadline,
	// 100ms away.
	rp := resilience.For[int](retry)
	rp.Do(ctx, ok)
	n := 0
	rp.Do(ctx, func(context.Context) (int, error) {
		if n++; n < 3 {
			return 0, errSecret
		}
		return 1, nil
	})
	rp.Do(ctx, fail)
	rp.Do(ctx, func(context.Context) (int, error) { return 0, resilience.Permanent(errSecret) })
	dctx, cancelDeadline := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	if _, err := rp.Do(dctx, fail); !errors.Is(err, resilience.ErrRetryDeadline) || time.Since(start) != 0 {
		t.Errorf("a retry whose wait would pass the deadline: %v after %v, want ErrRetryDeadline at once", err, time.Since(start))
	}
	cancelDeadline()

	// Bulkhead: one call holds the only slot while another is turned away.
	bp := resilience.For[int](bulkhead)
	bp.Do(ctx, func(ctx context.Context) (int, error) {
		if _, err := bp.Do(ctx, ok); !errors.Is(err, resilience.ErrBulkheadFull) {
			t.Errorf("second call into a full bulkhead: %v", err)
		}
		return 0, nil
	})
}

// expected is the whole exposition after scenario, every value worked out
// by hand from the calls it makes.
const expected = `
# HELP resilience_bulkhead_in_use Calls running in bulkheads.
# TYPE resilience_bulkhead_in_use gauge
resilience_bulkhead_in_use{name="db"} 0
# HELP resilience_bulkhead_max_concurrent Calls bulkheads let run at once.
# TYPE resilience_bulkhead_max_concurrent gauge
resilience_bulkhead_max_concurrent{name="db"} 1
# HELP resilience_bulkhead_rejections_total Calls turned away by bulkheads.
# TYPE resilience_bulkhead_rejections_total counter
resilience_bulkhead_rejections_total{name="db"} 1
# HELP resilience_circuit_breaker_calls_total Calls through circuit breakers, by the state they arrived in and how they ended.
# TYPE resilience_circuit_breaker_calls_total counter
resilience_circuit_breaker_calls_total{name="db",result="failure",state="closed"} 2
resilience_circuit_breaker_calls_total{name="db",result="failure",state="half-open"} 0
resilience_circuit_breaker_calls_total{name="db",result="ignored",state="closed"} 1
resilience_circuit_breaker_calls_total{name="db",result="ignored",state="half-open"} 0
resilience_circuit_breaker_calls_total{name="db",result="rejected",state="half-open"} 0
resilience_circuit_breaker_calls_total{name="db",result="rejected",state="open"} 1
resilience_circuit_breaker_calls_total{name="db",result="success",state="closed"} 1
resilience_circuit_breaker_calls_total{name="db",result="success",state="half-open"} 1
# HELP resilience_circuit_breaker_open_duration_seconds How long circuit breakers stayed away from closed, from opening until closed again.
# TYPE resilience_circuit_breaker_open_duration_seconds histogram
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="1"} 0
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="5"} 0
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="15"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="30"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="60"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="120"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="300"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="600"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="1800"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="3600"} 1
resilience_circuit_breaker_open_duration_seconds_bucket{name="db",le="+Inf"} 1
resilience_circuit_breaker_open_duration_seconds_sum{name="db"} 10
resilience_circuit_breaker_open_duration_seconds_count{name="db"} 1
# HELP resilience_circuit_breaker_state Current state of circuit breakers: 1 for the state they are in, 0 for the others.
# TYPE resilience_circuit_breaker_state gauge
resilience_circuit_breaker_state{name="db",state="closed"} 1
resilience_circuit_breaker_state{name="db",state="half-open"} 0
resilience_circuit_breaker_state{name="db",state="open"} 0
# HELP resilience_circuit_breaker_state_transitions_total State transitions of circuit breakers.
# TYPE resilience_circuit_breaker_state_transitions_total counter
resilience_circuit_breaker_state_transitions_total{from="closed",name="db",to="open"} 1
resilience_circuit_breaker_state_transitions_total{from="half-open",name="db",to="closed"} 1
resilience_circuit_breaker_state_transitions_total{from="half-open",name="db",to="open"} 0
resilience_circuit_breaker_state_transitions_total{from="open",name="db",to="closed"} 0
resilience_circuit_breaker_state_transitions_total{from="open",name="db",to="half-open"} 1
# HELP resilience_retry_attempts Attempts made by retry policies per call, by whether the call finally succeeded.
# TYPE resilience_retry_attempts histogram
resilience_retry_attempts_bucket{name="db",result="failure",le="1"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="2"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="3"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="4"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="5"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="6"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="8"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="11"} 3
resilience_retry_attempts_bucket{name="db",result="failure",le="+Inf"} 3
resilience_retry_attempts_sum{name="db",result="failure"} 5
resilience_retry_attempts_count{name="db",result="failure"} 3
resilience_retry_attempts_bucket{name="db",result="success",le="1"} 1
resilience_retry_attempts_bucket{name="db",result="success",le="2"} 1
resilience_retry_attempts_bucket{name="db",result="success",le="3"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="4"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="5"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="6"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="8"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="11"} 2
resilience_retry_attempts_bucket{name="db",result="success",le="+Inf"} 2
resilience_retry_attempts_sum{name="db",result="success"} 4
resilience_retry_attempts_count{name="db",result="success"} 2
# HELP resilience_retry_deadline_skipped_total Retries not started because the call's deadline could not fit them: the wait before them, or (with RetryConfig.Latency) the wait and the attempt's predicted latency.
# TYPE resilience_retry_deadline_skipped_total counter
resilience_retry_deadline_skipped_total{name="db"} 1
# HELP resilience_timeout_operations_total Calls under timeout policies, by how they ended.
# TYPE resilience_timeout_operations_total counter
resilience_timeout_operations_total{name="db",result="canceled"} 1
resilience_timeout_operations_total{name="db",result="error"} 1
resilience_timeout_operations_total{name="db",result="success"} 1
resilience_timeout_operations_total{name="db",result="timeout"} 1
`

// TestExposition drives every policy through every outcome and compares
// the whole exposition, values included.
func TestExposition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := must(metrics.New(prometheus.NewPedanticRegistry()))
		scenario(t, m)
		if err := testutil.CollectAndCompare(m, strings.NewReader(expected)); err != nil {
			t.Error(err)
		}
		if problems, err := testutil.CollectAndLint(m); err != nil || len(problems) != 0 {
			t.Errorf("promlint: %v, %+v", err, problems)
		}
	})
}

// TestNoErrorTextInLabels: the exposition carries no error text, whatever
// the calls returned.
func TestNoErrorTextInLabels(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewPedanticRegistry()
		scenario(t, must(metrics.New(reg)))
		out, err := testutil.GatherAndFormat(reg, expfmt.TypeTextPlain)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "secret") {
			t.Errorf("error text in the exposition:\n%s", out)
		}
	})
}

// TestScrape serves the metrics with promhttp on 127.0.0.1, scrapes them
// over HTTP and parses the text format.
func TestScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := must(metrics.New(reg))
	redis := presets.Redis()
	if err := m.Instrument(redis); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resilience.Do(context.Background(), redis, fail) // 3 attempts each, the first call opens the breaker
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go srv.Serve(ln)
	defer srv.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"resilience_circuit_breaker_state", map[string]string{"name": "redis", "state": "open"}, 1},
		{"resilience_circuit_breaker_state", map[string]string{"name": "redis", "state": "closed"}, 0},
		{"resilience_circuit_breaker_calls_total", map[string]string{"name": "redis", "state": "closed", "result": "failure"}, 3},
		{"resilience_circuit_breaker_calls_total", map[string]string{"name": "redis", "state": "open", "result": "rejected"}, 2},
		{"resilience_circuit_breaker_state_transitions_total", map[string]string{"name": "redis", "from": "closed", "to": "open"}, 1},
		{"resilience_retry_attempts", map[string]string{"name": "redis", "result": "failure"}, 3},
		{"resilience_timeout_operations_total", map[string]string{"name": "redis", "result": "error"}, 3},
	} {
		if got := value(t, families, c.family, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.family, c.labels, got, c.want)
		}
	}
}

func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := must(metrics.New(reg))
	b, err := metrics.New(reg)
	if err != nil || b != a {
		t.Errorf("second New on one registry = %p, %v; want the first, %p", b, err, a)
	}
	if _, err := metrics.New(nil); err == nil || !strings.Contains(err.Error(), "nil prometheus.Registerer") {
		t.Errorf("New(nil): %v", err)
	}

	// Someone else's collector under one of our names.
	other := prometheus.NewRegistry()
	other.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "resilience_circuit_breaker_calls_total", Help: "not ours"}))
	if _, err := metrics.New(other); err == nil || !strings.Contains(err.Error(), "registering the resilience collectors") {
		t.Errorf("New on a registry with a clashing collector: %v", err)
	}
}

func TestInstrumentChecksEveryStage(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	named := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db"}))
	twin := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "db"}))
	anonymous := must(resilience.NewBreaker(resilience.BreakerConfig{}))
	var nilBreaker *resilience.Breaker

	err := m.Instrument(named, twin, anonymous, nilBreaker, nil)
	for _, want := range []string{`two stages of kind breaker named "db"`, "has no name: set BreakerConfig.Name", "nil breaker", "nil stage"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	// Nothing was instrumented.
	if n := testutil.CollectAndCount(m, "resilience_circuit_breaker_calls_total"); n != 0 {
		t.Errorf("%d series after a failed Instrument, want 0", n)
	}

	if err := m.Instrument(named); err != nil {
		t.Fatal(err)
	}
	if err := m.Instrument(twin); err == nil || !strings.Contains(err.Error(), `another breaker named "db"`) {
		t.Errorf("a second breaker named db: %v", err)
	}
	// The same breaker again: no error, and its calls still count once.
	if err := m.Instrument(named); err != nil {
		t.Errorf("instrumenting a breaker again: %v", err)
	}
	resilience.Do(context.Background(), named, ok)
	if got := closedSuccesses(t, m, "db"); got != 1 {
		t.Errorf("one call counted %v times", got)
	}
}

// closedSuccesses returns the count of successful closed calls of the
// breaker name.
func closedSuccesses(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	families := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		families[mf.GetName()] = mf
	}
	return value(t, families, "resilience_circuit_breaker_calls_total", map[string]string{"name": name, "state": "closed", "result": "success"})
}

// value returns the value of the series of family with the given labels
// (a histogram's count of observations).
func value(t *testing.T, families map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	t.Helper()
	mf, ok := families[family]
	if !ok {
		t.Fatalf("no %s in the scrape", family)
	}
next:
	for _, metric := range mf.GetMetric() {
		for _, l := range metric.GetLabel() {
			if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
				continue next
			}
		}
		switch {
		case metric.Counter != nil:
			return metric.GetCounter().GetValue()
		case metric.Gauge != nil:
			return metric.GetGauge().GetValue()
		case metric.Histogram != nil:
			return float64(metric.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no %s%v in the scrape", family, labels)
	return 0
}

// TestRecordingAllocatesNothing: metrics keep the happy path free of
// allocations.
func TestRecordingAllocatesNothing(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	breaker := must(resilience.NewBreaker(resilience.BreakerConfig{Name: "b"}))
	retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "r", MaxRetries: 2}))
	bulkhead := must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "h", MaxConcurrent: 4}))
	if err := m.Instrument(breaker, retry, bulkhead); err != nil {
		t.Fatal(err)
	}
	p := resilience.For[int](retry, breaker, bulkhead)
	if n := testing.AllocsPerRun(1000, func() { p.Do(context.Background(), ok) }); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// TestGuardSeries checks the series docs/METRICS.md lists for a preset's
// guard, created before any call.
func TestGuardSeries(t *testing.T) {
	m := must(metrics.New(prometheus.NewRegistry()))
	if err := m.Instrument(presets.GRPC()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		"resilience_circuit_breaker_state":                   3,
		"resilience_circuit_breaker_state_transitions_total": 5,
		"resilience_circuit_breaker_calls_total":             8,
		"resilience_circuit_breaker_open_duration_seconds":   1, // one histogram
		"resilience_timeout_operations_total":                8, // the total and the per-attempt limit
		"resilience_retry_attempts":                          2, // two histograms
		"resilience_retry_deadline_skipped_total":            1,
	} {
		if got := testutil.CollectAndCount(m, name); got != want {
			t.Errorf("%s: %d series, want %d", name, got, want)
		}
	}
	if got := len(metrics.OpenDurationBuckets); got != 10 {
		t.Errorf("%d open-duration buckets, docs/METRICS.md says 10", got)
	}
	if got := len(metrics.RetryAttemptsBuckets); got != 8 {
		t.Errorf("%d retry-attempts buckets, docs/METRICS.md says 8 (11 series a histogram)", got)
	}
}

// TestRetryDeadlineSkipped: resilience_retry_deadline_skipped_total is 0
// for every retry policy from the moment it is instrumented, and counts
// the calls a policy ended with its own ErrRetryDeadline: a retry whose
// wait would pass the deadline, and (with RetryConfig.Latency) one whose
// wait and predicted latency would. A call that ended otherwise is not
// counted, nor, for an outer policy, one that ended with a nested
// policy's stop, returned as it is or wrapped in the outer's own for
// another cause: each policy counts its own.
func TestRetryDeadlineSkipped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := must(metrics.New(prometheus.NewPedanticRegistry()))
		lat := must(resilience.NewLatency(resilience.LatencyConfig{Name: "dep", MinSamples: 10}))
		for range 20 {
			lat.Record(80 * time.Millisecond) // a median of 80ms
		}
		wait := must(resilience.NewRetry(resilience.RetryConfig{Name: "wait", MaxRetries: 3, InitialBackoff: time.Second}))
		model := must(resilience.NewRetry(resilience.RetryConfig{Name: "model", MaxRetries: 3, NoBackoff: true, Latency: lat}))
		inner := must(resilience.NewRetry(resilience.RetryConfig{Name: "inner", MaxRetries: 3, InitialBackoff: time.Second}))
		outer := must(resilience.NewRetry(resilience.RetryConfig{Name: "outer", MaxRetries: 1, NoBackoff: true}))
		strict := must(resilience.NewRetry(resilience.RetryConfig{Name: "strict", MaxRetries: 1, NoBackoff: true,
			Retryable: func(err error) bool { return !errors.Is(err, context.DeadlineExceeded) }}))
		if err := m.Instrument(wait, model, inner, outer, strict); err != nil {
			t.Fatal(err)
		}
		skipped := func(wait, model, inner, outer, strict int) string {
			return fmt.Sprintf(`
# HELP resilience_retry_deadline_skipped_total Retries not started because the call's deadline could not fit them: the wait before them, or (with RetryConfig.Latency) the wait and the attempt's predicted latency.
# TYPE resilience_retry_deadline_skipped_total counter
resilience_retry_deadline_skipped_total{name="inner"} %d
resilience_retry_deadline_skipped_total{name="model"} %d
resilience_retry_deadline_skipped_total{name="outer"} %d
resilience_retry_deadline_skipped_total{name="strict"} %d
resilience_retry_deadline_skipped_total{name="wait"} %d
`, inner, model, outer, strict, wait)
		}
		compare := func(when, want string) {
			t.Helper()
			if err := testutil.CollectAndCompare(m, strings.NewReader(want), "resilience_retry_deadline_skipped_total"); err != nil {
				t.Errorf("%s: %v", when, err)
			}
		}
		compare("before any call", skipped(0, 0, 0, 0, 0))

		ctx := context.Background()
		within := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, d) }
		slowFail := func(context.Context) (int, error) { // an 80ms failure
			time.Sleep(80 * time.Millisecond)
			return 0, errSecret
		}
		stopped := func(what string, err error, attempts int) {
			t.Helper()
			re, ok := errors.AsType[*resilience.RetryError](err)
			if !ok || !errors.Is(err, resilience.ErrRetryDeadline) || re.Attempts != attempts {
				t.Errorf("%s: %v, want a RetryError with ErrRetryDeadline after %d attempts", what, err, attempts)
			}
		}

		// wait: its first wait, 1s, would pass the deadline 100ms away; a
		// call without a deadline uses up its retries.
		dctx, cancel := within(100 * time.Millisecond)
		_, err := resilience.Do(dctx, wait, fail)
		cancel()
		stopped("wait, a 1s wait 100ms before the deadline", err, 1)
		if _, err := resilience.Do(ctx, wait, fail); !errors.Is(err, resilience.ErrRetriesExhausted) {
			t.Errorf("wait, no deadline: %v, want ErrRetriesExhausted", err)
		}

		// model: no wait, but after an 80ms failure 20ms are left, under
		// the 80ms the dependency takes; with 10s left it retries until its
		// retries are used up.
		dctx, cancel = within(100 * time.Millisecond)
		_, err = resilience.Do(dctx, model, slowFail)
		cancel()
		stopped("model, 20ms left for an 80ms attempt", err, 1)
		dctx, cancel = within(10 * time.Second)
		_, err = resilience.Do(dctx, model, slowFail)
		cancel()
		if !errors.Is(err, resilience.ErrRetriesExhausted) {
			t.Errorf("model, 10s left: %v, want ErrRetriesExhausted", err)
		}
		compare("after wait's and model's calls", skipped(1, 1, 0, 0, 0))

		// outer retries the inner policy's stop (no wait: it fits), which
		// stops again, then gives up with ErrRetriesExhausted wrapping
		// it: errors.Is finds ErrRetryDeadline in it, yet outer stopped for
		// its retries used up, and only inner counts, twice.
		dctx, cancel = within(100 * time.Millisecond)
		_, err = resilience.For[int](outer, inner).Do(dctx, fail)
		cancel()
		if re, ok := errors.AsType[*resilience.RetryError](err); !ok || re.Name != "outer" || re.Cause != resilience.ErrRetriesExhausted || !errors.Is(err, resilience.ErrRetryDeadline) {
			t.Errorf("outer over inner: %v, want outer's ErrRetriesExhausted wrapping inner's ErrRetryDeadline", err)
		}
		// strict does not retry an error matching DeadlineExceeded, and
		// returns the inner policy's stop as it is, after 1 attempt.
		dctx, cancel = within(100 * time.Millisecond)
		_, err = resilience.For[int](strict, inner).Do(dctx, fail)
		cancel()
		if re, ok := errors.AsType[*resilience.RetryError](err); !ok || re.Name != "inner" || re.Cause != resilience.ErrRetryDeadline {
			t.Errorf("strict over inner: %v, want inner's ErrRetryDeadline as it is", err)
		}
		compare("after the nested calls", skipped(1, 1, 3, 0, 0))
	})
}
