package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/publisher/deadletter"
)

// TestDeadCLIGolden checks dead's help and refusals, and what list (text
// and JSON) and replay --dry-run print for fixed letters, against golden
// files.
func TestDeadCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"dead-help.golden", []string{"dead", "-h"}, 0},
		{"dead-list-help.golden", []string{"dead", "list", "-h"}, 0},
		{"dead-replay-help.golden", []string{"dead", "replay", "-h"}, 0},
		{"dead-unknown-action.golden", []string{"dead", "resurrect"}, 2},
		// No terminal under go test: without --yes nothing is done.
		{"dead-replay-no-yes.golden", []string{"dead", "replay", "--reason", "login"}, 2},
		{"dead-drop-no-yes.golden", []string{"dead", "drop"}, 2},
		{"dead-bad-since.golden", []string{"dead", "list", "--since", "yesterday"}, 1},
	})

	letters := fixedLetters()
	t.Run("dead-list-text.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeDeadList(&out, letters)
		golden(t, "dead-list-text.golden", out.Bytes())
	})
	t.Run("dead-list-json.golden", func(t *testing.T) {
		var out bytes.Buffer
		if err := writeDeadJSON(&out, letters); err != nil {
			t.Fatal(err)
		}
		golden(t, "dead-list-json.golden", out.Bytes())
	})
	t.Run("dead-replay-dry-run.golden", func(t *testing.T) {
		var out bytes.Buffer
		writeDeadDryRun(&out, planDead("replay", letters))
		golden(t, "dead-replay-dry-run.golden", out.Bytes())
	})
	t.Run("empty", func(t *testing.T) {
		var out bytes.Buffer
		writeDeadList(&out, nil)
		if err := writeDeadJSON(&out, nil); err != nil {
			t.Fatal(err)
		}
		if want := "no dead letters\n{\n  \"letters\": []\n}\n"; out.String() != want {
			t.Fatalf("empty list printed %q", out.String())
		}
	})
}

// fixedLetters are dead letters of the reasons moodsync gives, as List
// reads them (user, op and mongoId from the payload).
func fixedLetters() []deadletter.Letter {
	at := time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)
	id := "507f1f77bcf86cd799439011"
	ls := []deadletter.Letter{
		{Subject: "moods.intent.create", DeadSubject: "moods.dead.create", Op: "create", User: "auth0|alice", MongoID: id,
			Reason: "PDS login refused for did:plc:alice: AuthenticationRequired: Invalid identifier or password",
			Data:   []byte(`{"op":"create","user":"auth0|alice","mongoId":"` + id + `"}`)},
		{Subject: "moods.intent.create", DeadSubject: "moods.dead.create", Op: "create", User: "auth0|mallory", MongoID: id,
			Reason: "mood " + id + " is not owned by user auth0|mallory",
			Data:   []byte(`{"op":"create","user":"auth0|mallory","mongoId":"` + id + `"}`)},
		{Subject: "moods.intent.reconcile", DeadSubject: "moods.dead.reconcile", Op: "reconcile", User: "auth0|ghost",
			Reason: "user auth0|ghost has no PDS account", Data: []byte(`{"op":"reconcile","user":"auth0|ghost"}`), Deliveries: 1},
		{Subject: "moods.intent.create", DeadSubject: "moods.dead.invalid",
			Reason: "bad JSON: unexpected end of JSON input", Data: []byte(`{"op":"create",`)},
		{Subject: "moods.intent.zap", DeadSubject: "moods.dead.invalid", Op: "zap", User: "auth0|alice",
			Reason: `unknown op "zap"`, Data: []byte(`{"op":"zap","user":"auth0|alice"}`)},
		{Subject: "moods.intent.delete", DeadSubject: "moods.dead.delete", Op: "delete", User: "auth0|bob", MongoID: id,
			Reason: "account did:plc:bob is deactivated", Data: []byte(`{"op":"delete","user":"auth0|bob","mongoId":"` + id + `"}`)},
		{Subject: "moods.intent.create", DeadSubject: "moods.dead.invalid", Truncated: true,
			Reason: "intent over 65536 bytes", Data: []byte(`{"op":"create","user":"auth0|bob","mood`)},
	}
	for i := range ls {
		ls[i].Seq = uint64(i + 1)
		ls[i].Time = at.Add(time.Duration(i+1) * time.Minute)
		ls[i].Deliveries++
	}
	return ls
}
