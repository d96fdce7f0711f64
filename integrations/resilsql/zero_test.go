package resilsql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
)

// TestZeroValues: a Connector not made by NewConnector opens no
// connection, through database/sql too, and says why with an error naming
// NewConnector, never a panic; its Guard is nil.
func TestZeroValues(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want bool // an error naming NewConnector
	}{{
		name: "Connector.Connect",
		call: func() error {
			c, err := (&Connector{}).Connect(ctx)
			if c != nil {
				return fmt.Errorf("a connection, and %w", err)
			}
			return err
		},
		want: true,
	}, {
		name: "Connector.Driver",
		call: func() error {
			c, err := (&Connector{}).Driver().Open("")
			if c != nil {
				return fmt.Errorf("a connection, and %w", err)
			}
			return err
		},
		want: true,
	}, {
		name: "Connector.Guard",
		call: func() error {
			if g := (&Connector{}).Guard(); g != nil {
				return fmt.Errorf("Guard() = %v, want nil", g)
			}
			return nil
		},
	}, {
		name: "Connector in sql.OpenDB",
		call: func() error {
			db := sql.OpenDB(&Connector{})
			defer db.Close()
			return db.PingContext(ctx)
		},
		want: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := noPanic(t, tc.call)
			if tc.want && (err == nil || !strings.Contains(err.Error(), "NewConnector")) {
				t.Errorf("err = %v, want one naming NewConnector", err)
			}
			if !tc.want && err != nil {
				t.Error(err)
			}
		})
	}
}

// noPanic runs call, and fails t if it panics.
func noPanic(t *testing.T, call func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic: %v", p)
		}
	}()
	return call()
}
