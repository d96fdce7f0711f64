package resilhttp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

func TestShedConfig(t *testing.T) {
	if _, err := Shed(nil, time.Second); err == nil || !strings.Contains(err.Error(), "bulkhead") {
		t.Errorf("Shed(nil): err = %v, want one naming the bulkhead", err)
	}
	b, _ := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 1})
	if _, err := Shed(b, -time.Second); err == nil || !strings.Contains(err.Error(), "retryAfter") {
		t.Errorf("Shed(b, -1s): err = %v, want one naming retryAfter", err)
	}
}

// A real server on 127.0.0.1 with one slot: while a request holds it, the
// next is answered 503 with Retry-After; a handler that panics gives its
// slot back.
func TestShedAnswers503WhenFull(t *testing.T) {
	b, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	shed, err := Shed(b, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "fast") })
	srv := httptest.NewServer(shed(mux))
	defer srv.Close()
	client := srv.Client()

	slow := make(chan *http.Response)
	go func() {
		resp, err := client.Get(srv.URL + "/slow")
		if err != nil {
			t.Error(err)
		}
		slow <- resp
	}()
	<-entered

	resp, err := client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("while full: %d, Retry-After %q (%q); want 503, \"2\"", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}

	close(release)
	if resp := <-slow; resp != nil {
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("the request holding the slot got %d", resp.StatusCode)
		}
	}

	if resp, err := client.Get(srv.URL + "/panic"); err == nil {
		resp.Body.Close()
	}
	if n := b.InUse(); n != 0 {
		t.Errorf("%d slots in use after the handlers returned, one of them by panicking", n)
	}
	resp, err = client.Get(srv.URL + "/fast")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("once free: %d, want 200", resp.StatusCode)
	}
}
