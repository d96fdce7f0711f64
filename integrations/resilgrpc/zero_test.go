package resilgrpc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/resilience-go/resilience"
	"google.golang.org/grpc/codes"
)

// TestZeroValues: nothing the package exports panics when used as its zero
// value: a zero PolicyError formats and converts to a status, and a zero
// guard or bulkhead is refused where an interceptor is made, with an error
// that names the constructor to use.
func TestZeroValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func() error
		want string // in the error; "" for none
	}{{
		name: "PolicyError.Error",
		call: func() error {
			if got, want := (&PolicyError{}).Error(), "rpc error: code = OK desc = "; got != want {
				return fmt.Errorf("Error() = %q, want %q", got, want)
			}
			return nil
		},
	}, {
		name: "PolicyError.GRPCStatus",
		call: func() error {
			if s := (&PolicyError{}).GRPCStatus(); s.Code() != codes.OK || s.Message() != "" {
				return fmt.Errorf("GRPCStatus() = %v, want code OK and no message", s)
			}
			return nil
		},
	}, {
		name: "PolicyError.Unwrap",
		call: func() error {
			if err := (&PolicyError{}).Unwrap(); err != nil {
				return fmt.Errorf("Unwrap() = %v, want nil", err)
			}
			return nil
		},
	}, {
		name: "UnaryClientInterceptor of a zero Guard",
		call: func() error { _, err := UnaryClientInterceptor(&resilience.Guard{}); return err },
		want: "resilience.NewGuard",
	}, {
		name: "StreamClientInterceptor of a zero Guard",
		call: func() error { _, err := StreamClientInterceptor(&resilience.Guard{}); return err },
		want: "resilience.NewGuard",
	}, {
		name: "UnaryServerInterceptor of a zero Bulkhead",
		call: func() error { _, err := UnaryServerInterceptor(&resilience.Bulkhead{}); return err },
		want: "resilience.NewBulkhead",
	}, {
		name: "StreamServerInterceptor of a zero Bulkhead",
		call: func() error { _, err := StreamServerInterceptor(&resilience.Bulkhead{}); return err },
		want: "resilience.NewBulkhead",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := noPanic(t, tc.call)
			switch {
			case tc.want == "" && err != nil:
				t.Error(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("err = %v, want one naming %s", err, tc.want)
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
			err = nil
		}
	}()
	return call()
}
