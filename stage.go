package resilience

import "context"

// Stage is a policy that does not depend on the result type: a *Breaker, a
// *Bulkhead, a *Retry, a *Timeout, a *Guard (an ordered list of stages), or
// a stage of your own. A stage holds the state and settings about a
// dependency and may be shared by any number of chains, whatever their
// result types; For turns stages into a Policy[T] for one result type, and
// Do runs one call through a stage.
//
// A stage written outside this package implements Run, and sits in For,
// Do and a Guard like the built-in ones:
//
//	type logged struct{ name string }
//
//	func (l logged) Name() string { return l.name }
//	func (logged) Kind() string   { return "logged" }
//	func (l logged) Run(ctx context.Context, call func(context.Context) error) error {
//		err := call(ctx)
//		if err != nil {
//			log.Printf("%s: %v", l.name, err)
//		}
//		return err
//	}
//
// A chain passes the result of the call through such a stage for it, so
// the stage sees only the error. A user-written stage costs two small
// allocations per call (the function it is handed, and the result it
// carries); this package's own stages are dispatched without them.
type Stage interface {
	// Name identifies the stage in errors, observers and metrics.
	Name() string

	// Kind says what sort of stage it is: "breaker", "bulkhead", "guard",
	// "retry" and "timeout" for this package's, and a short lowercase word
	// of its own for any other.
	Kind() string

	// Run runs call under the stage and returns its error, or an error of
	// the stage's own. It may call call once, several times one after the
	// other (never at once: the chain keeps the result of the last call
	// to return), or not at all, refusing the call with an error that
	// matches ErrRejected. It must return once ctx has ended, honour ctx's
	// deadline, and let a panic in call go on up the stack after releasing
	// what it holds.
	Run(ctx context.Context, call func(ctx context.Context) error) error
}

// Kinds of this package's stages, as Stage.Kind reports them.
const (
	KindBreaker  = "breaker"
	KindBulkhead = "bulkhead"
	KindGuard    = "guard"
	KindRetry    = "retry"
	KindTimeout  = "timeout"
)

// runStage runs the rest of a chain under a stage written outside this
// package, carrying the result past it.
func runStage[T any](s Stage, ctx context.Context, n next[T]) (T, error) {
	var v T
	err := s.Run(ctx, func(ctx context.Context) error {
		var err error
		v, err = n.call(ctx)
		return err
	})
	return v, err
}

// untyped adapts a call that returns only an error to the chain's Func,
// for the Run methods of this package's stages.
func untyped(call func(context.Context) error) Func[struct{}] {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, call(ctx) }
}

// runUntyped is Run for this package's stages: the stage as a chain of its
// own around call.
func runUntyped(s Stage, ctx context.Context, call func(context.Context) error) error {
	if call == nil {
		return errNilFunc
	}
	_, err := Do(ctx, s, untyped(call))
	return err
}

// Observable is a stage that counts how the calls it ran ended, and keeps
// gauges, for exporters to read: package metrics exports any Observable
// stage, whatever its kind, with no code of its own for that kind. A
// stage of your own implements it to have series:
//
//	func (l *limiter) Stats() resilience.Stats {
//		return resilience.Stats{
//			Calls: []resilience.Count{
//				{Result: "admitted", N: l.admitted.Load()},
//				{Result: "rejected", N: l.rejected.Load()},
//			},
//			Gauges: []resilience.Gauge{{Name: "tokens", Help: "Tokens left.", Value: l.tokens()}},
//		}
//	}
//
// gives resilience_<kind>_calls_total{name,result} and
// resilience_<kind>_tokens{name}.
type Observable interface {
	Stage

	// Stats returns the stage's counts and gauges as they are now. It is
	// called at every scrape, from any goroutine: read atomics, take no
	// lock a call holds. Every call returns the same results and gauges,
	// in the same order; only the numbers change.
	Stats() Stats
}

// Stats is what an Observable stage reports.
type Stats struct {
	// Calls counts calls by how they ended, since the stage was made:
	// each count only grows. Results are short lowercase words
	// ("success", "rejected"), each once.
	Calls []Count

	// Gauges are values that go up and down: a limit, a level, tokens.
	// Names are short lowercase words, each once.
	Gauges []Gauge
}

// Count is the number of calls that ended one way.
type Count struct {
	Result string
	N      uint64
}

// Gauge is a value a stage keeps, with a line saying what it is.
type Gauge struct {
	Name  string
	Help  string
	Value float64
}
