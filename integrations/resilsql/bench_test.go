package resilsql

import (
	"context"
	"database/sql/driver"
	"testing"

	"github.com/resilience-go/resilience/presets"
)

type nopConn struct{ driver.Conn }

func (nopConn) ExecContext(context.Context, string, []driver.NamedValue) (driver.Result, error) {
	return driver.RowsAffected(1), nil
}

// The cost of the wrapper on an exec that succeeds at once, over a
// connection that does no I/O.
func BenchmarkExec(b *testing.B) {
	c, err := NewConnector(nopConnector{}, Config{Guard: presets.Database()})
	if err != nil {
		b.Fatal(err)
	}
	inner := nopConn{}
	wrapped := &conn{c: c, inner: inner}
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		ex   driver.ExecerContext
	}{{"direct", inner}, {"guarded", wrapped}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.ex.ExecContext(ctx, "INSERT", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopConnector struct{}

func (nopConnector) Connect(context.Context) (driver.Conn, error) { return nopConn{}, nil }
func (nopConnector) Driver() driver.Driver                        { return nil }
