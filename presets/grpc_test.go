package presets_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// code and grpcStatus mimic grpc-go's codes.Code and *status.Status, which
// this module does not import: ClassifyGRPC reads them by their methods.
type code uint32

type grpcStatus struct{ c code }

func (s *grpcStatus) Code() code { return s.c }

type statusError struct{ s *grpcStatus }

func (e *statusError) Error() string              { return fmt.Sprintf("rpc error: code = %d", e.s.c) }
func (e *statusError) GRPCStatus() *grpcStatus    { return e.s }
func statusErr(c code) error                      { return &statusError{&grpcStatus{c}} }
func (e *nilStatusError) GRPCStatus() *grpcStatus { return nil }
func (e *nilStatusError) Error() string           { return "no status" }

type nilStatusError struct{}

// valueStatusError has a value receiver: called through a nil pointer, its
// method would panic.
type valueStatusError struct{ c code }

func (e valueStatusError) Error() string           { return "value" }
func (e valueStatusError) GRPCStatus() *grpcStatus { return &grpcStatus{e.c} }

// anyStatusError returns its status as an interface, nil here.
type anyStatusError struct{}

func (anyStatusError) Error() string                        { return "any" }
func (anyStatusError) GRPCStatus() interface{ Code() code } { return nil }

// panickyStatusError's GRPCStatus panics.
type panickyStatusError struct{}

func (panickyStatusError) Error() string           { return "panicky" }
func (panickyStatusError) GRPCStatus() *grpcStatus { panic("no status") }

func TestClassifyGRPC(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		want resilience.Outcome
	}{
		{"nil", live, nil, resilience.Success},
		{"Unavailable", live, statusErr(14), resilience.Failure},
		{"ResourceExhausted", live, statusErr(8), resilience.Failure},
		{"DeadlineExceeded", live, statusErr(4), resilience.Failure},
		{"Internal", live, statusErr(13), resilience.PermanentFailure},
		{"Unknown", live, statusErr(2), resilience.PermanentFailure},
		{"DataLoss", live, statusErr(15), resilience.PermanentFailure},
		{"NotFound", live, statusErr(5), resilience.Success},
		{"InvalidArgument", live, statusErr(3), resilience.Success},
		{"PermissionDenied", live, statusErr(7), resilience.Success},
		{"Unimplemented", live, statusErr(12), resilience.Success},
		{"Canceled by the server", live, statusErr(1), resilience.Success},
		{"Canceled by the caller", ended, statusErr(1), resilience.Ignored},
		{"wrapped", live, fmt.Errorf("get user: %w", statusErr(5)), resilience.Success},
		{"joined", live, errors.Join(errors.New("x"), statusErr(14)), resilience.Failure},
		{"a nil status", live, &nilStatusError{}, resilience.Failure},
		{"no status", live, errors.New("dial tcp: connection refused"), resilience.Failure},
		{"a value receiver", live, valueStatusError{5}, resilience.Success},
		{"a value receiver on a nil pointer", live, fmt.Errorf("x: %w", (*valueStatusError)(nil)), resilience.Failure},
		{"a nil interface status", live, anyStatusError{}, resilience.Failure},
		{"a GRPCStatus that panics", live, panickyStatusError{}, resilience.Failure},
		{"no status, the caller's cancellation", ended, context.Canceled, resilience.Ignored},
		{"marked Permanent: the default's, and the mark stops retries", live, resilience.Permanent(statusErr(14)), resilience.Failure},
		{"marked an answer", live, resilience.Answer(statusErr(14)), resilience.Success},
	} {
		if got := presets.ClassifyGRPC(tc.ctx, tc.err); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestGRPCPresetClassifiesCodes: through plain Do, the gRPC preset does
// not retry a NotFound nor open on it, and does retry an Unavailable.
func TestGRPCPresetClassifiesCodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := presets.GRPC()
		for range 10 {
			calls := 0
			_, err := resilience.Do(context.Background(), g, func(context.Context) (int, error) {
				calls++
				return 0, statusErr(5)
			})
			if calls != 1 || err == nil {
				t.Fatalf("NotFound: %d calls, %v; want 1 call and the error", calls, err)
			}
			var se *statusError
			if !errors.As(err, &se) {
				t.Fatalf("NotFound came back as %T, want the status error", err)
			}
		}
		if s := g.Breaker().State(); s != resilience.Closed {
			t.Fatalf("after 10 NotFounds the breaker is %v", s)
		}
		calls := 0
		resilience.Do(context.Background(), g, func(context.Context) (int, error) {
			calls++
			return 0, statusErr(14)
		})
		if calls != 4 {
			t.Errorf("Unavailable: %d calls, want 4 (3 retries)", calls)
		}
	})
}
