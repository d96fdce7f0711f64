package resilsql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
)

// database/sql on pgx, every call guarded by the database preset. This
// example needs a PostgreSQL server on 127.0.0.1:5432, so it has no Output
// line: go test compiles it but does not run it. The package's tests run
// the same wiring against a PostgreSQL server they start themselves.
func ExampleNewConnector() {
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		panic(err)
	}
	connector, err := resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: presets.Database()})
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(connector) // connecting, queries, execs and transactions all go through the guard
	defer db.Close()

	// An exec is never retried: it may have been applied before its
	// failure was seen. A duplicate key is the database's answer, not a
	// failure of the database.
	_, err = db.ExecContext(context.Background(), `INSERT INTO users (id, name) VALUES (42, 'ada')`)
	if errors.Is(err, resilience.ErrOpen) {
		fmt.Println("the database is down; not asking it")
	}
}

// A read the caller marks as safe to run again. The database preset has
// no retry policy, so this guard adds one. Like the example above, it
// needs a server, and so is compiled but not run.
func ExampleRetryReads() {
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err != nil {
		panic(err)
	}
	preset := presets.DatabaseConfig()
	preset.Retry = &resilience.RetryConfig{MaxRetries: 2, Jitter: true}
	guard, err := preset.Build()
	if err != nil {
		panic(err)
	}
	connector, err := resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: guard})
	if err != nil {
		panic(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	var n int
	err = db.QueryRowContext(resilsql.RetryReads(context.Background()), `SELECT count(*) FROM users`).Scan(&n)
	fmt.Println(n, err)
}
