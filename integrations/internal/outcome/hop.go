package outcome

import (
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/resilience-go/resilience"
)

// What crosses a hop between services, the same way in every integration:
// the attempt number of each request, and a server's word that its
// callers should not retry.

// NoRetry marks the error of an attempt that its server said not to
// retry: a retry pushback that is negative (see Pushback). The
// integrations mark it resilience.Permanent as well, so that no retry
// repeats it; DontRetry recognises it, so that a server that got it from
// its own dependency says the same to its callers, hop after hop.
type NoRetry struct{ Err error }

func (e *NoRetry) Error() string { return e.Err.Error() }
func (e *NoRetry) Unwrap() error { return e.Err }

// DontRetry reports whether a server whose call to its own dependency
// ended with err should tell its callers not to retry: the call's retries
// gave up (resilience.GaveUp: used up, or refused by a retry budget), or
// the dependency said not to retry it (NoRetry). Retrying is then for
// the layer right above the overloaded dependency alone: retries from
// further up would multiply its load, one factor per layer.
func DontRetry(err error) bool {
	if err == nil {
		return false
	}
	var nr *NoRetry
	return resilience.GaveUp(err) || errors.As(err, &nr)
}

// Pushback reads a server's retry pushback, as gRFC A6 defines
// grpc-retry-pushback-ms and grpc-go reads it: a single value, the whole
// number of milliseconds to wait before the next attempt (retry true); a
// negative value, or one that is not a whole number, says not to retry
// at all (retry false). ok is false when values is not a single value:
// no pushback. A wait too long for a time.Duration is the longest one
// (the retry policy caps it at its MaxBackoff).
func Pushback(values []string) (wait time.Duration, retry, ok bool) {
	if len(values) != 1 {
		return 0, false, false
	}
	ms, err := strconv.ParseInt(values[0], 10, 64)
	switch {
	case err != nil || ms < 0:
		return 0, false, true
	case ms > int64(math.MaxInt64/time.Millisecond):
		return math.MaxInt64, true, true
	}
	return time.Duration(ms) * time.Millisecond, true, true
}

// MaxAttempt is the largest attempt number that crosses a hop, the
// largest resilience.Attempt returns.
const MaxAttempt = math.MaxInt32

// Largest returns the largest of values that is a decimal number, digits
// only, from lo to hi, and whether there is one: a request's attempt
// number, as its client sent it. Anything else (a sign, spaces, a
// number out of range) is ignored.
func Largest(values []string, lo, hi int) (int, bool) {
	best, found := 0, false
	for _, v := range values {
		if len(v) == 0 || len(v) > 10 { // MaxAttempt has 10 digits
			continue
		}
		var n int64 // 10 digits fit, on every platform
		digits := true
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				digits = false
				break
			}
			n = n*10 + int64(v[i]-'0')
		}
		if digits && n >= int64(lo) && n <= int64(hi) && (!found || int(n) > best) {
			best, found = int(n), true
		}
	}
	return best, found
}
