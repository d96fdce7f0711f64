package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/stagetest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// newTimeout returns a Timeout of d whose time-outs are counted in n.
func newTimeout(t *testing.T, name string, d time.Duration, n *atomic.Int32) *resilience.Timeout {
	return stagetest.CountingTimeout(name, d, n)
}

func newBreaker(t *testing.T) *resilience.Breaker { return stagetest.Breaker("db") }

func newRetry(t *testing.T, retries int) *resilience.Retry {
	return stagetest.Retry("db", retries, time.Millisecond)
}

// guarded returns a *sql.DB on base whose calls go through a guard of
// stages.
func guarded(t *testing.T, base driver.Connector, stages ...resilience.Stage) *sql.DB {
	t.Helper()
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: stages})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(base, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

// Every time-out of the guard's Timeout stage is counted by its observer,
// and so by the timeout metrics, whichever call it cut: two queries, two
// execs and two transactions that time out count two each.
func TestEveryTimeoutCounted(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	proxy, err := faultproxy.New(pg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	var expired atomic.Int32
	db := guarded(t, pgConnector(t, "postgres://postgres@"+proxy.Addr()+"/postgres?sslmode=disable"),
		newTimeout(t, "db", 200*time.Millisecond, &expired), newBreaker(t))
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"query", func() error {
			rows, err := db.QueryContext(ctx, `SELECT pg_sleep(10)`)
			if err == nil {
				rows.Close()
			}
			return err
		}},
		{"exec", func() error {
			_, err := db.ExecContext(ctx, `SELECT pg_sleep(10)`)
			return err
		}},
		{"begin", func() error {
			// BEGIN is quick: the proxy holds the server's answer on the
			// connection the transaction begins on.
			c, err := db.Conn(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			proxy.SlowExisting(1500 * time.Millisecond)
			tx, err := c.BeginTx(ctx, nil)
			if err == nil {
				tx.Rollback()
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expired.Store(0)
			for i := range 2 {
				start := time.Now()
				err := tc.run()
				if !errors.Is(err, resilience.ErrTimeout) {
					t.Errorf("%s %d, hung past the 200ms limit: err = %v, want one matching ErrTimeout", tc.name, i+1, err)
				}
				if took := time.Since(start); took > 1200*time.Millisecond {
					t.Errorf("%s %d returned after %v, not at the 200ms limit", tc.name, i+1, took)
				}
			}
			if n := expired.Load(); n != 2 {
				t.Errorf("the Timeout's observer counted %d time-outs, want 2", n)
			}
		})
	}
}

// A time limit per attempt, inside the retry, cuts a read that hangs, and
// the read, marked with RetryReads, runs again within the total limit. The
// query sleeps only on its first run, which a sequence counts.
func TestPerAttemptTimeoutRetriesAHungRead(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	var totalExpired, attemptExpired atomic.Int32
	db := guarded(t, pgConnector(t, pg.DSN),
		newTimeout(t, "total", 5*time.Second, &totalExpired), newRetry(t, 2), newBreaker(t),
		newTimeout(t, "attempt", 200*time.Millisecond, &attemptExpired))
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE SEQUENCE runs`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var n int
	err := db.QueryRowContext(RetryReads(ctx),
		`SELECT n FROM (SELECT nextval('runs') AS n) s, LATERAL pg_sleep(CASE WHEN s.n = 1 THEN 10 ELSE 0 END)`).Scan(&n)
	took := time.Since(start)
	if err != nil || n != 2 {
		t.Fatalf("a read whose first run hangs: %d, %v; want the second run's 2", n, err)
	}
	if took < 200*time.Millisecond || took > 3*time.Second {
		t.Errorf("the read took %v: want the 200ms of the hung run and a little more, well within the 5s total", took)
	}
	if a, tot := attemptExpired.Load(), totalExpired.Load(); a != 1 || tot != 0 {
		t.Errorf("time-outs counted: %d per attempt, %d in total; want 1 and 0", a, tot)
	}
}

// A guard without a breaker, or without a retry, is accepted and guards
// every call; a nil or zero guard is refused with an error naming
// Config.Guard.
func TestAnyGuardAccepted(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	ctx := t.Context()

	// A time limit alone.
	db := guarded(t, pgConnector(t, pg.DSN), newTimeout(t, "db", 5*time.Second, nil))
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (n int)`); err != nil {
		t.Fatalf("exec with a time limit alone: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Errorf("query with a time limit alone: %d, %v", n, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("BeginTx with a time limit alone: %v", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (1)`); err != nil {
		t.Errorf("exec in a transaction: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Errorf("commit: %v", err)
	}

	// A retry alone: a read marked RetryReads is retried on a broken
	// connection.
	f := &flaky{Connector: pgConnector(t, pg.DSN)}
	db = guarded(t, f, newRetry(t, 2))
	db.SetMaxOpenConns(1)
	f.fail.Store(1)
	if err := db.QueryRowContext(RetryReads(ctx), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 || f.calls.Load() != 2 {
		t.Errorf("a read failing once, with a retry and no breaker: %d, %v after %d calls; want 1, nil after 2", n, err, f.calls.Load())
	}

	for _, g := range []struct {
		name  string
		guard *resilience.Guard
		want  string
	}{
		{"nil", nil, "Config.Guard is nil"},
		{"zero", &resilience.Guard{}, "Config.Guard is a zero resilience.Guard"},
	} {
		_, err := NewConnector(pgConnector(t, pg.DSN), Config{Guard: g.guard})
		if err == nil || !strings.Contains(err.Error(), g.want) {
			t.Errorf("NewConnector with a %s guard: %v, want an error saying %q", g.name, err, g.want)
		}
	}
}

// A call that must not run twice (an exec, a query not marked RetryReads,
// a read in a transaction) is cut by the time limit per attempt when it
// hangs, and not sent again, although the guard retries. A sequence counts
// how many times the server ran it.
func TestCallsNotRetriedAreSentOnce(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db := guarded(t, pgConnector(t, pg.DSN),
		newTimeout(t, "total", 5*time.Second, nil), newRetry(t, 3), newBreaker(t),
		newTimeout(t, "attempt", 200*time.Millisecond, nil))
	ctx := t.Context()
	if _, err := db.ExecContext(ctx, `CREATE SEQUENCE sends`); err != nil {
		t.Fatal(err)
	}
	const hang = `SELECT nextval('sends'), pg_sleep(10)`
	sends := func() int64 {
		t.Helper()
		var n int64
		var called bool
		if err := db.QueryRowContext(ctx, `SELECT last_value, is_called FROM sends`).Scan(&n, &called); err != nil {
			t.Fatal(err)
		}
		if !called {
			return 0
		}
		return n
	}
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"exec", func() error { _, err := db.ExecContext(ctx, hang); return err }},
		{"query", func() error {
			rows, err := db.QueryContext(ctx, hang)
			if err == nil {
				rows.Close()
			}
			return err
		}},
		{"read marked RetryReads in a transaction", func() error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			rows, err := tx.QueryContext(RetryReads(ctx), hang)
			if err == nil {
				rows.Close()
			}
			return err
		}},
	} {
		before := sends()
		start := time.Now()
		err := tc.run()
		took := time.Since(start)
		if !errors.Is(err, resilience.ErrTimeout) {
			t.Errorf("%s: err = %v, want one matching ErrTimeout", tc.name, err)
		}
		if took > 3*time.Second {
			t.Errorf("%s returned after %v: not cut by the 200ms limit per attempt", tc.name, took)
		}
		if n := sends() - before; n != 1 {
			t.Errorf("%s: the server ran it %d times, want once", tc.name, n)
		}
	}
}

// A bulkhead in the guard bounds how many calls run at once: while one
// exec holds its only slot, a query and an exec on another connection are
// rejected with an error matching ErrRejected and ErrBulkheadFull.
func TestBulkheadBoundsCalls(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "db", MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	db := guarded(t, pgConnector(t, pg.DSN), newTimeout(t, "db", 10*time.Second, nil), bulkhead, newBreaker(t))
	ctx := t.Context()
	c1, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()

	slow, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { c1.ExecContext(slow, `SELECT pg_sleep(10)`) })
	deadline := time.Now().Add(5 * time.Second)
	for bulkhead.InUse() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var n int
	err = c2.QueryRowContext(ctx, `SELECT 1`).Scan(&n)
	if !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Errorf("a query while the bulkhead is full: %v, want an error matching ErrRejected and ErrBulkheadFull", err)
	}
	_, err = c2.ExecContext(ctx, `SELECT 1`)
	if !errors.Is(err, resilience.ErrRejected) || !errors.Is(err, resilience.ErrBulkheadFull) {
		t.Errorf("an exec while the bulkhead is full: %v, want an error matching ErrRejected and ErrBulkheadFull", err)
	}
	cancel()
	wg.Wait()
	if n := bulkhead.InUse(); n != 0 {
		t.Errorf("%d slots in use once the exec ended", n)
	}
	if err := c2.QueryRowContext(ctx, `SELECT 1`).Scan(&n); err != nil || n != 1 {
		t.Errorf("a query once the slot is free: %d, %v", n, err)
	}
}
