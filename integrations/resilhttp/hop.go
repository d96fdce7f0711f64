package resilhttp

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"weak"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// AttemptHeader is the request header in which a Transport sends the
// attempt number of each retry, and of each hedge of a guard with a
// resilience.Hedge, as resilience.Attempt reads it off the attempt's
// context: "2" for the first retry (or hedge), "3" for the second, and so
// on. A first attempt carries none (as gRPC's grpc-previous-rpc-attempts
// is sent on retries only), so that a request sent once goes out as the
// caller made it, at no cost. Server reads it. A value the caller set is
// replaced, on a first attempt by none.
const AttemptHeader = "Resilience-Attempt"

// PushbackHeader is the response header by which a server tells its
// clients when to retry a failed request, as gRPC's grpc-retry-pushback-ms
// trailer does (gRFC A6): a whole number of milliseconds to wait before
// the next attempt, or a negative one ("-1") for "do not retry": the
// server is overloaded, and whatever retries could help were made one hop
// down (see WriteGaveUp).
//
// A Transport reads it on a response that IsFailure counts as a failure
// (on any other response it means nothing): a negative value, or one that
// is not a whole number, as grpc-go reads the trailer, makes the failure
// permanent: it is not retried, and still counts for the breaker. A wait
// takes the place of Retry-After, capped as it is by the retry policy's
// MaxBackoff. One value only: a header repeated is ignored.
const PushbackHeader = "Retry-Pushback-Ms"

// Server returns a handler that serves each request with h, the request's
// context telling which attempt of its client it is: a retry whose client
// sent AttemptHeader (a Transport does) gets its attempt number, from 2,
// read by resilience.CallerAttempt; 0 says it sent none, as for a first
// attempt. A value that is not a
// decimal number from 1 to 2147483647 (math.MaxInt32, the largest
// resilience.Attempt returns), digits only, is ignored; of several, the
// largest is taken. A nil h is http.DefaultServeMux, as in http.Server.
//
// A handler that calls a dependency in turn answers with WriteGaveUp when
// that call gave up, so that its own callers do not retry.
func Server(h http.Handler) http.Handler {
	if h == nil {
		h = http.DefaultServeMux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, ok := outcome.Largest(r.Header[AttemptHeader], 1, outcome.MaxAttempt); ok {
			r = r.WithContext(resilience.WithCallerAttempt(r.Context(), n))
		}
		h.ServeHTTP(w, r)
	})
}

// WriteGaveUp answers a request whose handler's call to its own
// dependency failed with err, when that call gave up: its retries were
// used up or refused by a retry budget (resilience.GaveUp), or the
// dependency itself told it not to retry (a PushbackHeader of -1, a
// grpc-retry-pushback-ms trailer of -1). It then writes 503 Service
// Unavailable with PushbackHeader "-1", so that the clients of the
// handler, Transports of this package one hop up, do not retry: only the
// layer right above an overloaded dependency retries it, and the word
// goes up hop after hop. It reports whether it wrote; for any other err,
// nil included, it writes nothing, and the handler answers as it sees
// fit.
//
// The body is a line that says so, without err's text, which may name
// what the caller should not see.
//
// For a dependency called through a Transport, err is ResponseError of
// the response when the round trip returned one:
//
//	resp, err := client.Do(req)
//	if err == nil {
//		err = resilhttp.ResponseError(resp)
//	}
//	if resilhttp.WriteGaveUp(w, err) {
//		resp.Body.Close() // when there is a response
//		return
//	}
func WriteGaveUp(w http.ResponseWriter, err error) bool {
	if !outcome.DontRetry(err) {
		return false
	}
	w.Header().Set(PushbackHeader, "-1")
	http.Error(w, "service unavailable: a dependency is overloaded; do not retry", http.StatusServiceUnavailable)
	return true
}

// failedResponses holds the guard's error of each failed response a
// Transport handed back, until the response is collected.
var failedResponses sync.Map // weak.Pointer[http.Response] -> error

// remember records err as the guard's error for resp.
func remember(resp *http.Response, err error) {
	key := weak.Make(resp)
	failedResponses.Store(key, err)
	runtime.AddCleanup(resp, func(key weak.Pointer[http.Response]) { failedResponses.Delete(key) }, key)
}

// ResponseError returns the error that a Transport's guard ended the
// exchange of resp with, when the Transport handed resp back although it
// counted it as a failure (see Transport: the last response comes back
// as it came, with a nil error). It is a *resilience.RetryError when the
// guard's retry stopped on it (resilience.GaveUp reports whether it gave
// up), and the failure itself otherwise, a response not retried; either
// way its text gives the status. For any other response, nil included,
// it returns nil.
//
// It works on the response that http.Client.Do returns too.
func ResponseError(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	if err, ok := failedResponses.Load(weak.Make(resp)); ok {
		return err.(error)
	}
	return nil
}

// Wire returns the counts of what is sent with g: every call that a
// Transport (or resilgrpc's interceptors, or any other integration of
// this module) runs through g, and every attempt of them that reaches
// the network, each RoundTrip of Base. It is a resilience.Observable
// stage of kind "wire", named after g, that package metrics exports as
// resilience_wire_calls_total{name, result="call"|"attempt"} and
// resilience_wire_amplification{name}, attempts per call (0 before the
// first call):
//
//	m.Instrument(guard, resilhttp.Wire(guard))
//
// A call is counted as its first attempt is sent, or as it ends when it
// sent nothing (a stage refused it). Each counts every call and attempt
// since g was made, by every integration that uses g; a nil g's counts
// nothing. Counting costs an atomic addition per attempt, and nothing
// else. As a stage, it runs a call as it is and counts nothing.
func Wire(g *resilience.Guard) resilience.Observable { return outcome.WireOf(g) }

// KindWire is the kind of the stage Wire returns.
const KindWire = outcome.KindWire

// withAttempt returns the header of the request of attempt n, from h, the
// caller's: h itself for a first attempt that h gives no AttemptHeader,
// and otherwise a copy, with AttemptHeader set to n for a retry and left
// out for a first attempt. h is left as it was, since a RoundTripper may
// not change the request it is given; as Header.Clone does, every value
// is copied into one array.
func withAttempt(h http.Header, n int) http.Header {
	if _, set := h[AttemptHeader]; n <= 1 && !set {
		return h
	}
	nv := 1
	for _, vv := range h {
		nv += len(vv)
	}
	sv := make([]string, nv)
	out := make(http.Header, len(h)+1)
	for k, vv := range h {
		if k == AttemptHeader {
			continue
		}
		if vv == nil {
			out[k] = nil // as Header.Clone keeps it
			continue
		}
		m := copy(sv, vv)
		out[k] = sv[:m:m]
		sv = sv[m:]
	}
	if n > 1 {
		sv[0] = strconv.Itoa(n)
		out[AttemptHeader] = sv[:1:1]
	}
	return out
}
