package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pgConnector is pgx's database/sql connector for dsn, with opts.
func pgConnector(t *testing.T, dsn string, opts ...stdlib.OptionOpenDB) driver.Connector {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	return stdlib.GetConnector(*cfg, opts...)
}

// open returns a *sql.DB on base guarded by the database preset, its
// times scaled down and changed by tune.
func open(t *testing.T, base driver.Connector, tune func(*resilience.Preset)) (*sql.DB, *resilience.Guard) {
	t.Helper()
	p := presets.DatabaseConfig()
	p.Breaker.OpenTimeout = time.Second
	if tune != nil {
		tune(&p)
	}
	g, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(base, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db, g
}

func TestNewConnectorConfig(t *testing.T) {
	g, _ := presets.DatabaseConfig().Build()
	if _, err := NewConnector(nil, Config{Guard: g}); err == nil || !strings.Contains(err.Error(), "base connector") {
		t.Errorf("NewConnector(nil): err = %v, want one naming the base connector", err)
	}
	if _, err := NewConnector(stdlib.GetConnector(pgx.ConnConfig{}), Config{}); err == nil || !strings.Contains(err.Error(), "Guard") {
		t.Errorf("NewConnector without a guard: err = %v, want one naming Guard", err)
	}
	p := presets.DatabaseConfig()
	p.Timeout.Abandon = true
	abandoning, _ := p.Build()
	if _, err := NewConnector(stdlib.GetConnector(pgx.ConnConfig{}), Config{Guard: abandoning}); err == nil || !strings.Contains(err.Error(), "Abandon") {
		t.Errorf("NewConnector with a guard that abandons calls: err = %v, want one naming Abandon", err)
	}
}

type sqlState string

func (s sqlState) Error() string    { return "sqlstate " + string(s) }
func (s sqlState) SQLState() string { return string(s) }

func TestIsFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{sqlState("23505"), false}, // unique_violation
		{sqlState("42601"), false}, // syntax_error
		{sqlState("40001"), false}, // serialization_failure
		{sqlState("08006"), true},  // connection_failure
		{sqlState("53300"), true},  // too_many_connections
		{sqlState("57P01"), true},  // admin_shutdown
		{sqlState("XX000"), true},  // internal_error
		{errors.New("read tcp: connection reset by peer"), true},
		{driver.ErrBadConn, true},
	} {
		if got := IsFailure(tc.err); got != tc.want {
			t.Errorf("IsFailure(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// Everything database/sql does works through the wrapper against a real
// PostgreSQL: execs, queries read after they return, column types,
// transactions, prepared statements.
func TestAgainstPostgreSQL(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db, g := open(t, pgConnector(t, pg.DSN), nil)
	ctx := t.Context()

	if _, err := db.ExecContext(ctx, `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO items VALUES ($1, $2), ($3, $4)`, 1, "one", 2, "two"); err != nil {
		t.Fatal(err)
	}

	rows, err := db.QueryContext(ctx, `SELECT id, name FROM items ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	types, err := rows.ColumnTypes()
	if err != nil || types[0].DatabaseTypeName() != "INT4" || types[1].DatabaseTypeName() != "TEXT" {
		t.Errorf("column types: %v, %v", types, err)
	}
	var names []string
	for rows.Next() {
		var id int
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil || strings.Join(names, ",") != "one,two" {
		t.Errorf("rows: %q, %v", names, err)
	}
	rows.Close()

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO items VALUES (3, 'three')`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM items`).Scan(&n); err != nil || n != 3 {
		t.Errorf("count inside the transaction: %d, %v", n, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}

	stmt, err := db.PrepareContext(ctx, `SELECT name FROM items WHERE id = $1`)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := stmt.QueryRowContext(ctx, 3).Scan(&name); err != nil || name != "three" {
		t.Errorf("prepared query: %q, %v", name, err)
	}
	stmt.Close()

	// The driver's own API, through Raw and Unwrap: pgx's COPY.
	dbConn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = dbConn.Raw(func(dc any) error {
		pc, ok := Unwrap(dc).(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("Unwrap gave a %T, want *stdlib.Conn", Unwrap(dc))
		}
		_, err := pc.Conn().CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"},
			pgx.CopyFromRows([][]any{{10, "ten"}, {11, "eleven"}}))
		return err
	})
	dbConn.Close()
	if err != nil {
		t.Fatalf("COPY through the unwrapped connection: %v", err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE id >= 10`).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows copied: %d, %v; want 2", n, err)
	}

	// Answers are not failures: a duplicate key, a syntax error and no rows,
	// many more times than the breaker's threshold of 10.
	for range 15 {
		_, err := db.ExecContext(ctx, `INSERT INTO items VALUES (1, 'again')`)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
			t.Fatalf("duplicate insert: err = %v, want the server's 23505", err)
		}
		if _, err := db.QueryContext(ctx, `SELEC 1`); err == nil {
			t.Fatal("a syntax error was accepted")
		}
		if err := db.QueryRowContext(ctx, `SELECT name FROM items WHERE id = 99`).Scan(&name); err != sql.ErrNoRows {
			t.Fatalf("no rows: err = %v", err)
		}
	}
	if s := g.Breaker().State(); s != resilience.Closed {
		t.Errorf("breaker %v after answers, want closed", s)
	}

	g.Breaker().ForceOpen()
	if err := db.PingContext(ctx); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("ping with the breaker open: %v, want ErrOpen", err)
	}
	if _, err := db.ExecContext(ctx, `SELECT 1`); !errors.Is(err, resilience.ErrOpen) {
		t.Errorf("exec with the breaker open: %v, want ErrOpen", err)
	}
}

