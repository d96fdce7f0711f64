package resilsql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
)

// slowFirstConnector stands for a database whose first query is stuck
// until it is cancelled, as one behind a lock or on a slow replica is;
// every later query answers at once, with one row.
type slowFirstConnector struct{ queries atomic.Int32 }

func (c *slowFirstConnector) Connect(context.Context) (driver.Conn, error) {
	return &slowFirstConn{c: c}, nil
}
func (c *slowFirstConnector) Driver() driver.Driver { return nil }

type slowFirstConn struct{ c *slowFirstConnector }

func (cn *slowFirstConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if cn.c.queries.Add(1) == 1 {
		<-ctx.Done() // the driver cancels the query at the server
		return nil, ctx.Err()
	}
	return &oneRow{}, nil
}
func (cn *slowFirstConn) Prepare(string) (driver.Stmt, error) {
	return nil, errors.New("not supported")
}
func (cn *slowFirstConn) Close() error              { return nil }
func (cn *slowFirstConn) Begin() (driver.Tx, error) { return nil, errors.New("not supported") }

// openSlowFirst opens a *sql.DB on a stand-in whose first query is stuck,
// guarded by the database preset, which has no Hedge: a Connector's guard
// cannot hedge.
func openSlowFirst() *sql.DB {
	connector, err := resilsql.NewConnector(&slowFirstConnector{}, resilsql.Config{Guard: presets.Database()})
	if err != nil {
		panic(err)
	}
	return sql.OpenDB(connector)
}

// A read hedged at the level of the *sql.DB: the first attempt is stuck,
// and 50ms later a hedge, on a connection of its own, answers; the stuck
// attempt is cancelled. The rows are read after Query returns, and
// closing them ends the call. The driver here is a stand-in, so that the
// example runs without a server; the package's tests run the same against
// PostgreSQL.
func ExampleQuery() {
	db := openSlowFirst()
	defer db.Close()
	hedge, err := resilience.NewHedge(resilience.HedgeConfig{
		Name:     "users-reads",
		Delay:    50 * time.Millisecond, // or Latency, with a quantile of the recent answers
		NoBudget: true,                  // for the example; by default hedges add at most 5% to the calls
	})
	if err != nil {
		panic(err)
	}

	rows, err := resilsql.Query(context.Background(), db, hedge, `SELECT name FROM users WHERE team = $1`, "compilers")
	if err != nil {
		panic(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			panic(err)
		}
		fmt.Println(name)
	}
	fmt.Println(rows.Err(), "hedges sent:", hedge.Stats().Calls[0].N)
	// Output:
	// ada
	// <nil> hedges sent: 1
}

// QueryRow hedges a read of one row, as Query does, under a guard of its
// own: a total time limit around the Hedge, the connector's guard inside
// each attempt. Scan reads the hedge's row.
func ExampleQueryRow() {
	db := openSlowFirst()
	defer db.Close()
	hedge, err := resilience.NewHedge(resilience.HedgeConfig{Name: "users-reads", Delay: 50 * time.Millisecond, NoBudget: true})
	if err != nil {
		panic(err)
	}
	total, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "users-reads", Duration: 2 * time.Second})
	if err != nil {
		panic(err)
	}
	reads, err := resilience.NewGuard(resilience.GuardConfig{Name: "users-reads", Stages: []resilience.Stage{total, hedge}})
	if err != nil {
		panic(err)
	}

	var name string
	err = resilsql.QueryRow(context.Background(), db, reads, `SELECT name FROM users WHERE id = $1`, 42).Scan(&name)
	fmt.Println(name, err)
	// Output:
	// ada <nil>
}
