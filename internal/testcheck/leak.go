package testcheck

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxWait is how long a check waits for goroutines to end before it
// reports them: a goroutine a test has told to stop may still be on its
// way out when the test returns.
var maxWait = 5 * time.Second

// VerifyTestMain runs the tests, and then, if they passed, fails the run
// if any goroutine is left other than the test framework's and the
// runtime's own, printing the stack of each. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testcheck.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if left := leftover(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "testcheck: the tests passed, but goroutines were left behind (%d):\n\n%s", len(left), report(left))
			code = 1
		}
	}
	os.Exit(code)
}

// VerifyNone fails t if any goroutine is left other than the calling one
// and the test framework's and the runtime's own.
func VerifyNone(t testing.TB) {
	t.Helper()
	if left := leftover(); len(left) > 0 {
		t.Errorf("goroutines left behind (%d):\n\n%s", len(left), report(left))
	}
}

// goroutine is one goroutine's record in the output of runtime.Stack.
type goroutine struct {
	id    int
	state string   // "chan receive", "select", "running", ...
	funcs []string // the functions on its stack, innermost first
	trace string   // the record as runtime.Stack wrote it
}

// leftover returns the goroutines other than the calling one and those
// ignore lets go, waiting with growing sleeps up to maxWait for them to
// end, as goleak does.
func leftover() []goroutine {
	self := parse(stacks(false))[0].id
	deadline := time.Now().Add(maxWait)
	for sleep := time.Microsecond; ; sleep = min(2*sleep, 100*time.Millisecond) {
		var left []goroutine
		for _, g := range parse(stacks(true)) {
			if g.id != self && !ignore(g) {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(sleep)
	}
}

// ignore reports whether a goroutine is one of the test framework's or
// the runtime's own, by goleak's rules. (The runtime's system goroutines,
// those of the garbage collector, the scavenger and the finalizers, are
// not in the output of runtime.Stack at all.)
func ignore(g goroutine) bool {
	// The first function of the goroutine's own code: under
	// GOTRACEBACK=system the runtime's frames (runtime.gopark, ...) come
	// first.
	first := ""
	for _, f := range g.funcs {
		if !strings.HasPrefix(f, "runtime.") || f == "runtime.goexit" {
			first = f
			break
		}
	}
	switch first {
	// The main goroutine waiting in RunTests or t.Run for the test it
	// started (testing.tRunner) to end, a parallel test waiting for the
	// serial ones, and the fuzzing engine waiting for its inputs.
	case "testing.RunTests", "testing.(*T).Run", "testing.(*T).Parallel", "testing.runFuzzing", "testing.runFuzzTests":
		return strings.HasPrefix(g.state, "chan receive")
	// The goroutine that importing os/signal starts.
	case "os/signal.signal_recv", "os/signal.loop":
		return true
	}
	for _, f := range g.funcs {
		switch {
		// signal.Notify's goroutine in the runtime; the reader of
		// runtime/trace, as go test -trace runs it.
		case f == "runtime.ensureSigM", f == "runtime.ReadTrace":
			return true
		}
	}
	// A thread that cgo code left in a system call: runtime.goexit is its
	// only frame, as goleak has it.
	if first == "runtime.goexit" && strings.HasPrefix(g.state, "syscall") {
		return true
	}
	return false
}

// stacks returns the stack traces runtime.Stack writes: of every
// goroutine if all, or of the calling one.
func stacks(all bool) []byte {
	for size := 64 << 10; ; size *= 2 {
		buf := make([]byte, size)
		if n := runtime.Stack(buf, all); n < size {
			return buf[:n]
		}
	}
}

// parse splits the output of runtime.Stack into its goroutines' records.
// Each record is a header, "goroutine 7 [chan receive]:", then a function
// line and a tab-indented file line for each call, then, for a goroutine
// other than main, "created by F in goroutine N" and its file line; a
// blank line separates records.
func parse(buf []byte) []goroutine {
	var gs []goroutine
	for _, rec := range strings.Split(strings.TrimSpace(string(buf)), "\n\n") {
		header, body, _ := strings.Cut(rec, "\n")
		fields := strings.Fields(header)
		_, state, _ := strings.Cut(header, " [")
		if len(fields) < 2 || fields[0] != "goroutine" {
			continue
		}
		id, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		g := goroutine{id: id, state: strings.TrimSuffix(state, "]:"), trace: rec}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "created by ") {
				break // the creator is on another goroutine's stack
			}
			if i := strings.LastIndexByte(line, '('); i > 0 && !strings.HasPrefix(line, "\t") {
				g.funcs = append(g.funcs, line[:i])
			}
		}
		gs = append(gs, g)
	}
	return gs
}

// report joins the records of the given goroutines.
func report(gs []goroutine) string {
	var b strings.Builder
	for _, g := range gs {
		b.WriteString(g.trace)
		b.WriteString("\n\n")
	}
	return b.String()
}
