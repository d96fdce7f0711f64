// Package resilsql guards database/sql with the policies of package
// resilience, by wrapping a driver.Connector:
//
//	base, err := pgx.ParseConfig(dsn) // or any driver's Connector
//	...
//	connector, err := resilsql.NewConnector(stdlib.GetConnector(*base), resilsql.Config{Guard: presets.Database()})
//	...
//	db := sql.OpenDB(connector)
//
// Every way database/sql reaches the server then goes through the guard:
// connecting, pinging, queries, execs, preparing and running prepared
// statements, and beginning transactions.
//
// Any guard will do: a preset, or stages of your choice in the order you
// want, with or without a breaker or a retry. A time limit for each
// attempt goes inside the retry, under the total one:
//
//	guard, err := resilience.NewGuard(resilience.GuardConfig{
//		Name:   "orders-db",
//		Stages: []resilience.Stage{total, retry, breaker, perAttempt},
//	})
//
// Only connecting and the queries marked with RetryReads are retried, and
// a read only where a new server session loses nothing: a read through
// *sql.DB is retried, one on a *sql.Conn or *sql.Tx after a BEGIN, a SET,
// a temporary table, a lock or any other statement that may have changed
// the session fails with an error matching ErrReadNotRetried.
//
// A read is hedged (sent again, on another connection, when it is slower
// than usual, the first answer taken) by Query, at the level of the
// *sql.DB, with a *resilience.Hedge of its own: each attempt takes a
// connection from the pool. A Connector's guard holds no Hedge (see
// NewConnector):
//
//	hedge, err := resilience.NewHedge(resilience.HedgeConfig{Name: "orders-reads", Delay: 20 * time.Millisecond})
//	...
//	rows, err := resilsql.Query(ctx, db, hedge, `SELECT id, total FROM orders WHERE customer = $1`, customer)
//	...
//	defer rows.Close()
//
// A sharded database is one *sql.DB per shard, each opened through a
// Connector with the shard's Config.Key and one guard holding a
// *resilience.KeyedBreaker: each shard has its own breaker, so that a
// shard that fails is cut off alone, while the others go on being called.
//
//	perShard, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{Breaker: cfg})
//	...
//	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "orders-db", Stages: []resilience.Stage{total, perShard}})
//	...
//	for _, s := range shards {
//		connector, err := resilsql.NewConnector(s.Connector, resilsql.Config{Guard: guard, Key: s.Name})
//		...
//		dbs[s.Name] = sql.OpenDB(connector)
//	}
//
// A single *sql.DB for every shard, through a driver that routes each
// statement to its shard, has one Connector: the caller then puts the
// shard in each call's context with resilience.WithKey, and leaves
// Config.Key empty. Connecting counts under the key of the call that
// needed the connection, and under the key "" when database/sql opens one
// in the background.
package resilsql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// Config configures a Connector.
type Config struct {
	// Guard protects the calls to one database. Required; any guard
	// without a Hedge will do, and presets.Database() is made for it. A
	// read is hedged by Query, outside the Connector: see NewConnector.
	Guard *resilience.Guard

	// IsFailure reports whether an error the driver returned means the
	// database could not serve the call. Default IsFailure.
	IsFailure func(error) bool

	// Key, if set, is the key of every call through the connector, for a
	// guard with a breaker per key (a *resilience.KeyedBreaker): the
	// connector puts it in the call's context with resilience.WithKey, in
	// place of any key the caller's context carries. Give each shard of a sharded database a *sql.DB of its own,
	// opened through a Connector with the shard's Key and one guard for
	// all of them: a shard that fails opens its own breaker, and the
	// others go on being called. The key covers what the caller's context
	// cannot reach: the connections database/sql opens in the background,
	// with a context of its own. Default "": the calls carry the key the
	// caller put in their context, if any. With a guard that has no stage
	// per key (a KeyedBreaker, a resilience.Keyed family), Key is not used. It costs two allocations per call,
	// the context and the key in it.
	Key string
}

