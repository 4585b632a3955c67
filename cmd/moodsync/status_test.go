package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/whistlegraph/moodsync/publisher"
	"github.com/whistlegraph/moodsync/publisher/deadletter"
	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
	"github.com/whistlegraph/moodsync/reconcile/status"
)

// TestStatusCLIGolden checks status's help and refusal, and what it prints
// (text and JSON) for fixed statuses of a user with drift, a healthy one
// and one whose account is deactivated, against golden files.
func TestStatusCLIGolden(t *testing.T) {
	clearEnv(t)
	runCLICases(t, []cliCase{
		{"status-help.golden", []string{"status", "-h"}, 0},
		{"status-no-user.golden", []string{"status"}, 2},
	})
	for name, u := range map[string]*status.User{
		"status-drift":       fixedStatusDrift(),
		"status-healthy":     fixedStatusHealthy(),
		"status-deactivated": fixedStatusDeactivated(),
	} {
		t.Run(name, func(t *testing.T) {
			var text, js bytes.Buffer
			writeStatusText(&text, u)
			golden(t, name+".golden", text.Bytes())
			if err := writeStatusJSON(&js, u); err != nil {
				t.Fatal(err)
			}
			golden(t, name+"-json.golden", js.Bytes())
		})
	}
}

// TestStatusHelpShowsNoCredential: status binds the URL settings of
// Mongo, NATS and the PDS; its help shows their defaults, never the
// environment's values.
func TestStatusHelpShowsNoCredential(t *testing.T) {
	secretEnv(t)
	var out bytes.Buffer
	Main(context.Background(), []string{"status", "--help"}, &out, &out)
	if strings.Contains(out.String(), secret) {
		t.Errorf("status --help shows a credential from the environment:\n%s", out.String())
	}
}

var statusAt = time.Date(2025, 10, 14, 19, 30, 0, 0, time.UTC)

func statusID(n int) string { return fmt.Sprintf("507f1f77bcf86cd7994390%02d", n) }

// fixedStatus is a user bound to their DID, with a users row, seen on the
// firehose and reconciled, and nothing pending.
func fixedStatus(name string) *status.User {
	user, did := "auth0|"+name, "did:plc:"+name
	return &status.User{
		User:          user,
		UsersRow:      &model.UsersRow{User: user, DID: did, Handle: name + ".test", HasPassword: true},
		Binding:       &status.Binding{DID: did, Status: model.StatusActive, StatusAt: statusAt.Add(-24 * time.Hour)},
		PDS:           &status.PDSStatus{DID: did, Active: true},
		Intents:       status.Intents{Pending: &publisher.Pending{Intents: []publisher.PendingIntent{}, Waiting: 3, Scanned: 3, Complete: true}},
		DeadLetters:   status.DeadLetters{Letters: []deadletter.Letter{}},
		LastEvent:     &model.EventMark{At: statusAt.Add(-5 * time.Minute), Kind: model.EventCommit, Seq: 1234},
		LastReconcile: &model.ReconcileMark{At: statusAt.Add(-6 * time.Hour), Cause: string(reconcile.CausePeriodic)},
	}
}

// comparedOf is the drift section of a compare of moods and records.
func comparedOf(acct model.Account, moods []*model.Mood, records []model.Record) *reconcile.Summary {
	rep := reconcile.Compare(acct, moods, nil, records)
	plan := reconcile.PlanFixes(rep, reconcile.Policy{Cause: reconcile.CauseOperator, MassDeleteLimit: reconcile.DefaultMassDeleteLimit})
	return reconcile.Summarize(rep, plan)
}

func statusMood(n int, user, rkey string, deleted bool) *model.Mood {
	return &model.Mood{ID: statusID(n), User: user, Text: fmt.Sprintf("mood %d", n), When: statusAt.Add(time.Duration(n) * time.Hour), Rkey: rkey, Deleted: deleted}
}

func statusRecord(rkey string, m *model.Mood) model.Record {
	return model.Record{Rkey: rkey, Value: model.NewRecordValue(m)}
}

// fixedStatusHealthy: every mood synced, nothing pending.
func fixedStatusHealthy() *status.User {
	u := fixedStatus("bob")
	acct := model.Account{User: u.User, DID: u.UsersRow.DID}
	moods := []*model.Mood{statusMood(1, u.User, "3kbbbbbbbbb01", false), statusMood(2, u.User, "3kbbbbbbbbb02", false), statusMood(3, u.User, "", true)}
	u.Moods = status.CountMoods(moods)
	u.Drift.Summary = comparedOf(acct, moods, []model.Record{statusRecord("3kbbbbbbbbb01", moods[0]), statusRecord("3kbbbbbbbbb02", moods[1])})
	return u
}

