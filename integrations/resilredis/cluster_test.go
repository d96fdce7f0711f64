package resilredis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
	"github.com/resilience-go/resilience/presets"
)

// keyedRedisGuard returns a Redis preset guard with a breaker per key that
// opens after 3 failures in a row and probes after OpenTimeout, no retry.
func keyedRedisGuard(t *testing.T, open time.Duration) *resilience.Guard {
	t.Helper()
	p := presets.RedisConfig()
	p.Retry, p.RetryBudget = nil, nil
	p.Breaker.FailureThreshold = 3
	p.Breaker.OpenTimeout = open
	p.BreakerPerKey = &resilience.KeyedBreakerConfig{}
	return must(p.Build())
}

// keysPerNode returns, for each node of a cluster of n made by
// testserver.RedisCluster, some keys whose slots it serves.
func keysPerNode(t *testing.T, rdb *redis.ClusterClient, n, each int) [][]string {
	t.Helper()
	keys := make([][]string, n)
	for i := 0; ; i++ {
		k := "key" + strconv.Itoa(i)
		slot, err := rdb.ClusterKeySlot(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		node := n - 1
		for int(slot) < node*16384/n {
			node--
		}
		if len(keys[node]) < each {
			keys[node] = append(keys[node], k)
		}
		done := true
		for _, ks := range keys {
			done = done && len(ks) == each
		}
		if done {
			return keys
		}
	}
}

// Against three redis-servers in cluster mode, with one breaker per node:
// when one node stops, the commands for its slots fail and, after the
// threshold, are rejected at once by its breaker alone; the commands for
// the other nodes' slots see no failure and no rejection. Once the node is
// back and its breaker has probed, its commands succeed again.
func TestClusterBreakerPerNode(t *testing.T) {
	nodes := testserver.RedisCluster(t, 3)
	g := keyedRedisGuard(t, 200*time.Millisecond)
	opt := &redis.ClusterOptions{
		Addrs: []string{nodes[0].Addr}, DialerRetries: 1, ContextTimeoutEnabled: true,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second,
	}
	if err := AttachCluster(opt, Config{Guard: g}); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClusterClient(opt)
	t.Cleanup(func() { rdb.Close() })
	keys := keysPerNode(t, rdb, 3, 10)
	for _, ks := range keys {
		for _, k := range ks {
			if err := rdb.Set(t.Context(), k, "v", 0).Err(); err != nil {
				t.Fatalf("SET %s: %v", k, err)
			}
		}
	}
	kb := g.KeyedBreaker()
	for _, s := range nodes {
		if _, ok := kb.Lookup(s.Addr); !ok {
			t.Fatalf("no breaker for node %s; keys %v", s.Addr, kb.Keys())
		}
	}
	before := counts(kb)

	down := nodes[2]
	down.Stop()
	var failed, rejected int
	for round := range 5 {
		for i, ks := range keys {
			for _, k := range ks {
				v, err := rdb.Get(t.Context(), k).Result()
				switch {
				case i != 2 && (err != nil || v != "v"):
					t.Errorf("round %d: GET %s on a healthy node: %q, %v", round, k, v, err)
				case i == 2 && err == nil:
					t.Errorf("round %d: GET %s on the stopped node succeeded", round, k)
				case i == 2 && errors.Is(err, resilience.ErrOpen):
					rejected++
				case i == 2:
					failed++
				}
			}
		}
	}
	// The Cluster client sends a command that failed on the network again
	// (up to MaxRedirects times), each a guarded call: the stopped node's
	// breaker opens on its third failure, within the first command or two,
	// and the Cluster's next try of it, like every later command, is
	// rejected at once.
	t.Logf("the stopped node's 50 commands: %d rejected by its breaker, %d failed", rejected, failed)
	if rejected < 40 || failed > 10 {
		t.Errorf("the stopped node's commands: %d rejected, %d failed; want the breaker to reject all but the first few", rejected, failed)
	}
	b, _ := kb.Lookup(down.Addr)
	if s := b.State(); s == resilience.Closed {
		t.Errorf("the stopped node's breaker is %v, want open", s)
	}
	for _, s := range nodes[:2] {
		b, _ := kb.Lookup(s.Addr)
		if st := b.State(); st != resilience.Closed {
			t.Errorf("healthy node %s: breaker %v, want closed", s.Addr, st)
		}
	}
	after := counts(kb)
	for _, s := range nodes[:2] {
		// A healthy node's counts grew by its successes alone.
		if b, a := before[s.Addr], after[s.Addr]; a["failure"] != b["failure"] || a["rejected"] != 0 || a["success"] <= b["success"] {
			t.Errorf("healthy node %s: %v before, %v after; want successes alone added", s.Addr, b, a)
		}
	}

	down.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Nothing was persisted: the node answers that the key is missing.
	err := testserver.WaitFor(ctx, func() bool {
		return rdb.Get(ctx, keys[2][0]).Err() == redis.Nil && b.State() == resilience.Closed
	})
	if err != nil {
		t.Fatalf("the restarted node's commands do not succeed again: breaker %v", b.State())
	}
}

// counts returns each key's call counts by result.
func counts(kb *resilience.KeyedBreaker) map[string]map[string]uint64 {
	out := map[string]map[string]uint64{}
	for _, ks := range kb.Keys() {
		out[ks.Key] = map[string]uint64{}
		for _, c := range ks.Calls {
			out[ks.Key][c.Result] = c.N
		}
	}
	return out
}

// A Ring with one breaker per shard: a stopped shard's commands are
// rejected by its breaker alone, the other shards' commands go on.
func TestRingBreakerPerShard(t *testing.T) {
	shards := map[string]string{}
	var servers []*testserver.Server
	for i := range 3 {
		s := testserver.Redis(t)
		servers = append(servers, s)
		shards["shard"+strconv.Itoa(i)] = s.Addr
	}
	g := keyedRedisGuard(t, time.Minute)
	opt := &redis.RingOptions{
		Addrs: shards, MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true,
		HeartbeatFrequency: time.Hour, // the Ring keeps the shard in its hash: only the breaker acts
	}
	if err := AttachRing(opt, Config{Guard: g}); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewRing(opt)
	t.Cleanup(func() { rdb.Close() })
	// Which shard holds a key: write it through the Ring, then look on
	// each server.
	direct := map[string]*redis.Client{}
	for _, s := range servers {
		c := redis.NewClient(&redis.Options{Addr: s.Addr})
		t.Cleanup(func() { c.Close() })
		direct[s.Addr] = c
	}
	on := map[string][]string{}
	for i := range 60 {
		k := "key" + strconv.Itoa(i)
		if err := rdb.Set(t.Context(), k, "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		for addr, c := range direct {
			if c.Exists(t.Context(), k).Val() == 1 {
				on[addr] = append(on[addr], k)
			}
		}
	}
	down := servers[1]
	if len(on[down.Addr]) < 5 {
		t.Fatalf("keys per shard %v: too few on %s", on, down.Addr)
	}
	down.Stop()
	rejected := 0
	for addr, ks := range on {
		for _, k := range ks {
			err := rdb.Get(t.Context(), k).Err()
			switch {
			case addr != down.Addr && err != nil:
				t.Errorf("GET %s on a healthy shard: %v", k, err)
			case addr == down.Addr && errors.Is(err, resilience.ErrOpen):
				rejected++
			case addr == down.Addr && err == nil:
				t.Errorf("GET %s on the stopped shard succeeded", k)
			}
		}
	}
	if want := len(on[down.Addr]) - 3; rejected != want {
		t.Errorf("%d of the stopped shard's %d commands rejected, want all but the first 3", rejected, len(on[down.Addr]))
	}
	for _, ks := range g.KeyedBreaker().Keys() {
		if (ks.Key == down.Addr) != (ks.State == resilience.Open) {
			t.Errorf("shard %s: breaker %v", ks.Key, ks.State)
		}
	}
}

// AttachCluster and AttachRing refuse options that let go-redis retry or
// dial again on its own, or ignore deadlines, and a Config with a Key,
// naming each; they change nothing then.
func TestAttachClusterChecks(t *testing.T) {
	g := keyedRedisGuard(t, time.Second)
	ok := redis.ClusterOptions{DialerRetries: 1, ContextTimeoutEnabled: true}
	for _, tc := range []struct {
		name string
		opt  redis.ClusterOptions
		cfg  Config
		want []string
	}{
		{"go-redis's defaults", redis.ClusterOptions{}, Config{Guard: g}, []string{"DialerRetries", "ContextTimeoutEnabled"}},
		{"MaxRetries 2", redis.ClusterOptions{MaxRetries: 2, DialerRetries: 1, ContextTimeoutEnabled: true}, Config{Guard: g}, []string{"MaxRetries"}},
		{"a Key", ok, Config{Guard: g, Key: "k"}, []string{"Config.Key"}},
		{"no guard", ok, Config{}, []string{"Guard"}},
		{"the documented options", ok, Config{Guard: g}, nil},
	} {
		opt := tc.opt
		err := AttachCluster(&opt, tc.cfg)
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to name %s", tc.name, err, w)
			}
		}
		if (opt.NewClient != nil) != (err == nil) {
			t.Errorf("%s: NewClient set %v with error %v", tc.name, opt.NewClient != nil, err)
		}
	}
	for _, tc := range []struct {
		name string
		opt  redis.RingOptions
		want []string
	}{
		{"go-redis's defaults", redis.RingOptions{}, []string{"MaxRetries", "DialerRetries", "ContextTimeoutEnabled"}},
		{"the documented options", redis.RingOptions{MaxRetries: -1, DialerRetries: 1, ContextTimeoutEnabled: true}, nil},
	} {
		opt := tc.opt
		err := AttachRing(&opt, Config{Guard: g})
		if (err == nil) != (tc.want == nil) {
			t.Errorf("ring, %s: %v", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ring, %s: %v, want it to name %s", tc.name, err, w)
			}
		}
	}
	if AttachCluster(nil, Config{Guard: g}) == nil || AttachRing(nil, Config{Guard: g}) == nil {
		t.Error("nil options accepted")
	}
}

// A blocking command through a keyed guard waits for its own key's
// breaker to close, not for another key's.
func TestBlockingCommandsWaitForTheirKeysBreaker(t *testing.T) {
	srv := testserver.Redis(t)
	g := keyedRedisGuard(t, time.Minute)
	for range 3 {
		p, err := g.KeyedBreaker().Breaker("other").Allow(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		p.Done(errors.New("down"))
	}
	for _, tc := range []struct {
		key     string
		refused bool
	}{{"other", true}, {srv.Addr, false}} {
		hook := must(NewHook(Config{Guard: g, Key: tc.key}))
		rdb := redis.NewClient(documented(srv.Addr))
		t.Cleanup(func() { rdb.Close() })
		rdb.AddHook(hook)
		err := rdb.BLPop(t.Context(), 50*time.Millisecond, "empty").Err()
		if tc.refused != errors.Is(err, resilience.ErrRejected) || !tc.refused && err != redis.Nil {
			t.Errorf("BLPOP with key %q: %v, want refused %v", tc.key, err, tc.refused)
		}
	}
}