// Connector is a driver.Connector whose connections run every call through
// every stage of a Guard, in order:
//
//   - Its breakers see every call, and a call that a stage rejects (an
//     open breaker, a full bulkhead) returns an error matching
//     resilience.ErrRejected, and the stage's own sentinel, without
//     reaching the driver. Errors for which IsFailure is false (a
//     constraint violated, a syntax error) mean the database answered:
//     they count as successes.
//   - Its time limits bound every call, and each time-out is counted by
//     the Timeout's observers, and so by its metrics. For a query they
//     run until the rows are closed, so they bound reading them too. For
//     a transaction they bound beginning it; the statements inside are
//     bounded one by one.
//   - Its bulkheads bound how many calls run at once; a query holds its
//     slot until it returns, not while its rows are read.
//   - Its retries are used for connecting, which is always safe to
//     retry, and for queries the caller marked with RetryReads, where the
//     connection's session holds no state; a time limit inside the retry
//     cuts an attempt that hangs, and the read is tried again. Every
//     other call is made at most once (see resilience.AtMostOnce): an
//     exec, and every statement inside a transaction, may have been
//     applied before the failure was seen, and running it again could
//     apply it twice. A retried read whose connection broke runs again on
//     a new connection, a new server session: so it is retried only while
//     no statement that may have changed the session has run on its
//     connection since database/sql handed it out (see RetryReads), and
//     otherwise fails with an error matching ErrReadNotRetried.
//
// A query made with RetryReads counts as a plain read, which leaves the
// session clean, only if it is one statement, begins with SELECT, WITH,
// VALUES, TABLE or SHOW (after comments) and names none of a few
// functions and words that change the session: set_config, nextval,
// setval, setseed, the advisory lock functions (pg_advisory_*,
// pg_try_advisory_*), dblink, MySQL's GET_LOCK, RELEASE_LOCK and
// LAST_INSERT_ID, SQL Server's sp_getapplock, INTO, TEMP, TEMPORARY, or
// MySQL's := assignment. This is a scan of words, not a parser, and what
// it guarantees is this: a query that names one of those words outside a
// comment, or has anything but spaces and comments after a semicolon, is
// never taken for a plain read, whatever the SQL dialect. Words count in
// string literals and quoted identifiers too, and the scan skips as
// comments only what every dialect reads as one: before the first quote
// (' " ` [ or a dollar quote), a -- followed by a space, to the end of the
// line, and a /* other than MySQL's executable /*! and MariaDB's /*M!, to
// the first */. Where it is wrong, it takes a plain read for a session
// change, which costs a retry. It cannot see a session change made by a
// function it does not know (one of your own, or a built-in not in the
// list) called from a SELECT: do not mark such a query with RetryReads.
//
// Committing and rolling back a transaction are not guarded: the
// transaction is already under way, and a breaker that refused to end it
// would leave it holding its locks.
//
// A Connector is safe for concurrent use. Make one with NewConnector: the
// zero Connector opens no connection, and returns an error that says so.
type Connector struct {
	base      driver.Connector
	guard     *resilience.Guard
	retries   bool  // the guard has a Retry that retries
	noRetry   error // not nil if the guard has no retry stage: why RetryReads cannot work
	isFailure func(error) bool
	wire      *outcome.Wire // guard's: every call counts into it
	key       string        // Config.Key, if the guard is keyed
}

// NewConnector returns a Connector that guards base's connections as cfg
// says, or an error if base is nil, cfg.Guard is nil or the zero Guard,
// one of the guard's time limits abandons calls (TimeoutConfig.Abandon),
// or the guard holds a Hedge (a *resilience.Hedge, or a resilience.Keyed
// family of them). A Connector guards each call on one driver connection,
// which runs one statement at a time: a hedge of it would have to run on
// the same connection, at the same time, which no driver can do, and a
// Hedge there could never send one. Hedge reads with Query, whose stage
// holds the Hedge, at the level of the *sql.DB, where each attempt takes
// a connection of its own from the pool.
func NewConnector(base driver.Connector, cfg Config) (*Connector, error) {
	if base == nil {
		return nil, errors.New("resilsql: NewConnector: the base connector is nil")
	}
	if err := outcome.Check("resilsql", "Config.Guard", cfg.Guard); err != nil {
		return nil, err
	}
	if err := checkNoHedge(cfg.Guard); err != nil {
		return nil, err
	}
	c := &Connector{base: base, guard: cfg.Guard, retries: retries(cfg.Guard), noRetry: noRetry(cfg.Guard), isFailure: cfg.IsFailure, wire: outcome.WireOf(cfg.Guard)}
	if outcome.Keyed(cfg.Guard) {
		c.key = cfg.Key
	}
	if c.isFailure == nil {
		c.isFailure = IsFailure
	}
	return c, nil
}

// Connect opens a connection through the guard, retried as its retry
// policy allows.
func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.guard == nil {
		return nil, errZeroConnector
	}
	inner, err := run(ctx, c, true, c.base.Connect)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, inner: inner, clean: true}, nil
}

// Driver returns the base connector's driver.
func (c *Connector) Driver() driver.Driver {
	if c.base == nil {
		return zeroDriver{}
	}
	return c.base.Driver()
}

// errZeroConnector is what a Connector not made by NewConnector answers.
var errZeroConnector = errors.New("resilsql: a zero Connector cannot connect: make it with NewConnector")

