package resilredis

import (
	"errors"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// AttachCluster guards each node of the Cluster client that opt will make:
// it sets opt.NewClient so that every node's client, as the Cluster client
// makes it, carries a Hook for cfg keyed by the node's address. Call it
// before redis.NewClusterClient(opt):
//
//	opt := &redis.ClusterOptions{
//		Addrs:                 addrs,
//		DialerRetries:         1,
//		ContextTimeoutEnabled: true,
//	}
//	p := presets.RedisConfig()
//	p.BreakerPerKey = &resilience.KeyedBreakerConfig{}
//	guard, err := p.Build()
//	...
//	if err := resilredis.AttachCluster(opt, resilredis.Config{Guard: guard}); err != nil {
//		...
//	}
//	rdb := redis.NewClusterClient(opt)
//
// With a guard whose breaker is per key (Preset.BreakerPerKey, a
// *resilience.KeyedBreaker), each node has its own breaker: a node that
// fails opens its breaker alone, and the commands for the slots of the
// others go on as before. Its ejection cap bounds how many nodes' breakers
// may be open at once. With a guard of one breaker, every node shares it.
//
// The hooks run inside the Cluster client's routing: each command is
// guarded on the node it is sent to, with that node's breaker, and the
// cluster-state reloads (CLUSTER SLOTS) are guarded too. The Cluster
// client's own loop, which follows MOVED and ASK redirects, also sends a
// command that failed on the network once more, to the same node and then
// another, up to MaxRedirects times (3 by default): each of those is a
// guarded call of its own, retries and all. A rejection by an open breaker
// is not one it sends again. Keep MaxRedirects low, or the guard's
// retries few, where the product matters; the guard's retry budget bounds
// its share.
//
// That resend is go-redis's own, with or without a hook, and it covers
// writes: a write that failed on the network (EOF, a time-out, a reset)
// may have been applied, and the Cluster client sends it again whatever
// Config.RetryWrites says, which governs the guard's retries alone. No
// hook can turn it off: the Cluster client looks through any error it is
// handed, and MaxRedirects -1, which would, also stops it following MOVED
// and ASK. Make such writes idempotent (SET rather than INCR, a token in
// a Lua script), or leave them out of a Cluster client.
//
// AttachCluster refuses options that leave go-redis retrying on its own
// inside a node's call or deaf to deadlines (MaxRetries above 0,
// DialerRetries other than 1, ContextTimeoutEnabled false, as Attach does
// for one client), and a Config with a Key: each node's key is its
// address. Add no Hook to the Cluster client itself as well: each command
// would be guarded twice.
func AttachCluster(opt *redis.ClusterOptions, cfg Config) error {
	if opt == nil {
		return errors.New("resilredis: AttachCluster: the options are nil")
	}
	var bad []string
	if opt.MaxRetries > 0 {
		bad = append(bad, "ClusterOptions.MaxRetries is "+strconv.Itoa(opt.MaxRetries)+
			": go-redis retries failed commands itself, under the guard's retry; leave it 0 or set -1")
	}
	bad = appendNodeChecks(bad, "ClusterOptions", opt.DialerRetries, opt.ContextTimeoutEnabled)
	newClient, err := nodeClients("AttachCluster", cfg, opt.NewClient, bad)
	if err != nil {
		return err
	}
	opt.NewClient = newClient
	return nil
}

// AttachRing guards each shard of the Ring client that opt will make, as
// AttachCluster does each node of a Cluster: every shard's client carries
// a Hook for cfg keyed by the shard's address, so that with a breaker per
// key a failing shard opens its own breaker alone. Call it before
// redis.NewRing(opt).
//
// The Ring's heartbeat (a PING to each shard, every HeartbeatFrequency) is
// guarded too: while a shard's breaker is open its pings are rejected, and
// the Ring takes the shard out of its hash after a few of them, moving its
// keys to the others, as it would for a shard that is down.
//
// AttachRing refuses options that leave go-redis retrying on its own
// (RingOptions.MaxRetries must be -1: 0 means 3, and the Ring's loop
// retries a failed command, under the guard's retry), dialing again
// (DialerRetries other than 1) or deaf to deadlines (ContextTimeoutEnabled
// false), and a Config with a Key: each shard's key is its address.
func AttachRing(opt *redis.RingOptions, cfg Config) error {
	if opt == nil {
		return errors.New("resilredis: AttachRing: the options are nil")
	}
	var bad []string
	if opt.MaxRetries != -1 {
		bad = append(bad, "RingOptions.MaxRetries is "+strconv.Itoa(opt.MaxRetries)+
			" (0 means 3): the Ring retries failed commands itself, under the guard's retry; set MaxRetries: -1")
	}
	bad = appendNodeChecks(bad, "RingOptions", opt.DialerRetries, opt.ContextTimeoutEnabled)
	newClient, err := nodeClients("AttachRing", cfg, opt.NewClient, bad)
	if err != nil {
		return err
	}
	opt.NewClient = newClient
	return nil
}

// appendNodeChecks adds to bad what is wrong with the options a Cluster or
// Ring passes on to the client of each of its nodes.
func appendNodeChecks(bad []string, typ string, dialerRetries int, contextTimeout bool) []string {
	if dialerRetries != 1 {
		bad = append(bad, typ+".DialerRetries is "+strconv.Itoa(dialerRetries)+
			" (0 and negative mean 5): go-redis dials again itself, under the guard's retry; set DialerRetries: 1")
	}
	if !contextTimeout {
		bad = append(bad, typ+".ContextTimeoutEnabled is false: go-redis ignores the deadlines of the guard's time limits; set it to true")
	}
	return bad
}

// nodeClients returns a NewClient for a Cluster's or Ring's options that
// makes each node's client with next (redis.NewClient if nil) and adds to
// it a Hook for cfg keyed by the node's address; or an error naming what
// is wrong with cfg, and bad, what is wrong with the options.
func nodeClients(fn string, cfg Config, next func(*redis.Options) *redis.Client, bad []string) (func(*redis.Options) *redis.Client, error) {
	if cfg.Key != "" {
		bad = append(bad, "Config.Key is "+strconv.Quote(cfg.Key)+": each node's key is its address; leave Key empty")
	}
	if _, err := NewHook(cfg); err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, errors.New("resilredis: " + fn + ": " + strings.Join(bad, "; "))
	}
	if next == nil {
		next = redis.NewClient
	}
	return func(opt *redis.Options) *redis.Client {
		rdb := next(opt)
		node := cfg
		node.Key = opt.Addr
		hook, _ := NewHook(node) // cannot fail: cfg was checked above
		rdb.AddHook(hook)
		return rdb
	}, nil
}
