package resilredis

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
)

// documented are the client options the package documents.
func documented(addr string) *redis.Options {
	return &redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true}
}

// Attach refuses a client that retries commands or dials itself, or
// ignores deadlines, naming each option, and adds no hook then; it adds
// the hook to a client with the documented options.
func TestAttachChecksTheClientsOptions(t *testing.T) {
	srv := testserver.Redis(t)
	for _, tc := range []struct {
		name string
		opt  *redis.Options
		want []string // the options the error names
	}{
		{"go-redis's defaults", &redis.Options{}, []string{"MaxRetries", "DialerRetries", "ContextTimeoutEnabled"}},
		{"MaxRetries: -1 alone", &redis.Options{MaxRetries: -1, ContextTimeoutEnabled: true}, []string{"DialerRetries"}},
		{"MaxRetries: 2", &redis.Options{MaxRetries: 2, DialerRetries: 1, ContextTimeoutEnabled: true}, []string{"MaxRetries"}},
		{"DialerRetries: -1", &redis.Options{MaxRetries: -1, DialerRetries: -1, ContextTimeoutEnabled: true}, []string{"DialerRetries"}},
		{"DialerRetries: 3", &redis.Options{MaxRetries: -1, DialerRetries: 3, ContextTimeoutEnabled: true}, []string{"DialerRetries"}},
		{"no ContextTimeoutEnabled", &redis.Options{MaxRetries: -1, DialerRetries: 1}, []string{"ContextTimeoutEnabled"}},
		{"the documented options", documented(""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opt.Addr = srv.Addr
			rdb := redis.NewClient(tc.opt)
			defer rdb.Close()
			g := presets.Redis()
			err := Attach(rdb, Config{Guard: g})
			for _, field := range []string{"MaxRetries", "DialerRetries", "ContextTimeoutEnabled"} {
				named := err != nil && strings.Contains(err.Error(), "Options."+field)
				if want := strings.Contains(strings.Join(tc.want, " "), field); named != want {
					t.Errorf("Attach: %v; naming Options.%s: %v, want %v", err, field, named, want)
				}
			}
			// A hook was added if, and only if, Attach returned nil.
			g.Breaker().ForceOpen()
			got := rdb.Get(t.Context(), "k").Err()
			if hooked := errors.Is(got, resilience.ErrOpen); hooked != (err == nil) {
				t.Errorf("Attach: %v, and GET with the breaker forced open: %v", err, got)
			}
		})
	}
	if err := Attach(nil, Config{Guard: presets.Redis()}); err == nil {
		t.Error("Attach(nil): no error")
	}
	rdb := redis.NewClient(documented(srv.Addr))
	defer rdb.Close()
	if err := Attach(rdb, Config{}); err == nil || !strings.Contains(err.Error(), "Config.Guard") {
		t.Errorf("Attach without a guard: %v, want an error naming Config.Guard", err)
	}
}

// dials counts the dials of a client, go-redis's own retries of a dial
// included.
type dials struct{ n atomic.Int32 }

func (d *dials) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d.n.Add(1)
		return next(ctx, network, addr)
	}
}
func (d *dials) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d *dials) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// With the documented options, one attempt of the guard is one dial:
// against a closed port, the preset's 3 attempts of a command make 3
// dials. With go-redis's own dial retries, which Attach refuses, each
// attempt is 5 dials, 100ms apart.
func TestOneDialPerAttempt(t *testing.T) {
	addr := "127.0.0.1:" + itoa(testserver.FreePort(t))
	for _, tc := range []struct {
		name   string
		opt    *redis.Options
		attach bool
		want   int32
	}{
		{"the documented options, attached", documented(addr), true, 3},
		{"MaxRetries: -1 alone, hooked by hand", &redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true}, false, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb := redis.NewClient(tc.opt)
			defer rdb.Close()
			g := must(presets.RedisConfig().Build())
			if tc.attach {
				if err := Attach(rdb, Config{Guard: g}); err != nil {
					t.Fatal(err)
				}
			} else {
				rdb.AddHook(must(NewHook(Config{Guard: g})))
			}
			d := new(dials)
			rdb.AddHook(d)
			start := time.Now()
			err := rdb.Incr(t.Context(), "counter").Err()
			var op *net.OpError
			if !errors.As(err, &op) || op.Op != "dial" {
				t.Errorf("INCR against a closed port: %v, want the dial error", err)
			}
			if n := d.n.Load(); n != tc.want {
				t.Errorf("%d dials for the guard's 3 attempts, want %d", n, tc.want)
			}
			t.Logf("%s: %d dials in %v", tc.name, d.n.Load(), time.Since(start).Round(time.Millisecond))
		})
	}
}