// zeroDriver is the Driver of a zero Connector: it opens nothing.
type zeroDriver struct{}

func (zeroDriver) Open(string) (driver.Conn, error) { return nil, errZeroConnector }

// Guard returns the guard the connector runs calls through.
func (c *Connector) Guard() *resilience.Guard { return c.guard }

// Key returns the key of every call through the connector: Config.Key,
// or "" if the guard has no stage per key, which would not use it.
func (c *Connector) Key() string { return c.key }

// keyed returns ctx with the connector's key, if it has one.
func (c *Connector) keyed(ctx context.Context) context.Context {
	if c.key == "" {
		return ctx
	}
	return resilience.WithKey(ctx, c.key)
}

type retryReads struct{}

// RetryReads returns a context that lets a query made with it be retried
// after a failure, as the guard's retry policy allows, where its
// connection's server session has nothing to lose. Use it for queries that
// only read, and change nothing on the session either: a statement that
// writes (UPDATE … RETURNING, a SELECT calling a function that writes)
// must not be run twice, and one that takes a lock or sets a setting
// leaves state that a retry elsewhere would lose.
//
// The retries are the guard's: a guard without a retry stage, such as
// presets.Database(), retries no read, and a query made with RetryReads
// through it fails at once, without running, with an error matching
// ErrNoRetryStage that says how to add one.
//
// A read whose connection broke is retried on a new connection, that is,
// a new server session. So it is retried only while its connection is
// clean: no statement but a plain read made with RetryReads has run on it
// since database/sql opened it or last reset it, when it went back to the
// pool. That holds for every read made through *sql.DB, which takes a
// connection from the pool for each call, and for a *sql.Conn on which
// only such reads have run. Anything else may have left state on the
// session: an exec of any kind (BEGIN, SET, PREPARE, LISTEN, CREATE TEMP
// TABLE...), a query not made with RetryReads, one that does not look like
// a plain read (see the Connector's documentation), a prepared statement,
// a transaction, even once it has ended, and Unwrap. After any of them a
// failed read is not retried, and its error matches ErrReadNotRetried.
//
// State set through *sql.DB (a SET sent with db.Exec) stays on whichever
// connection ran it, and database/sql's reset does not always clear it:
// a later call through *sql.DB cannot count on it, retried or not. Set
// such state on a *sql.Conn, or in the connection's configuration.
func RetryReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, retryReads{}, true)
}

func readsRetried(ctx context.Context) bool {
	v, _ := ctx.Value(retryReads{}).(bool)
	return v
}

// ErrNoRetryStage is matched, with errors.Is, by the error of a query
// made with RetryReads through a Connector whose guard has no retry stage
// (presets.Database() has none): no read could ever be retried, so the
// query is not run, rather than run once while the caller believes it is
// retried. Give the guard a Retry, which resilsql uses for connecting and
// for reads made with RetryReads only (execs are never retried):
//
//	p := presets.DatabaseConfig()
//	p.Retry = &resilience.RetryConfig{MaxRetries: 2, Jitter: true}
//	guard, err := p.Build()
//
// or drop RetryReads. A Retry whose MaxRetries is 0 is a retry stage,
// switched off on purpose: reads made with RetryReads then run once.
var ErrNoRetryStage = errors.New("resilsql: RetryReads: the guard has no retry stage, so no read is retried")

// ErrReadNotRetried is matched, with errors.Is, by the error of a query
// made with RetryReads that failed and was not retried because its
// connection may hold session state that a new connection would not have
// (see RetryReads). The error also unwraps to the driver's own error.
// Where the connection broke, what its session held went with it (a
// transaction begun with an exec, a SET, a lock): the caller must start
// over, on a connection of its own.
var ErrReadNotRetried = errors.New("resilsql: read not retried: the connection may hold session state " +
	"(a transaction, a SET or a statement other than a plain read ran on it, through a *sql.Conn or *sql.Tx)")

// IsFailure is the default Config.IsFailure. An error that carries a
// SQLSTATE (a method SQLState() string, as the errors of pgx and lib/pq
// have) is a failure only in the classes that say the server cannot serve:
// 08 (connection exception), 53 (insufficient resources), 57 (operator
// intervention, such as a shutdown), 58 (system error) and XX (internal
// error); any other SQLSTATE is an answer. Every error without one, such
// as a network error or a time-out, is a failure.
func IsFailure(err error) bool {
	if err == nil {
		return false
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		code := coded.SQLState()
		if len(code) < 2 {
			return true
		}
		switch code[:2] {
		case "08", "53", "57", "58", "XX":
			return true
		}
		return false
	}
	return true
}

