package resilience_test

// The Go snippets of README.md, compiled and run here. Each snippet is
// copied verbatim into one of the functions below (TestREADMESnippets
// checks that), which the Examples run.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

type GetUserRequest struct{ ID int }

// usersClient stands for a generated gRPC client.
type usersClient struct{}

func (usersClient) GetUser(ctx context.Context, req *GetUserRequest) (*User, error) {
	return &User{Name: "ada"}, nil
}

func (usersClient) CountUsers(ctx context.Context) (int, error) { return 0, errUnavailable }

type userCache struct{}

func (userCache) User(id int) (*User, error) { return &User{Name: "ada (cached)"}, nil }

type userDB struct{}

func (userDB) UserByID(ctx context.Context, id int) (*User, error) {
	<-ctx.Done() // a query stuck behind a lock
	return nil, ctx.Err()
}

var (
	client usersClient
	cache  userCache
	db     userDB
)

func fetch(ctx context.Context, url string) ([]byte, error) { return []byte("hello"), nil }

func resize(ctx context.Context, img []byte) ([]byte, error) { return img[:1], nil }

// kafkaProducer stands for a Kafka client.
type kafkaProducer struct{}

func (kafkaProducer) Produce(ctx context.Context, msg string) (int64, error) { return 42, nil }

var producer kafkaProducer

func readmeQuickStart(ctx context.Context, msg string) error {
	events := presets.Kafka() // one guard per cluster

	offset, err := resilience.Do(ctx, events, func(ctx context.Context) (int64, error) {
		return producer.Produce(ctx, msg)
	})
	fmt.Println(offset, err)
	return nil
}

func readmeTuning() error {
	cfg := presets.RedisConfig()
	cfg.Name = "sessions"                     // names its policies in errors and metrics
	cfg.Breaker.OpenTimeout = 5 * time.Second // probe sooner than the preset's 15s
	sessions, err := cfg.Build()
	if err != nil {
		return err
	}
	fmt.Println(sessions.Name(), sessions.Breaker().State())
	return nil
}

func readmeBreaker(ctx context.Context) error {
	breaker, err := resilience.NewBreaker(resilience.BreakerConfig{
		Name:               "users",
		FailureThreshold:   5,   // open after 5 failures in a row,
		ErrorRateThreshold: 0.5, // or when half of the last 100 calls failed,
		WindowSize:         100,
		OpenTimeout:        time.Minute, // probe again after a minute,
		SuccessThreshold:   2,           // and close after 2 good probes
		OnStateChange: func(c resilience.StateChange) {
			fmt.Printf("breaker %s: %s -> %s\n", c.Name, c.From, c.To)
		},
	})
	if err != nil {
		return err
	}
	count, err := resilience.Do(ctx, breaker, func(ctx context.Context) (int, error) {
		return client.CountUsers(ctx)
	})
	fmt.Println(count, err, breaker.State(), breaker.ErrorRate())

	for range 5 {
		_, err = resilience.Do(ctx, breaker, func(ctx context.Context) (int, error) {
			return client.CountUsers(ctx)
		})
	}
	fmt.Println(breaker.State(), errors.Is(err, resilience.ErrOpen))
	return nil
}

func readmeTimeout(ctx context.Context) error {
	user, err := resilience.WithTimeoutResult(ctx, 2*time.Second, func(ctx context.Context) (*User, error) {
		return db.UserByID(ctx, 42)
	})
	fmt.Println(user, errors.Is(err, resilience.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	return nil
}

func readmeRetry(ctx context.Context, url string) error {
	body, err := resilience.WithRetry(ctx, resilience.RetryConfig{
		MaxRetries:     3,
		InitialBackoff: 100 * time.Millisecond, // then 200ms, then 400ms
		MaxBackoff:     10 * time.Second,
		Jitter:         true, // each wait times a random factor in [0.7, 1.3]
	}, func(ctx context.Context) ([]byte, error) {
		return fetch(ctx, url)
	})
	fmt.Println(string(body), err)
	return nil
}

func readmeChain(ctx context.Context, breaker *resilience.Breaker) error {
	timeout, err := resilience.NewTimeout(resilience.TimeoutConfig{Duration: 2 * time.Second})
	if err != nil {
		return err
	}
	retry, err := resilience.NewRetry(resilience.RetryConfig{MaxRetries: 3, Jitter: true})
	if err != nil {
		return err
	}
	getUser := resilience.For[*User](timeout, retry, breaker) // the first is outermost

	user, err := getUser.Do(ctx, func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, &GetUserRequest{ID: 42})
	})
	fmt.Println(user.Name, err)
	return nil
}

