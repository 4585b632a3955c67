package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestRedactURLHidesEveryCredential(t *testing.T) {
	for _, raw := range []string{
		"nats://moodsync:s3cret@nats1.example.com:4222,nats://moodsync:s3cret@nats2.example.com:4222",
		"nats://s3cret@nats1.example.com:4222, nats://s3cret@nats2.example.com:4222", // tokens
		"mongodb://moodsync:s3cret@db1.example.com,db2.example.com,db3.example.com/?replicaSet=rs0&authSource=admin",
		"mongodb://moodsync:s3cret%zz@db1.example.com/", // unparseable escape
		"nats://tok:s3cret@[::1:4222", // unparseable host
		"nats://s3cret%zz@nats.example.com",
		"wss://relay.example.com/xrpc/com.atproto.sync.subscribeRepos?token=s3cret",
		"https://pds.example.com/#s3cret",
	} {
		got := redactURL(raw)
		if strings.Contains(got, "s3cret") {
			t.Errorf("redactURL(%q) = %q: credential shown", raw, got)
		}
		if !strings.Contains(got, "example.com") && !strings.Contains(got, "::1") {
			t.Errorf("redactURL(%q) = %q: host lost", raw, got)
		}
	}
	if got, want := redactURL("nats://moodsync:s3cret@a:4222,nats://b:4222"), "nats://moodsync:xxxxx@a:4222,nats://b:4222"; got != want {
		t.Errorf("redactURL = %q, want %q", got, want)
	}
}

// TestOneShotCommandNamesNoCredentialOfABadURL: nats.go's error for a
// URL that does not parse quotes the URL; moodsync's does not.
func TestOneShotCommandNamesNoCredentialOfABadURL(t *testing.T) {
	clearEnv(t)
	t.Setenv("MOODSYNC_NATS_URL", "nats://s3cret%zz@nats.example.com:4222")
	var out bytes.Buffer
	code := Main(context.Background(), []string{"publish", "reconcile", "--user", "auth0|1"}, &out, &out)
	if code != 1 || strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "invalid URL escape") {
		t.Errorf("exit %d, output:\n%s", code, out.String())
	}
}
