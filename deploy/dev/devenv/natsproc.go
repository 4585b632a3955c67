package devenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/deploy/embedded"
)

// natsChild, set in a test binary's environment, makes it serve NATS
// instead of running tests (ServeNATSIfChild).
const natsChild = "MOODSYNC_TEST_NATS_CHILD_DIR"

// ServeNATSIfChild, called first in a TestMain, turns the test binary into
// an embedded NATS JetStream server when NewNATSProcess started it: it
// prints the URL, serves until its stdin closes (the parent is gone), and
// exits. Otherwise it returns at once.
func ServeNATSIfChild() {
	dir := os.Getenv(natsChild)
	if dir == "" {
		return
	}
	n, err := embedded.StartNATS("127.0.0.1:0", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(n.URL())
	_, _ = io.Copy(io.Discard, os.Stdin)
	n.Close()
	os.Exit(0)
}

// NewNATSProcess starts an embedded NATS JetStream in a child process (the
// test binary itself; its TestMain must call ServeNATSIfChild) for one
// test, and returns its URL: for measurements of the test's own process
// that the server's memory must not blur.
func NewNATSProcess(t testing.TB) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), natsChild+"="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("NATS child process: %v", err)
	}
	return strings.TrimSpace(url)
}
