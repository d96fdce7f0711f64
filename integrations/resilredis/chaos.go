package resilredis

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/resilience-go/resilience"
)

// ChaosHook returns a go-redis hook that injects the faults of chaos into
// commands and pipelines as the network would bring them: add it to the
// client after the guard's Hook (rdb.AddHook(guardHook); rdb.AddHook(
// resilredis.ChaosHook(chaos))), so that it runs inside it, and the guard
// sees a faulted command as one that failed so on the wire: classified by
// IsFailure, retried if read-only, counted by the breaker. With
// ChaosConfig.Err ErrTimeoutFault, a faulted command fails as a read
// time-out does (a net.Error whose Timeout is true); any error of the
// Redis server's or the network's will do. A faulted command waits
// chaos's Latency first; with NoError it is then sent, late. The commands
// go-redis runs to set up a connection (HELLO, CLIENT SETINFO) inside a
// faulted or spared command pass untouched, and do not count toward the
// rate. For a Cluster or Ring client, add it to each node's client inside
// the node's guard hook (a NewClient of your own around AttachCluster's),
// not to the Cluster client, which runs outside them.
func ChaosHook(chaos *resilience.Chaos) redis.Hook { return &chaosHook{chaos: chaos} }

// ErrTimeoutFault is a read time-out for a chaos stage to inject
// (ChaosConfig.Err): it is a net.Error whose Timeout is true, as go-redis
// returns when a reply does not come in time.
var ErrTimeoutFault error = timeoutFault{}

type timeoutFault struct{}

func (timeoutFault) Error() string   { return "resilredis: chaos: read tcp: i/o timeout" }
func (timeoutFault) Timeout() bool   { return true }
func (timeoutFault) Temporary() bool { return true }

var errNilChaos = errors.New("resilredis: ChaosHook: the chaos stage is nil")

type chaosHook struct{ chaos *resilience.Chaos }

// inChaos marks the context of a command a hook is running, the hook its
// value, so that the set-up commands go-redis runs inside it pass
// straight through that hook (and no other).
type inChaos struct{}

func (h *chaosHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *chaosHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(inChaos{}) == h {
			return next(ctx, cmd)
		}
		err := h.run(ctx, func(ctx context.Context) error { return next(ctx, cmd) })
		if err != nil && cmd.Err() == nil {
			cmd.SetErr(err)
		}
		return err
	}
}

func (h *chaosHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if ctx.Value(inChaos{}) == h {
			return next(ctx, cmds)
		}
		err := h.run(ctx, func(ctx context.Context) error { return next(ctx, cmds) })
		if err != nil {
			for _, cmd := range cmds {
				if cmd.Err() == nil {
					cmd.SetErr(err)
				}
			}
		}
		return err
	}
}

func (h *chaosHook) run(ctx context.Context, call func(context.Context) error) error {
	if h.chaos == nil {
		return errNilChaos
	}
	return h.chaos.Run(context.WithValue(ctx, inChaos{}, h), call)
}
