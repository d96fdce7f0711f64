package integrations_test

// The integration snippets of the repository's README.md, compiled and run
// here. Each is copied verbatim into a function below; the README test of
// the main module checks that.

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/integrations/resilredis"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func readmeHTTP() (*http.Client, error) {
	transport, err := resilhttp.NewTransport(resilhttp.TransportConfig{Guard: presets.ExternalHTTP()})
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: transport}
	return client, nil
}

func readmeGRPC(target string) (*grpc.ClientConn, error) {
	guard := presets.GRPC() // one guard for the backend, for unary calls and streams
	unary, err := resilgrpc.UnaryClientInterceptor(guard)
	if err != nil {
		return nil, err
	}
	stream, err := resilgrpc.StreamClientInterceptor(guard)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(unary), grpc.WithChainStreamInterceptor(stream))
	return conn, err
}

func readmeSQL(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	connector, err := resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: presets.Database()})
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	// A read may be retried if the caller says so; an exec never is.
	rows, err := db.QueryContext(resilsql.RetryReads(ctx), `SELECT id FROM users`)
	if err == nil {
		rows.Close()
	}
	return db, nil
}

func readmeRedis(addr string) (*redis.Client, error) {
	hook, err := resilredis.NewHook(resilredis.Config{Guard: presets.Redis()})
	if err != nil {
		return nil, err
	}
	// The guard retries, so go-redis must not; and it must honour deadlines.
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	rdb.AddHook(hook)
	return rdb, nil
}

func TestREADMEIntegrations(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	client, err := readmeHTTP()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Errorf("GET through the README's client: %q", body)
	}
	client.CloseIdleConnections()

	conn, err := readmeGRPC("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()

	// No server at this address: the query fails, the connector is built.
	db, err := readmeSQL(t.Context(), "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	rdb, err := readmeRedis("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	rdb.Close()
}
