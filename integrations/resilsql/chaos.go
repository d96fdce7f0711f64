package resilsql

import (
	"context"
	"database/sql/driver"
	"errors"

	"github.com/resilience-go/resilience"
)

var errNilChaos = errors.New("resilsql: WithChaos: the base connector or the chaos stage is nil")

// WithChaos returns a connector that injects the faults of chaos into the
// connections base makes, as a database that cannot be reached would:
// give it to NewConnector as the base (resilsql.NewConnector(
// resilsql.WithChaos(base, chaos), cfg)), with ChaosConfig.Err the error a
// failed connection brings (a *net.OpError whose Op is "dial", say), and
// the guard sees a faulted connection as a real one that failed: counted
// by the breaker, and the attempt (whose query never reached the server)
// made again, connection and all. A faulted connection waits chaos's Latency first; with NoError
// it is then made, late. Only connecting is faulted: a connection made
// runs its queries untouched (set the pool's MaxIdleConns to 0 to have
// every query connect).
func WithChaos(base driver.Connector, chaos *resilience.Chaos) driver.Connector {
	return &chaosConnector{base: base, chaos: chaos}
}

type chaosConnector struct {
	base  driver.Connector
	chaos *resilience.Chaos
}

func (c *chaosConnector) Connect(ctx context.Context) (driver.Conn, error) {
	if c.chaos == nil || c.base == nil {
		return nil, errNilChaos
	}
	var conn driver.Conn
	err := c.chaos.Run(ctx, func(ctx context.Context) error {
		var err error
		conn, err = c.base.Connect(ctx)
		return err
	})
	return conn, err
}

func (c *chaosConnector) Driver() driver.Driver {
	if c.base == nil {
		return nil
	}
	return c.base.Driver()
}
