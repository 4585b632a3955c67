package devenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RestorablePDS is a dev PDS of one test's own (deploy/dev/private.sh) that
// can be restored from a backup: Snapshot copies its data directory aside,
// Restore puts the copy back. Each stops the PDS for the copy and starts it
// again on the same URL; the PLC directory stays up, so DIDs still resolve.
// Restored, its repos and its sequencer go back to the snapshot: a
// firehose cursor taken since is in its future (FutureCursor).
type RestorablePDS struct {
	*PDS
	cmd *exec.Cmd
	dir string
	n   int // acks seen
}

// NewRestorablePDS starts a private dev PDS, stopped when the test ends.
// It skips under -short, as NeedPDS does.
func NewRestorablePDS(t testing.TB) *RestorablePDS {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the dev PDS (Node): skipped under -short")
	}
	dir := t.TempDir()
	cmd := exec.Command(filepath.Join(scriptDir(), "private.sh"), dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &RestorablePDS{cmd: cmd, dir: dir}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	state := filepath.Join(dir, "state.env")
	Eventually(t, 5*time.Minute, "the private dev PDS up", func() bool {
		env, err := readEnvFile(state)
		if err != nil || env["MOODSYNC_DEV_PDS_URL"] == "" {
			return false
		}
		p.PDS = &PDS{URL: env["MOODSYNC_DEV_PDS_URL"], PLCURL: env["MOODSYNC_DEV_PLC_URL"],
			AdminPassword: env["MOODSYNC_DEV_ADMIN_PASSWORD"], JWTSecret: env["MOODSYNC_DEV_JWT_SECRET"]}
		return p.healthy()
	})
	return p
}

func (p *RestorablePDS) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/xrpc/_health", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}

// Snapshot copies the PDS's data directory aside (the backup).
func (p *RestorablePDS) Snapshot(t testing.TB) { p.cycle(t, syscall.SIGUSR1, "snapshot") }

// Restore puts the copy back: the PDS restored from the backup.
func (p *RestorablePDS) Restore(t testing.TB) { p.cycle(t, syscall.SIGUSR2, "restore") }

func (p *RestorablePDS) cycle(t testing.TB, sig syscall.Signal, what string) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	p.n++
	want := fmt.Sprintf("%s %d", what, p.n)
	Eventually(t, 2*time.Minute, "the private dev PDS "+what, func() bool {
		b, err := os.ReadFile(filepath.Join(p.dir, "state.env.ack"))
		return err == nil && strings.TrimSpace(string(b)) == want && p.healthy()
	})
}
