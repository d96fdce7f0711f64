package resilience_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/resilience-go/resilience/internal/testcheck"
)

// TestMain fails the run if any test leaves a goroutine behind.
func TestMain(m *testing.M) { testcheck.VerifyTestMain(m) }

var errBoom = errors.New("boom")

func ok(context.Context) (int, error)   { return 1, nil }
func fail(context.Context) (int, error) { return 0, errBoom }

// must returns v, or panics (failing the test) on a construction error
// that the test did not expect.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// runtimeGoexit ends the calling goroutine as t.FailNow does.
func runtimeGoexit() { runtime.Goexit() }
