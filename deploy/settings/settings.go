// Package settings is moodsync's one table of settings. Each setting is an
// environment variable MOODSYNC_<NAME> with a matching flag --<name>, a
// built-in default, a help text, a kind that parses and checks its value,
// and whether the value may carry a credential. Every command binds its
// settings from this table (Bind), applies the command line, then the
// environment, then the default (Apply), and prints its help from it
// (PrintUsage); the deploy checks (deploy/deploy_test.go) read it too.
//
// A value that does not parse stops the command at start with an error
// naming the variable or flag it came from. No error and no help text ever
// shows the value of a secret setting: the parsers' messages never quote
// their input, and only values of settings that are not secret are quoted
// beside them.
package settings

import (
	"strings"
)

// Setting is one row of the table.
type Setting struct {
	// Name is the flag's name (--pds-url); the variable is derived from it.
	Name string
	// Env is the environment variable: MOODSYNC_ and the name in upper
	// case, dashes as underscores.
	Env string
	// Default is the built-in value, as it would be written in the
	// variable ("" for none).
	Default string
	// Help says what the setting is, for help text.
	Help string
	// Secret marks a value that may carry a credential (URLs with user
	// info, tokens, passwords in options): it is never shown, only said to
	// be set. Log lines show it through the redaction of cmd/moodsync.
	Secret bool
	// SecretFile marks a value that names a file whose contents are a
	// secret (--admin-token-file): the path is shown, the contents never.
	SecretFile bool
	// Kind parses and checks the value.
	Kind Kind
}

// Table is every setting of moodsync, sorted by name. Commands bind the
// ones they use; `run` binds them all.
var Table = []Setting{
	{Name: "admin-token", Kind: Token, Secret: true,
		Help: "bearer token of the admin routes (/v1/…) on the HTTP port; empty (and no --admin-token-file): the admin routes are off (404)"},
	{Name: "admin-token-file", Kind: File, SecretFile: true,
		Help: "file holding the admin token (a Kubernetes, Docker or systemd secret), read at start instead of --admin-token"},
	{Name: "anti-entropy-every", Kind: Duration, Default: "24h",
		Help: "how often every user is compared; 0 turns it off"},
	{Name: "anti-entropy-full-every", Kind: Duration, Default: "168h",
		Help: "how often the periodic pass reads every repo; between, it reads only those whose rev or moods changed since their last clean pass; 0: every pass"},
	{Name: "data-dir", Kind: Path, Default: "./moodsync-data",
		Help: "where embedded servers keep their files"},
	{Name: "delete-orphans", Kind: Bool, Default: "true",
		Help: "delete records whose mood is soft-deleted (a record whose mood is missing from MongoDB is a lost mood: always kept)"},
	{Name: "embed-mongo-addr", Kind: Addr, Default: "127.0.0.1:27017",
		Help: "listen address of the embedded Mongo-wire server"},
	{Name: "embed-nats-addr", Kind: Addr, Default: "127.0.0.1:4222",
		Help: "listen address of the embedded NATS server"},
	{Name: "firehose-url", Kind: WebSocketURL, Secret: true,
		Help: "firehose to follow (empty: the PDS's own subscribeRepos)"},
	{Name: "http-addr", Kind: Addr, Default: "127.0.0.1:9464",
		Help: "listen address of /metrics, /healthz, /readyz and, with an admin token, the admin route /v1/users/{sub}"},
	{Name: "log-format", Kind: LogFormat,
		Help: "log format: json or text (empty: text on a terminal, json otherwise)"},
	{Name: "log-level", Kind: LogLevel, Default: "info",
		Help: "log level: debug, info, warn, error"},
	{Name: "mass-delete-breaker", Kind: Count(0), Default: "100",
		Help: "most soft deletes for missing records whole-user passes make in an hour, across all users; past it every further one is held until an operator releases them (0: no bound)"},
	{Name: "mass-delete-limit", Kind: Count(0), Default: "10",
		Help: "most moods of one user a whole-user pass soft-deletes because their records are missing; over it, none are"},
	{Name: "max-export-bytes", Kind: Bytes, Default: "64MiB",
		Help: "largest repo export read whole; a larger repo's moods are read page by page instead"},
	{Name: "mongo-db", Kind: DatabaseName, Default: "aesthetic",
		Help: "database holding moods and users"},
	{Name: "mongo-uri", Kind: MongoURI, Secret: true,
		Help: "MongoDB URI; empty: the embedded Mongo-wire server (run starts it; other commands use a running daemon's, or start one)"},
	{Name: "nats-url", Kind: NATSURL, Secret: true,
		Help: "NATS server URLs, comma-separated; empty: the embedded NATS JetStream (run starts it; other commands use a running daemon's, or start one)"},
	{Name: "pds-url", Kind: HTTPURL, Secret: true,
		Help: "PDS base URL for XRPC writes and repo reads (required)"},
	{Name: "plc-url", Kind: HTTPURL, Secret: true, Default: "https://plc.directory",
		Help: "did:plc directory for resolving signing keys"},
	{Name: "publish-concurrency", Kind: Count(1), Default: "4",
		Help: "users whose intents are applied at once"},
	{Name: "verify-commits", Kind: Bool, Default: "true",
		Help: "verify firehose commit signatures and MST inversion"},
}

func init() {
	for i := range Table {
		Table[i].Env = EnvName(Table[i].Name)
	}
}

// EnvName is the variable of a flag name: mongo-uri → MOODSYNC_MONGO_URI.
func EnvName(name string) string {
	return "MOODSYNC_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Lookup returns the setting with this flag name, or nil.
func Lookup(name string) *Setting {
	for i := range Table {
		if Table[i].Name == name {
			return &Table[i]
		}
	}
	return nil
}

// ByEnv returns the setting with this variable, or nil.
func ByEnv(env string) *Setting {
	for i := range Table {
		if Table[i].Env == env {
			return &Table[i]
		}
	}
	return nil
}

// Check parses v as a value of the setting and reports what is wrong
// with it, naming the variable (and quoting v only when the setting is not
// secret). The deploy checks use it on the values deployment files set.
func (s *Setting) Check(v string) error {
	_, err := s.parse(v, FromEnv)
	return err
}
