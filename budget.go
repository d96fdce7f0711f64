package resilience

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// KindRetryBudget is the kind of a RetryBudget.
const KindRetryBudget = "retry_budget"

// RetryBudgetConfig configures a retry budget. The zero value of every
// field stands for its default, given in the field's comment.
type RetryBudgetConfig struct {
	// Name identifies the budget in errors and metrics.
	Name string

	// Ratio is the share of first attempts that retries may add: with
	// 0.2, a hundred calls may be followed by twenty retries between
	// them, over and above the floor. Above 0, at most 1000; default 0.2
	// (Envoy's retry budget, Finagle's and Linkerd's).
	Ratio float64

	// MinPerSecond is the floor: retries allowed each second whatever the
	// Ratio, so that a quiet client, whose few calls earn almost no
	// retries, can still retry. Above 0, at most 1e9; default 10
	// (Finagle's). See NoFloor for none.
	MinPerSecond float64

	// NoFloor leaves the budget no floor: only Ratio × the first attempts
	// in the window may be retried, which leaves a quiet client almost
	// no retries. MinPerSecond must then be unset. Default false.
	NoFloor bool

	// Window is how far back the budget counts first attempts and
	// retries: the retries made in the last Window may not pass Ratio ×
	// the first attempts made in it, plus MinPerSecond × Window in
	// seconds. From 100ms to 24h; default 10s (Finagle's).
	Window time.Duration
}

// Defaults of RetryBudgetConfig.
const (
	DefaultRetryBudgetRatio        = 0.2
	DefaultRetryBudgetMinPerSecond = 10
	DefaultRetryBudgetWindow       = 10 * time.Second
)

// budgetSlots is how many parts a budget's window is cut into: retries
// and first attempts leave the window a tenth of it at a time.
const budgetSlots = 10

// RetryBudget bounds the retries of every call to one dependency together,
// where a Retry bounds those of each call alone. A Retry with MaxRetries 5
// turns a dependency that fails every call into 6 attempts per call, from
// every client, at every hop: retries multiply load exactly when the
// dependency can least take it. A budget lets retries through only while
// they stay under a share (Ratio) of the calls' first attempts, plus a small
// floor (MinPerSecond): a dependency that fails every call then sees about
// 1.2 attempts per call rather than 6, while one that fails a call now and
// then still has each of them retried.
//
// A budget sits right inside a Retry, in a Guard, For or Compose:
//
//	resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{timeout, retry, budget, breaker}})
//
// and the Retry consults it: each call's first attempt is counted, and
// each retry is asked for. A retry the budget refuses is not made: the
// call ends with its last attempt's error, in a *RetryError whose Cause is
// ErrRetryBudget, and the budget counts a refusal. A budget anywhere else
// is a configuration error (NewGuard and Do report it; For and Compose
// panic), since nothing there would ask it. One budget may be shared by
// several retries (and chains of every result type) to one dependency;
// the presets give each guard its own.
//
// Counting a first attempt is one atomic addition, with no clock read:
// the budget looks at the clock only when a retry is asked for. The first
// attempts made since it last looked are then spread evenly over the time
// since that look, the part older than Window dropped; while retries are
// being asked for, that is every few calls and the count is close to
// exact, and after a quiet spell it is the average rate over the spell.
// Retries are counted exactly.
//
// A RetryBudget is a Stage and an Observable (its series are
// resilience_retry_budget_calls_total{result="first|retried|refused"} and
// resilience_retry_budget_retries_left). Make one with NewRetryBudget.
type RetryBudget struct {
	cfg    RetryBudgetConfig
	slot   time.Duration // Window / budgetSlots
	floor  float64       // MinPerSecond × Window in seconds
	firsts atomic.Uint64 // first attempts ever counted

	retried atomic.Uint64 // retries let through
	refused atomic.Uint64 // retries refused
	left    atomic.Uint64 // retries left at the last look, as float64 bits
	ev      events

	mu     sync.Mutex // guards what follows; held by withdraw, no callback under it
	looked time.Time  // when the budget last looked at the clock, or was made
	seen   uint64     // firsts at that look
	start  time.Time  // the start of the newest slot
	head   int        // the newest slot's index in slots
	slots  [budgetSlots]budgetSlot
}

type budgetSlot struct {
	firsts  float64 // first attempts attributed to the slot
	retries float64 // retries let through in it
}

// NewRetryBudget returns a retry budget configured by cfg, or an error
// naming every invalid field of cfg.
func NewRetryBudget(cfg RetryBudgetConfig) (*RetryBudget, error) {
	ck := checker{typ: "RetryBudgetConfig"}
	ck.check(cfg.Ratio >= 0 && cfg.Ratio <= 1000, "Ratio", cfg.Ratio, "must be a number above 0, at most 1000 (0 for the default)")
	ck.check(cfg.MinPerSecond >= 0 && cfg.MinPerSecond <= 1e9, "MinPerSecond", cfg.MinPerSecond, "must be a number above 0, at most 1e9 (0 for the default; NoFloor for none)")
	ck.check(!cfg.NoFloor || cfg.MinPerSecond == 0, "MinPerSecond", cfg.MinPerSecond, "must be unset with NoFloor, which allows no retries beyond the Ratio")
	ck.check(cfg.Window == 0 || cfg.Window >= 100*time.Millisecond && cfg.Window <= 24*time.Hour, "Window", cfg.Window, "must be from 100ms to 24h")
	if err := ck.err(); err != nil {
		return nil, err
	}
	cfg.Ratio = or(cfg.Ratio, DefaultRetryBudgetRatio)
	if !cfg.NoFloor {
		cfg.MinPerSecond = or(cfg.MinPerSecond, DefaultRetryBudgetMinPerSecond)
	}
	cfg.Window = or(cfg.Window, DefaultRetryBudgetWindow)
	b := &RetryBudget{cfg: cfg, slot: cfg.Window / budgetSlots, floor: cfg.MinPerSecond * cfg.Window.Seconds()}
	b.left.Store(math.Float64bits(b.floor))
	// The first look spreads the first attempts counted until then over
	// the time since the budget was made, as every later look does over
	// the time since the one before.
	b.looked = time.Now()
	b.start = b.looked
	return b, nil
}

