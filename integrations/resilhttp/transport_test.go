package resilhttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// answer makes a response with a body that records its closing.
func answer(r *http.Request, code int, body string, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return &http.Response{
		StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)),
		Header: h, Body: &trackedBody{Reader: strings.NewReader(body)}, Request: r,
	}
}

type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func guard(t *testing.T, retries int, threshold int) *resilience.Guard {
	t.Helper()
	g, err := resilience.Preset{
		Name:    "backend",
		Timeout: resilience.TimeoutConfig{Duration: time.Minute},
		Retry:   &resilience.RetryConfig{MaxRetries: retries, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 10 * time.Second},
		Breaker: resilience.BreakerConfig{FailureThreshold: threshold, OpenTimeout: time.Minute},
	}.Build()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func transport(t *testing.T, cfg TransportConfig) *Transport {
	t.Helper()
	tr, err := NewTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func get(t *testing.T, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestNewTransportNeedsGuard(t *testing.T) {
	_, err := NewTransport(TransportConfig{})
	if err == nil || !strings.Contains(err.Error(), "Guard") {
		t.Fatalf("NewTransport without a guard: err = %v, want one naming Guard", err)
	}
}

func TestWhichStatusesAreFailures(t *testing.T) {
	for _, tc := range []struct {
		code    int
		failure bool
	}{
		{200, false}, {204, false}, {301, false}, {400, false}, {404, false}, {409, false},
		{501, false}, {429, true}, {500, true}, {502, true}, {503, true}, {504, true},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			g := guard(t, 0, 1) // one failure opens the breaker
			tr := transport(t, TransportConfig{Guard: g, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				return answer(r, tc.code, "x"), nil
			})})
			resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if open := g.Breaker().State() == resilience.Open; open != tc.failure {
				t.Errorf("after a %d the breaker is %v; counted as a failure: %v, want %v", tc.code, g.Breaker().State(), open, tc.failure)
			}
		})
	}
}

// attempts serves each attempt from codes in turn and records when each
// came, on the synctest clock.
type attempts struct {
	mu     sync.Mutex
	at     []time.Duration
	bodies []*trackedBody
	start  time.Time
}

func (a *attempts) base(codes []int, header ...string) http.RoundTripper {
	a.start = time.Now()
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		n := len(a.at)
		a.at = append(a.at, time.Since(a.start))
		code := codes[min(n, len(codes)-1)]
		var h []string
		if code != 200 {
			h = header
		}
		resp := answer(r, code, fmt.Sprintf("attempt %d", n+1), h...)
		a.bodies = append(a.bodies, resp.Body.(*trackedBody))
		return resp, nil
	})
}

func TestRetryAfterSetsTheWait(t *testing.T) {
	date := time.Date(2000, 1, 1, 0, 0, 7, 0, time.UTC).Format(http.TimeFormat) // synctest starts at 2000-01-01 00:00:00 UTC
	for _, tc := range []struct {
		name, header string
		want         time.Duration
	}{
		{"seconds", "3", 3 * time.Second},
		{"HTTP date", date, 7 * time.Second},
		{"capped by MaxBackoff", "120", 10 * time.Second},
		{"zero", "0", 0},
		{"seconds beyond int64", "99999999999999999999", 10 * time.Second},
		{"seconds beyond time.Duration", "9223372037", 10 * time.Second},
		{"HTTP date far in the future", "Fri, 31 Dec 9999 23:59:59 GMT", 10 * time.Second},
		{"HTTP date in the past", "Sat, 01 Jan 1994 00:00:00 GMT", 0},
		{"negative", "-3", 100 * time.Millisecond},
		{"no header", "", 100 * time.Millisecond}, // the policy's own backoff
		{"garbage", "soon", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var a attempts
				tr := transport(t, TransportConfig{Guard: guard(t, 2, 5), Base: a.base([]int{503, 200}, "Retry-After", tc.header)})
				resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || len(a.at) != 2 {
					t.Fatalf("status %d after %d attempts, want 200 after 2", resp.StatusCode, len(a.at))
				}
				if got := a.at[1] - a.at[0]; got != tc.want {
					t.Errorf("waited %v before the retry, want %v", got, tc.want)
				}
			})
		})
	}
}

