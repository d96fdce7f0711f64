package resilience

import (
	"context"
	"fmt"
	"strings"
)

// Priority says how much a call matters when a stage has to choose which
// calls to turn away: an AdaptiveLimiter that is full lets critical calls
// through first and refuses sheddable ones first. A call carries its
// priority in its context (WithPriority); a call without one is
// PriorityDefault. The server integrations read it from a request header
// or gRPC metadata ("resilience-priority": critical, default or
// sheddable), and the client integrations send the priority of the
// caller's context on, so that it follows a request from hop to hop.
type Priority int8

// The priorities, from the least important.
const (
	// PrioritySheddable is work that may be dropped first: prefetches,
	// batch jobs, retries of background work.
	PrioritySheddable Priority = -1
	// PriorityDefault is every call that says nothing else.
	PriorityDefault Priority = 0
	// PriorityCritical is work a user is waiting on and that must go
	// through while the server sheds the rest: logins, payments, the
	// request that renders the page.
	PriorityCritical Priority = 1
)

// numPriorities is how many priorities there are; index is p + 1.
const numPriorities = 3

func (p Priority) index() int { return int(p) + 1 }

func (p Priority) valid() bool { return p >= PrioritySheddable && p <= PriorityCritical }

// String returns "critical", "default" or "sheddable", as ParsePriority
// reads them.
func (p Priority) String() string {
	switch p {
	case PriorityCritical:
		return "critical"
	case PriorityDefault:
		return "default"
	case PrioritySheddable:
		return "sheddable"
	}
	return fmt.Sprintf("Priority(%d)", int8(p))
}

// ParsePriority reads a priority as String writes it, in any case, with
// surrounding spaces ignored. It returns an error naming the value for
// anything else.
func ParsePriority(s string) (Priority, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return PriorityCritical, nil
	case "default":
		return PriorityDefault, nil
	case "sheddable":
		return PrioritySheddable, nil
	}
	return PriorityDefault, fmt.Errorf("resilience: priority %q is not one of critical, default, sheddable", s)
}

type priorityKey struct{}

// WithPriority returns a copy of ctx whose calls carry priority p. A p
// that is not one of the three priorities is taken as PriorityDefault.
func WithPriority(ctx context.Context, p Priority) context.Context {
	if !p.valid() {
		p = PriorityDefault
	}
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority of calls made with ctx:
// PriorityDefault unless WithPriority set another.
func PriorityFrom(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// PriorityIn reports the priority WithPriority put in ctx, and false if
// none was: for code that passes a priority on only when the caller set
// one.
func PriorityIn(ctx context.Context) (Priority, bool) {
	p, ok := ctx.Value(priorityKey{}).(Priority)
	return p, ok
}
