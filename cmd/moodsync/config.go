package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/whistlegraph/moodsync/deploy/settings"
)

// Config is every setting of moodsync (the table of package settings):
// each has an environment variable MOODSYNC_<NAME> and a flag --<name>; a
// flag wins over the variable, the variable over the default.
type Config struct {
	PDSURL      string
	FirehoseURL string
	PLCURL      string

	MongoURI       string
	MongoDB        string
	EmbedMongoAddr string

	NATSURL       string
	EmbedNATSAddr string

	DataDir  string
	HTTPAddr string

	// AdminToken is the bearer token of the admin routes; AdminTokenFile
	// names a file holding it instead (adminToken reads it).
	AdminToken     string
	AdminTokenFile string

	LogFormat string
	LogLevel  string

	PublishConcurrency int
	VerifyCommits      bool
	DeleteOrphans      bool
	AntiEntropyEvery   time.Duration
	MassDeleteLimit    int
	MassDeleteBreaker  int
	MaxExportBytes     int64

	// AntiEntropyFullEvery is how often the periodic pass reads every
	// repo; the passes between read only those that changed.
	AntiEntropyFullEvery time.Duration
}

// field is the field of Config that holds the setting named name.
func (cfg *Config) field(name string) any {
	switch name {
	case "pds-url":
		return &cfg.PDSURL
	case "firehose-url":
		return &cfg.FirehoseURL
	case "plc-url":
		return &cfg.PLCURL
	case "mongo-uri":
		return &cfg.MongoURI
	case "mongo-db":
		return &cfg.MongoDB
	case "embed-mongo-addr":
		return &cfg.EmbedMongoAddr
	case "nats-url":
		return &cfg.NATSURL
	case "embed-nats-addr":
		return &cfg.EmbedNATSAddr
	case "data-dir":
		return &cfg.DataDir
	case "http-addr":
		return &cfg.HTTPAddr
	case "admin-token":
		return &cfg.AdminToken
	case "admin-token-file":
		return &cfg.AdminTokenFile
	case "log-format":
		return &cfg.LogFormat
	case "log-level":
		return &cfg.LogLevel
	case "publish-concurrency":
		return &cfg.PublishConcurrency
	case "verify-commits":
		return &cfg.VerifyCommits
	case "delete-orphans":
		return &cfg.DeleteOrphans
	case "anti-entropy-every":
		return &cfg.AntiEntropyEvery
	case "anti-entropy-full-every":
		return &cfg.AntiEntropyFullEvery
	case "mass-delete-limit":
		return &cfg.MassDeleteLimit
	case "mass-delete-breaker":
		return &cfg.MassDeleteBreaker
	case "max-export-bytes":
		return &cfg.MaxExportBytes
	}
	panic("no field of Config for setting " + name)
}

// configFlags binds the settings a subcommand uses onto its flag set,
// from the one table (package settings). Help shows each setting's
// variable and built-in default, and where a value set now comes from,
// never the value of a secret; parseFlags applies the command line, then
// the environment.
type configFlags struct {
	fs  *flag.FlagSet
	cfg *Config
}

// add binds the named settings.
func (c configFlags) add(names ...string) {
	for _, name := range names {
		settings.Bind(c.fs, name, c.cfg.field(name))
	}
}

// all binds every setting of the table (the daemon uses them all).
func (c configFlags) all() {
	for _, s := range settings.Table {
		c.add(s.Name)
	}
}

// parseFlags parses a command line, then gives each setting that no flag
// set the value of its environment variable (an empty variable counts as
// unset), else its default. Help (-h) is printed from the table. A flag
// that does not exist, or an argument where none is taken, prints the
// error and the help and exits 2; a value that does not parse stops the
// command with an error naming its flag or variable (and never showing a
// secret one's value).
func parseFlags(fs *flag.FlagSet, args []string) error {
	out := fs.Output()
	fs.SetOutput(io.Discard) // the flag package's own messages; ours follow
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		settings.PrintUsage(out, fs, os.Getenv)
		return err
	case err == nil && fs.NArg() > 0:
		err = fmt.Errorf("unexpected argument %s: this command takes flags only", shownArg(fs.Arg(0)))
		fallthrough
	case err != nil:
		fmt.Fprintf(out, "moodsync %s: %v\n\n", fs.Name(), err)
		settings.PrintUsage(out, fs, os.Getenv)
		return exitError{2}
	}
	return settings.Apply(fs, os.Getenv)
}

// shownArg quotes a stray argument, unless it may be a URL with a
// credential (it has a colon or an "@").
func shownArg(a string) string {
	if strings.ContainsAny(a, ":@") || len(a) > 64 {
		return "(not shown)"
	}
	return strconv.Quote(a)
}

// stores binds the Mongo and NATS settings (and logging), shared by every
// subcommand that touches them.
func (c configFlags) stores() {
	c.add("mongo-uri", "mongo-db", "embed-mongo-addr", "nats-url", "embed-nats-addr", "data-dir")
	c.logging()
}

func (c configFlags) logging() { c.add("log-format", "log-level") }

// pds binds the PDS settings.
func (c configFlags) pds() { c.add("pds-url", "firehose-url", "plc-url") }

// firehoseURL is the configured firehose, or the PDS's own.
func (cfg *Config) firehoseURL() (string, error) {
	if cfg.FirehoseURL != "" {
		return cfg.FirehoseURL, nil
	}
	u, err := url.Parse(cfg.PDSURL)
	if err != nil {
		return "", fmt.Errorf("bad PDS URL: %w", err)
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/xrpc/com.atproto.sync.subscribeRepos"
	return u.String(), nil
}

// maxTokenFileBytes is the most of a token file read: a token is at most
// settings.MaxTokenLen characters, with some white space around it.
const maxTokenFileBytes = 64 << 10

// adminToken is the bearer token of the admin routes: --admin-token, or
// what the file --admin-token-file names holds, without the white space
// around it (a file written by hand ends with a newline); "" when neither
// is set, and then the admin routes are off. An empty file is no token. A
// file that cannot be read, or whose token is not valid, is an error that
// names the file and shows nothing of what it holds.
func (cfg *Config) adminToken() (string, error) {
	switch {
	case cfg.AdminTokenFile == "":
		return cfg.AdminToken, nil
	case cfg.AdminToken != "":
		return "", errors.New("--admin-token ($MOODSYNC_ADMIN_TOKEN) and --admin-token-file ($MOODSYNC_ADMIN_TOKEN_FILE) are both set: give one")
	}
	b, err := readTokenFile(cfg.AdminTokenFile)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if _, err := settings.Token.Parse(tok); err != nil {
		return "", fmt.Errorf("admin token file %s: %v", cfg.AdminTokenFile, err)
	}
	return tok, nil
}

// readTokenFile reads a regular file of at most maxTokenFileBytes (not a
// pipe, which would block, nor a device).
func readTokenFile(path string) ([]byte, error) {
	// Checked before it is opened: opening a pipe waits for a writer.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err == nil && len(b) > maxTokenFileBytes {
		err = fmt.Errorf("%s is larger than %d bytes", path, maxTokenFileBytes)
	}
	return b, err
}
