package resilhttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/resilience-go/resilience"
)

// StatusFault is an error for a resilience.Chaos stage under WithChaos
// (ChaosConfig.Err): a faulted request is answered with a response of
// this status (200 to 599), made up on the spot, as if the server had
// sent it. Set
// RetryAfter to add a Retry-After header, in seconds.
type StatusFault struct {
	Status     int
	RetryAfter int
}

func (f *StatusFault) Error() string {
	if f == nil {
		return "resilhttp: chaos: a nil StatusFault"
	}
	return "resilhttp: chaos: a made-up " + strconv.Itoa(f.Status) + " " + http.StatusText(f.Status)
}

// WithChaos returns a RoundTripper that sends requests through base with
// the faults of chaos injected as the wire would bring them: put it under
// a Transport (TransportConfig.Base), not in its guard, so that the
// Transport sees a made-up 503 as it sees a real one (a failure, retried,
// counted by the breaker, marked overloaded, its Retry-After read) and a
// made-up connection error as it sees a real one.
//
// A faulted request waits chaos's Latency, then is answered: with a
// response of the StatusFault's status if chaos's Err is a *StatusFault
// (never sent to base), with chaos's error as base's if it is another
// error (a *net.OpError, say), and by base itself, late, with NoError.
// The rest go to base untouched. A request whose context ends during the
// latency gets its context's error. A request's body is closed when the
// request is not sent.
func WithChaos(base http.RoundTripper, chaos *resilience.Chaos) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &chaosTripper{base: base, chaos: chaos}
}

type chaosTripper struct {
	base  http.RoundTripper
	chaos *resilience.Chaos
}

var errNilChaos = errors.New("resilhttp: WithChaos: the chaos stage is nil")

func (c *chaosTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.chaos == nil {
		closeBody(req)
		return nil, errNilChaos
	}
	var resp *http.Response
	sent := false
	err := c.chaos.Run(req.Context(), func(context.Context) error {
		sent = true
		var err error
		resp, err = c.base.RoundTrip(req)
		return err
	})
	if sent {
		return resp, err
	}
	closeBody(req)
	var f *StatusFault
	if errors.As(err, &f) {
		if f == nil || f.Status < 200 || f.Status > 599 {
			status := "nil"
			if f != nil {
				status = strconv.Itoa(f.Status)
			}
			return nil, errors.New("resilhttp: WithChaos: StatusFault.Status " + status + " is not a final HTTP status (200 to 599)")
		}
		h := http.Header{"Content-Type": {"text/plain; charset=utf-8"}}
		if f.RetryAfter > 0 {
			h.Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		body := f.Error() + "\n"
		if req.Method == http.MethodHead {
			body = ""
		}
		return &http.Response{
			Status:        strconv.Itoa(f.Status) + " " + http.StatusText(f.Status),
			StatusCode:    f.Status,
			Proto:         "HTTP/1.1",
			ProtoMajor:    1,
			ProtoMinor:    1,
			Header:        h,
			Body:          io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)),
			Request:       req,
		}, nil
	}
	return nil, err
}