// ObserveEvents adds f to the observers of b's events: EventRejected for
// each retry it refuses, reported by the Retry it sits in. It implements
// EventSource.
func (b *RetryBudget) ObserveEvents(f func(context.Context, Event)) { b.ev.add(f) }

// Name returns the budget's name.
func (b *RetryBudget) Name() string { return b.cfg.Name }

// Kind returns KindRetryBudget.
func (*RetryBudget) Kind() string { return KindRetryBudget }

// Run refuses to run call: a budget runs calls only right inside a Retry,
// which asks it before each retry. It returns an error matching
// ErrInvalidConfig that says so.
func (b *RetryBudget) Run(ctx context.Context, call func(context.Context) error) error {
	if call == nil {
		return errNilFunc
	}
	return errBudgetMisplaced
}

var errBudgetMisplaced error = &ConfigError{Field: "RetryBudget", Value: "outside a Retry",
	Reason: "a retry budget must sit right inside a Retry (Timeout, Retry, RetryBudget, Breaker, ...), which asks it before each retry"}

// Stats returns how many first attempts the budget counted, how many
// retries it let through and refused, and how many retries it had left
// when it last looked.
func (b *RetryBudget) Stats() Stats {
	return Stats{
		Calls: []Count{
			{Result: "first", N: b.firsts.Load()},
			{Result: "retried", N: b.retried.Load()},
			{Result: "refused", N: b.refused.Load()},
		},
		Gauges: []Gauge{{Name: "retries_left", Help: "Retries the budget had left when it last let one through or refused one.", Value: math.Float64frombits(b.left.Load())}},
	}
}

// first counts a call's first attempt.
func (b *RetryBudget) first() { b.firsts.Add(1) }

// withdraw asks for a retry, and reports whether the budget lets it
// through.
func (b *RetryBudget) withdraw() bool {
	now := time.Now()
	b.mu.Lock()
	b.advance(now)
	var firsts, retries float64
	for _, s := range b.slots {
		firsts += s.firsts
		retries += s.retries
	}
	allowed := b.cfg.Ratio*firsts + b.floor
	left := allowed - retries
	// The slots' firsts are fractions when attempts were spread over
	// several: their sum may fall a rounding error short of a whole.
	ok := left >= 1-1e-9*max(allowed, 1)
	if ok {
		b.slots[b.head].retries++
		left--
	}
	b.mu.Unlock()
	b.left.Store(math.Float64bits(max(left, 0)))
	if ok {
		b.retried.Add(1)
	} else {
		b.refused.Add(1)
	}
	return ok
}

// advance moves the window on to now, and spreads the first attempts
// counted since the last look over the time since then. b.mu is held.
func (b *RetryBudget) advance(now time.Time) {
	total := b.firsts.Load()
	fresh := float64(total - b.seen)
	b.seen = total
	since := now.Sub(b.looked)
	if since <= 0 {
		// A look that read the clock before the last one took the lock
		// (or a clock from another synctest bubble): the attempts are
		// the newest slot's, and the last look stays the latest.
		b.slots[b.head].firsts += fresh
		return
	}
	b.looked = now
	if since >= b.cfg.Window {
		// Nothing counted before survives; of the fresh attempts, those
		// of the last Window are kept, spread over its slots.
		share := fresh * float64(b.cfg.Window) / float64(since) / budgetSlots
		for i := range b.slots {
			b.slots[i] = budgetSlot{firsts: share}
		}
		b.start = now.Add(-b.slot + 1)
		b.head = 0
		return
	}
	// Walk the slots from the one the last look was in to now's, giving
	// each the part of fresh that fell in it.
	// The newest slot takes what the older ones did not, so that the
	// parts add up to fresh: rate × since is not always fresh in floating
	// point (1/197 × 197 is 0.9999999999999999).
	rate := fresh / float64(since)
	from := now.Add(-since)
	for {
		end := b.start.Add(b.slot)
		if !now.Before(end) {
			part := min(rate*float64(end.Sub(from)), fresh)
			b.slots[b.head].firsts += part
			fresh -= part
			from = end
			b.head = (b.head + 1) % budgetSlots
			b.slots[b.head] = budgetSlot{}
			b.start = end
			continue
		}
		b.slots[b.head].firsts += fresh
		return
	}
}

// checkBudgets reports a budget in links that does not sit right inside a
// Retry.
func checkBudgets(ls []any) error {
	for i, l := range ls {
		if _, ok := l.(*RetryBudget); !ok {
			continue
		}
		if i == 0 {
			return errBudgetMisplaced
		}
		if _, ok := ls[i-1].(*Retry); !ok {
			return errBudgetMisplaced
		}
	}
	return nil
}