// fixedStatusDrift: a mood not synced (its create intent waiting, an
// earlier one dead-lettered), a soft-deleted mood whose record is still
// there, a live mood whose record is gone, a record edited on the PDS.
func fixedStatusDrift() *status.User {
	u := fixedStatus("alice")
	acct := model.Account{User: u.User, DID: u.UsersRow.DID}
	moods := []*model.Mood{
		statusMood(1, u.User, "3kaaaaaaaaa01", false), statusMood(2, u.User, "", false),
		statusMood(3, u.User, "3kaaaaaaaaa03", true), statusMood(4, u.User, "3kaaaaaaaaa04", false),
		statusMood(5, u.User, "", true),
	}
	edited := statusRecord("3kaaaaaaaaa01", moods[0])
	edited.Value.Mood = "edited on the PDS"
	u.Moods = status.CountMoods(moods)
	u.Drift.Summary = comparedOf(acct, moods, []model.Record{edited, statusRecord("3kaaaaaaaaa03", moods[2])})
	u.Intents.Pending = &publisher.Pending{
		Count: 2, Waiting: 5, Scanned: 5, Complete: true,
		Intents: []publisher.PendingIntent{
			{Seq: 41, Time: statusAt.Add(-2 * time.Minute), Subject: "moods.intent.create", Op: "create", MongoID: statusID(2)},
			{Seq: 44, Time: statusAt.Add(-time.Minute), Subject: "moods.intent.reconcile", Op: "reconcile", Cause: "gap"},
		},
	}
	u.DeadLetters = status.DeadLetters{Count: 1, Letters: []deadletter.Letter{{
		Seq: 7, Time: statusAt.Add(-time.Hour), Subject: "moods.intent.create", DeadSubject: "moods.dead.create",
		Reason: "PDS login refused for did:plc:alice: AuthenticationRequired: Invalid identifier or password",
		Op:     "create", User: u.User, MongoID: statusID(2), Deliveries: 1,
	}}}
	u.LastReconcile = &model.ReconcileMark{At: statusAt.Add(-6 * time.Hour), Cause: string(reconcile.CausePeriodic), Drift: 14, Fixed: 1, Held: 12}
	u.Trouble = &status.Trouble{Since: statusAt.Add(-10 * time.Minute), NextTry: statusAt.Add(20 * time.Second), Failures: 6, Owed: 1200,
		LastError: "account did:plc:alice rate limited by the PDS until 2025-10-14T19:30:20Z: API request failed (HTTP 429): RateLimitExceeded: Rate Limit Exceeded"}
	return u
}

// fixedStatusDeactivated: the firehose said deactivated, the PDS says so
// too, the repo cannot be compared, and the intents of the user were
// dead-lettered.
func fixedStatusDeactivated() *status.User {
	u := fixedStatus("carol")
	did := u.UsersRow.DID
	u.Binding.Status, u.Binding.StatusAt = model.StatusDeactivated, statusAt.Add(-10*time.Minute)
	u.PDS = &status.PDSStatus{DID: did, Status: model.StatusDeactivated}
	u.Moods = status.CountMoods([]*model.Mood{statusMood(1, u.User, "3kccccccccc01", false), statusMood(2, u.User, "", false)})
	u.Drift.Error = "read repo of " + did + ": account " + did + " is deactivated"
	u.DeadLetters = status.DeadLetters{Count: 1, Letters: []deadletter.Letter{{
		Seq: 9, Time: statusAt.Add(-5 * time.Minute), Subject: "moods.intent.create", DeadSubject: "moods.dead.create",
		Reason: "account " + did + " is deactivated", Op: "create", User: u.User, MongoID: statusID(2), Deliveries: 1,
	}}}
	u.LastEvent = &model.EventMark{At: statusAt.Add(-10 * time.Minute), Kind: model.EventAccount, Seq: 1300}
	u.LastReconcile = &model.ReconcileMark{At: statusAt.Add(-9 * time.Minute), Cause: string(reconcile.CauseIntent), Error: "read repo of " + did + ": account " + did + " is deactivated"}
	return u
}
