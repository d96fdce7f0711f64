// Package extending holds the code of docs/EXTENDING.md, compiled and run:
// a stage written outside the library, in For, Do, a Guard, an
// integration and metrics. Each Go snippet of docs/EXTENDING.md is copied
// verbatim into this file; TestEXTENDINGSnippets checks that.
package extending

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// DeadlineCheck turns away a call whose deadline leaves less than Min:
// it could not finish in time, and would only load the dependency.
type DeadlineCheck struct {
	name     string
	min      time.Duration
	admitted atomic.Uint64
	rejected atomic.Uint64
}

func NewDeadlineCheck(name string, min time.Duration) (*DeadlineCheck, error) {
	if min <= 0 {
		return nil, fmt.Errorf("deadline check %q: min %v must be positive", name, min)
	}
	return &DeadlineCheck{name: name, min: min}, nil
}

func (d *DeadlineCheck) Name() string { return d.name }
func (*DeadlineCheck) Kind() string   { return "deadline" }

func (d *DeadlineCheck) Run(ctx context.Context, call func(context.Context) error) error {
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < d.min {
			d.rejected.Add(1)
			return &TooLateError{Name: d.name, Left: left}
		}
	}
	d.admitted.Add(1)
	return call(ctx)
}

// TooLateError is the error of a call turned away by a DeadlineCheck.
type TooLateError struct {
	Name string
	Left time.Duration
}

func (e *TooLateError) Error() string {
	return fmt.Sprintf("deadline check %q: only %v left", e.Name, e.Left)
}

func (e *TooLateError) Is(target error) bool { return target == resilience.ErrRejected }

func (d *DeadlineCheck) Stats() resilience.Stats {
	return resilience.Stats{Calls: []resilience.Count{
		{Result: "admitted", N: d.admitted.Load()},
		{Result: "rejected", N: d.rejected.Load()},
	}}
}

// guard builds the guard of the doc around check.
func guard(check *DeadlineCheck) (*resilience.Guard, error) {
	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "users", Duration: time.Second})
	if err != nil {
		return nil, err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 2})
	if err != nil {
		return nil, err
	}
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{Name: "users"})
	if err != nil {
		return nil, err
	}
	return resilience.NewGuard(resilience.GuardConfig{
		Name:   "users",
		Stages: []resilience.Stage{total, retry, check, breaker},
	})
}

type User struct{ Name string }

func getUser(ctx context.Context) (*User, error) { return &User{Name: "ada"}, nil }

func TestDeadlineCheckEverywhere(t *testing.T) {
	check, err := NewDeadlineCheck("users", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	g, err := guard(check)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Do, For and a Guard.
	u, err := resilience.Do(ctx, check, getUser)
	if err != nil || u.Name != "ada" {
		t.Fatalf("Do: %v, %v", u, err)
	}
	users := resilience.For[*User](g)
	if _, err := users.Do(ctx, getUser); err != nil {
		t.Fatalf("For: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	calls := 0
	_, err = resilience.Do(short, g, func(ctx context.Context) (*User, error) { calls++; return getUser(ctx) })
	var late *TooLateError
	if !errors.Is(err, resilience.ErrRejected) || !errors.As(err, &late) || calls != 0 {
		t.Fatalf("a call with 10ms left: %v after %d calls, want a TooLateError matching ErrRejected, and no call", err, calls)
	}

	// Metrics.
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Instrument(g); err != nil {
		t.Fatal(err)
	}

	// An integration.
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	defer srv.Close()
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: transport}
	defer client.CloseIdleConnections()
	for _, left := range []time.Duration{time.Minute, 10 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), left)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		if rejected := errors.Is(err, resilience.ErrRejected); rejected != (left < check.min) {
			t.Errorf("a request with %v left: %v", left, err)
		}
		cancel()
	}
	if served.Load() != 1 {
		t.Errorf("the server saw %d requests, want 1: the late one is turned away before it is sent", served.Load())
	}
	want := `
# HELP resilience_deadline_calls_total Calls through deadline stages, by how they ended.
# TYPE resilience_deadline_calls_total counter
resilience_deadline_calls_total{name="users",result="admitted"} 3
resilience_deadline_calls_total{name="users",result="rejected"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "resilience_deadline_calls_total"); err != nil {
		t.Error(err)
	}
}

// TestEXTENDINGSnippets: every Go snippet of docs/EXTENDING.md is in this
// file, so the doc shows code that compiles and runs.
func TestEXTENDINGSnippets(t *testing.T) {
	doc, err := os.ReadFile("../../docs/EXTENDING.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("extending_test.go")
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(snippets) < 3 {
		t.Fatalf("docs/EXTENDING.md has %d Go snippets, want at least 3", len(snippets))
	}
	for _, s := range snippets {
		if !strings.Contains(normalize(string(src)), normalize(s[1])) {
			t.Errorf("snippet of docs/EXTENDING.md not found in extending_test.go:\n%s", s[1])
		}
	}
}

// normalize trims each line and drops blank ones.
func normalize(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
