package testcheck

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { VerifyTestMain(m) }

// recorder is a testing.TB that records what Errorf reports.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// blocked is where a leaked goroutine waits, so that its stack names it.
func blocked(stop <-chan struct{}, done chan<- struct{}) {
	<-stop
	close(done)
}

func TestVerifyNoneReportsALeakedGoroutine(t *testing.T) {
	defer func(d time.Duration) { maxWait = d }(maxWait)
	maxWait = 100 * time.Millisecond

	stop, done := make(chan struct{}), make(chan struct{})
	go blocked(stop, done)
	r := &recorder{TB: t}
	VerifyNone(r)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "testcheck.blocked(") || !strings.Contains(r.errors[0], "[chan receive") {
		t.Errorf("VerifyNone with a goroutine blocked on a channel reported %q; want its stack", r.errors)
	}
	close(stop)
	<-done

	// Once it has ended (it may take a moment to be gone), nothing is left.
	r = &recorder{TB: t}
	VerifyNone(r)
	if len(r.errors) != 0 {
		t.Errorf("VerifyNone once the goroutine ended: %q", r.errors)
	}
}

// Under GOTRACEBACK=system every stack shows the runtime's frames too: a
// leak is still found, and t.Run's own goroutines are still ignored.
func TestVerifyNoneWithSystemTracebacks(t *testing.T) {
	defer func(d time.Duration) { maxWait = d }(maxWait)
	maxWait = 100 * time.Millisecond
	debug.SetTraceback("system")
	defer debug.SetTraceback("single")

	t.Run("sub", func(t *testing.T) {
		r := &recorder{TB: t}
		VerifyNone(r)
		if len(r.errors) != 0 {
			t.Errorf("VerifyNone with nothing left, in a subtest: %q", r.errors)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go blocked(stop, done)
		r = &recorder{TB: t}
		VerifyNone(r)
		if len(r.errors) != 1 || !strings.Contains(r.errors[0], "testcheck.blocked(") {
			t.Errorf("VerifyNone with a goroutine blocked on a channel reported %q; want its stack", r.errors)
		}
		close(stop)
		<-done
	})
}

func TestVerifyNoneWaitsForAGoroutineOnItsWayOut(t *testing.T) {
	go time.Sleep(50 * time.Millisecond)
	r := &recorder{TB: t}
	VerifyNone(r)
	if len(r.errors) != 0 {
		t.Errorf("VerifyNone with a goroutine that ends in 50ms: %q", r.errors)
	}
}

// The goroutines of t.Run, waiting for a subtest, are the framework's.
func TestVerifyNoneInASubtest(t *testing.T) {
	t.Run("sub", func(t *testing.T) {
		t.Run("subsub", func(t *testing.T) {
			r := &recorder{TB: t}
			VerifyNone(r)
			if len(r.errors) != 0 {
				t.Errorf("VerifyNone in a subtest: %q", r.errors)
			}
		})
	})
}

func TestParse(t *testing.T) {
	const out = `goroutine 7 [chan receive, 2 minutes]:
example.com/p.wait(0xc000012345)
	/src/p/p.go:10 +0x25
example.com/p.(*T).Start.func1()
	/src/p/p.go:20 +0x1f
created by example.com/p.(*T).Start in goroutine 6
	/src/p/p.go:19 +0x8a

goroutine 1 gp=0xc000002380 m=0 mp=0x6b2d20 [running]:
main.main()
	/src/main.go:5 +0x1d
`
	gs := parse([]byte(out))
	if len(gs) != 2 {
		t.Fatalf("parse found %d goroutines; want 2", len(gs))
	}
	if d := Diff([]string{"example.com/p.wait", "example.com/p.(*T).Start.func1"}, gs[0].funcs); gs[0].id != 7 || gs[0].state != "chan receive, 2 minutes" || d != "" {
		t.Errorf("first goroutine: id %d, state %q, funcs %q", gs[0].id, gs[0].state, gs[0].funcs)
	}
	if d := Diff([]string{"main.main"}, gs[1].funcs); gs[1].id != 1 || gs[1].state != "running" || d != "" {
		t.Errorf("second goroutine: id %d, state %q, funcs %q", gs[1].id, gs[1].state, gs[1].funcs)
	}
}

func TestIgnore(t *testing.T) {
	for _, tc := range []struct {
		state  string
		funcs  []string
		ignore bool
	}{
		{"chan receive", []string{"testing.(*T).Run", "testing.runTests.func1", "testing.tRunner"}, true},
		{"running", []string{"testing.(*T).Run"}, false},
		{"chan receive", []string{"testing.(*T).Parallel", "example.com/p.TestX", "testing.tRunner"}, true},
		{"chan receive", []string{"testing.RunTests"}, true},
		{"select", []string{"os/signal.signal_recv", "os/signal.loop"}, true},
		{"select", []string{"runtime.gopark", "runtime.ensureSigM"}, true},
		{"chan receive", []string{"runtime.ReadTrace", "runtime/trace.Start.func1"}, true},
		{"syscall", []string{"runtime.cgocall", "runtime.goexit"}, true},
		{"chan receive", []string{"example.com/p.wait", "testing.tRunner"}, false},
	} {
		if got := ignore(goroutine{state: tc.state, funcs: tc.funcs}); got != tc.ignore {
			t.Errorf("ignore(%q, %q) = %v", tc.state, tc.funcs, got)
		}
	}
}