// The time limit cuts a slow query, and the server cancels it.
func TestTimeLimit(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db, _ := open(t, pgConnector(t, pg.DSN), func(p *resilience.Preset) { p.Timeout.Duration = 200 * time.Millisecond })
	ctx := t.Context()
	for _, call := range []struct {
		name string
		run  func() error
	}{
		{"query", func() error {
			rows, err := db.QueryContext(ctx, `SELECT pg_sleep(5)`)
			if err == nil {
				for rows.Next() {
				}
				err = rows.Err()
				rows.Close()
			}
			return err
		}},
		{"exec", func() error { _, err := db.ExecContext(ctx, `SELECT pg_sleep(5)`); return err }},
	} {
		start := time.Now()
		err := call.run()
		took := time.Since(start)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s of pg_sleep(5) under a 200ms limit: err = %v, want a deadline error", call.name, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s of pg_sleep(5) under a 200ms limit took %v", call.name, took)
		}
	}
	// Still usable afterwards.
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1 after the time-outs: %d, %v", one, err)
	}
}

// flaky wraps a real connector: its connections fail the next calls with
// a broken connection, as a network fault would, and count what they run.
type flaky struct {
	driver.Connector
	fail  atomic.Int32 // calls left to fail
	calls atomic.Int32 // queries and execs that reached the connection
	mu    sync.Mutex
	on    []*flakyConn // the connection of each call
}

func (f *flaky) Connect(ctx context.Context) (driver.Conn, error) {
	c, err := f.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &flakyConn{Conn: c, f: f}, nil
}

type flakyConn struct {
	driver.Conn
	f      *flaky
	broken bool
}

var errReset = errors.New("read tcp 127.0.0.1: connection reset by peer")

func (c *flakyConn) hit() error {
	c.f.calls.Add(1)
	c.f.mu.Lock()
	c.f.on = append(c.f.on, c)
	c.f.mu.Unlock()
	if c.broken {
		return driver.ErrBadConn
	}
	if c.f.fail.Add(-1) >= 0 {
		c.broken = true
		return errReset
	}
	return nil
}

