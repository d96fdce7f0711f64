package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// passes is a stage of its own that counts the calls run through the
// guard.
type passes struct{ n atomic.Int32 }

func (*passes) Name() string { return "passes" }
func (*passes) Kind() string { return "counter" }
func (p *passes) Run(ctx context.Context, call func(context.Context) error) error {
	p.n.Add(1)
	return call(ctx)
}

// execs counts the execs that reach the driver's connections, and those
// the driver answers with driver.ErrBadConn (nothing was sent).
type execs struct {
	driver.Connector
	n, bad atomic.Int32
}

func (e *execs) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := e.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &execConn{Conn: c, e: e}, nil
}

type execConn struct {
	driver.Conn
	e *execs
}

func (c *execConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.e.n.Add(1)
	r, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	if errors.Is(err, driver.ErrBadConn) {
		c.e.bad.Add(1)
	}
	return r, err
}

func (c *execConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

// database/sql re-runs a call through *sql.DB that the driver answers
// with driver.ErrBadConn (which says that nothing was sent) on another
// connection, twice, then once more on a new one, and each re-run is a
// call to the wrapped connection: a run of its own through the guard,
// never inside one. After every pooled connection is cut, pgx answers an
// insert on each of the 2 pooled connections with ErrBadConn: one
// db.ExecContext is 4 runs through the guard (3 execs and the new
// connection), 3 execs at the driver, of which 1 reaches the server, and
// the breaker counts 2 failures and 2 successes. No run of the guard sends more than one statement, and the
// insert is applied once.
func TestBadConnRerunByDatabaseSQL(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	proxy, err := faultproxy.New(pg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct, _ := open(t, pgConnector(t, pg.DSN), nil)
	ctx := t.Context()
	if _, err := direct.ExecContext(ctx, `CREATE TABLE once (n int)`); err != nil {
		t.Fatal(err)
	}

	base := &execs{Connector: pgConnector(t, "postgres://postgres@"+proxy.Addr()+"/postgres?sslmode=disable")}
	count := &passes{}
	b := newBreaker(t)
	var failures, successes atomic.Int32
	b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		switch r {
		case resilience.CallFailed:
			failures.Add(1)
		case resilience.CallSucceeded:
			successes.Add(1)
		}
	}})
	db := guarded(t, base, newTimeout(t, "db", 5*time.Second, nil), count, b)
	db.SetMaxIdleConns(2)
	// Two pooled connections, each reset once (pgx pings a connection at
	// its first reset, and then only after a second idle), so that the cut
	// is seen by the insert, not by the reset.
	for range 2 {
		var conns []*sql.Conn
		for range 2 {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.PingContext(ctx); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}
	proxy.CutAll()
	count.n.Store(0)
	base.n.Store(0)
	failures.Store(0)
	successes.Store(0)

	if _, err := db.ExecContext(ctx, `INSERT INTO once VALUES (1)`); err != nil {
		t.Fatalf("insert after the cut: %v, want database/sql's re-run on a new connection to succeed", err)
	}
	var rows int
	if err := direct.QueryRowContext(ctx, `SELECT count(*) FROM once`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("one db.ExecContext after a cut: %d runs through the guard, %d execs at the driver (%d answered ErrBadConn), %d reached the server; breaker: %d failures, %d successes",
		count.n.Load(), base.n.Load(), base.bad.Load(), rows, failures.Load(), successes.Load())
	if count.n.Load() != 4 || base.n.Load() != 3 || base.bad.Load() != 2 || rows != 1 || failures.Load() != 2 || successes.Load() != 2 {
		t.Errorf("want 4 runs through the guard (3 execs, 1 connect), 3 execs at the driver (2 answered ErrBadConn), 1 row; the breaker 2 failures, 2 successes")
	}
}
