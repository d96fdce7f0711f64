package presets

import (
	"context"
	"reflect"

	"github.com/resilience-go/resilience"
)

// gRPC status codes, as google.golang.org/grpc/codes numbers them.
const (
	codeCanceled          = 1
	codeUnknown           = 2
	codeDeadlineExceeded  = 4
	codeResourceExhausted = 8
	codeInternal          = 13
	codeUnavailable       = 14
	codeDataLoss          = 15
)

// ClassifyGRPC is the GRPC preset's Classify: it reads the gRPC status
// code of an error from grpc-go (any error in the chain with a
// GRPCStatus() method, read without importing grpc) and says what it
// means for the guard, as package resilgrpc does:
//
//   - Unavailable, ResourceExhausted and DeadlineExceeded: the server could
//     not serve; a Failure, counted by the breaker and retried.
//   - Internal, Unknown and DataLoss: a failure that may have had its
//     effect; counted, not retried (PermanentFailure).
//   - Canceled, when the caller's context has ended: Ignored.
//   - Every other code (NotFound, InvalidArgument, AlreadyExists,
//     PermissionDenied, Unauthenticated, FailedPrecondition, Aborted,
//     OutOfRange, Unimplemented, and Canceled by the server): an answer
//     from a working server, a Success to the breaker, never retried; the
//     caller still gets the error.
//
// An error without a gRPC status is classified by
// resilience.DefaultClassify. Set it on another preset whose calls are
// gRPC calls: cfg.Classify = presets.ClassifyGRPC.
func ClassifyGRPC(ctx context.Context, err error) resilience.Outcome {
	code, ok := grpcCode(err)
	if !ok || resilience.IsAnswer(err) || resilience.IsPermanent(err) {
		return resilience.DefaultClassify(ctx, err)
	}
	switch code {
	case codeUnavailable, codeResourceExhausted, codeDeadlineExceeded:
		return resilience.Failure
	case codeInternal, codeUnknown, codeDataLoss:
		return resilience.PermanentFailure
	case codeCanceled:
		if ctx.Err() != nil {
			return resilience.Ignored
		}
	}
	return resilience.Success
}

// grpcCode returns the code of the first error in err's chain with a
// GRPCStatus method whose result has a Code method returning an unsigned
// integer, as grpc-go's *status.Status does; false if there is none.
func grpcCode(err error) (code uint64, ok bool) {
	defer func() {
		if recover() != nil { // a GRPCStatus or Code of someone's own that panics
			code, ok = 0, false
		}
	}()
	for _, e := range chain(err) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && v.IsNil() {
			continue // a method with a value receiver would panic
		}
		m := v.MethodByName("GRPCStatus")
		if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
			continue
		}
		st := m.Call(nil)[0]
		if (st.Kind() == reflect.Pointer || st.Kind() == reflect.Interface) && st.IsNil() {
			continue
		}
		c := st.MethodByName("Code")
		if !c.IsValid() || c.Type().NumIn() != 0 || c.Type().NumOut() != 1 {
			continue
		}
		switch code := c.Call(nil)[0]; code.Kind() {
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return code.Uint(), true
		}
	}
	return 0, false
}

// chain returns err and every error it wraps, depth first, as errors.As
// visits them.
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > 64 {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, w := range u.Unwrap() {
				walk(w)
			}
		}
	}
	walk(err)
	return out
}
