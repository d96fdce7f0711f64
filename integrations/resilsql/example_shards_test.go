package resilsql_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/resilsql"
)

// shardConnector stands for a driver's connector to one shard, which
// fails every statement while it is down.
type shardConnector struct{ down bool }

func (c *shardConnector) Connect(context.Context) (driver.Conn, error) { return shardConn{c}, nil }
func (c *shardConnector) Driver() driver.Driver                        { return nil }

type shardConn struct{ c *shardConnector }

func (cn shardConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	if cn.c.down {
		return nil, errors.New("read tcp 127.0.0.1:5432: connection reset by peer")
	}
	return driver.RowsAffected(1), nil
}
func (shardConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (shardConn) Close() error                        { return nil }
func (shardConn) Begin() (driver.Tx, error)           { return nil, errors.New("not supported") }

// Two shards, a *sql.DB each, share one guard whose KeyedBreaker gives
// each shard's key (Config.Key) a breaker: shard "eu" is down, and once
// its breaker has opened, its calls are refused at once while shard "us"
// goes on being called.
func ExampleConfig_shards() {
	perShard, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:    "orders-db",
		Breaker: resilience.BreakerConfig{FailureThreshold: 2, OpenTimeout: time.Minute},
	})
	if err != nil {
		panic(err)
	}
	guard, err := resilience.NewGuard(resilience.GuardConfig{Name: "orders-db", Stages: []resilience.Stage{perShard}})
	if err != nil {
		panic(err)
	}
	dbs := map[string]*sql.DB{}
	for name, base := range map[string]driver.Connector{"eu": &shardConnector{down: true}, "us": &shardConnector{}} {
		connector, err := resilsql.NewConnector(base, resilsql.Config{Guard: guard, Key: name})
		if err != nil {
			panic(err)
		}
		dbs[name] = sql.OpenDB(connector)
		defer dbs[name].Close()
	}
	ctx := context.Background()
	for range 3 {
		_, errEU := dbs["eu"].ExecContext(ctx, `UPDATE orders SET state = 'paid' WHERE id = 1`)
		_, errUS := dbs["us"].ExecContext(ctx, `UPDATE orders SET state = 'paid' WHERE id = 2`)
		fmt.Println("eu open:", errors.Is(errEU, resilience.ErrOpen), "us:", errUS)
	}
	eu, _ := perShard.Lookup("eu")
	us, _ := perShard.Lookup("us")
	fmt.Println("breakers: eu", eu.State(), "us", us.State())
	// Output:
	// eu open: false us: <nil>
	// eu open: false us: <nil>
	// eu open: true us: <nil>
	// breakers: eu open us closed
}
