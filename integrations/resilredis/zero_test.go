package resilredis

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestZeroHook: a Hook not made by NewHook runs no command and says why.
func TestZeroHook(t *testing.T) {
	var h Hook
	cmd := redis.NewStringCmd(context.Background(), "get", "k")
	err := h.ProcessHook(func(context.Context, redis.Cmder) error { t.Error("the command ran"); return nil })(context.Background(), cmd)
	if err == nil || !strings.Contains(err.Error(), "NewHook") || cmd.Err() != err {
		t.Errorf("ProcessHook: err %v, cmd.Err %v; want an error naming NewHook on both", err, cmd.Err())
	}
	cmds := []redis.Cmder{redis.NewStringCmd(context.Background(), "get", "k")}
	err = h.ProcessPipelineHook(func(context.Context, []redis.Cmder) error { t.Error("the pipeline ran"); return nil })(context.Background(), cmds)
	if err == nil || cmds[0].Err() == nil {
		t.Errorf("ProcessPipelineHook: err %v, cmd err %v; want an error on both", err, cmds[0].Err())
	}
}
