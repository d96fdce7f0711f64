package metrics_test

import (
	"context"
	"errors"
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
	retry := must(resilience.NewRetry(resilience.RetryConfig{Name: "db", MaxRetries: 2, InitialBackoff: time.Millisecond}))
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
	// three, and a permanent failure after one.
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
resilience_retry_attempts_bucket{name="db",result="failure",le="1"} 1
resilience_retry_attempts_bucket{name="db",result="failure",le="2"} 1
resilience_retry_attempts_bucket{name="db",result="failure",le="3"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="4"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="5"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="6"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="8"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="11"} 2
resilience_retry_attempts_bucket{name="db",result="failure",le="+Inf"} 2
resilience_retry_attempts_sum{name="db",result="failure"} 4
resilience_retry_attempts_count{name="db",result="failure"} 2
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
