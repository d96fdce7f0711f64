package resilience

import (
	"context"
	"strconv"
)

// GuardConfig configures a Guard: the stages that protect calls to one
// dependency, in the order a call runs through them, the first outermost.
type GuardConfig struct {
	// Name names the guarded dependency.
	Name string

	// Stages are the guard's stages, the first outermost: any of this
	// package's (a total Timeout, a Retry, a per-attempt Timeout inside it,
	// a Bulkhead, a Breaker, ...) and stages of your own. A Guard among
	// them stands for its own stages. At least one; none may be nil.
	Stages []Stage

	// Classify, if set, says how the end of each call through the guard
	// counts, for every stage of the guard at once: the error of a call it
	// classifies Success is marked as an answer (see Answer: breakers count
	// it as a success, retries and fallbacks leave it alone), Ignored is
	// neither counted nor retried, PermanentFailure is counted but not
	// retried (see Permanent), and Failure is left as it is, counted and
	// retried. The caller gets the error, marks and all; errors.Is and
	// errors.As see through them. It receives the context of the attempt
	// and its error, never nil; it must be safe for concurrent use.
	Classify func(ctx context.Context, err error) Outcome
}

// NewGuard returns a guard running calls through cfg.Stages in order, or
// an error naming every invalid entry:
//
//	g, err := resilience.NewGuard(resilience.GuardConfig{
//		Name:   "users",
//		Stages: []resilience.Stage{total, retry, bulkhead, breaker, perAttempt},
//	})
func NewGuard(cfg GuardConfig) (*Guard, error) {
	ck := checker{typ: "GuardConfig"}
	ck.check(len(cfg.Stages) > 0, "Stages", len(cfg.Stages), "must hold at least one stage")
	for i, s := range cfg.Stages {
		field := "Stages[" + strconv.Itoa(i) + "]"
		if isNil(s) {
			ck.check(false, field, "nil", "is nil")
		} else if g, ok := s.(*Guard); ok && g.links == nil {
			ck.check(false, field, "Guard{}", "is a zero Guard: make it with NewGuard")
		}
	}
	if err := ck.err(); err != nil {
		return nil, err
	}
	g := &Guard{name: cfg.Name}
	var ls []any
	for _, s := range cfg.Stages {
		ls = appendStage(ls, s)
	}
	for _, l := range ls {
		if _, inner := l.(*classifier); inner {
			continue // a nested guard's: it classifies its own part
		}
		g.stages = append(g.stages, l.(Stage))
		switch l := l.(type) {
		case *Timeout:
			if g.timeout == nil {
				g.timeout = l
			}
		case *Retry:
			if g.retry == nil {
				g.retry = l
			}
		case *Breaker:
			if g.breaker == nil {
				g.breaker = l
			}
		case *RetryBudget:
			if g.budget == nil {
				g.budget = l
			}
		case *KeyedBreaker:
			if g.keyed == nil {
				g.keyed = l
			}
		}
	}
	if err := checkBudgets(ls); err != nil {
		return nil, err
	}
	if cfg.Classify != nil {
		// Innermost, so that every stage sees its verdicts; but outside
		// the chaos stages at the end, whose faults stand for the
		// dependency's answers and are classified as those would be.
		i := len(ls)
		for i > 0 {
			if _, ok := ls[i-1].(*Chaos); !ok {
				break
			}
			i--
		}
		ls = append(ls[:i:i], append([]any{&classifier{classify: cfg.Classify}}, ls[i:]...)...)
	}
	g.links = newLinks(ls)
	return g, nil
}

// Guard is the set of stages that protects calls to one dependency: any
// ordered list of them, made with NewGuard, or the shape a Preset builds,
// which runs a call as
//
//	Timeout → Retry → RetryBudget → Breaker → AttemptTimeout → call
//
// (the Retry and its budget only if it retries, the per-attempt limit only
// if it has one)
//
// The time limit is outermost, so it bounds what the caller waits, retries
// and backoff included; the retry policy does not start an attempt it
// could not finish in time. Every attempt goes through the breaker, so the
// breaker counts each failure the dependency gives, and when it opens in
// the middle of a call, the next attempt is rejected and, rejections never
// being retried, the retrying stops: no retry storm against a dependency
// known to be down.
//
// A Guard is a Stage: run a call through it with Do, or make it a
// Policy[T] with For, alone or among other stages. Its state (the breaker's
// window, above all) is shared by every call, whatever its result type, so
// build one Guard per dependency and use it everywhere:
//
//	users := presets.GRPC()
//	u, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) { ... })
//	n, err := resilience.Do(ctx, users, func(ctx context.Context) (int, error) { ... })
//
// A Guard is safe for concurrent use. Make one with NewGuard, Preset.Build
// or a function of package presets: the zero Guard runs no call (Do returns
// an error matching ErrInvalidConfig that says so).
type Guard struct {
	name    string
	stages  []Stage // in order, nested guards flattened
	timeout *Timeout
	retry   *Retry
	breaker *Breaker
	budget  *RetryBudget
	keyed   *KeyedBreaker
	links   *links
}

// Kind returns KindGuard.
func (*Guard) Kind() string { return KindGuard }

// Run runs call under the guard, as Do does: it is the guard as a Stage for
// code that has only an error to pass through.
func (x *Guard) Run(ctx context.Context, call func(context.Context) error) error {
	return runUntyped(x, ctx, call)
}

// Name returns the name of the guarded dependency.
func (g *Guard) Name() string { return g.name }

// Stages returns the guard's stages in the order a call runs through them,
// a Guard among them as its own stages. The slice is a copy.
func (g *Guard) Stages() []Stage { return append([]Stage(nil), g.stages...) }

// Timeout returns the guard's outermost Timeout, its time limit for the
// whole call; nil if it has none.
func (g *Guard) Timeout() *Timeout { return g.timeout }

// Retry returns the guard's outermost retry policy, or nil if it never
// retries.
func (g *Guard) Retry() *Retry { return g.retry }

// Breaker returns the guard's outermost circuit breaker, nil if it has
// none: read its state, force it open, or share it with other chains.
func (g *Guard) Breaker() *Breaker { return g.breaker }

// RetryBudget returns the guard's outermost retry budget, nil if it has
// none.
func (g *Guard) RetryBudget() *RetryBudget { return g.budget }

// KeyedBreaker returns the guard's outermost family of breakers per key,
// nil if it has none.
func (g *Guard) KeyedBreaker() *KeyedBreaker { return g.keyed }
