package resilhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// hosts starts n loopback servers; failing(i) says whether server i
// answers 500 to every request. It returns their URLs and request counts.
func hosts(t *testing.T, n int, failing func(i int) bool) ([]string, []*atomic.Int64) {
	urls := make([]string, n)
	counts := make([]*atomic.Int64, n)
	for i := range n {
		var c atomic.Int64
		counts[i] = &c
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.Add(1)
			if failing(i) {
				http.Error(w, "down", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(srv.Close)
		urls[i] = srv.URL
	}
	return urls, counts
}

// hostsGuard is the external-HTTP preset, a breaker per host, without
// retries (so that each request is one attempt) and with cap percent.
func hostsGuard(t *testing.T, percent int) *resilience.Guard {
	cfg := presets.ExternalHTTPConfig()
	cfg.Retry = nil
	cfg.BreakerPerKey.MaxEjectedPercent = percent
	return must(cfg.Build())
}

// hostGet sends one GET and says how it ended: "ok", "failed" (a 5xx that
// came back) or "rejected".
func hostGet(t *testing.T, client *http.Client, u string) string {
	resp, err := client.Get(u)
	switch {
	case errors.Is(err, resilience.ErrRejected):
		return "rejected"
	case err != nil:
		t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "failed"
	}
	return "ok"
}

// TestTransportBreakerPerHost: ten servers behind one Transport, one of
// them failing every call. The nine others see no rejection and no added
// failure; the failing one's calls fail fast once its breaker opens,
// after the preset's 5 failures in a row.
func TestTransportBreakerPerHost(t *testing.T) {
	urls, counts := hosts(t, 10, func(i int) bool { return i == 7 })
	guard := hostsGuard(t, 10)
	client := &http.Client{Transport: must(NewTransport(TransportConfig{Guard: guard}))}
	defer client.CloseIdleConnections()
	results := make([]map[string]int, 10)
	for i := range results {
		results[i] = map[string]int{}
	}
	for range 50 {
		for i, u := range urls {
			results[i][hostGet(t, client, u)]++
		}
	}
	for i := range urls {
		want := map[string]int{"ok": 50}
		if i == 7 {
			want = map[string]int{"failed": 5, "rejected": 45}
		}
		if fmt.Sprint(results[i]) != fmt.Sprint(want) {
			t.Errorf("host %d: %v, want %v", i, results[i], want)
		}
	}
	if n := counts[7].Load(); n != 5 {
		t.Errorf("the failing host saw %d requests, want 5: the rest failed fast", n)
	}
	k := guard.KeyedBreaker()
	b, ok := k.Lookup(HostKey(must(http.NewRequest("GET", urls[7], nil))))
	if !ok || b.State() != resilience.Open || k.Ejected() != 1 || k.Len() != 10 {
		t.Errorf("failing host's breaker %v (found %v), Ejected %d, Len %d; want open, 1, 10", b, ok, k.Ejected(), k.Len())
	}
}

// TestTransportEjectionCap: with 5 of 10 servers failing and a 30% cap,
// at most 3 hosts' breakers are open at any moment; the two others'
// failures go on reaching their servers, and are counted as capped.
func TestTransportEjectionCap(t *testing.T) {
	urls, counts := hosts(t, 10, func(i int) bool { return i%2 == 0 })
	guard := hostsGuard(t, 30)
	client := &http.Client{Transport: must(NewTransport(TransportConfig{Guard: guard}))}
	defer client.CloseIdleConnections()
	k := guard.KeyedBreaker()
	maxOpen := 0
	var healthy map[string]int = map[string]int{}
	for range 40 {
		for i, u := range urls {
			r := hostGet(t, client, u)
			if i%2 == 1 {
				healthy[r]++
			}
			maxOpen = max(maxOpen, k.Ejected())
		}
	}
	if maxOpen != 3 || k.Ejected() != 3 {
		t.Errorf("at most %d hosts open, %d at the end; want 3 (30%% of 10)", maxOpen, k.Ejected())
	}
	if fmt.Sprint(healthy) != "map[ok:200]" {
		t.Errorf("healthy hosts: %v, want 200 ok", healthy)
	}
	// Hosts 0, 2 and 4 opened after 5 failures; 6 and 8 were held closed
	// and saw every request.
	for i, want := range map[int]int64{0: 5, 2: 5, 4: 5, 6: 40, 8: 40} {
		if n := counts[i].Load(); n != want {
			t.Errorf("host %d saw %d requests, want %d", i, n, want)
		}
	}
	capped := uint64(0)
	for _, c := range k.Stats().Calls {
		if c.Result == "capped" {
			capped = c.N
		}
	}
	if capped != 2*(40-4) {
		t.Errorf("capped %d, want %d: the held hosts' failures from the 5th on", capped, 2*(40-4))
	}
}

// TestHostKey spells out the default port.
func TestHostKey(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/v1":      "https://api.example.com:443",
		"http://api.example.com/v1":       "http://api.example.com:80",
		"http://127.0.0.1:8080/x?y=z":     "http://127.0.0.1:8080",
		"https://[::1]/":                  "https://[::1]:443",
		"https://user@API.example.com:99": "https://API.example.com:99",
	} {
		u := must(url.Parse(in))
		if got := HostKey(&http.Request{URL: u}); got != want {
			t.Errorf("HostKey(%s) = %s, want %s", in, got, want)
		}
	}
}

// TestTransportSharedBreaker: a Key returning a constant shares one
// breaker between hosts, so the failing host cuts off the healthy one.
func TestTransportSharedBreaker(t *testing.T) {
	urls, _ := hosts(t, 2, func(i int) bool { return i == 0 })
	guard := hostsGuard(t, 10)
	client := &http.Client{Transport: must(NewTransport(TransportConfig{Guard: guard, Key: func(*http.Request) string { return "all" }}))}
	defer client.CloseIdleConnections()
	for range 5 {
		hostGet(t, client, urls[0])
	}
	if r := hostGet(t, client, urls[1]); r != "rejected" {
		t.Errorf("the healthy host behind a shared breaker: %s, want rejected", r)
	}
}

// A guard with a Keyed family and no KeyedBreaker (a rate limit per
// tenant) keeps the caller's key: the Transport does not replace it with
// the host's, so each tenant has its own limiter. (A Transport that keyed
// every keyed guard by host made one limiter per host for all tenants.)
func TestTransportKeepsTheCallersKeyForAKeyedFamily(t *testing.T) {
	urls, _ := hosts(t, 1, func(int) bool { return false })
	perTenant := must(resilience.NewKeyed(resilience.KeyedConfig{Name: "reports"}, func(string) (*resilience.RateLimiter, error) {
		return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "reports", Rate: 0.001, Burst: 1})
	}))
	guard := must(resilience.NewGuard(resilience.GuardConfig{Name: "reports", Stages: []resilience.Stage{perTenant}}))
	client := &http.Client{Transport: must(NewTransport(TransportConfig{Guard: guard}))}
	defer client.CloseIdleConnections()
	for _, tenant := range []string{"A", "B"} {
		req := must(http.NewRequestWithContext(resilience.WithKey(context.Background(), tenant), http.MethodGet, urls[0], nil))
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("tenant %s's first request: %v, want its own burst", tenant, err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if _, ok := perTenant.Lookup(tenant); !ok {
			t.Errorf("no limiter for tenant %s", tenant)
		}
	}
}
