// Package testserver starts real Redis and PostgreSQL servers on 127.0.0.1
// for the integration tests, each on a free port in a temporary directory,
// and lets a test stop and restart them to inject faults.
//
// A test that cannot find a server's binaries is skipped, except when the
// environment variable CI is set: there a missing server fails the test, so
// that nothing is skipped in CI.
package testserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Missing skips t, or fails it when CI is set, because what is missing
// keeps an integration test from running.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set: integration tests may not be skipped)", msg)
	}
	t.Skip(msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Server is a server process the test controls.
type Server struct {
	t    testing.TB
	name string
	// Addr is the server's host:port on 127.0.0.1.
	Addr string
	cmd  func() *exec.Cmd // a fresh command that runs the server in the foreground
	proc *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	stop os.Signal // the signal that shuts the server down promptly
	// ready, if set, reports whether the server serves, once it accepts
	// connections.
	ready func() bool
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.t.Helper()
	if s.proc != nil {
		s.t.Fatalf("%s: already running", s.name)
	}
	cmd := s.cmd()
	s.log = new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("%s: starting: %v", s.name, err)
	}
	s.proc, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			if s.ready == nil || s.ready() {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("%s: exited while starting: %s", s.name, s.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not accepting connections on %s after 30s: %s", s.name, s.Addr, s.log)
		}
	}
}

// Stop shuts the server down, closing every client connection, and waits
// for it to exit.
func (s *Server) Stop() {
	s.t.Helper()
	if s.proc == nil {
		return
	}
	s.proc.Process.Signal(s.stop)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.proc.Process.Kill()
		<-s.done
	}
	s.proc = nil
}

// Redis starts a redis-server on a free port of 127.0.0.1, with nothing
// persisted, and stops it when the test ends.
func Redis(t testing.TB) *Server {
	t.Helper()
	s := redisServer(t)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// redisServer returns a redis-server, not started, on a free port of
// 127.0.0.1 in a directory of its own, with nothing persisted but what
// extra asks for.
func redisServer(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server not found in PATH")
	}
	dir := t.TempDir()
	port := FreePort(t)
	return &Server{
		t: t, name: "redis-server", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		stop: syscall.SIGTERM,
		cmd: func() *exec.Cmd {
			args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
				"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no"}, extra...)
			return exec.Command(bin, args...)
		},
	}
}

// RedisCluster starts n redis-servers in cluster mode on free ports of
// 127.0.0.1, masters with no replicas, the 16384 slots split among them in
// order (node 0 has the first third of three, and so on), and waits until
// every node sees the cluster whole. It stops them when the test ends.
//
// A stopped node keeps its cluster configuration (its nodes.conf) and
// rejoins when started again. The others go on serving their own slots
// while one is down (cluster-require-full-coverage no), and take 60s to
// call it failed.
func RedisCluster(t testing.TB, n int) []*Server {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		Missing(t, "redis-cli not found in PATH")
	}
	nodes := make([]*Server, n)
	bus := make([]string, n) // each node's cluster bus port
	for i := range nodes {
		bus[i] = strconv.Itoa(FreePort(t))
		s := redisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", bus[i], "--cluster-node-timeout", "60000",
			"--cluster-require-full-coverage", "no")
		s.Start()
		t.Cleanup(s.Stop)
		nodes[i] = s
	}
	run := func(s *Server, args ...string) string {
		t.Helper()
		host, port, _ := net.SplitHostPort(s.Addr)
		out, err := exec.Command(cli, append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
		if err != nil || strings.HasPrefix(string(out), "ERR") {
			t.Fatalf("redis-cli %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for i, s := range nodes {
		first, last := i*16384/n, (i+1)*16384/n-1
		run(s, "cluster", "addslotsrange", strconv.Itoa(first), strconv.Itoa(last))
		if i > 0 {
			host, port, _ := net.SplitHostPort(s.Addr)
			run(nodes[0], "cluster", "meet", host, port, bus[i])
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	known := "cluster_known_nodes:" + strconv.Itoa(n)
	err = WaitFor(ctx, func() bool {
		for _, s := range nodes {
			info := run(s, "cluster", "info")
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, known) ||
				!strings.Contains(info, "cluster_slots_assigned:16384") {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("redis cluster of %d nodes not formed in 60s: %s", n, run(nodes[0], "cluster", "info"))
	}
	return nodes
}

// Postgres is a PostgreSQL server started by the test.
type Postgres struct {
	*Server
	// DSN connects to the server as the superuser, database postgres.
	DSN string
}

// PostgreSQL creates a database cluster in a temporary directory and
// starts a PostgreSQL server for it on a free port of 127.0.0.1, stopping it
// when the test ends. Run as root, the server runs as the postgres user, as
// PostgreSQL requires.
func PostgreSQL(t testing.TB) *Postgres {
	t.Helper()
	bin := postgresBin()
	if bin == "" {
		Missing(t, "PostgreSQL server binaries (initdb, postgres) not found")
	}
	var cred *syscall.Credential
	base := t.TempDir()
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Missing(t, "running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// The server's user must reach its directories.
		for d := base; strings.HasPrefix(d, os.TempDir()) && d != filepath.Dir(d); d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
				os.Chmod(d, fi.Mode().Perm()|0o001)
			}
		}
		if err := os.Chown(base, uid, gid); err != nil {
			t.Fatalf("postgres: %v", err)
		}
	}
	data := filepath.Join(base, "data")
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Dir = base
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	if out, err := command("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v: %s", err, out)
	}
	port := FreePort(t)
	p := &Postgres{
		Server: &Server{
			t: t, name: "postgres", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			stop: syscall.SIGINT, // fast shutdown: ends every session at once
			cmd: func() *exec.Cmd {
				return command("postgres", "-D", data, "-p", strconv.Itoa(port), "-k", base,
					"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200")
			},
		},
		DSN: fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port),
	}
	// PostgreSQL accepts connections before it serves them ("the database
	// system is starting up").
	p.ready = func() bool {
		return exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres").Run() == nil
	}
	p.Start()
	t.Cleanup(p.Stop)
	return p
}

// postgresBin finds the directory of PostgreSQL's server programs.
func postgresBin() string {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := string(bytes.TrimSpace(out))
		if isFile(filepath.Join(dir, "initdb")) {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // the newest first
	for _, dir := range dirs {
		if isFile(filepath.Join(dir, "initdb")) && isFile(filepath.Join(dir, "postgres")) {
			return dir
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// WaitFor polls cond until it is true or ctx ends.
func WaitFor(ctx context.Context, cond func() bool) error {
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("condition not met before the deadline")
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
