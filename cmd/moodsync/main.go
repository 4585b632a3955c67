// Command moodsync keeps an app's MongoDB moods and its users' ATProto
// repos in agreement. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/term"
)

// Version is set at build time (-ldflags "-X main.Version=…").
var Version = "dev"

// command is one subcommand.
type command interface {
	Run(ctx context.Context, args []string) error
}

// exitError carries a specific exit code (audit --fail-on-drift).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func commands(stdout, stderr io.Writer) map[string]command {
	return map[string]command{
		"run":      &runCommand{stdout: stdout, stderr: stderr},
		"publish":  &publishCommand{stdout: stdout, stderr: stderr},
		"dead":     &deadCommand{stdout: stdout, stderr: stderr, stdin: os.Stdin},
		"status":   &statusCommand{stdout: stdout, stderr: stderr},
		"audit":    &auditCommand{stdout: stdout, stderr: stderr},
		"backfill": &backfillCommand{stdout: stdout, stderr: stderr},
		"cleanup":  &cleanupCommand{stdout: stdout, stderr: stderr},
		"purge":    &purgeCommand{stdout: stdout, stderr: stderr},
		"restore":  &restoreCommand{stdout: stdout, stderr: stderr},
		"version":  &versionCommand{stdout: stdout},
	}
}

const usage = `moodsync keeps MongoDB moods and ATProto repos in agreement.

Usage:

	moodsync <command> [arguments]

The commands are:

	run        run the daemon: publisher, firehose consumer, HTTP
	audit      compare Mongo and the PDS for users and report drift
	backfill   write records for live moods that have none
	cleanup    delete orphaned and duplicate records, resolve stale rkeys
	purge      erase every mood of a user on both sides
	restore    bring lost moods back into Mongo from their records
	publish    publish an intent by hand
	dead       list, replay or drop dead-lettered intents
	status     what moodsync knows of one user
	version    print the version

Every setting is an environment variable MOODSYNC_<NAME> with a matching
flag --<name>. Use "moodsync <command> -h" for a command's settings.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Main runs a command line and returns the exit code. Whatever it writes
// to stderr (logs, errors) goes through hideSecrets.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	stderr = hideSecrets(stderr, args, os.Getenv)
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands(stdout, stderr)[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "moodsync: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd.Run(ctx, args[1:])
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		// One line each: a command may fail for several reasons at once
		// (every setting that does not parse).
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "moodsync %s: %s\n", args[0], line)
		}
		return 1
	}
}

// newLogger builds the slog logger: JSON by default, text on a terminal.
func newLogger(cfg *Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("bad log level %q", cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad log format %q: want json or text", format)
}
