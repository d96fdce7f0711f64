package resilsql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"

	"github.com/resilience-go/resilience"
)

// conn is a driver connection whose calls go through the connector's
// guard. database/sql uses a connection from one goroutine at a time, so
// its fields need no lock.
type conn struct {
	c     *Connector
	inner driver.Conn
	inTx  bool // a transaction is open: nothing is retried
	// clean: the server session holds nothing a caller put there, so that
	// a read can run again on a new one. It is set when the connection
	// opens and when database/sql resets it, before handing it out again,
	// and cleared by every statement but a plain read (see session.go).
	clean bool
}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
)

func (cn *conn) Close() error { return cn.inner.Close() }

func (cn *conn) Prepare(query string) (driver.Stmt, error) {
	return cn.PrepareContext(context.Background(), query)
}

func (cn *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	cn.clean = false
	st, err := run(ctx, cn.c, false, func(ctx context.Context) (driver.Stmt, error) {
		if p, ok := cn.inner.(driver.ConnPrepareContext); ok {
			return p.PrepareContext(ctx, query)
		}
		return cn.inner.Prepare(query)
	})
	if err != nil {
		return nil, err
	}
	return &stmt{cn: cn, inner: st}, nil
}

func (cn *conn) Begin() (driver.Tx, error) {
	return cn.BeginTx(context.Background(), driver.TxOptions{})
}

// BeginTx begins a transaction through the guard, at most once. Its time
// limits bound beginning it, not the transaction: drivers keep the context
// given here for the whole transaction (pgx commits with it), so the
// driver gets one that ends with the caller's or with the transaction,
// and with the guard's only while the transaction begins.
func (cn *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	b, ok := cn.inner.(driver.ConnBeginTx)
	if !ok && (opts.Isolation != driver.IsolationLevel(0) || opts.ReadOnly) {
		return nil, errors.New("resilsql: the driver does not support transaction options")
	}
	cn.clean = false // what a transaction sets may outlive it (SET without LOCAL)
	txCtx, end := context.WithCancel(ctx)
	tx, err := run(ctx, cn.c, false, func(ctx context.Context) (driver.Tx, error) {
		// ctx is the guard's: its time limits end it, here or once the
		// call returns. It ends txCtx only while the transaction begins.
		unlink := context.AfterFunc(ctx, end)
		var tx driver.Tx
		var err error
		if ok {
			tx, err = b.BeginTx(txCtx, opts)
		} else {
			tx, err = cn.inner.Begin() //lint:ignore SA1019 the driver has nothing newer
		}
		if !unlink() {
			// ctx ended while the transaction began, and ended txCtx: the
			// driver's error is that of txCtx, cancelled, and a
			// transaction that began anyway cannot go on. What ended it
			// is ctx's error: a time limit's deadline, or the caller's.
			if err == nil {
				tx.Rollback()
			}
			return nil, ctx.Err()
		}
		return tx, err
	})
	if err != nil {
		end()
		return nil, err
	}
	cn.inTx = true
	return &txn{cn: cn, inner: tx, end: end}, nil
}

func (cn *conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cn.clean = false // any exec may change the session: BEGIN, SET, PREPARE, LISTEN...
	ex, ok := cn.inner.(driver.ExecerContext)
	if !ok {
		return nil, driver.ErrSkip // database/sql prepares the statement instead
	}
	return run(ctx, cn.c, false, func(ctx context.Context) (driver.Result, error) {
		return ex.ExecContext(ctx, query, args)
	})
}

// QueryContext runs a query, retried only if the caller asked with
// RetryReads and the session has nothing to lose: a retry may run on a new
// server session, where a transaction, a SET, a temporary table, a
// prepared statement or a lock of the old one would be missing. A read
// that fails where it may not be retried says so with ErrReadNotRetried.
func (cn *conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	asked := readsRetried(ctx)
	if asked && cn.c.noRetry != nil {
		return nil, cn.c.noRetry
	}
	retried := asked && cn.clean && !cn.inTx
	if !asked || !plainRead(query) {
		cn.clean = false
	}
	if _, ok := cn.inner.(driver.QueryerContext); !ok {
		return nil, driver.ErrSkip
	}
	attempt := 0
	failed := false
	rows, err := runRows(ctx, cn.c, retried, func(ctx context.Context) (driver.Rows, error) {
		if attempt > 0 {
			if err := cn.revive(ctx); err != nil {
				return nil, err
			}
		}
		attempt++
		q, ok := cn.inner.(driver.QueryerContext)
		if !ok {
			return nil, driver.ErrBadConn
		}
		rows, err := q.QueryContext(ctx, query, args)
		failed = err != nil && cn.c.isFailure(err) && ctx.Err() == nil
		return rows, err
	})
	if err != nil && failed && asked && !retried && cn.c.retries && !errors.Is(err, resilience.ErrTimeout) {
		err = fmt.Errorf("%w: %w", ErrReadNotRetried, err)
	}
	return rows, err
}