func readmeFallback(ctx context.Context, users *resilience.Guard) error {
	cached, err := resilience.NewFallback(resilience.FallbackConfig[*User]{
		Func: func(ctx context.Context, err error) (*User, error) { return cache.User(42) },
	})
	if err != nil {
		return err
	}
	getUser := resilience.Compose(cached, resilience.For[*User](users))

	user, err := getUser.Do(ctx, func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, &GetUserRequest{ID: 42})
	})
	fmt.Println(user.Name, err)
	return nil
}

func readmeBulkhead(ctx context.Context, img []byte) error {
	bulkhead, err := resilience.NewBulkhead(resilience.BulkheadConfig{MaxConcurrent: 10, MaxWait: 50 * time.Millisecond})
	if err != nil {
		return err
	}
	thumb, err := resilience.Do(ctx, bulkhead, func(ctx context.Context) ([]byte, error) {
		return resize(ctx, img)
	})
	if errors.Is(err, resilience.ErrBulkheadFull) {
		return err // shed the load: answer 503, show a placeholder, ...
	}
	fmt.Println(len(thumb), bulkhead.InUse())
	return nil
}

func readmeGuard(ctx context.Context, timeout *resilience.Timeout, retry *resilience.Retry, bulkhead *resilience.Bulkhead, breaker *resilience.Breaker) error {
	perAttempt, err := resilience.NewTimeout(resilience.TimeoutConfig{Name: "users.attempt", Duration: time.Second})
	if err != nil {
		return err
	}
	users, err := resilience.NewGuard(resilience.GuardConfig{
		Name:   "users",
		Stages: []resilience.Stage{timeout, retry, bulkhead, breaker, perAttempt}, // the first is outermost
	})
	if err != nil {
		return err
	}
	user, err := resilience.Do(ctx, users, func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, &GetUserRequest{ID: 42})
	})
	if errors.Is(err, resilience.ErrRejected) {
		return err // an open breaker or a full bulkhead: the call was not made
	}
	fmt.Println(user.Name, err, len(users.Stages()))
	return nil
}

type logged struct{ name string }

func (l logged) Name() string { return l.name }
func (logged) Kind() string   { return "logged" }
func (l logged) Run(ctx context.Context, call func(context.Context) error) error {
	err := call(ctx)
	if err != nil {
		log.Printf("%s: %v", l.name, err)
	}
	return err
}

func readmeOwnStage(ctx context.Context) error {
	count, err := resilience.Do(ctx, logged{name: "users"}, func(ctx context.Context) (int, error) {
		return client.CountUsers(ctx)
	})
	fmt.Println(count, err)
	return nil
}

func readmeCallers(timeout *resilience.Timeout, retry *resilience.Retry, breaker *resilience.Breaker) (*resilience.Guard, error) {
	budget, err1 := resilience.NewRetryBudget(resilience.RetryBudgetConfig{Name: "search"}) // 20% of first attempts, plus 10 a second
	limit, err2 := resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "search", Rate: 100, MaxWait: 50 * time.Millisecond})
	throttle, err3 := resilience.NewThrottler(resilience.ThrottlerConfig{Name: "search"}) // K = 2, over 2 minutes
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	// The budget goes right inside the retry; each attempt takes a token and
	// counts for the throttler; the breaker is innermost.
	return resilience.NewGuard(resilience.GuardConfig{Name: "search", Stages: []resilience.Stage{
		timeout, retry, budget, limit, throttle, breaker,
	}})
}

type shard struct{ Addr string }

func (shard) Order(ctx context.Context, id int) (string, error) { return "order", nil }

