package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"strconv"
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
}

// configFlags binds the settings a subcommand uses onto its flag set.
type configFlags struct {
	fs  *flag.FlagSet
	cfg *Config
}

func envName(flagName string) string {
	return "MOODSYNC_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func (c configFlags) str(dst *string, name, def, usage string) {
	if v, ok := os.LookupEnv(envName(name)); ok {
		def = v
	}
	c.fs.StringVar(dst, name, def, usage+" ($"+envName(name)+")")
}

func (c configFlags) int(dst *int, name string, def int, usage string) {
	if v, ok := os.LookupEnv(envName(name)); ok {
		if n, err := strconv.Atoi(v); err == nil {
			def = n
		}
	}
	c.fs.IntVar(dst, name, def, usage+" ($"+envName(name)+")")
}

func (c configFlags) bool(dst *bool, name string, def bool, usage string) {
	if v, ok := os.LookupEnv(envName(name)); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			def = b
		}
	}
	c.fs.BoolVar(dst, name, def, usage+" ($"+envName(name)+")")
}

func (c configFlags) duration(dst *time.Duration, name string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(envName(name)); ok {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		}
	}
	c.fs.DurationVar(dst, name, def, usage+" ($"+envName(name)+")")
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

// redactURL hides credentials in a URL before it is logged. It takes
// lists too (NATS: "nats://u:p@a:4222,nats://u:p@b:4222"; Mongo:
// "mongodb://u:p@a,b,c/"), and hides everything before the "@" of a part it
// cannot parse.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(p)
		switch {
		case err == nil && u.User != nil:
			parts[i] = u.Redacted()
		case err != nil && strings.Contains(p, "@"):
			scheme, _, _ := strings.Cut(p, "://")
			parts[i] = scheme + "://xxxxx@" + p[strings.LastIndex(p, "@")+1:]
		}
	}
	return strings.Join(parts, ",")
}