// checkNoHedge returns an error if g holds a Hedge: see NewConnector.
func checkNoHedge(g *resilience.Guard) error {
	if h := outcome.Hedge(g); h != nil {
		return fmt.Errorf("resilsql: Config.Guard: the hedge %q cannot hedge a driver call, which runs on one connection, "+
			"one statement at a time: take the Hedge out of the Connector's guard, and hedge reads with resilsql.Query, "+
			"whose attempts each take a connection of their own from the *sql.DB", h.Name())
	}
	return nil
}

// run makes one call through every stage of the guard. Only a call that
// may be retried is: any other is made at most once.
func run[T any](ctx context.Context, c *Connector, retried bool, fn func(context.Context) (T, error)) (T, error) {
	if err := checkQueryStage(ctx, c.guard); err != nil {
		var zero T
		return zero, err
	}
	var answered error
	attempt := 0
	v, err := outcome.Run(c.keyed(ctx), c.guard, !retried, func(ctx context.Context) (T, error) {
		attempt++
		c.wire.Sent(attempt)
		v, err := fn(ctx)
		answered = err
		if err != nil && c.isFailure(err) {
			return v, &outcome.Failure{Err: err}
		}
		return v, nil // the database answered, perhaps with an error
	})
	if attempt == 0 {
		c.wire.Unsent()
	}
	return v, outcome.Result(err, answered)
}

// runRows is run for a query, whose rows are read after it returns: the
// guard's time limits run until they are closed, rather than ending when
// the query returns.
func runRows(ctx context.Context, c *Connector, retried bool, fn func(context.Context) (driver.Rows, error)) (driver.Rows, error) {
	if err := checkQueryStage(ctx, c.guard); err != nil {
		return nil, err
	}
	var answered error
	attempt := 0
	rows, release, err := outcome.RunHeld(c.keyed(ctx), c.guard, !retried, func(ctx context.Context) (driver.Rows, error) {
		attempt++
		c.wire.Sent(attempt)
		rows, err := fn(ctx)
		answered = err
		if err != nil && c.isFailure(err) {
			return nil, &outcome.Failure{Err: err}
		}
		return rows, nil
	})
	if attempt == 0 {
		c.wire.Unsent()
	}
	err = outcome.Result(err, answered)
	if err == nil && rows == nil {
		err = errors.New("resilsql: the driver returned no rows and no error")
	}
	if err != nil {
		release()
		return nil, err
	}
	return wrapRows(rows, release), nil
}

// Unwrap returns the driver's own connection inside one of a Connector's
// connections, for database/sql's Conn.Raw, so that code can reach the
// driver's own API (pgx's CopyFrom, for instance):
//
//	err := conn.Raw(func(dc any) error {
//		pgxConn := resilsql.Unwrap(dc).(*stdlib.Conn).Conn()
//		...
//	})
//
// Calls made on it are not guarded, and what they do is not seen: from
// then on the connection counts as holding session state, and no read is
// retried on it until database/sql resets it. Any other value comes back
// unchanged.
func Unwrap(driverConn any) any {
	if c, ok := driverConn.(*conn); ok {
		c.clean = false
		return c.inner
	}
	return driverConn
}

// noRetry returns the error that a query made with RetryReads gets when g
// has no retry stage (a stage of kind resilience.KindRetry), nil if it has
// one.
func noRetry(g *resilience.Guard) error {
	for _, s := range g.Stages() {
		if s.Kind() == resilience.KindRetry {
			return nil
		}
	}
	return fmt.Errorf("%w: the guard %q has no resilience.Retry among its stages; add one, "+
		"e.g. p := presets.DatabaseConfig(); p.Retry = &resilience.RetryConfig{MaxRetries: 2, Jitter: true}; guard, err := p.Build() "+
		"(execs are never retried), or make the query without RetryReads", ErrNoRetryStage, g.Name())
}

// retries reports whether g retries failed calls at all: whether one of
// its stages is a Retry that tries a call more than once.
func retries(g *resilience.Guard) bool {
	for _, s := range g.Stages() {
		if r, ok := s.(*resilience.Retry); ok && r.MaxRetries() > 0 {
			return true
		}
	}
	return false
}

// Wire returns the count of the calls run through g and of the attempts
// of them sent to the database, with their ratio, the amplification g's
// retries cause, as a stage for package metrics to export
// (resilience_wire_calls_total{name,result="call|attempt"} and
// resilience_wire_amplification{name}). Every integration counts into the
// one Wire of a guard.
func Wire(g *resilience.Guard) resilience.Observable { return outcome.WireOf(g) }

// KindWire is the kind of the stage Wire returns.
const KindWire = outcome.KindWire