func readmeKeyed(ctx context.Context, sh shard, id int) (string, error) {
	shards, err := resilience.NewKeyedBreaker(resilience.KeyedBreakerConfig{
		Name:              "orders",
		MaxKeys:           64, // more than there are shards: only keys nobody calls are evicted
		MaxEjectedPercent: 25, // never more than a quarter of the shards cut off
	})
	if err != nil {
		return "", err
	}
	// Each call goes through the breaker of the key in its context.
	return resilience.Do(resilience.WithKey(ctx, sh.Addr), shards, func(ctx context.Context) (string, error) {
		return sh.Order(ctx, id)
	})
}

func readmeStale(ctx context.Context, guard *resilience.Guard, id int) (*User, error) {
	cache, err := resilience.NewStaleCache(resilience.StaleCacheConfig[*User]{Name: "users", MaxAge: 10 * time.Minute})
	if err != nil {
		return nil, err
	}
	users := resilience.Compose(cache, resilience.For[*User](guard)) // the cache outermost
	u, err := users.Do(resilience.WithKey(ctx, strconv.Itoa(id)), func(ctx context.Context) (*User, error) {
		return client.GetUser(ctx, &GetUserRequest{ID: id})
	})
	if age, ok := resilience.StaleAge(err); ok {
		log.Printf("user %d: serving what we had %v ago: %v", id, age, err)
		return u, nil
	}
	return u, err
}

func readmeTenants() (*resilience.Guard, error) {
	perTenant, err := resilience.NewKeyed(resilience.KeyedConfig{Name: "reports", MaxKeys: 5000},
		func(tenant string) (*resilience.RateLimiter, error) {
			return resilience.NewRateLimiter(resilience.RateLimitConfig{Name: "reports", Rate: 20, Burst: 40})
		})
	if err != nil {
		return nil, err
	}
	// In the handler: ctx = resilience.WithKey(ctx, tenantID)
	return resilience.NewGuard(resilience.GuardConfig{Name: "reports", Stages: []resilience.Stage{perTenant}})
}

// TestREADMEKeyed runs the README's keyed snippets.
func TestREADMEKeyed(t *testing.T) {
	if v, err := readmeKeyed(context.Background(), shard{Addr: "10.0.0.7:5432"}, 1); v != "order" || err != nil {
		t.Errorf("readmeKeyed: %q, %v", v, err)
	}
	if u, err := readmeStale(context.Background(), presets.GRPC(), 1); err != nil || u.Name != "ada" {
		t.Errorf("readmeStale: %v, %v", u, err)
	}
	// Each tenant has its own 40 calls of burst: one that spends them
	// leaves the other's untouched.
	g := must(readmeTenants())
	admitted := map[string]int{}
	for range 50 {
		for _, tenant := range []string{"acme", "globex"} {
			if _, err := resilience.Do(resilience.WithKey(context.Background(), tenant), g, func(context.Context) (int, error) { return 1, nil }); err == nil {
				admitted[tenant]++
			}
		}
	}
	if admitted["acme"] < 40 || admitted["acme"] > 45 || admitted["globex"] < 40 || admitted["globex"] > 45 {
		t.Errorf("readmeTenants: admitted %v, want each tenant its burst of 40 (and what 20/s adds meanwhile)", admitted)
	}
}

// TestREADMECallers runs the guard of the README's "Protecting a
// dependency from its callers": against a dependency that fails every
// call, 3 retries a call make about 1.2 attempts a call, not 4.
func TestREADMECallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		search, err := readmeCallers(
			must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "search", Duration: 2 * time.Second})),
			must(resilience.NewRetry(resilience.RetryConfig{Name: "search", MaxRetries: 3, NoBackoff: true})),
			must(resilience.NewBreaker(resilience.BreakerConfig{Name: "search", FailureThreshold: 1 << 20, ErrorRateThreshold: 1})))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(search.Stages()); got != 6 || search.RetryBudget() == nil {
			t.Fatalf("%d stages, budget %v; want 6, with the budget", got, search.RetryBudget())
		}
		const calls = 2000
		attempts := 0
		for range calls {
			resilience.Do(context.Background(), search, func(context.Context) (int, error) { attempts++; return 0, errUnavailable })
			time.Sleep(10 * time.Millisecond) // 100 calls a second: the rate limit's
		}
		// 20s of calls: 20% of 2000, plus the floor's 10 a second and the
		// window's 100 at the start.
		if perCall, most := float64(attempts)/calls, 1.2+float64(10*20+100)/calls; perCall > most {
			t.Errorf("%.3f attempts per call, want at most %.3f", perCall, most)
		}
	})
}

