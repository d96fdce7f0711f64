package resilsql

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// Against a real PostgreSQL: with every query making a connection, a
// chaos stage under the guard fails half the connections as an
// unreachable server would, and the guard retries each such query, since
// it never reached the server: a query fails only when every attempt's
// connection was faulted. A nil chaos stage is an error, not a panic.
func TestWithChaosFaultsConnections(t *testing.T) {
	pg := testserver.PostgreSQL(t)
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	chaos := must(resilience.NewChaos(resilience.ChaosConfig{Rate: 0.5, Seed: 3, Err: refused}))
	db, _ := open(t, WithChaos(pgConnector(t, pg.DSN), chaos), func(p *resilience.Preset) {
		p.Retry = &resilience.RetryConfig{MaxRetries: 2, NoBackoff: true} // the database preset has none
		p.Breaker.FailureThreshold, p.Breaker.ErrorRateThreshold = 1<<20, 1
	})
	db.SetMaxIdleConns(0)
	const calls = 100
	failed := 0
	for range calls {
		var one int
		if err := db.QueryRowContext(context.Background(), "SELECT 1").Scan(&one); err != nil {
			if !errors.As(err, new(*net.OpError)) {
				t.Fatalf("a failed query: %v, want the made-up connection error", err)
			}
			failed++
		} else if one != 1 {
			t.Fatalf("SELECT 1 = %d", one)
		}
	}
	injected := int(chaos.Stats().Calls[1].N)
	if injected < 40 || failed > 20 || injected < failed {
		t.Errorf("%d queries: %d faulted connections, %d queries failed every attempt; want the faulted ones retried", calls, injected, failed)
	}
	t.Logf("%d queries: %d connections faulted and retried, %d queries failed every attempt", calls, injected, failed)

	if _, err := WithChaos(nil, chaos).Connect(context.Background()); err == nil {
		t.Error("a nil base: no error")
	}
	if _, err := WithChaos(pgConnector(t, pg.DSN), nil).Connect(context.Background()); err == nil {
		t.Error("a nil chaos stage: no error")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
