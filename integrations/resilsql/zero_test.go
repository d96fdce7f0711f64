package resilsql

import (
	"context"
	"database/sql"
	"strings"
	"testing"
)

// TestZeroConnector: a Connector not made by NewConnector opens no
// connection and says why, through database/sql too.
func TestZeroConnector(t *testing.T) {
	var c Connector
	if conn, err := c.Connect(context.Background()); conn != nil || err == nil || !strings.Contains(err.Error(), "NewConnector") {
		t.Errorf("Connect = %v, %v; want an error naming NewConnector", conn, err)
	}
	if _, err := c.Driver().Open(""); err == nil {
		t.Error("Driver().Open of a zero Connector: no error")
	}
	db := sql.OpenDB(&c)
	defer db.Close()
	if err := db.PingContext(context.Background()); err == nil || !strings.Contains(err.Error(), "NewConnector") {
		t.Errorf("Ping through a zero Connector: %v, want an error naming NewConnector", err)
	}
}
