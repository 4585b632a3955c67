package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/consumer"
	"github.com/whistlegraph/moodsync/deploy/settings"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

const secret = "s3cret"

// secretEnv sets every URL setting to a URL carrying credentials, as a
// production environment does.
func secretEnv(t *testing.T) {
	clearEnv(t)
	for k, v := range map[string]string{
		"MOODSYNC_MONGO_URI":    "mongodb://moodsync:" + secret + "@db1.example.com,db2.example.com/?replicaSet=rs0",
		"MOODSYNC_NATS_URL":     "nats://" + secret + "@nats.example.com:4222",
		"MOODSYNC_PDS_URL":      "https://admin:" + secret + "@pds.example.com",
		"MOODSYNC_FIREHOSE_URL": "wss://relay.example.com/xrpc/com.atproto.sync.subscribeRepos?token=" + secret,
		"MOODSYNC_PLC_URL":      "https://" + secret + "@plc.example.com",
		"MOODSYNC_ADMIN_TOKEN":  "admin-" + secret + "-0123456789abcdef",
	} {
		t.Setenv(k, v)
	}
}

// TestHelpSaysWhereValuesComeFromNeverASecret: help text shows each
// setting's variable and built-in default, and where a value set now comes
// from, but never the value of a secret one (the credentials of
// production); with nothing set it is the golden text.
func TestHelpSaysWhereValuesComeFromNeverASecret(t *testing.T) {
	secretEnv(t)
	t.Setenv("MOODSYNC_LOG_LEVEL", "debug")
	for _, cmd := range []string{"run", "audit", "backfill", "cleanup", "purge", "publish create", "dead list", "dead replay"} {
		var out bytes.Buffer
		Main(context.Background(), append(strings.Fields(cmd), "--help"), &out, &out)
		if strings.Contains(out.String(), secret) {
			t.Errorf("%s --help shows a credential from the environment:\n%s", cmd, out.String())
		}
		if !strings.Contains(out.String(), `now "debug", set by $MOODSYNC_LOG_LEVEL`) {
			t.Errorf("%s --help does not say where the log level comes from:\n%s", cmd, out.String())
		}
	}
	var out bytes.Buffer
	Main(context.Background(), []string{"run", "--mongo-uri", "mongodb://u:" + secret + "@db/", "-h"}, &out, &out)
	for _, want := range []string{
		"now set by --mongo-uri (not shown: it may hold a credential)",
		"now set by $MOODSYNC_NATS_URL (not shown: it may hold a credential)",
		"now set by $MOODSYNC_ADMIN_TOKEN (not shown: it may hold a credential)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("run -h lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), secret) {
		t.Errorf("run -h shows a credential from the command line:\n%s", out.String())
	}
}

func TestEnvironmentIsCheckedAndAFlagWinsOverIt(t *testing.T) {
	clearEnv(t)
	t.Setenv("MOODSYNC_PUBLISH_CONCURRENCY", "four")
	t.Setenv("MOODSYNC_DELETE_ORPHANS", "off")
	var out bytes.Buffer
	if code := Main(context.Background(), []string{"run"}, &out, &out); code != 1 {
		t.Fatalf("exit %d with unparsable variables, want 1:\n%s", code, out.String())
	}
	for _, want := range []string{
		`moodsync run: $MOODSYNC_PUBLISH_CONCURRENCY (environment): "four" is not a valid count`,
		`moodsync run: $MOODSYNC_DELETE_ORPHANS (environment): "off" is not a valid boolean`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	Main(context.Background(), []string{"run", "--publish-concurrency", "2", "--delete-orphans=false"}, &out, &out)
	if got, want := out.String(), "moodsync run: "+errNoPDS.Error()+"\n"; got != want {
		t.Errorf("with flags given, the variables should not matter: got %q, want %q", got, want)
	}

	// A variable is applied: a bad log level in it is refused.
	t.Setenv("MOODSYNC_LOG_LEVEL", "loud")
	out.Reset()
	Main(context.Background(), []string{"run", "--publish-concurrency", "2", "--delete-orphans=false"}, &out, &out)
	if !strings.Contains(out.String(), `$MOODSYNC_LOG_LEVEL (environment): "loud" is not a valid log level`) {
		t.Errorf("MOODSYNC_LOG_LEVEL not applied: %s", out.String())
	}
}

// badValues is a value each kind of setting refuses.
var badValues = map[string]string{
	"bool": "flase", "duration": "1d", "size": "lots", "int": "-5", "host:port": "nohost",
	"dir": " ", "name": "a/b", "format": "xml", "level": "loud", "URLs": "nats://h:port",
	"file": " ", "token": secret,
}

// TestEveryBadSettingStopsTheCommandNamingIt: whatever setting is bad,
// from the environment or the command line, the command stops at start
// (nothing is opened) with an error naming the variable or flag, and a
// secret setting's value is not shown.
func TestEveryBadSettingStopsTheCommandNamingIt(t *testing.T) {
	clearEnv(t)
	for _, s := range settings.Table {
		bad, ok := badValues[s.Kind.Name]
		switch {
		case s.Kind.Name == "URL" && s.Name == "firehose-url":
			bad = "https://" + secret + "@relay.example.com"
		case s.Kind.Name == "URL":
			bad = "ftp://" + secret + "@pds.example.com"
		case s.Kind.Name == "URI":
			bad = "mongodb://moodsync:" + secret + "@db/?connectTimeoutMS=" + secret
		case !ok:
			t.Fatalf("no bad value for kind %s", s.Kind.Name)
		}
		for _, fromEnv := range []bool{true, false} {
			args := []string{"run"}
			where := "--" + s.Name + " (command line)"
			if fromEnv {
				t.Setenv(s.Env, bad)
				where = "$" + s.Env + " (environment)"
			} else {
				args = append(args, "--"+s.Name+"="+bad)
			}
			var out bytes.Buffer
			code := Main(context.Background(), args, &out, &out)
			os.Unsetenv(s.Env)
			if code != 1 || !strings.HasPrefix(out.String(), "moodsync run: "+where) || strings.Count(out.String(), "\n") != 1 {
				t.Errorf("%s=%q: exit %d, output:\n%s", where, bad, code, out.String())
			}
			if s.Secret && (strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "value not shown")) {
				t.Errorf("%s: a secret setting's value shown:\n%s", where, out.String())
			}
		}
	}
}

// TestTheTableIsWhatTheCommandsBind: the daemon binds every setting of the
// table (so the deploy checks, which read the table, check what run
// reads), and the defaults the table shows are the code's own.
func TestTheTableIsWhatTheCommandsBind(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var cfg Config
	configFlags{fs, &cfg}.all()
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if !settings.IsSetting(f) {
			t.Errorf("run flag --%s is not in the settings table", f.Name)
		}
		n++
	})
	if n != len(settings.Table) {
		t.Errorf("run binds %d flags, the table has %d settings", n, len(settings.Table))
	}
	if err := settings.Apply(fs, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if cfg.MassDeleteLimit != reconcile.DefaultMassDeleteLimit || cfg.PLCURL != consumer.DefaultPLCURL ||
		cfg.MaxExportBytes != pdsclient.DefaultMaxExportBytes {
		t.Errorf("table defaults differ from the code's: %+v", cfg)
	}
}
