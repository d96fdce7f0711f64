package resilhttp

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestZeroValues: a Transport not made by NewTransport answers every
// request with an error naming NewTransport, never a panic, and closes
// the request's body as a RoundTripper must.
func TestZeroValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func() error
	}{{
		name: "Transport.RoundTrip",
		call: func() error {
			req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:1/", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := (&Transport{}).RoundTrip(req)
			if resp != nil {
				return fmt.Errorf("a response, and %w", err)
			}
			return err
		},
	}, {
		name: "Transport.RoundTrip with a body",
		call: func() error {
			body := &closeCounter{Reader: strings.NewReader("x")}
			req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/", body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = (&Transport{}).RoundTrip(req)
			if body.closed != 1 {
				t.Errorf("request body closed %d times, want 1", body.closed)
			}
			return err
		},
	}, {
		name: "Transport in an http.Client",
		call: func() error {
			resp, err := (&http.Client{Transport: &Transport{}}).Get("http://127.0.0.1:1/")
			if resp != nil {
				resp.Body.Close()
			}
			return err
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := noPanic(t, tc.call); err == nil || !strings.Contains(err.Error(), "NewTransport") {
				t.Errorf("err = %v, want one naming NewTransport", err)
			}
		})
	}
}

// noPanic runs call, and fails t if it panics.
func noPanic(t *testing.T, call func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic: %v", p)
		}
	}()
	return call()
}

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }
