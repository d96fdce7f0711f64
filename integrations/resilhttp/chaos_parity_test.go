package resilhttp

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// A made-up answer to HEAD carries no body, as a real one does not.
func TestWithChaosHeadHasNoBody(t *testing.T) {
	srv, _ := countingServer(t)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: &StatusFault{Status: 503}}))
	resp, err := (&http.Client{Transport: WithChaos(nil, chaos)}).Head(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 0 || resp.ContentLength != 0 {
		t.Errorf("made-up HEAD response: body %q, ContentLength %d", b, resp.ContentLength)
	}
}

// A typed-nil *StatusFault as Err is an error at call time, not a panic.
func TestWithChaosNilStatusFault(t *testing.T) {
	srv, _ := countingServer(t)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, Err: (*StatusFault)(nil)}))
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("panic: %v", r)
		}
	}()
	if _, err := (&http.Client{Transport: WithChaos(nil, chaos)}).Get(srv.URL); err == nil {
		t.Error("a nil StatusFault: no error")
	}
}

// Injected latency cut by a per-attempt limit under a Transport is retried,
// as a slow server's attempt is.
func TestWithChaosLatencyIsASlowServer(t *testing.T) {
	srv, _ := countingServer(t)
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 1, Seed: 1, NoError: true, Latency: time.Second}))
	per := must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "attempt", Duration: 30 * time.Millisecond}))
	g := newGuard(t, must(resilience.NewRetry(resilience.RetryConfig{Name: "backend", MaxRetries: 2, NoBackoff: true})), per)
	client := &http.Client{Transport: transport(t, TransportConfig{Base: WithChaos(nil, chaos), Guard: g})}
	_, err := client.Get(srv.URL)
	if w := Wire(g).Stats().Calls; w[1].N != 3 {
		t.Errorf("attempts %d (err %v), want 3", w[1].N, err)
	}
}
