package resilredis

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/resilience-go/resilience/integrations/internal/testserver"
)

// serverCommands returns the commands the server knows, subcommands as
// "container|subcommand", each with whether the server flags it readonly.
// It reads COMMAND itself: go-redis's Command leaves out the subcommands.
func serverCommands(t *testing.T, rdb *redis.Client) map[string]bool {
	t.Helper()
	reply, err := rdb.Do(t.Context(), "command").Slice()
	if err != nil {
		t.Fatal(err)
	}
	cmds := map[string]bool{}
	var walk func(entry any)
	walk = func(entry any) {
		info, ok := entry.([]any)
		if !ok || len(info) < 3 {
			t.Fatalf("COMMAND: an entry %v, want [name arity flags ...]", entry)
		}
		name, _ := info[0].(string)
		flags, _ := info[2].([]any)
		cmds[strings.ToLower(name)] = slices.Contains(flags, any("readonly"))
		if len(info) > 9 {
			subs, _ := info[9].([]any)
			for _, sub := range subs {
				walk(sub)
			}
		}
	}
	for _, entry := range reply {
		walk(entry)
	}
	return cmds
}

// The table of read-only commands, which decides what may be retried,
// against the server's own flags: every command the server flags
// readonly is in it, and every entry the server knows is flagged readonly
// there, but for the few the server does not flag that only answer
// (PING, TIME...). A container of subcommands (XINFO, OBJECT, MEMORY) is
// read-only through its subcommands: XINFO STREAM is, MEMORY PURGE is not.
func TestReadOnlyTableMatchesTheServer(t *testing.T) {
	srv := testserver.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	defer rdb.Close()
	server := serverCommands(t, rdb)
	if len(server) < 200 {
		t.Fatalf("the server lists %d commands", len(server))
	}
	for name, ro := range server {
		if _, in := readOnly[name]; ro && !in {
			t.Errorf("%s is flagged readonly by the server, and missing from the table", name)
		}
	}
	for name := range readOnly {
		ro, known := server[name]
		switch {
		case !known:
			t.Logf("%s, in the table, is unknown to this server", name)
		case !ro && !slices.Contains(harmless, name):
			t.Errorf("%s is in the table, and not flagged readonly by the server", name)
		}
	}
}

func TestIsReadOnly(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []any
		want bool
	}{
		{[]any{"get", "k"}, true},
		{[]any{"GET", "k"}, true},
		{[]any{"set", "k", "v"}, false},
		{[]any{"sort_ro", "k"}, true},
		{[]any{"sort", "k"}, false},
		{[]any{"lcs", "a", "b"}, true},
		{[]any{"xpending", "s", "g"}, true},
		{[]any{"xinfo", "stream", "s"}, true},
		{[]any{"XINFO", "GROUPS", "s"}, true},
		{[]any{"xinfo", []byte("consumers"), "s", "g"}, true},
		{[]any{"xinfo"}, false},
		{[]any{"object", "encoding", "k"}, true},
		{[]any{"memory", "usage", "k"}, true},
		{[]any{"memory", "purge"}, false},
		{[]any{"xgroup", "create", "s", "g", "$"}, false},
		{[]any{"config", "get", "maxmemory"}, false},
		{[]any{"ping"}, true},
	} {
		if got := isReadOnly(redis.NewCmd(ctx, tc.args...)); got != tc.want {
			t.Errorf("isReadOnly%v = %v, want %v", tc.args, got, tc.want)
		}
	}
}