func TestOnlyIdempotentRequestsAreRetried(t *testing.T) {
	for _, tc := range []struct {
		method string
		key    bool // an Idempotency-Key header
		unsafe bool // RetryUnsafe
		want   int  // attempts
	}{
		{"GET", false, false, 3}, {"HEAD", false, false, 3}, {"OPTIONS", false, false, 3},
		{"PUT", false, false, 3}, {"DELETE", false, false, 3},
		{"POST", false, false, 1}, {"PATCH", false, false, 1},
		{"POST", true, false, 3}, {"PATCH", false, true, 3},
	} {
		t.Run(fmt.Sprintf("%s key=%v unsafe=%v", tc.method, tc.key, tc.unsafe), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var a attempts
				tr := transport(t, TransportConfig{Guard: guard(t, 2, 10), RetryUnsafe: tc.unsafe, Base: a.base([]int{503})})
				req := get(t, t.Context(), tc.method, "http://backend/", nil)
				if tc.key {
					req.Header.Set("Idempotency-Key", "k1")
				}
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				// The last answer comes back as it is, its body unread.
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if len(a.at) != tc.want {
					t.Errorf("%d attempts, want %d", len(a.at), tc.want)
				}
				if want := fmt.Sprintf("attempt %d", tc.want); resp.StatusCode != 503 || string(body) != want {
					t.Errorf("got %d %q, want 503 %q", resp.StatusCode, body, want)
				}
				for i, b := range a.bodies {
					if !b.closed.Load() {
						t.Errorf("the body of attempt %d was never closed", i+1)
					}
				}
			})
		})
	}
}

func TestRetriedResponseIsClosedBeforeTheNextAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var prev *trackedBody
		n := 0
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			mu.Lock()
			defer mu.Unlock()
			if prev != nil && !prev.closed.Load() {
				t.Errorf("attempt %d sent before the response of attempt %d was closed", n+1, n)
			}
			n++
			code := 503
			if n == 3 {
				code = 200
			}
			resp := answer(r, code, strings.Repeat("x", 200<<10)) // larger than what is buffered
			prev = resp.Body.(*trackedBody)
			return resp, nil
		})
		tr := transport(t, TransportConfig{Guard: guard(t, 2, 10), Base: base})
		resp, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
		if err != nil || resp.StatusCode != 200 || n != 3 {
			t.Fatalf("got %v, %v after %d attempts; want 200 after 3", resp, err, n)
		}
		resp.Body.Close()
	})
}

func TestCallerCancelEndsTheWaitAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var a attempts
		tr := transport(t, TransportConfig{Guard: guard(t, 2, 10), Base: a.base([]int{503}, "Retry-After", "5")})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		resp, err := tr.RoundTrip(get(t, ctx, "GET", "http://backend/", nil))
		if resp != nil || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, %v; want no response and context.Canceled", resp, err)
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("returned after %v, want 1s, when the caller cancelled", took)
		}
		if len(a.at) != 1 || !a.bodies[0].closed.Load() {
			t.Errorf("%d attempts, first body closed: %v; want 1, true", len(a.at), a.bodies[0].closed.Load())
		}
	})
}

func TestCallerCancelEndsTheRequestInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done() // a server that never answers
			return nil, r.Context().Err()
		})
		tr := transport(t, TransportConfig{Guard: guard(t, 2, 10), Base: base})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(2*time.Second, cancel)
		start := time.Now()
		_, err := tr.RoundTrip(get(t, ctx, "GET", "http://backend/", nil))
		if !errors.Is(err, context.Canceled) || time.Since(start) != 2*time.Second {
			t.Errorf("got %v after %v, want context.Canceled after 2s", err, time.Since(start))
		}
	})
}

