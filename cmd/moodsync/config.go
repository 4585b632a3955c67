package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// Config is every setting of moodsync. Each has an environment variable
// MOODSYNC_<NAME> and a flag --<name>; a flag wins over the variable, the
// variable over the default.
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

	LogFormat string
	LogLevel  string

	PublishConcurrency int
	VerifyCommits      bool
	DeleteOrphans      bool
	AntiEntropyEvery   time.Duration
	MassDeleteLimit    int

	// AntiEntropyFullEvery is how often the periodic pass reads every
	// repo; the passes between read only those that changed.
	AntiEntropyFullEvery time.Duration
}

// configFlags binds the settings a subcommand uses onto its flag set. A
// setting's default is always the built-in one, so help text never shows
// the environment (where credentials live); parseFlags applies the
// variables after the command line.
type configFlags struct {
	fs  *flag.FlagSet
	cfg *Config
}

func envName(flagName string) string {
	return "MOODSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// envUsage is the usage of a setting: its text and its variable, which is
// also how parseFlags tells settings from a command's own flags.
func envUsage(name, usage string) string {
	return usage + " ($" + envName(name) + ")"
}

func (c configFlags) str(dst *string, name, def, usage string) {
	c.fs.StringVar(dst, name, def, envUsage(name, usage))
}

func (c configFlags) int(dst *int, name string, def int, usage string) {
	c.fs.IntVar(dst, name, def, envUsage(name, usage))
}

func (c configFlags) bool(dst *bool, name string, def bool, usage string) {
	c.fs.BoolVar(dst, name, def, envUsage(name, usage))
}

func (c configFlags) duration(dst *time.Duration, name string, def time.Duration, usage string) {
	c.fs.DurationVar(dst, name, def, envUsage(name, usage))
}

// parseFlags parses a command line, then gives each setting that no flag
// set the value of its environment variable (an empty variable counts as
// unset). A variable that does not parse is an error that names it but
// not its value, which may be a credential.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		v := os.Getenv(envName(f.Name))
		if v == "" || given[f.Name] || !strings.HasSuffix(f.Usage, envUsage(f.Name, "")) {
			return
		}
		if err := f.Value.Set(v); err != nil {
			want, _ := flag.UnquoteUsage(f)
			if want == "" {
				want = "boolean"
			}
			errs = append(errs, fmt.Errorf("$%s is not a valid %s", envName(f.Name), want))
		}
	})
	return errors.Join(errs...)
}

// stores binds the Mongo and NATS settings (and logging), shared by every
// subcommand that touches them.
func (c configFlags) stores() {
	c.str(&c.cfg.MongoURI, "mongo-uri", "", "MongoDB URI; empty starts an embedded Mongo-wire server")
	c.str(&c.cfg.MongoDB, "mongo-db", "aesthetic", "database holding moods and users")
	c.str(&c.cfg.EmbedMongoAddr, "embed-mongo-addr", "127.0.0.1:27017", "listen address of the embedded Mongo-wire server")
	c.str(&c.cfg.NATSURL, "nats-url", "", "NATS URL; empty starts an embedded NATS JetStream")
	c.str(&c.cfg.EmbedNATSAddr, "embed-nats-addr", "127.0.0.1:4222", "listen address of the embedded NATS server")
	c.str(&c.cfg.DataDir, "data-dir", "./moodsync-data", "where embedded servers keep their files")
	c.logging()
}

func (c configFlags) logging() {
	c.str(&c.cfg.LogFormat, "log-format", "", "log format: json or text (default: text on a terminal, json otherwise)")
	c.str(&c.cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// pds binds the PDS settings.
func (c configFlags) pds() {
	c.str(&c.cfg.PDSURL, "pds-url", "", "PDS base URL for XRPC writes and repo reads (required)")
	c.str(&c.cfg.FirehoseURL, "firehose-url", "", "firehose to follow (default: the PDS's subscribeRepos)")
	c.str(&c.cfg.PLCURL, "plc-url", "https://plc.directory", "did:plc directory for resolving signing keys")
}

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