func (c *flakyConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.hit(); err != nil {
		return nil, err
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *flakyConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.hit(); err != nil {
		return nil, err
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *flakyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *flakyConn) IsValid() bool { return !c.broken }

func (c *flakyConn) ResetSession(ctx context.Context) error {
	if c.broken {
		return driver.ErrBadConn
	}
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

// Execs and statements in a transaction are never retried; queries are,
// on a new connection, only when the caller asks with RetryReads and the
// connection holds no session state.
func TestWhatIsRetried(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	f := &flaky{Connector: pgConnector(t, pg.DSN)}
	db, _ := open(t, f, func(p *resilience.Preset) {
		p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond}
	})
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE TABLE log (n int)`); err != nil {
		t.Fatal(err)
	}

	try := func(name string, wantCalls int32, wantErr bool, run func() error) {
		t.Helper()
		f.fail.Store(1)
		f.calls.Store(0)
		err := run()
		if got := f.calls.Load(); got != wantCalls {
			t.Errorf("%s: %d calls reached the connection, want %d", name, got, wantCalls)
		}
		if (err != nil) != wantErr {
			t.Errorf("%s: err = %v, want an error: %v", name, err, wantErr)
		}
		f.fail.Store(0)
	}
	try("exec", 1, true, func() error {
		_, err := db.ExecContext(ctx, `INSERT INTO log VALUES (1)`)
		return err
	})
	try("query", 1, true, func() error { return db.QueryRowContext(ctx, `SELECT 1`).Err() })
	f.on = nil
	try("query with RetryReads", 2, false, func() error {
		var one int
		return db.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one)
	})
	if len(f.on) != 2 || f.on[0] == f.on[1] {
		t.Errorf("the retried read did not run on a new connection")
	}
	refused := func(err error) error {
		if err != nil && !errors.Is(err, ErrReadNotRetried) {
			t.Errorf("err = %v, want one matching ErrReadNotRetried", err)
		}
		return err
	}
	try("query with RetryReads in a transaction", 1, true, func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return nil // not what is measured: fail the count instead
		}
		defer tx.Rollback()
		return refused(tx.QueryRowContext(RetryReads(ctx), `SELECT 1`).Err())
	})
	try("query with RetryReads on a *sql.Conn, after an exec", 2, true, func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return nil
		}
		defer c.Close()
		f.fail.Store(0)
		if _, err := c.ExecContext(ctx, `SET application_name = 'x'`); err != nil {
			return nil
		}
		f.fail.Store(1)
		var one int // Scan, not Err, closes the rows, or Close would wait for them
		return refused(c.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one))
	})
	try("query with RetryReads on a *sql.Conn, after reads only", 3, false, func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return nil
		}
		defer c.Close()
		f.fail.Store(0)
		var one int
		if err := c.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one); err != nil {
			return nil
		}
		f.fail.Store(1)
		return c.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one)
	})
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM log`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows in log: %d, %v; the failed insert was never sent, so 0", n, err)
	}
}

// counting counts the connections a connector tries to open.
type counting struct {
	driver.Connector
	n atomic.Int32
}

func (c *counting) Connect(ctx context.Context) (driver.Conn, error) {
	c.n.Add(1)
	return c.Connector.Connect(ctx)
}

// Connecting goes through the guard: retried, since a connection that
// failed to open did nothing, and counted, so that a database that refuses
// connections opens the breaker.
func TestConnectingIsGuarded(t *testing.T) {
	port := testserver.FreePort(t) // nothing listens there
	base := &counting{Connector: pgConnector(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))}
	db, g := open(t, base, func(p *resilience.Preset) {
		p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond}
		p.Breaker.FailureThreshold = 6
	})
	ctx := t.Context()
	if err := db.PingContext(ctx); err == nil || errors.Is(err, resilience.ErrOpen) {
		t.Fatalf("ping with no server: %v, want the connection error", err)
	}
	if n := base.n.Load(); n != 3 {
		t.Errorf("%d connection attempts for one ping, want 3 (1 + 2 retries)", n)
	}
	db.PingContext(ctx) // three more failures: the breaker's threshold of 6
	if s := g.Breaker().State(); s != resilience.Open {
		t.Fatalf("breaker %v after 6 failed connections, want open", s)
	}
	base.n.Store(0)
	if err := db.PingContext(ctx); !errors.Is(err, resilience.ErrOpen) || base.n.Load() != 0 {
		t.Errorf("ping with the breaker open: %v after %d attempts, want ErrOpen after none", err, base.n.Load())
	}
}

// A guard whose retry never retries refuses nothing: a read it would not
// have retried anyway comes back with the driver's error alone.
func TestNoRetriesRefusesNothing(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	f := &flaky{Connector: pgConnector(t, pg.DSN)}
	db, _ := open(t, f, func(p *resilience.Preset) {
		p.Retry = &resilience.RetryConfig{MaxRetries: 0}
	})
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	c, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `SET application_name = 'x'`); err != nil {
		t.Fatal(err)
	}
	f.fail.Store(1)
	var one int
	err = c.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one)
	f.fail.Store(0)
	if err == nil || errors.Is(err, ErrReadNotRetried) {
		t.Errorf("err = %v, want the driver's error, not ErrReadNotRetried: a retry of 0 retries would never have retried it", err)
	}
}

// A read made with RetryReads through a guard without a retry stage, such
// as the database preset's, would never be retried: it fails at once,
// saying so and how to add one, without reaching the server. With a retry
// stage, the same read is retried after its connection is cut.
func TestRetryReadsNeedsARetryStage(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	f := &flaky{Connector: pgConnector(t, pg.DSN)}
	db, _ := open(t, f, nil) // the database preset: no retry stage
	ctx := t.Context()
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		t.Fatalf("a read without RetryReads: %v", err)
	}
	f.calls.Store(0)
	err := db.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one)
	if !errors.Is(err, ErrNoRetryStage) || !strings.Contains(err.Error(), "p.Retry = &resilience.RetryConfig") {
		t.Errorf("a read with RetryReads through the database preset: err = %v, want ErrNoRetryStage, saying how to add a retry", err)
	}
	if n := f.calls.Load(); n != 0 {
		t.Errorf("%d calls reached the connection, want none", n)
	}
	// A prepared statement's read, too.
	st, err := db.PrepareContext(ctx, `SELECT 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.QueryRowContext(RetryReads(ctx)).Scan(&one); !errors.Is(err, ErrNoRetryStage) {
		t.Errorf("a prepared read with RetryReads through the database preset: err = %v, want ErrNoRetryStage", err)
	}

	p := presets.DatabaseConfig()
	p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond, Jitter: true}
	g, err := p.Build()
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(f, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db = sql.OpenDB(c)
	defer db.Close()
	f.fail.Store(1)
	f.calls.Store(0)
	err = db.QueryRowContext(RetryReads(ctx), `SELECT 1`).Scan(&one)
	if err != nil || f.calls.Load() != 2 {
		t.Errorf("a read with RetryReads through the preset with a retry, its first attempt failing: err = %v after %d calls, want nil after 2", err, f.calls.Load())
	}
}
