package integrations_test

// The integration snippets of the repository's README.md, compiled and run
// here. Each is copied verbatim into a function below; the README test of
// the main module checks that.

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/integrations/resilgrpc"
	"github.com/resilience-go/resilience/integrations/resilhttp"
	"github.com/resilience-go/resilience/integrations/resilredis"
	"github.com/resilience-go/resilience/integrations/resilsql"
	"github.com/resilience-go/resilience/presets"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
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

func readmeSQL(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	p := presets.DatabaseConfig()
	p.Retry = &resilience.RetryConfig{MaxRetries: 2, InitialBackoff: 100 * time.Millisecond, Jitter: true} // for reads that ask
	guard, err := p.Build()
	if err != nil {
		return nil, err
	}
	connector, err := resilsql.NewConnector(stdlib.GetConnector(*cfg), resilsql.Config{Guard: guard})
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	// A read may be retried if the caller says so; an exec never is.
	rows, err := db.QueryContext(resilsql.RetryReads(ctx), `SELECT id FROM users`)
	if err != nil {
		db.Close()
		return nil, err
	}
	rows.Close()
	return db, nil
}

func readmeRedis(addr string) (*redis.Client, error) {
	// The guard retries, so go-redis must not (commands nor dials); and it
	// must honour deadlines. Attach refuses a client that does otherwise.
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true})
	if err := resilredis.Attach(rdb, resilredis.Config{Guard: presets.Redis()}); err != nil {
		return nil, err
	}
	return rdb, nil
}

func readmeQuickStart(target string) (*grpc.ClientConn, *resilience.Guard, error) {
	users := presets.GRPC() // one guard per backend, shared by every call to it
	// The guard's interceptors, with grpc-go's own retry off: the guard retries.
	opts, err := resilgrpc.DialOptions(users)
	if err != nil {
		return nil, nil, err
	}
	conn, err := grpc.NewClient(target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	return conn, users, err
}

// echoStatus is grpc's TestService answering each UnaryCall with the
// status its request asks for, and counting the calls that reach it.
type echoStatus struct {
	testgrpc.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (s *echoStatus) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.calls.Add(1)
	if st := req.GetResponseStatus(); st != nil && st.GetCode() != 0 {
		return nil, status.Error(codes.Code(st.GetCode()), st.GetMessage())
	}
	return &testgrpc.SimpleResponse{}, nil
}

// TestREADMEQuickStart runs the README's first snippet against the real
// TestService: a NotFound comes back as it was, once, and never opens the
// breaker; an Unavailable is retried; a rejection is Unavailable.
func TestREADMEQuickStart(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	svc := &echoStatus{}
	testgrpc.RegisterTestServiceServer(srv, svc)
	go srv.Serve(lis)
	defer srv.Stop()

	conn, users, err := readmeQuickStart(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ask := func(c codes.Code) error {
		_, err := client.UnaryCall(t.Context(), &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(c), Message: "asked"}})
		return err
	}
	for range 10 {
		if err := ask(codes.NotFound); status.Code(err) != codes.NotFound {
			t.Fatalf("NotFound came back as %v", err)
		}
	}
	if n := svc.calls.Load(); n != 10 {
		t.Errorf("10 NotFound calls reached the server %d times, want 10: none retried", n)
	}
	if s := users.Breaker().State(); s != resilience.Closed {
		t.Errorf("after 10 NotFounds the breaker is %v, want closed", s)
	}
	svc.calls.Store(0)
	if err := ask(codes.Unavailable); status.Code(err) != codes.Unavailable {
		t.Fatalf("Unavailable came back as %v", err)
	}
	if n := svc.calls.Load(); n != 4 {
		t.Errorf("an Unavailable call reached the server %d times, want 4: 3 retries", n)
	}
	users.Breaker().ForceOpen()
	svc.calls.Store(0)
	if err := ask(codes.OK); status.Code(err) != codes.Unavailable || !errors.Is(err, resilience.ErrRejected) {
		t.Errorf("a call the open breaker rejects: %v, want Unavailable matching ErrRejected", err)
	}
	if n := svc.calls.Load(); n != 0 {
		t.Errorf("a rejected call reached the server %d times", n)
	}
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

	// A real server: the read, marked RetryReads, runs through a guard
	// that has a retry for it.
	pg := testserver.PostgreSQL(t)
	setup, err := sql.Open("pgx", pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := setup.Exec(`CREATE TABLE users (id int)`); err != nil {
		t.Fatal(err)
	}
	setup.Close()
	db, err := readmeSQL(t.Context(), pg.DSN)
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
