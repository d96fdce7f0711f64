package resilsql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
)

// shard is a fake database: its connections open, and answer every exec
// at once, or, while down is set, fail it as a dead server does. It
// counts the connections opened and the execs that reach them.
type shard struct {
	down           atomic.Bool
	connects, runs atomic.Int32
}

func (s *shard) Connect(context.Context) (driver.Conn, error) {
	s.connects.Add(1)
	return shardConn{s}, nil
}

func (s *shard) Driver() driver.Driver { return nil }

type shardConn struct{ s *shard }

func (c shardConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	c.s.runs.Add(1)
	if c.s.down.Load() {
		return nil, errors.New("read tcp 127.0.0.1: connection reset by peer")
	}
	return driver.RowsAffected(1), nil
}

func (shardConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("shard: not supported") }
func (shardConn) Close() error                        { return nil }
func (shardConn) Begin() (driver.Tx, error)           { return nil, errors.New("shard: not supported") }

// counts returns what kb counted for each key: success, failure,
// ignored, rejected.
func counts(kb *resilience.KeyedBreaker) map[string][4]uint64 {
	out := map[string][4]uint64{}
	for _, k := range kb.Keys() {
		var c [4]uint64
		for i, r := range []string{"success", "failure", "ignored", "rejected"} {
			for _, n := range k.Calls {
				if n.Result == r {
					c[i] = n.N
				}
			}
		}
		out[k.Key] = c
	}
	return out
}

// Two shards, a *sql.DB each, opened through Connectors with their own
// Config.Key and one guard with a KeyedBreaker: the calls of each DB go
// through its shard's breaker. Shard a fails every exec: after 3 failures
// its breaker opens, and its next 3 execs are rejected without reaching
// it; shard b answers its 6 execs, with 0 failures and 0 rejections. Each
// DB's one connection was opened through its key too (a success).
func TestConfigKeyOpensOnlyTheFailingShard(t *testing.T) {
	kb, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:    "db",
		Breaker: resilience.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{kb}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(s *shard, key string) *sql.DB {
		c, err := NewConnector(s, Config{Guard: g, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		if c.Key() != key {
			t.Errorf("Key() = %q, want %q", c.Key(), key)
		}
		db := sql.OpenDB(c)
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := &shard{}, &shard{}
	a.down.Store(true)
	dbA, dbB := open(a, "shard-a"), open(b, "shard-b")

	// The caller's key, some other dependency's, does not count here.
	ctx := resilience.WithKey(t.Context(), "users-api")
	for i := range 6 {
		_, err := dbA.ExecContext(ctx, `UPDATE t SET v = 1`)
		switch {
		case i < 3 && (err == nil || errors.Is(err, resilience.ErrRejected)):
			t.Errorf("exec %d on the failing shard: %v, want its driver's error", i+1, err)
		case i >= 3 && !errors.Is(err, resilience.ErrOpen):
			t.Errorf("exec %d on the failing shard, its breaker open: %v, want a rejection matching ErrOpen", i+1, err)
		}
		if _, err := dbB.ExecContext(ctx, `UPDATE t SET v = 1`); err != nil {
			t.Errorf("exec %d on the healthy shard: %v", i+1, err)
		}
	}
	if ra, rb, ca, cb := a.runs.Load(), b.runs.Load(), a.connects.Load(), b.connects.Load(); ra != 3 || rb != 6 || ca != 1 || cb != 1 {
		t.Errorf("execs reaching the shards: a %d, b %d; connections: a %d, b %d; want 3, 6, 1, 1", ra, rb, ca, cb)
	}
	// success, failure, ignored, rejected
	want := map[string][4]uint64{
		"shard-a": {1, 3, 0, 3},
		"shard-b": {7, 0, 0, 0},
	}
	if got := counts(kb); !reflect.DeepEqual(got, want) {
		t.Errorf("the keys' counts (success, failure, ignored, rejected):\n got %v\nwant %v", got, want)
	}
	for key, state := range map[string]resilience.State{"shard-a": resilience.Open, "shard-b": resilience.Closed} {
		if br, ok := kb.Lookup(key); !ok || br.State() != state {
			t.Errorf("the breaker of %s: found %v, want it %v", key, ok, state)
		}
	}
}

// Without Config.Key, a call carries the key the caller put in its
// context: the same failing shard, reached through a Connector without a
// key, opens the breaker of the caller's key alone.
func TestCallerKeyWithoutConfigKey(t *testing.T) {
	kb, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:    "db",
		Breaker: resilience.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{kb}})
	if err != nil {
		t.Fatal(err)
	}
	s := &shard{}
	s.down.Store(true)
	c, err := NewConnector(s, Config{Guard: g})
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	defer db.Close()
	ctx := resilience.WithKey(t.Context(), "shard-a")
	for range 4 {
		db.ExecContext(ctx, `UPDATE t SET v = 1`)
	}
	// The one connection opened with the first call's context, and key.
	want := map[string][4]uint64{"shard-a": {1, 3, 0, 1}}
	if got := counts(kb); !reflect.DeepEqual(got, want) {
		t.Errorf("the keys' counts (success, failure, ignored, rejected):\n got %v\nwant %v", got, want)
	}
	if n := s.runs.Load(); n != 3 {
		t.Errorf("%d execs reached the shard, want 3", n)
	}
}

// A guard without a KeyedBreaker does not use Config.Key: the calls keep
// the caller's key, and the connector reports none.
func TestConfigKeyUnusedWithoutAKeyedBreaker(t *testing.T) {
	var seen []string
	probe := keyProbe(func(ctx context.Context) {
		k, _ := resilience.KeyFrom(ctx)
		seen = append(seen, k)
	})
	g, err := resilience.NewGuard(resilience.GuardConfig{Name: "db", Stages: []resilience.Stage{probe}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConnector(&shard{}, Config{Guard: g, Key: "shard-a"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Key() != "" {
		t.Errorf("Key() = %q, want \"\" for a guard without a KeyedBreaker", c.Key())
	}
	db := sql.OpenDB(c)
	defer db.Close()
	if _, err := db.ExecContext(resilience.WithKey(t.Context(), "caller"), `UPDATE t SET v = 1`); err != nil {
		t.Fatal(err)
	}
	if want := []string{"caller", "caller"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("the keys the guard saw (the connect, the exec): %q, want %q", seen, want)
	}
}

// keyProbe is a stage that tells f the context of each call.
type keyProbe func(context.Context)

func (keyProbe) Name() string { return "probe" }
func (keyProbe) Kind() string { return "probe" }
func (p keyProbe) Run(ctx context.Context, call func(context.Context) error) error {
	p(ctx)
	return call(ctx)
}
