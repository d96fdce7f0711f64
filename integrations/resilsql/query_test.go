package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// The tests of this file hold Query to hedging a read at the level of the
// *sql.DB, each attempt on a connection of its own, against PostgreSQL,
// and NewConnector to refusing a Hedge.

func newHedge(delay time.Duration) *resilience.Hedge {
	return must(resilience.NewHedge(resilience.HedgeConfig{Name: "reads", Delay: delay, NoBudget: true}))
}

// breakerCalls counts how the calls through b ended.
type breakerCalls struct {
	mu sync.Mutex
	n  map[resilience.CallResult]int
}

func observeBreaker(b *resilience.Breaker) *breakerCalls {
	c := &breakerCalls{n: map[resilience.CallResult]int{}}
	b.Observe(resilience.BreakerObserver{Call: func(_ resilience.State, r resilience.CallResult) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.n[r]++
	}})
	return c
}

func (c *breakerCalls) get(r resilience.CallResult) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[r]
}

// slowFirstDB returns a *sql.DB on pg, through a Connector whose guard is
// one breaker, and defines slow_first(seq), which sleeps 30s the first
// time it is called with seq, a sequence it makes, and returns 0 at once
// every later time: a query calling it is slow on its first attempt only.
// Query takes such a query for a plain read: it cannot see what a
// function of one's own does.
func slowFirstDB(t *testing.T, pg *testserver.Postgres) (*sql.DB, *breakerCalls) {
	t.Helper()
	b := newBreaker(t)
	counted := observeBreaker(b)
	db := guarded(t, pgConnector(t, pg.DSN), b)
	for _, q := range []string{
		`CREATE FUNCTION slow_first(seq text) RETURNS int LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval(seq::regclass) = 1 THEN PERFORM pg_sleep(30); END IF;
			RETURN 0;
		END $$`,
		`CREATE SEQUENCE rows_calls`,
		`CREATE SEQUENCE row_calls`,
		`CREATE SEQUENCE own_calls`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	return db, counted
}

// active returns how many queries other than its own the server is
// running whose text holds s.
func active(t *testing.T, db *sql.DB, s string) int {
	t.Helper()
	var n int
	err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE state = 'active' AND pid <> pg_backend_pid() AND position($1 in query) > 0`, s).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitFor waits up to 10s for cond.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := testserver.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// A read whose first attempt the server is slow to answer (30s): the
// hedge, sent after 100ms on a connection of its own, answers, and Query
// returns its rows at once; the first attempt is cancelled at the server,
// which stops running it, and the breaker of the Connector does not count
// the cancellation. The rows, a thousand, are read in full after Query
// has returned, under the hold on the winner's context and the total
// limit's; once they are closed, no connection is in use.
func TestQueryHedgesASlowRead(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db, counted := slowFirstDB(t, pg)
	hedge := newHedge(100 * time.Millisecond)
	s := must(resilience.NewGuard(resilience.GuardConfig{Name: "reads", Stages: []resilience.Stage{
		must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "total", Duration: 10 * time.Second})), hedge,
	}}))
	const query = `WITH s AS MATERIALIZED (SELECT slow_first('rows_calls')) SELECT n FROM s, generate_series(1, 1000) AS n`
	ignored := counted.get(resilience.CallIgnored)

	start := time.Now()
	rows, err := Query(t.Context(), db, s, query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Query took %v, want the hedge's answer, long before the first attempt's 30s", took)
	}
	if sent, won := stagetest.Hedges(hedge); sent != 1 || won != 1 {
		t.Errorf("%d hedges sent, %d won; want 1 and 1", sent, won)
	}
	// The first attempt is cancelled at the server: pgx sends a cancel
	// request as its context ends.
	waitFor(t, "the slow query to stop at the server", func() bool { return active(t, db, "slow_first('rows_calls')") == 0 })

	time.Sleep(50 * time.Millisecond) // the rows are read well after Query returned
	var count, sum int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		count, sum = count+1, sum+n
	}
	if err := rows.Err(); err != nil || count != 1000 || sum != 500500 {
		t.Errorf("read %d rows, summing %d, then %v; want 1000 rows summing 500500, and no error", count, sum, err)
	}
	if err := rows.Close(); err != nil {
		t.Error(err)
	}
	waitFor(t, "every connection back in the pool", func() bool { return db.Stats().InUse == 0 })
	if f, ig := counted.get(resilience.CallFailed), counted.get(resilience.CallIgnored)-ignored; f != 0 || ig != 1 {
		t.Errorf("the Connector's breaker counted %d failures, %d calls ignored; want the cancelled attempt ignored, not counted as a failure", f, ig)
	}
	if w := Wire(s).Stats().Calls; w[0].N != 1 || w[1].N != 2 {
		t.Errorf("wire of Query's guard: %+v; want 1 call, 2 attempts", w)
	}
}

// QueryRow takes the hedge's row as Query does, and Scan reads it after
// the call has returned; a row that is not there is sql.ErrNoRows, and the
// database's answer, a syntax error, comes back at once, unhedged, not
// counted as the database's failure.
func TestQueryRow(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db, counted := slowFirstDB(t, pg)
	hedge := newHedge(100 * time.Millisecond)

	start := time.Now()
	row := QueryRow(t.Context(), db, hedge, `SELECT 42 + slow_first('row_calls')`)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("QueryRow took %v, want the hedge's answer", took)
	}
	var n int
	if err := row.Scan(&n); err != nil || n != 42 {
		t.Errorf("Scan: %d, %v; want 42", n, err)
	}
	if sent, won := stagetest.Hedges(hedge); sent != 1 || won != 1 {
		t.Errorf("%d hedges sent, %d won; want 1 and 1", sent, won)
	}
	waitFor(t, "the slow query to stop at the server", func() bool { return active(t, db, "slow_first('row_calls')") == 0 })

	if err := QueryRow(t.Context(), db, hedge, `SELECT 1 WHERE false`).Scan(&n); err != sql.ErrNoRows {
		t.Errorf("a row that is not there: %v, want sql.ErrNoRows", err)
	}
	failed := counted.get(resilience.CallFailed)
	err := QueryRow(t.Context(), db, hedge, `SELEC 1`).Scan(&n)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42601" {
		t.Errorf("a syntax error: %v, want the server's 42601", err)
	}
	if f := counted.get(resilience.CallFailed); f != failed {
		t.Errorf("the syntax error was counted as the database's failure")
	}
	if sent, _ := stagetest.Hedges(hedge); sent != 1 {
		t.Errorf("%d hedges sent in all, want the first read's 1", sent)
	}
	waitFor(t, "every connection back in the pool", func() bool { return db.Stats().InUse == 0 })
}

// A query that does not look like a plain read runs once, as through
// db.QueryContext: not hedged however slow, not retried.
func TestQueryRunsWhatIsNotAPlainReadOnce(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db := guarded(t, pgConnector(t, pg.DSN), newBreaker(t))
	hedge := newHedge(20 * time.Millisecond)
	start := time.Now()
	row := QueryRow(t.Context(), db, hedge, `SELECT set_config('app.mark', 'x', false), pg_sleep(0.3)`)
	var mark string
	var slept any
	if err := row.Scan(&mark, &slept); err != nil || mark != "x" {
		t.Errorf("Scan: %q, %v", mark, err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("took %v: not the one, slow, attempt", took)
	}
	if sent, _ := stagetest.Hedges(hedge); sent != 0 {
		t.Errorf("%d hedges sent, want none", sent)
	}
}

// Query given the guard of the Connector its queries run through, which
// would run twice on every attempt, fails with an error that says so,
// and no breaker counts it as the database's failure.
func TestQueryWithTheConnectorsGuard(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	b := newBreaker(t)
	counted := observeBreaker(b)
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{newRetry(t, 2), b}}))
	c, err := NewConnector(pgConnector(t, pg.DSN), Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	_, err = Query(t.Context(), db, g, `SELECT 1`)
	if !errors.Is(err, errQueryOwnGuard) || !strings.Contains(err.Error(), "Connector") {
		t.Errorf("Query with the Connector's guard: %v, want the error that says so", err)
	}
	if f := counted.get(resilience.CallFailed); f != 0 {
		t.Errorf("the breaker counted %d failures, want none", f)
	}
	if _, err := Query(t.Context(), nil, g, `SELECT 1`); err == nil {
		t.Error("Query with a nil *sql.DB: no error")
	}
	if _, err := Query(t.Context(), db, nil, `SELECT 1`); err == nil {
		t.Error("Query with a nil stage: no error")
	}
}

// NewConnector refuses a guard with a Hedge, which could never hedge a
// call on one connection, naming the Hedge and Query.
func TestNewConnectorRefusesAHedge(t *testing.T) {
	base := stdlib.GetConnector(pgx.ConnConfig{})
	for _, stages := range [][]resilience.Stage{
		{newBreaker(t), newHedge(time.Millisecond)},
		{must(resilience.NewGuard(resilience.GuardConfig{Stages: []resilience.Stage{newHedge(time.Millisecond)}}))},
	} {
		g := must(resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: stages}))
		_, err := NewConnector(base, Config{Guard: g})
		if err == nil || !strings.Contains(err.Error(), `hedge "reads"`) || !strings.Contains(err.Error(), "resilsql.Query") {
			t.Errorf("NewConnector with a Hedge: %v, want an error naming the hedge and Query", err)
		}
	}
}

// gatedConnector is a driver whose first query waits for its gate, its
// context ignored, and then returns rows, as a driver that does not cancel
// would; every later query returns its rows at once. It counts the rows
// closed.
type gatedConnector struct {
	gate    chan struct{}
	queries atomic.Int32
	closed  atomic.Int32
}

func (c *gatedConnector) Connect(context.Context) (driver.Conn, error) { return &gatedConn{c: c}, nil }
func (c *gatedConnector) Driver() driver.Driver                        { return nil }

type gatedConn struct{ c *gatedConnector }

func (cn *gatedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	n := cn.c.queries.Add(1)
	if n == 1 {
		<-cn.c.gate
	}
	return &gatedRows{c: cn.c, v: int64(n)}, nil
}
func (cn *gatedConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (cn *gatedConn) Close() error                        { return nil }
func (cn *gatedConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

type gatedRows struct {
	c    *gatedConnector
	v    int64
	done bool
}

func (r *gatedRows) Columns() []string { return []string{"n"} }
func (r *gatedRows) Close() error {
	r.c.closed.Add(1)
	return nil
}
func (r *gatedRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done, dest[0] = true, r.v
	return nil
}

// An attempt that lost, and whose driver returns its rows anyway once the
// hedge has won, has its rows closed: its connection goes back to the
// pool, and the caller's rows are the hedge's. (The first attempt runs on
// the caller's goroutine: a driver that does not cancel keeps the caller
// waiting until it returns, hedge or not.)
func TestQueryClosesTheLosersRows(t *testing.T) {
	base := &gatedConnector{gate: make(chan struct{})}
	g := must(resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{newBreaker(t)}}))
	c, err := NewConnector(base, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
	hedge := newHedge(20 * time.Millisecond)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		// Once the hedge has won, the first attempt returns its rows, too
		// late.
		defer close(base.gate)
		waitFor(t, "the hedge to win", func() bool { _, won := stagetest.Hedges(hedge); return won == 1 })
	})
	rows, err := Query(t.Context(), db, hedge, `SELECT n`)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if !rows.Next() || rows.Scan(&n) != nil || n != 2 {
		t.Errorf("read %d (%v), want the hedge's 2", n, rows.Err())
	}
	rows.Close()
	waitFor(t, "the loser's rows to be closed", func() bool { return base.closed.Load() == 2 })
	waitFor(t, "every connection back in the pool", func() bool { return db.Stats().InUse == 0 })
	if n := db.Stats().OpenConnections; n != 2 {
		t.Errorf("%d connections open, want the two attempts', kept in the pool", n)
	}
}
