package resilredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestZeroValues: a Hook not made by NewHook runs no command, and sets on
// each an error naming NewHook, never a panic; dialing, which the Hook
// does not guard, is passed on unchanged.
func TestZeroValues(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() error
		want bool // an error naming NewHook
	}{{
		name: "Hook.ProcessHook",
		call: func() error {
			cmd := redis.NewStringCmd(ctx, "get", "k")
			err := (&Hook{}).ProcessHook(func(context.Context, redis.Cmder) error {
				return errors.New("the command ran")
			})(ctx, cmd)
			if cmd.Err() != err {
				return fmt.Errorf("the command's error is %v, not the hook's %w", cmd.Err(), err)
			}
			return err
		},
		want: true,
	}, {
		name: "Hook.ProcessPipelineHook",
		call: func() error {
			cmds := []redis.Cmder{redis.NewStringCmd(ctx, "get", "k"), redis.NewStatusCmd(ctx, "set", "k", "v")}
			err := (&Hook{}).ProcessPipelineHook(func(context.Context, []redis.Cmder) error {
				return errors.New("the pipeline ran")
			})(ctx, cmds)
			for _, c := range cmds {
				if c.Err() != err {
					return fmt.Errorf("%s's error is %v, not the hook's %w", c.Name(), c.Err(), err)
				}
			}
			return err
		},
		want: true,
	}, {
		name: "Hook in a client",
		call: func() error {
			rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
			defer rdb.Close()
			rdb.AddHook(&Hook{})
			return rdb.Get(ctx, "k").Err()
		},
		want: true,
	}, {
		name: "Hook.DialHook",
		call: func() error {
			dialed := errors.New("dialed")
			_, err := (&Hook{}).DialHook(func(context.Context, string, string) (net.Conn, error) {
				return nil, dialed
			})(ctx, "tcp", "127.0.0.1:1")
			if err != dialed {
				return fmt.Errorf("dial: %v, want next's own error", err)
			}
			return nil
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := noPanic(t, tc.call)
			if tc.want && (err == nil || !strings.Contains(err.Error(), "NewHook")) {
				t.Errorf("err = %v, want one naming NewHook", err)
			}
			if !tc.want && err != nil {
				t.Error(err)
			}
		})
	}
}

// noPanic runs call, and fails t if it panics.
func noPanic(t *testing.T, call func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("panic: %v", p)
		}
	}()
	return call()
}
