package resilience

import "context"

// keyCtx is the context key under which WithKey stores a call's key.
type keyCtx struct{}

// WithKey returns a copy of ctx that carries key: the host, shard, tenant
// or node a call goes to, for the stages that keep state per key (a
// KeyedBreaker, a StaleCache). The integrations set it for their calls (a
// resilhttp Transport to the request's scheme, host and port); set it
// yourself for calls of your own:
//
//	ctx = resilience.WithKey(ctx, shard.Addr)
//	rows, err := resilience.Do(ctx, guard, query)
//
// A call made with no key has the key "".
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyCtx{}, key)
}

// KeyFrom returns the key WithKey put in ctx, and whether there was one.
func KeyFrom(ctx context.Context) (string, bool) {
	k, ok := ctx.Value(keyCtx{}).(string)
	return k, ok
}
