// Run: cd integrations && go run ./examples/http
//
// An http.Client guarded by the external-HTTP preset through
// resilhttp.Transport, against a server on 127.0.0.1 that is itself
// guarded by resilhttp.Shed. The server answers its first request 503 with
// Retry-After: 1, so the client waits a second and asks again; a POST
// without an Idempotency-Key is not retried; and while a slow request
// holds the server's only slot, the next is shed with 503 at once.
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	// The server: one request at a time, the first answered 503.
	var requests atomic.Int32
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "api", MaxConcurrent: 1})
	if err != nil {
		log.Fatal(err)
	}
	shed, err := resilhttp.Shed(bulkhead, time.Second)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/price", func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "42.00 EUR")
	})
	mux.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "database busy", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(500 * time.Millisecond)
		fmt.Fprintln(w, "report")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: shed(mux)}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	// The client: one Transport per backend, its Guard from a preset.
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Guard: presets.ExternalHTTP()})
	if err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: transport}

	start := time.Now()
	resp, err := client.Get(base + "/price")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("GET /price: %s after %v and %d requests (the server asked for 1s): %s",
		resp.Status, time.Since(start).Round(100*time.Millisecond), requests.Load(), body)

	resp, err = client.Post(base+"/orders", "application/json", strings.NewReader(`{"item":7}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Printf("POST /orders: %s, not retried: a POST may have taken effect\n", resp.Status)

	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.Get(base + "/report"); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond)
	resp, err = http.Get(base + "/report") // plain client: see the shedding itself
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Printf("GET /report while another is served: %s, Retry-After %s\n", resp.Status, resp.Header.Get("Retry-After"))
	<-done
}
