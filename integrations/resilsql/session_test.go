package resilsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// querier is what *sql.DB, *sql.Conn and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// A read marked RetryReads runs again on a new server session only where
// that session has nothing to lose. Each case puts one kind of session
// state on a connection, cuts the connection, and reads through it with
// RetryReads. Where the session held state, the read must fail with
// ErrReadNotRetried (or, were it ever retried, return what the original
// session would have returned), and what the caller does next must not
// succeed on a session that lost the state. A read through *sql.DB must
// still be retried, on a new connection, and return the right value.
func TestRetriedReadsKeepTheirSession(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	proxy, err := faultproxy.New(pg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct, _ := open(t, pgConnector(t, pg.DSN), nil)
	for _, q := range []string{
		`CREATE TABLE x (v text)`,
		`INSERT INTO x VALUES ('public')`,
		`CREATE SCHEMA s2`,
		`CREATE TABLE s2.x (v text)`,
		`INSERT INTO s2.x VALUES ('s2')`,
		`CREATE TABLE ledger (id int)`,
		`CREATE ROLE reader`,
	} {
		if _, err := direct.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	rowsOf := func(ctx context.Context, id int) int {
		t.Helper()
		var n int
		if err := direct.QueryRowContext(ctx, `SELECT count(*) FROM ledger WHERE id = $1`, id).Scan(&n); err != nil {
			t.Fatalf("counting rows: %v", err)
		}
		return n
	}
	// held reports whether the session behind q still holds advisory
	// lock key: an error (the session is gone, and the caller is told)
	// counts as intact.
	held := func(ctx context.Context, q querier, key int) error {
		var unlocked bool
		if err := q.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&unlocked); err == nil && !unlocked {
			return fmt.Errorf("the session no longer holds advisory lock %d, and no call failed", key)
		}
		return nil
	}
	conn := func(ctx context.Context, t *testing.T, db *sql.DB) *sql.Conn {
		t.Helper()
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	exec := func(ctx context.Context, q querier, stmts ...string) error {
		for _, s := range stmts {
			if _, err := q.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}

	for _, tc := range []struct {
		name string
		// state puts session state on a connection of db, and returns what
		// the read goes through.
		state func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error)
		read  string // made with RetryReads, after the cut
		want  string // what it returns on the session that holds the state
		// then is what the caller does next; it returns an error if that
		// succeeded where the state was lost.
		then func(ctx context.Context, q querier) error
		// retried: the read must succeed, on a new connection.
		retried bool
		// simple: pgx sends queries with the simple protocol, which takes
		// several statements in one query.
		simple bool
	}{{
		name: "BEGIN by Exec",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			return c, exec(ctx, c, `BEGIN`, `INSERT INTO ledger VALUES (1)`)
		},
		read: `SELECT count(*) FROM ledger WHERE id = 1`,
		want: "1",
		then: func(ctx context.Context, q querier) error {
			if _, err := q.ExecContext(ctx, `COMMIT`); err == nil && rowsOf(ctx, 1) != 1 {
				return errors.New("COMMIT returned nil, and the row inserted in the transaction is not in the table")
			}
			return nil
		},
	}, {
		name: "transaction by BeginTx",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			tx, err := conn(ctx, t, db).BeginTx(ctx, nil)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { tx.Rollback() })
			return tx, exec(ctx, tx, `INSERT INTO ledger VALUES (2)`)
		},
		read: `SELECT count(*) FROM ledger WHERE id = 2`,
		want: "1",
		then: func(ctx context.Context, q querier) error {
			if err := q.(*sql.Tx).Commit(); err == nil && rowsOf(ctx, 2) != 1 {
				return errors.New("Commit returned nil, and the row inserted in the transaction is not in the table")
			}
			return nil
		},
	}, {
		name: "SET search_path",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			return c, exec(ctx, c, `SET search_path = s2`)
		},
		read: `SELECT v FROM x`,
		want: "s2",
	}, {
		name: "search_path by set_config, in a query marked RetryReads",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			var path string
			return c, c.QueryRowContext(RetryReads(ctx), `SELECT set_config('search_path', 's2', false)`).Scan(&path)
		},
		read: `SELECT v FROM x`,
		want: "s2",
	}, {
		name: "SET search_path after a SELECT, in one query marked RetryReads",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			var one int
			return c, c.QueryRowContext(RetryReads(ctx), `SELECT 1; SET search_path = s2`).Scan(&one)
		},
		read:   `SELECT v FROM x`,
		want:   "s2",
		simple: true,
	}, {
		name: "SET ROLE",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			return c, exec(ctx, c, `SET ROLE reader`)
		},
		read: `SELECT current_user`,
		want: "reader",
	}, {
		name: "temporary table",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			// It hides the permanent table of the same name.
			return c, exec(ctx, c, `CREATE TEMP TABLE x (v text)`, `INSERT INTO x VALUES ('temp')`)
		},
		read: `SELECT v FROM x`,
		want: "temp",
	}, {
		name: "PREPARE",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			return c, exec(ctx, c, `PREPARE q AS SELECT v FROM s2.x`)
		},
		read: `EXECUTE q`,
		want: "s2",
	}, {
		name: "advisory lock, taken by a query",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			var one int
			return c, c.QueryRowContext(ctx, `SELECT 1 FROM pg_advisory_lock(42)`).Scan(&one)
		},
		read: `SELECT v FROM x`,
		want: "public",
		then: func(ctx context.Context, q querier) error { return held(ctx, q, 42) },
	}, {
		name: "advisory lock, taken by a query marked RetryReads",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			var one int
			return c, c.QueryRowContext(RetryReads(ctx), `SELECT 1 FROM pg_advisory_lock(43)`).Scan(&one)
		},
		read: `SELECT v FROM x`,
		want: "public",
		then: func(ctx context.Context, q querier) error { return held(ctx, q, 43) },
	}, {
		name: "*sql.Conn on which only reads made with RetryReads have run",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			c := conn(ctx, t, db)
			var v string
			return c, c.QueryRowContext(RetryReads(ctx), `SELECT v FROM x`).Scan(&v)
		},
		read:    `SELECT v FROM x`,
		want:    "public",
		retried: true,
	}, {
		name: "*sql.DB, after an exec on the same connection",
		state: func(ctx context.Context, t *testing.T, db *sql.DB) (querier, error) {
			db.SetMaxOpenConns(1)
			// The pool resets the connection before handing it out again.
			return db, exec(ctx, db, `INSERT INTO ledger VALUES (3)`)
		},
		read:    `SELECT v FROM x`,
		want:    "public",
		retried: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			// No ping when the pool hands out a connection, so that the cut
			// is found by the read itself.
			dsn := "postgres://postgres@" + proxy.Addr() + "/postgres?sslmode=disable"
			if tc.simple {
				dsn += "&default_query_exec_mode=simple_protocol"
			}
			base := &counting{Connector: pgConnector(t, dsn,
				stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }))}
			db, _ := open(t, base, func(p *resilience.Preset) {
				p.Timeout.Duration = 5 * time.Second
				p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: time.Millisecond}
			})
			q, err := tc.state(ctx, t, db)
			if err != nil {
				t.Fatalf("setting up the session: %v", err)
			}
			proxy.CutAll()
			opened := base.n.Load()
			var got string
			err = q.QueryRowContext(RetryReads(ctx), tc.read).Scan(&got)
			switch {
			case tc.retried:
				if err != nil || got != tc.want {
					t.Errorf("read after the cut: %q, %v; want %q, retried", got, err, tc.want)
				}
				if n := base.n.Load() - opened; n != 1 {
					t.Errorf("%d connections opened by the read, want 1: the cut did not reach the read", n)
				}
			case errors.Is(err, ErrReadNotRetried):
				t.Logf("read refused: %v", err)
			case err == nil && got == tc.want:
			default:
				t.Errorf("read after the cut: %q, %v; want %q or an error matching ErrReadNotRetried", got, err, tc.want)
			}
			if tc.then != nil {
				if err := tc.then(ctx, q); err != nil {
					t.Error(err)
				}
			}
			// The caller goes on: nothing may read from another session.
			if err := q.QueryRowContext(ctx, tc.read).Scan(&got); err == nil && got != tc.want {
				t.Errorf("the next read returned %q, want %q or an error", got, tc.want)
			}
		})
	}
}

