package resilsql

import (
	"context"
	"database/sql"
	"errors"
	"sync/atomic"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/outcome"
)

// Query runs a read through s at the level of db, the *sql.DB, rather than
// of one of its connections: each attempt s makes is a db.QueryContext of
// its own, on a connection of its own from db's pool. That is where a read
// can be hedged: s is a *resilience.Hedge, or a Guard that holds one, and
// a read still unanswered after the Hedge's delay is sent again, on
// another connection, the first answer taken, and the others cancelled (a
// driver such as pgx cancels the query at the server) and their rows
// closed. A Connector's own guard cannot hedge (see NewConnector): each of
// its calls runs on one connection, which runs one statement at a time.
//
// A read through Query may be retried as well, by a Retry in s, each try
// on a connection from the pool: a read through *sql.DB has no session
// state to lose (see RetryReads). Query is for reads alone: a query that
// does not look like a plain read (see Connector) runs once, neither
// retried nor hedged by s, as through db.QueryContext; one that writes
// from a function of its own, which the scan cannot see, must not be sent
// through Query at all. Writes are db.ExecContext's.
//
// s runs outside db, and db's Connector, if it is one, runs its guard
// inside each attempt: put in s the stages that go around the Hedge
// (a total Timeout, the Retry), and in the Connector's guard those that
// go inside it (the Breaker, a per-attempt Timeout), so that a read runs
// as a guard with a Hedge does, each hedge counted by the breaker:
//
//	Query's s:        Timeout → Retry → Hedge
//	Connector's guard:                         → Breaker → AttemptTimeout → driver
//
// s must not be the Connector's guard, which would run twice on each
// attempt: a query made so fails with an error that says so. The errors
// for which IsFailure is false (a syntax error, a constraint) are the
// database's answer, which ends the call as a success of s, and comes back
// to the caller; any other is a failure of the attempt.
//
// The contexts of s's Timeouts and of its Hedge's winning attempt stay
// open while the rows are read, until they are closed (see
// resilience.Hold): close the Rows, as every *sql.Rows must be closed. A
// Hedge that s holds inside a stage of your own, rather than directly or
// in a Guard, is not held, and the rows end with the call.
func Query(ctx context.Context, db *sql.DB, s resilience.Stage, query string, args ...any) (*Rows, error) {
	if db == nil {
		return nil, errNilDB
	}
	if s == nil {
		return nil, errNilStage
	}
	if !plainRead(query) {
		ctx = resilience.AtMostOnce(ctx)
	}
	var wire *outcome.Wire // nil counts nothing
	if g, ok := s.(*resilience.Guard); ok && g != nil {
		wire = outcome.WireOf(g)
	}
	held, release := resilience.Hold(context.WithValue(ctx, queryStage{}, s), s)
	var attempts atomic.Int32
	q, err := resilience.Do(held, s, func(ctx context.Context) (*queried, error) {
		wire.Sent(int(attempts.Add(1)))
		rows, err := db.QueryContext(ctx, query, args...)
		switch {
		case err == nil:
			return &queried{rows: rows}, nil
		case IsFailure(err) && !errors.Is(err, errQueryOwnGuard):
			return nil, &outcome.Failure{Err: err}
		}
		return &queried{err: err}, nil // the database answered, or s is misused: neither is retried
	})
	if attempts.Load() == 0 {
		wire.Unsent()
	}
	var answered error
	if q != nil {
		answered = q.err
	}
	if err = outcome.Result(err, answered); err != nil || q == nil || q.rows == nil {
		if q != nil {
			q.Close()
		}
		release()
		if err == nil {
			err = errNoRows
		}
		return nil, err
	}
	return &Rows{Rows: q.rows, release: release}, nil
}

// QueryRow is Query for a read of one row, as db.QueryRowContext is for
// db.QueryContext: its error, if any, is deferred until Row.Scan, which
// reads the first row and closes the rows. Call Scan on every Row: until
// then its rows and their connection are held, and so are the call's
// contexts.
func QueryRow(ctx context.Context, db *sql.DB, s resilience.Stage, query string, args ...any) *Row {
	rows, err := Query(ctx, db, s, query, args...)
	return &Row{rows: rows, err: err}
}

// queryStage is the context key of the stage a Query runs its attempts
// through, for a Connector to tell its own guard (see checkQueryStage).
type queryStage struct{}

// checkQueryStage returns an error if ctx is that of a Query whose stage
// is g itself: g would run twice on every attempt.
func checkQueryStage(ctx context.Context, g *resilience.Guard) error {
	if s, ok := ctx.Value(queryStage{}).(resilience.Stage); ok && s == resilience.Stage(g) {
		return errQueryOwnGuard
	}
	return nil
}

var (
	errNilDB         = errors.New("resilsql: Query: the *sql.DB is nil")
	errNilStage      = errors.New("resilsql: Query: the stage is nil: give it a *resilience.Hedge, or a Guard")
	errNoRows        = errors.New("resilsql: Query: the stage returned no rows and no error")
	errQueryOwnGuard = errors.New("resilsql: Query: the stage is the guard of the Connector the query runs through, " +
		"which already runs inside each attempt: give Query a stage of its own, such as a *resilience.Hedge")
)

// queried is what one attempt of a Query got: its rows, or the
// database's answer. A Hedge closes the rows of an attempt that lost.
type queried struct {
	rows *sql.Rows
	err  error
}

func (q *queried) Close() error {
	if q.rows == nil {
		return nil
	}
	return q.rows.Close()
}

// Rows are the rows of a Query: a *sql.Rows, whose methods they have,
// with a Close that also ends the hold on the call's contexts. Read them
// as any *sql.Rows, and close them:
//
//	rows, err := resilsql.Query(ctx, db, hedge, `SELECT id, name FROM users WHERE team = $1`, team)
//	if err != nil {
//		return err
//	}
//	defer rows.Close()
//	for rows.Next() {
//		...
//	}
//	return rows.Err()
//
// Code that takes a *sql.Rows can be handed the embedded Rows.Rows, as
// long as Close is called on the Rows: closing the *sql.Rows alone leaves
// the call's time limits running until they expire.
type Rows struct {
	*sql.Rows
	release func()
}

// Close closes the rows, as sql.Rows.Close does, and ends the hold on the
// call's contexts. It is safe to call more than once.
func (r *Rows) Close() error {
	err := r.Rows.Close()
	r.release()
	return err
}

// Row is the result of QueryRow: a single row, as *sql.Row is.
type Row struct {
	rows *Rows
	err  error
}

// Scan copies the columns of the first row into dest, as sql.Row.Scan
// does, and closes the rows: it returns sql.ErrNoRows if there is none,
// and the error of the query, if it failed.
func (r *Row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	for _, d := range dest {
		if _, ok := d.(*sql.RawBytes); ok {
			return errors.New("resilsql: RawBytes isn't allowed on Row.Scan") // as database/sql says
		}
	}
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

// Err returns the error of the query, if it failed, without scanning, as
// sql.Row.Err does; a Row whose query succeeded still needs Scan, which
// closes its rows.
func (r *Row) Err() error { return r.err }
