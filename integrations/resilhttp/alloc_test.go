//go:build !race

package resilhttp

// Allocation counts mean nothing under the race detector, which allocates
// (and empties sync.Pools): these tests are built without it, and CI runs
// them so (.ci/run, the integrations step).

import (
	"context"
	"net/http"
	"testing"
)

// Counting adds no allocation to a request sent once (see
// maxRoundTripAllocs), and counts each of them.
func TestWireCountingAllocatesNothing(t *testing.T) {
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	tr := transport(t, TransportConfig{Guard: retrying(t, "backend", 2), Base: base})
	req := get(t, context.Background(), "GET", "http://backend/", nil)
	req.Header.Set("Accept", "text/plain")
	send := func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	before := Wire(tr.guard).(interface{ Attempts() uint64 }).Attempts()
	n := testing.AllocsPerRun(100, send)
	if after := Wire(tr.guard).(interface{ Attempts() uint64 }).Attempts(); after-before != 101 {
		t.Fatalf("%d attempts counted for 101 requests", after-before)
	}
	if n > maxRoundTripAllocs {
		t.Errorf("%v allocations per request, want at most %d", n, maxRoundTripAllocs)
	}
}

// maxRoundTripAllocs is what RoundTrip allocates for a request sent once
// through a guard with a retry, over a Base that allocates nothing, with
// Go 1.26: for the request's copy, the guard's hold on its time limits
// and the call, whose state (the exchange) is one allocation, the first
// response recorded in it included. A first attempt carries no
// AttemptHeader, so its header is not copied; counting the attempt
// allocates nothing.
const maxRoundTripAllocs = 8
