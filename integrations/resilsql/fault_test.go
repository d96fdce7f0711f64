package resilsql

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/faultproxy"
	"github.com/resilience-go/resilience/integrations/internal/faulttest"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
)

// PostgreSQL stops in the middle of a load of 8 goroutines, and comes back.
func TestFaultPostgresStops(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	db, g := open(t, pgConnector(t, pg.DSN), nil)
	db.SetMaxOpenConns(8)
	rep := faulttest.Run(t, faulttest.Outage{
		Breaker:   g.Breaker(),
		Threshold: presets.DatabaseConfig().Breaker.FailureThreshold,
		Call: func(ctx context.Context) error {
			var one int
			return db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
		},
		Stop:  pg.Stop,
		Start: pg.Start,
	})
	t.Logf("fault: postgres stopped under load (preset database, open timeout scaled to 1s): %v", rep)
}

// Inserts run through the wrapped connector while the connections are cut
// and the server is stopped and started again. Counting rows proves that
// no insert ran twice and that every insert reported as done is there.
func TestFaultPostgresInsertsNeitherLostNorDuplicated(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	proxy, err := faultproxy.New(pg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	direct, _ := open(t, pgConnector(t, pg.DSN), nil)
	if _, err := direct.ExecContext(t.Context(), `CREATE TABLE orders (id bigint NOT NULL, at timestamptz DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	// No unique index on id: a duplicate must be possible, to be counted.

	db, g := open(t, pgConnector(t, "postgres://postgres@"+proxy.Addr()+"/postgres?sslmode=disable"), func(p *resilience.Preset) {
		p.Timeout.Duration = 2 * time.Second
		p.Breaker.OpenTimeout = 200 * time.Millisecond
	})
	db.SetMaxOpenConns(8)

	var (
		next         atomic.Int64
		mu           sync.Mutex
		acknowledged = map[int64]bool{}
		failed       int
		rejected     int
	)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				id := next.Add(1)
				_, err := db.ExecContext(context.WithoutCancel(ctx), `INSERT INTO orders (id) VALUES ($1)`, id)
				mu.Lock()
				switch {
				case err == nil:
					acknowledged[id] = true
				case errors.Is(err, resilience.ErrOpen):
					rejected++
				default:
					failed++
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	proxy.CutAll() // every connection dies mid-flight
	time.Sleep(300 * time.Millisecond)
	pg.Stop()
	time.Sleep(300 * time.Millisecond)
	pg.Start()
	deadline := time.Now().Add(20 * time.Second)
	for g.Breaker().State() != resilience.Closed && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()

	attempted := next.Load()
	var rows, distinct, dupes int64
	err = direct.QueryRowContext(t.Context(),
		`SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM (SELECT id FROM orders GROUP BY id HAVING count(*) > 1) d) FROM orders`).
		Scan(&rows, &distinct, &dupes)
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	found := map[int64]bool{}
	r, err := direct.QueryContext(t.Context(), `SELECT id FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id int64
		r.Scan(&id)
		found[id] = true
	}
	r.Close()
	for id := range acknowledged {
		if !found[id] {
			missing++
		}
	}
	unacknowledged := 0
	for id := range found {
		if !acknowledged[id] {
			unacknowledged++
		}
	}
	t.Logf("fault: postgres inserts under cut connections and a restart: %d attempted, %d acknowledged, %d failed, %d rejected by the open breaker; "+
		"rows expected at least %d, found %d (%d distinct ids); duplicated ids %d, acknowledged but missing %d, present but reported failed %d",
		attempted, len(acknowledged), failed, rejected, len(acknowledged), rows, distinct, dupes, missing, unacknowledged)
	if dupes != 0 || rows != distinct {
		t.Errorf("%d ids inserted more than once", dupes)
	}
	if missing != 0 {
		t.Errorf("%d acknowledged inserts are missing", missing)
	}
	if failed+rejected == 0 {
		t.Errorf("no insert failed: the faults were not injected")
	}
	if len(acknowledged) == 0 {
		t.Errorf("no insert succeeded")
	}
}

// A proxy slows the server down: calls slower than the slow-call
// threshold open the breaker though they succeed, and a call slower than
// the time limit is cut at it.
func TestFaultPostgresSlow(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	proxy, err := faultproxy.New(pg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	db, g := open(t, pgConnector(t, "postgres://postgres@"+proxy.Addr()+"/postgres?sslmode=disable"), func(p *resilience.Preset) {
		p.Timeout.Duration = 300 * time.Millisecond
		p.Breaker.SlowCallThreshold = 20 * time.Millisecond
		p.Breaker.SlowCallRateThreshold = 0.5
		p.Breaker.WindowSize = 20
		p.Breaker.MinCalls = 10
	})
	db.SetMaxOpenConns(1)
	ctx := t.Context()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}

	proxy.SetDelay(40 * time.Millisecond)
	calls := 0
	for g.Breaker().State() == resilience.Closed && calls < 50 {
		if _, err := db.ExecContext(ctx, `SELECT 1`); err != nil {
			t.Fatalf("a slow exec failed: %v", err)
		}
		calls++
	}
	if s := g.Breaker().State(); s != resilience.Open {
		t.Fatalf("breaker %v after %d slow successes, want open", s, calls)
	}
	slowRate := g.Breaker().SlowCallRate()

	g.Breaker().Reset()
	proxy.SetDelay(2 * time.Second)
	start := time.Now()
	_, err = db.ExecContext(ctx, `SELECT 1`)
	took := time.Since(start)
	if !errors.Is(err, resilience.ErrTimeout) {
		t.Fatalf("exec through a 2s delay: err = %v, want ErrTimeout", err)
	}
	if took >= 1500*time.Millisecond {
		t.Errorf("exec through a 2s delay returned after %v: not cut at the 300ms limit", took)
	}
	proxy.SetDelay(0)
	t.Logf("fault: postgres slowed by 40ms per answer: breaker open after %d successful calls, slow-call rate %.2f; "+
		"slowed by 2s: call cut by the 300ms limit after %v", calls, slowRate, took.Round(time.Millisecond))
}