func readmeLog(logger *slog.Logger) error {
	users := presets.GRPC()
	if err := resilience.Log(logger, users); err != nil { // state changes; rejections, retries given up and time-outs, rate-limited
		return err
	}
	users.Breaker().ForceOpen()
	_, err := resilience.Do(context.Background(), users, func(ctx context.Context) (int, error) { return 42, nil })
	return err
}

func Example_readmeLog() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	fmt.Println(errors.Is(readmeLog(logger), resilience.ErrOpen))
	// Output:
	// level=WARN msg="resilience: circuit breaker open" dependency=grpc stage=breaker from=closed to=open
	// level=WARN msg="resilience: call rejected" dependency=grpc stage=breaker error="resilience: circuit breaker \"grpc\" is forced open"
	// true
}

func Example_readme() {
	ctx := context.Background()
	readmeQuickStart(ctx, "hello")
	readmeTuning()
	readmeBreaker(ctx)
	readmeRetry(ctx, "http://127.0.0.1/")
	readmeChain(ctx, must(resilience.NewBreaker(resilience.BreakerConfig{})))
	users := presets.GRPC()
	users.Breaker().ForceOpen()
	readmeFallback(ctx, users)
	readmeBulkhead(ctx, []byte("png"))
	readmeGuard(ctx,
		must(resilience.NewTimeout(resilience.TimeoutConfig{Name: "users", Duration: 2 * time.Second})),
		must(resilience.NewRetry(resilience.RetryConfig{Name: "users", MaxRetries: 3})),
		must(resilience.NewBulkhead(resilience.BulkheadConfig{Name: "users", MaxConcurrent: 10})),
		must(resilience.NewBreaker(resilience.BreakerConfig{Name: "users"})))
	defer log.SetOutput(log.Writer())
	defer log.SetFlags(log.Flags())
	log.SetOutput(os.Stdout)
	log.SetFlags(0)
	readmeOwnStage(ctx)
	// Output:
	// 42 <nil>
	// sessions closed
	// 0 unavailable closed 1
	// breaker users: closed -> open
	// open true
	// hello <nil>
	// ada <nil>
	// ada (cached) <nil>
	// 1 0
	// ada <nil> 5
	// users: unavailable
	// 0 unavailable
}

func TestREADMETimeoutSnippet(t *testing.T) {
	// WithTimeoutResult's snippet waits its full 2s: run it on the fake
	// clock.
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		readmeTimeout(context.Background())
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("the timeout snippet returned after %v, want 2s", d)
		}
	})
}

// TestREADMESnippets checks that every Go snippet in README.md appears,
// line for line, in a _test.go file of this package, where the compiler
// checks it and an Example runs it.
func TestREADMESnippets(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	// The snippets of the core are in this package's tests; those of the
	// metrics and the integrations, in their modules' tests.
	var sources strings.Builder
	for _, dir := range []string{".", "metrics", "resilotel", "integrations"} {
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f.Name(), "_test.go") {
				b, err := os.ReadFile(filepath.Join(dir, f.Name()))
				if err != nil {
					t.Fatal(err)
				}
				sources.WriteString("\n" + normalize(string(b)))
			}
		}
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(snippets) == 0 {
		t.Fatal("README.md has no Go snippets")
	}
	for _, s := range snippets {
		if !strings.Contains(sources.String(), "\n"+normalize(s[1])) {
			t.Errorf("README snippet not found in the tests:\n%s", s[1])
		}
	}
}

// normalize trims each line and drops blank ones, so that indentation and
// spacing do not matter, and ends every line with a newline.
func normalize(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
