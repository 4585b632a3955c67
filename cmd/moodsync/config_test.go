package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
	} {
		t.Setenv(k, v)
	}
}

// TestHelpIsTheSameWhateverTheEnvironment: help text shows built-in
// defaults, never a variable's value (the credentials of production).
func TestHelpIsTheSameWhateverTheEnvironment(t *testing.T) {
	secretEnv(t)
	for _, cmd := range []string{"run", "audit", "backfill", "cleanup", "purge", "publish"} {
		var out bytes.Buffer
		Main(context.Background(), []string{cmd, "--help"}, &out, &out)
		if strings.Contains(out.String(), secret) {
			t.Errorf("%s --help shows a credential from the environment:\n%s", cmd, out.String())
		}
		if cmd == "run" {
			golden(t, "run-help.golden", out.Bytes())
		}
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
	for _, want := range []string{"$MOODSYNC_PUBLISH_CONCURRENCY is not a valid int", "$MOODSYNC_DELETE_ORPHANS is not a valid boolean"} {
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
	if !strings.Contains(out.String(), `bad log level "loud"`) {
		t.Errorf("MOODSYNC_LOG_LEVEL not applied: %s", out.String())
	}
}
