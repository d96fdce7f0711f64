package presets_test

// The test docs/PATTERNS.md shows: how a service tests its own code that
// uses a preset, on the fake clock of testing/synctest.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/presets"
)

// SessionStore is the code under test: it reads sessions from Redis
// through the Redis preset.
type SessionStore struct {
	redis *resilience.Guard
	get   func(ctx context.Context, key string) (string, error) // the Redis client
}

func (s *SessionStore) Session(ctx context.Context, id string) (string, error) {
	return resilience.Do(ctx, s.redis, func(ctx context.Context) (string, error) {
		return s.get(ctx, "session:"+id)
	})
}

func TestSessionStoreWhileRedisIsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := true
		calls := 0
		store := &SessionStore{
			redis: presets.Redis(), // built inside the bubble, so its timers use the fake clock
			get: func(ctx context.Context, key string) (string, error) {
				calls++
				if down {
					return "", errors.New("connection refused")
				}
				return "alice", nil
			},
		}

		// One call and its two retries: three failures open the breaker.
		if _, err := store.Session(t.Context(), "42"); err == nil {
			t.Fatal("no error while Redis is down")
		}
		// While it is open, sessions fail fast, without touching Redis.
		_, err := store.Session(t.Context(), "42")
		if !errors.Is(err, resilience.ErrOpen) || calls != 3 {
			t.Fatalf("err = %v after %d calls, want ErrOpen after 3", err, calls)
		}

		// Redis comes back; 15s later the breaker lets probes through.
		down = false
		time.Sleep(15 * time.Second) // no real waiting: the bubble's clock jumps
		synctest.Wait()              // and the breaker's timer has its turn
		if s, err := store.Session(t.Context(), "42"); s != "alice" || err != nil {
			t.Fatalf("after the cooldown: %q, %v", s, err)
		}
	})
}

// TestPatternsSnippet checks that the Go snippets of docs/PATTERNS.md are
// copies of tests in this package, so that they compile and pass.
func TestPatternsSnippet(t *testing.T) {
	doc, err := os.ReadFile("../docs/PATTERNS.md")
	if err != nil {
		t.Fatal(err)
	}
	var sources strings.Builder
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources.Write(b)
	}
	snippets := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(snippets) == 0 {
		t.Fatal("docs/PATTERNS.md has no Go snippets")
	}
	for _, s := range snippets {
		if !strings.Contains(sources.String(), s[1]) {
			t.Errorf("docs/PATTERNS.md snippet not found in the tests of package presets:\n%s", s[1])
		}
	}
}
