package settings

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestTableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for i, s := range Table {
		if seen[s.Name] {
			t.Errorf("%s twice", s.Name)
		}
		seen[s.Name] = true
		if i > 0 && Table[i-1].Name > s.Name {
			t.Errorf("%s out of order", s.Name)
		}
		if s.Env != EnvName(s.Name) || ByEnv(s.Env) != &Table[i] || Lookup(s.Name) != &Table[i] {
			t.Errorf("%s: variable %q not found back", s.Name, s.Env)
		}
		if s.Help == "" || s.Kind.parse == nil {
			t.Errorf("%s: no help or no kind", s.Name)
		}
		if _, err := s.Kind.Parse(s.Default); err != nil && s.Default != "" {
			t.Errorf("%s: default %q does not parse: %v", s.Name, s.Default, err)
		}
	}
}

func TestKinds(t *testing.T) {
	cases := []struct {
		kind Kind
		good map[string]any
		bad  []string
	}{
		{Bool, map[string]any{"true": true, "false": false, "0": false}, []string{"flase", "yes", ""}},
		{Duration, map[string]any{"24h": 24 * time.Hour, "0": time.Duration(0), "90s": 90 * time.Second}, []string{"1d", "-1h", "soon", ""}},
		{Bytes, map[string]any{"64MiB": int64(64 << 20), "1048576": int64(1 << 20), "500 KB": int64(500_000)}, []string{"0", "lots", "-1", "64XB", ""}},
		{Count(1), map[string]any{"4": 4}, []string{"0", "four", "1.5", ""}},
		{Count(0), map[string]any{"0": 0, "10": 10}, []string{"-1"}},
		{Addr, map[string]any{"127.0.0.1:4222": "127.0.0.1:4222", ":0": ":0", "[::1]:9464": "[::1]:9464"}, []string{"localhost", "host:port", "h:70000", ""}},
		{Path, map[string]any{"./data": "./data"}, []string{"", "  "}},
		{File, map[string]any{"": "", "/run/secrets/admin-token": "/run/secrets/admin-token"}, []string{" ", "\n"}},
		{Token, map[string]any{"": "", strings.Repeat("a", 16): strings.Repeat("a", 16), "0123456789abcdef0123456789abcdef": "0123456789abcdef0123456789abcdef", "A-b_c.d~e+f/g=h:1": "A-b_c.d~e+f/g=h:1"},
			[]string{"s3cret", strings.Repeat("a", 15), strings.Repeat("a", 1025), "0123456789abcdef 0123", "0123456789abcdef\n", "0123456789abcdefé"}},
		{DatabaseName, map[string]any{"aesthetic": "aesthetic"}, []string{"", "a/b", "a.b", "a b", strings.Repeat("d", 64)}},
		{LogFormat, map[string]any{"": "", "json": "json", "text": "text"}, []string{"xml"}},
		{LogLevel, map[string]any{"debug": "debug", "WARN": "WARN", "info+2": "info+2"}, []string{"loud", ""}},
		{HTTPURL, map[string]any{"": "", "https://pds.example.com": "https://pds.example.com", "http://127.0.0.1:2583/": "http://127.0.0.1:2583/"},
			[]string{"pds.example.com", "ftp://x.example.com", "https://", "http://h:port"}},
		{WebSocketURL, map[string]any{"wss://relay.example.com/xrpc/com.atproto.sync.subscribeRepos": "wss://relay.example.com/xrpc/com.atproto.sync.subscribeRepos"},
			[]string{"https://relay.example.com"}},
		{NATSURL, map[string]any{
			"nats://a:4222":                     "nats://a:4222",
			"a:4222, b:4222":                    "a:4222, b:4222",
			"tls://u:p@a:4222,tls://u:p@b:4222": "tls://u:p@a:4222,tls://u:p@b:4222",
			"wss://a:443,wss://b:443":           "wss://a:443,wss://b:443",
			"nats://u:p%2C%40%3A%25w@a":         "nats://u:p%2C%40%3A%25w@a",
			"nats://SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY@a": "nats://SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY@a",
		}, []string{"nats://a:port", "http://a:4222", "nats://a,wss://b", "nats://u:p%zz@a"}},
		{MongoURI, map[string]any{
			"": "",
			"mongodb://u:p%2C%40%3A%25w@a:1,b:2,c/db?replicaSet=rs0&authSource=admin": "mongodb://u:p%2C%40%3A%25w@a:1,b:2,c/db?replicaSet=rs0&authSource=admin",
			"mongodb+srv://u:p@cluster0.example.com/?srvMaxHosts=2&retryWrites=true":  "mongodb+srv://u:p@cluster0.example.com/?srvMaxHosts=2&retryWrites=true",
		}, []string{"postgres://u:p@db/", "mongodb://u:p%zz@db/", "mongodb://u:p@ss@db/", "mongodb://db/?connectTimeoutMS=soon",
			"mongodb+srv://u:p@cluster0.example.com:27017/", "mongodb+srv://u:p@a.example.com,b.example.com/"}},
	}
	for _, c := range cases {
		for in, want := range c.good {
			got, err := c.kind.Parse(in)
			if err != nil || got != want {
				t.Errorf("%s %q = %v, %v; want %v", c.kind.Name, in, got, err, want)
			}
		}
		for _, in := range c.bad {
			if _, err := c.kind.Parse(in); err == nil {
				t.Errorf("%s %q accepted", c.kind.Name, in)
			}
		}
	}
}

