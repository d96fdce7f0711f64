package resilhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// countingServer answers 200 to every request on 127.0.0.1 and counts them.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// Under WithChaos alone, exactly the chaos stage's share of requests is
// answered with the made-up status, never reaching the server, with the
// Retry-After asked for; the others reach it.
func TestWithChaosMakesUpResponses(t *testing.T) {
	srv, reached := countingServer(t)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.3, Seed: 1, Err: &StatusFault{Status: 503, RetryAfter: 2}}))
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: WithChaos(base, chaos)}
	faulted := 0
	for range 1000 {
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch resp.StatusCode {
		case 503:
			faulted++
			if resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), "made-up 503") {
				t.Fatalf("made-up response: Retry-After %q, body %q", resp.Header.Get("Retry-After"), body)
			}
		case 200:
		default:
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if faulted != 300 || reached.Load() != 700 {
		t.Errorf("%d made-up 503s, %d requests reached the server; want 300 and 700", faulted, reached.Load())
	}
}

// Under a Transport, the made-up 503s are what a real one is to it: each
// is retried (the wire counts the retries), and a call fails only when
// every attempt got one; a made-up connection error is retried as a real
// one is.
func TestWithChaosUnderATransport(t *testing.T) {
	srv, reached := countingServer(t)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"503", &StatusFault{Status: 503}},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}},
	} {
		reached.Store(0)
		chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.5, Seed: 3, Err: tc.err}))
		g := newGuard(t, must(resilience.NewRetry(resilience.RetryConfig{Name: "backend", MaxRetries: 2, NoBackoff: true})))
		base := &http.Transport{}
		client := &http.Client{Transport: transport(t, TransportConfig{Base: WithChaos(base, chaos), Guard: g})}
		failed := 0
		const calls = 200
		for range calls {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req := get(t, ctx, http.MethodGet, srv.URL, nil)
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != 200 {
				failed++
			}
			cancel()
		}
		base.CloseIdleConnections()
		st := chaos.Stats().Calls
		injected := int(st[1].N)
		// Every call reached the server once, unless all three attempts
		// were faulted; the faulted attempts were retried.
		if int(reached.Load())+failed != calls || int(reached.Load())+injected != int(st[0].N+st[1].N) {
			t.Errorf("%s: %d calls, %d failed, %d reached the server, %d faults injected", tc.name, calls, failed, reached.Load(), injected)
		}
		// About 1.75 attempts a call, half of them faulted; one call in 8
		// faulted all three times.
		if injected < 100 || injected > 250 || failed == 0 || failed > 50 {
			t.Errorf("%s: %d faults injected, %d calls failed; want the faulted attempts retried (about 175, and 25 calls failing)", tc.name, injected, failed)
		}
		t.Logf("%s: %d calls, %d attempts faulted and retried, %d calls failed every attempt", tc.name, calls, injected, failed)
		wire := Wire(g).Stats().Calls
		if wire[0].N != calls || wire[1].N != uint64(calls+injected-failed) {
			t.Errorf("%s: wire %+v; want %d calls and an attempt for each one that reached the server or was faulted", tc.name, wire, calls)
		}
	}
}

// A bad StatusFault and a nil chaos stage are errors, not panics; a
// request whose context ends during the injected latency gets its
// context's error.
func TestWithChaosErrors(t *testing.T) {
	srv, _ := countingServer(t)
	bad := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: &StatusFault{}}))
	if _, err := (&http.Client{Transport: WithChaos(nil, bad)}).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "StatusFault.Status 0") {
		t.Errorf("status 0: %v", err)
	}
	if _, err := (&http.Client{Transport: WithChaos(nil, nil)}).Get(srv.URL); err == nil || !strings.Contains(err.Error(), "nil") {
		t.Errorf("nil chaos: %v", err)
	}
	slow := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, NoError: true, Latency: time.Minute}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := (&http.Client{Transport: WithChaos(nil, slow)}).Do(get(t, ctx, http.MethodGet, srv.URL, nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("latency past the deadline: %v", err)
	}
}