// What counts as a plain read, which leaves the session clean: the
// classifier errs toward "not a plain read".
func TestPlainRead(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  bool
	}{
		{`SELECT v FROM x WHERE id = $1`, true},
		{`select 1`, true},
		{"-- name: GetUser :one\nSELECT name FROM users WHERE id = $1", true},
		{`(SELECT 1) UNION (SELECT 2)`, true},
		{`WITH t AS (SELECT 1) SELECT * FROM t`, true},
		{`VALUES (1), (2)`, true},
		{`TABLE x`, true},
		{`SHOW search_path`, true},
		{`SELECT current_setting('search_path')`, true},
		{``, false},
		{`-- only a comment`, false},
		{`SET search_path = s2`, false},
		{`BEGIN`, false},
		{`PREPARE q AS SELECT 1`, false},
		{`EXECUTE q`, false},
		{`LISTEN channel`, false},
		{`DECLARE c CURSOR FOR SELECT 1`, false},
		{`EXPLAIN ANALYZE DELETE FROM x`, false},
		{`/* SELECT */ SET role reader`, false},
		{`SELECT set_config('search_path', 's2', false)`, false},
		{`SELECT pg_catalog.SET_CONFIG('role', 'reader', false)`, false},
		{`SELECT pg_advisory_lock(1)`, false},
		{`SELECT 1 FROM pg_try_advisory_lock_shared(1)`, false},
		{`SELECT pg_advisory_unlock_all()`, false},
		{`SELECT nextval('seq')`, false},
		{`SELECT 1; SET search_path = s2`, false},
		{`SELECT 1; BEGIN`, false},
		{`SELECT 1;SET ROLE r`, false},
		{`SELECT 1; PREPARE q AS SELECT 1`, false},
		{`SELECT 1; LISTEN c`, false},
		{`SELECT 1; DISCARD ALL`, false},
		{"SELECT 1; -- a trailing comment\n", true},
		{`SELECT 1;`, true},
		{`SELECT setseed(0.5)`, false},
		{`SELECT LAST_INSERT_ID(42)`, false},
		{`SELECT * INTO TEMP t FROM x`, false},
		{`SELECT * FROM dblink_connect('c', 'dbname=x')`, false},
		{`SELECT GET_LOCK('name', 10)`, false},
		{`SELECT @n := @n + 1`, false},
		{`SELECT temp FROM readings`, false}, // a column named temp: a retry lost, nothing else

		// Comment openers inside quotes hide nothing that follows.
		{`SELECT 'x--'; SET search_path = s2`, false},
		{`SELECT '/*', pg_advisory_lock(1), '*/'`, false},
		{`SELECT "a--b", nextval('s') FROM t`, false},
		{"SELECT `a/*b`, GET_LOCK('a', 1), `*/`", false},
		{`SELECT [a--b], sp_getapplock('r', 'Shared') FROM t`, false},
		{`SELECT $$--$$, set_config('role', 'r', false)`, false},
		{`SELECT $q$/*$q$, setseed(0.5), $q$*/$q$`, false},
		{`SELECT 'a' -- a comment after a string is scanned as words`, true},
		{`SELECT 'a'; -- once a quote is seen, nothing may follow a semicolon`, false}, // a retry lost
		// Comments as MySQL reads them: /*! and /*M! run their text, -- needs a
		// space after it, and block comments do not nest.
		{`SELECT 1 /*! , GET_LOCK('a', 1) */`, false},
		{`SELECT 1; /*!50000 SET @a = 1 */`, false},
		{`SELECT 1 /*M! , GET_LOCK('a', 1) */`, false},
		{`SELECT 1--1, GET_LOCK('a', 1)`, false},
		{`SELECT 1 /* /* */, GET_LOCK('a', 1) /* */`, false},
		{`/* outer /* nested */ SET */ SELECT 1`, false}, // a retry lost in PostgreSQL
		// A carriage return ends a PostgreSQL line comment.
		{"SELECT 1 -- x\r; SET search_path = s2", false},
		// After a semicolon, only spaces and comments.
		{`SELECT 1; (`, false},
		{"SELECT 1;\t;\n/* done */", true},
	} {
		if got := plainRead(tc.query); got != tc.want {
			t.Errorf("plainRead(%q) = %v, want %v", tc.query, got, tc.want)
		}
	}
}