func TestTimeLimitCoversRetriesAndEndsWithATimeoutError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := resilience.Preset{
			Name:    "backend",
			Timeout: resilience.TimeoutConfig{Duration: 3 * time.Second},
			Retry:   &resilience.RetryConfig{MaxRetries: 5, InitialBackoff: time.Second},
		}.Build()
		if err != nil {
			t.Fatal(err)
		}
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		tr := transport(t, TransportConfig{Guard: g, Base: base})
		start := time.Now()
		_, err = tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
		if !errors.Is(err, resilience.ErrTimeout) || time.Since(start) != 3*time.Second {
			t.Errorf("got %v after %v, want ErrTimeout after 3s", err, time.Since(start))
		}
	})
}

func TestOpenBreakerRejectsWithoutSending(t *testing.T) {
	g := guard(t, 2, 5)
	g.Breaker().ForceOpen()
	sent := 0
	tr := transport(t, TransportConfig{Guard: g, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		sent++
		return answer(r, 200, ""), nil
	})})
	_, err := tr.RoundTrip(get(t, t.Context(), "GET", "http://backend/", nil))
	if !errors.Is(err, resilience.ErrOpen) || sent != 0 {
		t.Errorf("got %v with %d requests sent, want ErrOpen and none", err, sent)
	}
}

// A real server on 127.0.0.1, through http.Transport: the body is replayed,
// failed responses give their connection back, and the body of the final
// response can be read after RoundTrip returns, within the time limit.
func TestAgainstARealServer(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	var conns atomic.Int32
	fails := 2
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		failing := len(bodies) <= fails
		mu.Unlock()
		if failing {
			w.WriteHeader(http.StatusBadGateway)
			w.Write(bytes.Repeat([]byte("e"), 100<<10)) // more than is buffered
			return
		}
		w.Write([]byte("stored " + string(b)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	base := &http.Transport{}
	defer base.CloseIdleConnections()
	g, err := resilience.Preset{
		Name:    "backend",
		Timeout: resilience.TimeoutConfig{Duration: 10 * time.Second},
		Retry:   &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond},
	}.Build()
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: transport(t, TransportConfig{Guard: g, Base: base})}

	req := get(t, t.Context(), "POST", srv.URL, strings.NewReader("order-17"))
	req.Header.Set("Idempotency-Key", "order-17")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(got) != "stored order-17" {
		t.Fatalf("got %d %q, %v; want 200 \"stored order-17\"", resp.StatusCode, got, err)
	}
	if want := []string{"order-17", "order-17", "order-17"}; fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("the server received %q, want %q", bodies, want)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 attempts: failed responses were not drained for reuse", n)
	}

	// A body that cannot be replayed is sent once.
	mu.Lock()
	bodies, fails = nil, 10
	mu.Unlock()
	req = get(t, t.Context(), "PUT", srv.URL, io.NopCloser(strings.NewReader("once")))
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || len(bodies) != 1 {
		t.Errorf("got %d after %d attempts, want 502 after 1", resp.StatusCode, len(bodies))
	}
}

// Through http.Transport, the guard's time limit ends a request the server
// never answers, with a *resilience.TimeoutError.
func TestTimeLimitAgainstARealServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	g, err := resilience.Preset{Name: "backend", Timeout: resilience.TimeoutConfig{Duration: 100 * time.Millisecond}}.Build()
	if err != nil {
		t.Fatal(err)
	}
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: transport(t, TransportConfig{Guard: g, Base: base})}
	start := time.Now()
	_, err = client.Get(srv.URL)
	if !errors.Is(err, resilience.ErrTimeout) {
		t.Errorf("GET of a server that never answers: %v, want ErrTimeout", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("returned after %v with a 100ms limit", took)
	}
}

// A protocol switch keeps the body writable: it is the connection.
func TestProtocolSwitchKeepsTheBodyWritable(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString(strings.ToUpper(line))
		rw.Flush()
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	client := &http.Client{Transport: transport(t, TransportConfig{Guard: guard(t, 0, 5), Base: base})}
	req := get(t, t.Context(), "GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rw, ok := resp.Body.(io.ReadWriter)
	if resp.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("status %d, body writable: %v; want 101, true", resp.StatusCode, ok)
	}
	io.WriteString(rw, "hello\n")
	buf := make([]byte, 6)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "HELLO\n" {
		t.Errorf("echo over the switched connection: %q, %v", buf, err)
	}
}