// revive replaces a connection that broke with a new one, so that a read
// can be retried; it is called only while the session is clean, so that
// nothing is lost with it. A connection is broken if it says it is not
// valid, or fails to reset.
func (cn *conn) revive(ctx context.Context) error {
	broken := false
	if v, ok := cn.inner.(driver.Validator); ok {
		broken = !v.IsValid()
	} else if r, ok := cn.inner.(driver.SessionResetter); ok {
		broken = r.ResetSession(ctx) != nil
	}
	if !broken {
		return nil
	}
	fresh, err := cn.c.base.Connect(ctx)
	if err != nil {
		return err
	}
	cn.inner.Close()
	cn.inner = fresh
	return nil
}

func (cn *conn) Ping(ctx context.Context) error {
	p, ok := cn.inner.(driver.Pinger)
	if !ok {
		return nil
	}
	_, err := run(ctx, cn.c, false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, p.Ping(ctx)
	})
	return err
}

// ResetSession is called by database/sql before it hands out again a
// connection that went back to the pool: from then on, the session holds
// nothing that the caller who gets it put there.
func (cn *conn) ResetSession(ctx context.Context) error {
	if r, ok := cn.inner.(driver.SessionResetter); ok {
		if err := r.ResetSession(ctx); err != nil {
			return err
		}
	}
	cn.clean = !cn.inTx
	return nil
}

func (cn *conn) IsValid() bool {
	if v, ok := cn.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (cn *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := cn.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip // database/sql's default conversion
}

// txn ends a transaction: nothing about it is guarded (see Connector).
type txn struct {
	cn    *conn
	inner driver.Tx
	end   context.CancelFunc // ends the context the transaction began with
}

func (t *txn) Commit() error {
	defer t.end()
	t.cn.inTx = false
	return t.inner.Commit()
}

func (t *txn) Rollback() error {
	defer t.end()
	t.cn.inTx = false
	return t.inner.Rollback()
}

// stmt is a prepared statement whose runs go through the guard, never
// retried: the statement belongs to one connection.
type stmt struct {
	cn    *conn
	inner driver.Stmt
}

func (s *stmt) Close() error  { return s.inner.Close() }
func (s *stmt) NumInput() int { return s.inner.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), named(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), named(args))
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	s.cn.clean = false
	return run(ctx, s.cn.c, false, func(ctx context.Context) (driver.Result, error) {
		if ex, ok := s.inner.(driver.StmtExecContext); ok {
			return ex.ExecContext(ctx, args)
		}
		return s.inner.Exec(values(args)) //lint:ignore SA1019 the driver has nothing newer
	})
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	if readsRetried(ctx) && s.cn.c.noRetry != nil {
		return nil, s.cn.c.noRetry // asked for, and impossible, as for a query
	}
	s.cn.clean = false
	return runRows(ctx, s.cn.c, false, func(ctx context.Context) (driver.Rows, error) {
		if q, ok := s.inner.(driver.StmtQueryContext); ok {
			return q.QueryContext(ctx, args)
		}
		return s.inner.Query(values(args)) //lint:ignore SA1019 the driver has nothing newer
	})
}

func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if c, ok := s.inner.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func named(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

func values(args []driver.NamedValue) []driver.Value {
	v := make([]driver.Value, len(args))
	for i, a := range args {
		v[i] = a.Value
	}
	return v
}

// rows ends the query's time limits when the rows are closed, and passes
// on what the driver's rows tell of their columns.
type rows struct {
	driver.Rows
	release func()
}

func wrapRows(r driver.Rows, release func()) driver.Rows {
	return &rows{Rows: r, release: release}
}

func (r *rows) Close() error {
	err := r.Rows.Close()
	r.release()
	return err
}

func (r *rows) HasNextResultSet() bool {
	n, ok := r.Rows.(driver.RowsNextResultSet)
	return ok && n.HasNextResultSet()
}

func (r *rows) NextResultSet() error {
	if n, ok := r.Rows.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return errors.New("resilsql: the driver has no next result set")
}

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if c, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if c, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return c.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if c, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return c.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
