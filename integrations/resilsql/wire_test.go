package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"testing"

	"github.com/resilience-go/resilience"
)

// downConn is a connection whose queries fail as a dead server's do.
type downConn struct{ driver.Conn }

func (downConn) QueryContext(context.Context, string, []driver.NamedValue) (driver.Rows, error) {
	return nil, errors.New("read tcp 127.0.0.1: connection reset by peer")
}

func (downConn) Close() error { return nil }

type downConnector struct{}

func (downConnector) Connect(context.Context) (driver.Conn, error) { return downConn{}, nil }
func (downConnector) Driver() driver.Driver                        { return nil }

// TestWireCountsAttempts: the guard's Wire counts each call through the
// Connector, connecting included, and each attempt of it that reached
// the driver.
func TestWireCountsAttempts(t *testing.T) {
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 2, NoBackoff: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{retry}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(downConnector{}, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	db.SetMaxOpenConns(1)
	// A read marked RetryReads: 1 connect and 3 attempts of the query;
	// database/sql's own pass on ErrBadConn does not come into it, since
	// the error is not ErrBadConn.
	if _, err := db.QueryContext(RetryReads(context.Background()), `SELECT 1`); err == nil {
		t.Fatal("a query on a dead connection succeeded")
	}
	st := Wire(g).Stats()
	if calls, attempts := st.Calls[0].N, st.Calls[1].N; calls != 2 || attempts != 4 {
		t.Errorf("Wire: %d calls, %d attempts; want 2 calls (the connect and the query) and 4 attempts (1 + 3)", calls, attempts)
	}
	if g := st.Gauges[0]; g.Name != "amplification" || g.Value != 2 {
		t.Errorf("Wire gauge %+v, want amplification 2", g)
	}
}
