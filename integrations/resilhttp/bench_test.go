package resilhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/resilience-go/resilience/presets"
)

// The cost of the Transport on a request that succeeds at once, over a
// base that answers without a network.
func BenchmarkTransport(b *testing.B) {
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	tr, err := NewTransport(TransportConfig{Guard: presets.ExternalHTTP(), Base: base})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "http://backend/", nil)
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"direct", base}, {"guarded", tr}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, err := bc.rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				r.Body.Close()
			}
		})
	}
}

// The same over loopback, to a real server: what the Transport adds to a
// request that crosses a socket.
func BenchmarkTransportLoopback(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr, err := NewTransport(TransportConfig{Guard: presets.ExternalHTTP(), Base: base})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"direct", base}, {"guarded", tr}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			client := &http.Client{Transport: bc.rt}
			for b.Loop() {
				r, err := client.Get(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
		})
	}
}
