package model

import (
	"time"
	"unicode/utf8"
)

// Marks moodsync keeps on a user's binding so an operator can see what
// happened to the user last (moodsync status): cheap to write, overwritten
// each time, never read by the engine's decisions.

// Event kinds of an EventMark.
const (
	EventCommit  = "commit"  // a commit of the user's repo
	EventAccount = "account" // an #account event of the user's DID
)

// EventMark is the last firehose event of a user's DID the consumer
// handled. Commits are recorded at most once a minute per DID, so the mark
// may be up to a minute older than the newest commit.
type EventMark struct {
	At   time.Time `bson:"at" json:"at"`
	Kind string    `bson:"kind" json:"kind"`
	Seq  int64     `bson:"seq" json:"seq"`
}

// ReconcileMark is the last whole-user reconcile of a user that could
// change something (dry runs are not recorded): when it ended, why it ran,
// what it found and fixed, and why it failed if it did.
type ReconcileMark struct {
	At    time.Time `bson:"at" json:"at"`
	Cause string    `bson:"cause" json:"cause"`
	Drift int       `bson:"drift" json:"drift"`
	Fixed int       `bson:"fixed" json:"fixed"`
	// Held is how many soft deletes the mass-delete guard kept back.
	Held  int    `bson:"held,omitempty" json:"held,omitempty"`
	Error string `bson:"error,omitempty" json:"error,omitempty"`
}

// MaxMarkError bounds ReconcileMark.Error, in bytes.
const MaxMarkError = 1024

// UsersRow is what moodsync may show of a user's `users` row: the ATProto
// account it names and whether a password is stored, never the password.
type UsersRow struct {
	User        string `json:"user"`
	DID         string `json:"did,omitempty"`
	Handle      string `json:"handle,omitempty"`
	HasPassword bool   `json:"hasPassword"`
}

// Truncate cuts s to at most n bytes at a rune boundary, marked with "…"
// when it was longer.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(0, n-len("…"))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