// TestErrorsNameTheSourceAndShowNoSecret: a bad value is reported with
// the flag or variable it came from; a secret setting's value (and what
// the parsers would quote of it) never appears.
func TestErrorsNameTheSourceAndShowNoSecret(t *testing.T) {
	var uri, level string
	var orphans bool
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	Bind(fs, "mongo-uri", &uri)
	Bind(fs, "log-level", &level)
	Bind(fs, "delete-orphans", &orphans)
	if err := fs.Parse([]string{"--mongo-uri", "mongodb://moodsync:s3cret%zz@db/?tlsCertificateKeyFilePassword=s3cret"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MOODSYNC_LOG_LEVEL": "loud", "MOODSYNC_DELETE_ORPHANS": "flase"}
	err := Apply(fs, func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("bad values accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		"--mongo-uri (command line), value not shown: not a valid MongoDB URI: ",
		`$MOODSYNC_LOG_LEVEL (environment): "loud" is not a valid log level`,
		`$MOODSYNC_DELETE_ORPHANS (environment): "flase" is not a valid boolean`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "%zz") {
		t.Errorf("a secret shown:\n%s", msg)
	}

	// A MongoDB error still names the option it is about.
	err = (&Setting{Name: "mongo-uri", Env: "MOODSYNC_MONGO_URI", Secret: true, Kind: MongoURI}).Check("mongodb://db/?connectTimeoutMS=soon")
	if err == nil || !strings.Contains(err.Error(), `"connectTimeoutMS"`) {
		t.Errorf("error %v does not name the option", err)
	}
}

func TestAFlagWinsOverTheEnvironmentAndAnEmptyVariableIsUnset(t *testing.T) {
	var level, format string
	var every time.Duration
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	Bind(fs, "log-level", &level)
	Bind(fs, "log-format", &format)
	Bind(fs, "anti-entropy-every", &every)
	if err := fs.Parse([]string{"--log-level=warn"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MOODSYNC_LOG_LEVEL": "debug", "MOODSYNC_LOG_FORMAT": "text", "MOODSYNC_ANTI_ENTROPY_EVERY": ""}
	if err := Apply(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if level != "warn" || format != "text" || every != 24*time.Hour {
		t.Fatalf("level %q, format %q, every %v", level, format, every)
	}
	for name, want := range map[string]Source{"log-level": FromFlag, "log-format": FromEnv, "anti-entropy-every": FromDefault} {
		if got := SourceOf(fs, name); got != want {
			t.Errorf("%s from %v, want %v", name, got, want)
		}
	}
}

func TestBindRefusesWhatIsNotInTheTable(t *testing.T) {
	for name, dst := range map[string]any{"no-such-setting": new(string), "publish-concurrency": new(string)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Bind(%s, %T) did not panic", name, dst)
				}
			}()
			Bind(flag.NewFlagSet("test", flag.ContinueOnError), name, dst)
		}()
	}
}

func TestUsageSaysWhereAValueComesFromNeverASecret(t *testing.T) {
	var uri, level, db string
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	Bind(fs, "mongo-uri", &uri)
	Bind(fs, "log-level", &level)
	Bind(fs, "mongo-db", &db)
	if err := fs.Parse([]string{"--log-level", "warn"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MOODSYNC_MONGO_URI": "mongodb://moodsync:s3cret@db/", "MOODSYNC_LOG_LEVEL": "debug"}
	var b strings.Builder
	PrintUsage(&b, fs, func(k string) string { return env[k] })
	out := b.String()
	for _, want := range []string{
		"$MOODSYNC_MONGO_URI, no default; now set by $MOODSYNC_MONGO_URI (not shown: it may hold a credential)",
		`$MOODSYNC_LOG_LEVEL, default "info"; now "warn", set by --log-level`,
		`$MOODSYNC_MONGO_DB, default "aesthetic"` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("usage shows a secret:\n%s", out)
	}
}
