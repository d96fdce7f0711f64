// Run: cd integrations && go run ./examples/postgres -dsn postgres://postgres@127.0.0.1:5432/postgres
//
// database/sql on pgx, guarded by the database preset through
// resilsql.NewConnector. A duplicate key is the database's answer, not a
// failure. The preset has no retry stage, so a read marked with
// resilsql.RetryReads fails at once, saying so (ErrNoRetryStage); given a
// Retry, the same preset retries such a read, and never an insert.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
)

func main() {
	dsn := flag.String("dsn", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "the PostgreSQL server's `URL`")
	flag.Parse()

	cfg, err := pgx.ParseConfig(*dsn)
	if err != nil {
		log.Fatal(err)
	}
	guard := presets.Database()
	connector, err := resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: guard})
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	ctx := context.Background()

	db.SetMaxOpenConns(1) // the temporary table lives on one connection
	if _, err := db.ExecContext(ctx, `CREATE TEMP TABLE accounts (id int PRIMARY KEY, owner text)`); err != nil {
		log.Fatalf("create: %v", err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO accounts VALUES (1, 'ada')`); err != nil {
		log.Fatalf("insert: %v", err)
	}
	for range 12 { // more than the preset's 10 failures in a row
		_, err = db.ExecContext(ctx, `INSERT INTO accounts VALUES (1, 'ada again')`)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		log.Fatalf("duplicate insert: %v, want the server's error", err)
	}
	fmt.Printf("duplicate insert, 12 times: SQLSTATE %s; breaker %v (an answer, not a failure)\n", pgErr.Code, guard.Breaker().State())

	var owner string
	err = db.QueryRowContext(resilsql.RetryReads(ctx), `SELECT owner FROM accounts WHERE id = $1`, 1).Scan(&owner)
	fmt.Printf("read with RetryReads, preset without a retry: refused, ErrNoRetryStage %v\n", errors.Is(err, resilsql.ErrNoRetryStage))

	// The same preset with a retry stage: execs are still never retried,
	// reads made with RetryReads are, on a new connection if theirs broke.
	p := presets.DatabaseConfig()
	p.Retry = &resilience.RetryConfig{MaxRetries: 2, Jitter: true}
	retrying, err := p.Build()
	if err != nil {
		log.Fatal(err)
	}
	connector, err = resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: retrying})
	if err != nil {
		log.Fatal(err)
	}
	reads := sql.OpenDB(connector)
	defer reads.Close()
	var user string
	err = reads.QueryRowContext(resilsql.RetryReads(ctx), `SELECT current_user`).Scan(&user)
	fmt.Printf("read with RetryReads, preset with 2 retries (retried if it fails): %q, %v\n", user, err)
}
