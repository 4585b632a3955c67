package model

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CleanPass is what a whole-user reconcile that left nothing to fix saw:
// the repo's rev (asked before the repo was read) and a digest of the
// user's moods. A later periodic pass that finds both unchanged has
// nothing new to compare, and exports no repo.
type CleanPass struct {
	Rev   string    `bson:"rev" json:"rev"`
	Moods string    `bson:"moods" json:"moods"`
	At    time.Time `bson:"at" json:"at"`
}

// Same reports whether c fingerprints the same state as other.
func (c *CleanPass) Same(other *CleanPass) bool {
	return c != nil && other != nil && c.Rev != "" && c.Rev == other.Rev && c.Moods == other.Moods
}

// MoodsDigest is a digest of every field of the moods that a compare
// reads (id, text, when, deleted, rkey), in any order of the input.
func MoodsDigest(moods []*Mood) string {
	sorted := slices.Clone(moods)
	slices.SortFunc(sorted, func(a, b *Mood) int { return strings.Compare(a.ID, b.ID) })
	h := sha256.New()
	var line []byte
	for _, m := range sorted {
		line = append(line[:0], m.ID...)
		line = append(line, 0)
		line = strconv.AppendBool(line, m.Deleted)
		line = append(line, 0)
		line = append(line, m.Rkey...)
		line = append(line, 0)
		line = strconv.AppendInt(line, m.When.UnixMilli(), 10)
		line = append(line, 0)
		line = strconv.AppendInt(line, int64(len(m.Text)), 10)
		line = append(line, 0)
		line = append(line, m.Text...)
		line = append(line, '\n')
		h.Write(line)
	}
	return strconv.Itoa(len(sorted)) + ":" + hex.EncodeToString(h.Sum(nil)[:16])
}
