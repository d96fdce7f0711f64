package resilhttp

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestZeroTransport: a Transport not made by NewTransport answers every
// request with an error naming NewTransport, and closes the body.
func TestZeroTransport(t *testing.T) {
	body := &closeCounter{Reader: strings.NewReader("x")}
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&Transport{}).RoundTrip(req)
	if resp != nil || err == nil || !strings.Contains(err.Error(), "NewTransport") {
		t.Errorf("RoundTrip = %v, %v; want no response and an error naming NewTransport", resp, err)
	}
	if body.closed != 1 {
		t.Errorf("request body closed %d times, want 1", body.closed)
	}
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }
