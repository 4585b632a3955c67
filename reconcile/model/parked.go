package model

import "time"

// Parked is a user in trouble: their intents kept failing transiently (the
// PDS answering 5xx or 429 for their repo, say), so the publisher set them
// aside with a backoff of their own instead of keeping them in the intents
// stream, where they would hold the delivery window from everyone else.
// Each intent is acknowledged only once it is written here; a retry loop
// applies what is owed when NextTry comes.
//
// Intents are hints (the engine reads Mongo truth), so the moods owed are a
// set of ids; reconcile intents are kept as their causes and a purge as its
// DID. It is stored in moodsync_parked, one document per user.
type Parked struct {
	User string `bson:"_id" json:"-"`
	// Gen changes with every write: writes are compare-and-set on it.
	Gen int64 `bson:"gen" json:"-"`
	// Moods are the create and delete intents owed.
	Moods []ParkedMood `bson:"moods,omitempty" json:"-"`
	// Reconcile are the causes of the reconcile intents owed.
	Reconcile []string `bson:"reconcile,omitempty" json:"-"`
	// Purge says a purge is owed, of PurgeDID when the intent named one.
	Purge    bool   `bson:"purge,omitempty" json:"-"`
	PurgeDID string `bson:"purgeDid,omitempty" json:"-"`
	// PurgeAskedAt is when the (latest) purge owed was asked: it erases
	// what existed then, not what the user wrote while it waited.
	PurgeAskedAt time.Time `bson:"purgeAskedAt,omitempty" json:"-"`
	// Since is when the user was parked (the first failure of this spell).
	Since time.Time `bson:"since" json:"since"`
	// NextTry is when the retry loop tries again; while a replica works on
	// the user it is that replica's lease.
	NextTry time.Time `bson:"nextTry" json:"nextTry"`
	// Failures counts the retries that failed in this spell.
	Failures int `bson:"failures" json:"failures"`
	// LastError is the last failure (no secrets: errors never carry any).
	LastError string `bson:"lastError,omitempty" json:"lastError,omitempty"`
}

// ParkedMood is one create or delete intent owed.
type ParkedMood struct {
	ID string `bson:"id"`
	Op string `bson:"op"`
}

// Owed counts the intents a parked user is owed.
func (p *Parked) Owed() int {
	n := len(p.Moods) + len(p.Reconcile)
	if p.Purge {
		n++
	}
	return n
}

// MaxParkedMoods bounds the mood ids kept for one parked user. Beyond it the
// ids are dropped for a whole-user reconcile, which converges every mood of
// the user: nothing is lost, the document stays small.
const MaxParkedMoods = 10_000
