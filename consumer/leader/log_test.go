package leader

import (
	"log/slog"
	"os"
	"strings"
	"testing"
)

// devenvLog logs to the test's output with MOODSYNC_TEST_LOG set.
func devenvLog(t testing.TB) *slog.Logger {
	if os.Getenv("MOODSYNC_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
