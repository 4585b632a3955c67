package model

import (
	"encoding/hex"
	"hash/fnv"

	"github.com/bluesky-social/indigo/atproto/syntax"
)

// tidClockIDs is the number of distinct clock ids a TID can carry (10 bits).
const tidClockIDs = 1024

// MaxRkeyProbes bounds how many clock ids are tried when the deterministic
// key of a mood is already taken by another mood's record.
const MaxRkeyProbes = 16

// Rkey is the deterministic record key of a mood: a TID whose timestamp
// is the mood's `when` and whose clock id comes from its ObjectID. A retry
// after a crash therefore computes the same key and finds its own record
// instead of writing a second one. attempt > 0 moves to the next clock id,
// for the rare case where another mood of the same user has the same
// millisecond and the same hashed clock id.
func Rkey(m *Mood, attempt int) string {
	clock := (moodClockID(m.ID) + uint(attempt)) % tidClockIDs
	micros := m.When.UnixMicro()
	if micros < 0 {
		micros = 0
	}
	return syntax.NewTID(micros, clock).String()
}

func moodClockID(id string) uint {
	raw, err := hex.DecodeString(id)
	if err != nil {
		raw = []byte(id)
	}
	h := fnv.New32a()
	h.Write(raw)
	return uint(h.Sum32() % tidClockIDs)
}
