package main

import (
	"bytes"
	"context"
	"flag"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runAsMoodsync makes the test binary act as the moodsync binary when a
// test starts it as a child process, so a replica can be killed as a real
// process is (SIGKILL: no shutdown, no lease release, no cursor save).
const runAsMoodsync = "MOODSYNC_TEST_RUN_AS_MOODSYNC"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMoodsync) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// clearEnv unsets every MOODSYNC_ variable for the test, so a developer's
// own settings cannot change flag defaults shown in golden files.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MOODSYNC_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// cliCase is one command line whose exit code and output are checked
// against testdata/name.
type cliCase struct {
	name string
	args []string
	code int
}

func runCLICases(t *testing.T, cases []cliCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Main(context.Background(), c.args, &out, &out)
			if code != c.code {
				t.Errorf("exit code %d, want %d; output:\n%s", code, c.code, out.String())
			}
			golden(t, c.name, out.Bytes())
		})
	}
}

func TestCLIOutputGolden(t *testing.T) {
	clearEnv(t)
	cases := []cliCase{
		{"usage.golden", []string{"--help"}, 0},
		{"no-args.golden", nil, 2},
		{"unknown-command.golden", []string{"frobnicate"}, 2},
		{"run-help.golden", []string{"run", "-h"}, 0},
		{"run-no-pds.golden", []string{"run"}, 1},
		{"publish-help.golden", []string{"publish", "--help"}, 0},
		{"publish-bad-id.golden", []string{"publish", "create", "--user", "auth0|1", "--mood", "xyz"}, 1},
		{"publish-unknown-op.golden", []string{"publish", "zap", "--user", "auth0|1"}, 1},
	}
	runCLICases(t, cases)
}

func TestFirehoseURLFromPDSURL(t *testing.T) {
	for pds, want := range map[string]string{
		"http://127.0.0.1:2583":    "ws://127.0.0.1:2583/xrpc/com.atproto.sync.subscribeRepos",
		"https://pds.example.com":  "wss://pds.example.com/xrpc/com.atproto.sync.subscribeRepos",
		"https://example.com/pds/": "wss://example.com/pds/xrpc/com.atproto.sync.subscribeRepos",
	} {
		cfg := Config{PDSURL: pds}
		got, err := cfg.firehoseURL()
		if err != nil || got != want {
			t.Errorf("firehoseURL(%s) = %s, %v; want %s", pds, got, err, want)
		}
	}
	if got := redactURL("mongodb://app:s3cret@db:27017/x"); strings.Contains(got, "s3cret") {
		t.Errorf("password not redacted: %s", got)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon runs `moodsync run` in-process on embedded defaults (free ports)
// until stop, which is what SIGTERM does: it cancels the context.
type daemon struct {
	t      *testing.T
	env    []string
	logs   syncWriter
	cancel context.CancelFunc
	code   chan int
}

func (d *daemon) start() {
	d.t.Helper()
	for _, kv := range d.env {
		k, v, _ := strings.Cut(kv, "=")
		d.t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	d.code = make(chan int, 1)
	d.t.Cleanup(func() {
		if d.t.Failed() {
			d.t.Logf("the daemon's log:\n%s", d.logs.String())
		}
	})
	cmd := &runCommand{stdout: &d.logs, stderr: &d.logs, ready: make(chan struct{})}
	go func() {
		err := cmd.Run(ctx, nil)
		code := 0
		if err != nil {
			d.t.Logf("run: %v", err)
			code = 1
		}
		d.code <- code
	}()
	select {
	case <-cmd.ready:
	case <-d.code:
		d.t.Fatalf("daemon exited during start:\n%s", d.logs.String())
	case <-time.After(60 * time.Second):
		d.t.Fatal("daemon not ready within 60s")
	}
}

func (d *daemon) stop() int {
	d.cancel()
	select {
	case code := <-d.code:
		return code
	case <-time.After(60 * time.Second):
		d.t.Fatal("daemon did not stop within 60s")
		return -1
	}
}
