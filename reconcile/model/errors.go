package model

import (
	"errors"
	"fmt"
	"time"
)

// PermanentError marks a failure that retrying cannot fix: the input itself
// is wrong (someone else's mood, no PDS account, a malformed intent). Callers
// dead-letter it instead of retrying. Every other error is transient.
type PermanentError struct {
	Reason string
}

func (e *PermanentError) Error() string { return e.Reason }

// Permanent returns a PermanentError with a formatted reason. Reasons end up
// in logs and dead-letter headers, so they must never carry secrets.
func Permanent(format string, args ...any) error {
	return &PermanentError{Reason: fmt.Sprintf(format, args...)}
}

// IsPermanent reports whether err (or anything it wraps) is permanent. An
// inactive account is: its intents are dead-lettered with the reason, not
// retried until it comes back (reactivation queues a reconcile instead).
func IsPermanent(err error) bool {
	var p *PermanentError
	var i *InactiveError
	return errors.As(err, &p) || errors.As(err, &i)
}

// Account statuses, as the firehose's #account event and getRepoStatus name
// them. StatusActive is moodsync's own name for "active: true".
const (
	StatusActive      = "active"
	StatusDeactivated = "deactivated"
	StatusTakendown   = "takendown"
	StatusSuspended   = "suspended"
	StatusDeleted     = "deleted"
	// StatusGone is a DID the directory no longer resolves (404/410).
	StatusGone = "gone"
)

// InactiveError says the PDS refuses an account's repo because the account
// is deactivated, taken down, suspended or deleted (or its DID is gone).
// Nothing moodsync can do succeeds until that changes.
type InactiveError struct {
	DID    string
	Status string // one of the Status constants; "inactive" when unknown
}

func (e *InactiveError) Error() string {
	return fmt.Sprintf("account %s is %s", e.DID, e.Status)
}

// Inactive returns an InactiveError.
func Inactive(did, status string) error {
	if status == "" {
		status = "inactive"
	}
	return &InactiveError{DID: did, Status: status}
}

// IsInactive reports whether err says the account is inactive, and how.
func IsInactive(err error) (string, bool) {
	var i *InactiveError
	if errors.As(err, &i) {
		return i.Status, true
	}
	return "", false
}

// TransportError wraps a failure to reach a server at all (refused,
// reset, timed out) or a gateway/availability answer (502, 503, 504). Such
// a failure says nothing about the request itself, so it is never a reason
// to change strategy, only to retry later.
type TransportError struct{ Err error }

func (e *TransportError) Error() string { return e.Err.Error() }
func (e *TransportError) Unwrap() error { return e.Err }

// IsTransport reports whether err is a TransportError.
func IsTransport(err error) bool {
	var t *TransportError
	return errors.As(err, &t)
}

// RateLimitedError says the PDS refused a call with 429 Too Many Requests
// and named when the limit resets (ratelimit-reset, retry-after). Nothing
// for that account is to be tried before Until.
type RateLimitedError struct {
	DID   string
	Until time.Time
	Err   error
}

func (e *RateLimitedError) Error() string {
	msg := fmt.Sprintf("rate limited by the PDS until %s", e.Until.UTC().Format(time.RFC3339))
	if e.DID != "" {
		msg = fmt.Sprintf("account %s %s", e.DID, msg)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}
func (e *RateLimitedError) Unwrap() error { return e.Err }

// RateLimited returns a transport error (retried later, never a reason to
// change strategy) that says until when did's calls are refused.
func RateLimited(did string, until time.Time, err error) error {
	return &TransportError{Err: &RateLimitedError{DID: did, Until: until, Err: err}}
}

// RetryNotBefore reports the time before which err says not to try again:
// the reset of a rate limit. ok is false when err names none.
func RetryNotBefore(err error) (until time.Time, ok bool) {
	var r *RateLimitedError
	if errors.As(err, &r) {
		return r.Until, true
	}
	return time.Time{}, false
}

// NoFreeRkey is the permanent failure of a mood whose deterministic record
// keys (MaxRkeyProbes of them) all hold other moods' records: no retry
// frees one. The reason says where to look.
func NoFreeRkey(moodID, user string) error {
	return Permanent("no free rkey for mood %s after %d probes: every deterministic key holds another mood's record; "+
		"see `moodsync status --user %s` and `moodsync audit --user %s`, remove the records in the way (`moodsync cleanup`), then replay this letter",
		moodID, MaxRkeyProbes, user, user)
}
