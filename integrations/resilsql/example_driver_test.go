package resilsql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
)

// flakyConnector stands for a driver whose first connection breaks on its
// first query, as one does when the server restarts.
type flakyConnector struct{ conns, queries int }

func (c *flakyConnector) Connect(context.Context) (driver.Conn, error) {
	c.conns++
	return &flakyConn{c: c, broken: c.conns == 1}, nil
}
func (c *flakyConnector) Driver() driver.Driver { return nil }

type flakyConn struct {
	c      *flakyConnector
	broken bool
}

var errReset = errors.New("read tcp 127.0.0.1:5432: connection reset by peer")

func (cn *flakyConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cn.c.queries++
	if cn.broken {
		return nil, errReset
	}
	return &oneRow{}, nil
}
func (cn *flakyConn) IsValid() bool                       { return !cn.broken } // driver.Validator
func (cn *flakyConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (cn *flakyConn) Close() error                        { return nil }
func (cn *flakyConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

type oneRow struct{ done bool }

func (r *oneRow) Columns() []string { return []string{"name"} }
func (r *oneRow) Close() error      { return nil }
func (r *oneRow) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = "ada"
	return nil
}

// A read marked RetryReads meets a connection that breaks: the guard
// retries it on a new connection, and the caller gets the row. The same
// read without a retry stage in the guard is refused, with an error that
// says how to add one. The driver here is a stand-in, so that the example
// runs without a server; the package's tests run the same against
// PostgreSQL.
func ExampleRetryReads_retriedOnANewConnection() {
	p := presets.DatabaseConfig()
	p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond}
	guard, err := p.Build()
	if err != nil {
		panic(err)
	}
	flaky := &flakyConnector{}
	connector, err := resilsql.NewConnector(flaky, resilsql.Config{Guard: guard})
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	var name string
	err = db.QueryRowContext(resilsql.RetryReads(context.Background()), `SELECT name FROM users WHERE id = 42`).Scan(&name)
	fmt.Printf("%s %v, after %d queries on %d connections\n", name, err, flaky.queries, flaky.conns)

	noRetry, err := resilsql.NewConnector(&flakyConnector{}, resilsql.Config{Guard: presets.Database()})
	if err != nil {
		panic(err)
	}
	db2 := sql.OpenDB(noRetry)
	defer db2.Close()
	err = db2.QueryRowContext(resilsql.RetryReads(context.Background()), `SELECT name FROM users WHERE id = 42`).Scan(&name)
	fmt.Println(errors.Is(err, resilsql.ErrNoRetryStage))
	// Output:
	// ada <nil>, after 2 queries on 2 connections
	// true
}
