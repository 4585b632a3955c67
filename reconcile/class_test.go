package reconcile

import (
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// TestEveryClassHasItsRow fails when a class lacks what the table must say
// of it: a metric label of its own, audit's words, a count, and, for drift,
// the fixes it leads to; and when a fix kind lacks its expected class or
// its description. Adding a class or a fix means adding its row.
func TestEveryClassHasItsRow(t *testing.T) {
	labels := map[string]Class{}
	for _, c := range Classes {
		i, ok := classInfos[c]
		if !ok {
			t.Fatalf("%s: no row in classTable", c)
		}
		if i.label == "" || strings.ContainsAny(i.label, " _") {
			t.Errorf("%s: metric label %q", c, i.label)
		}
		if prev, dup := labels[i.label]; dup {
			t.Errorf("%s and %s share the label %q", c, prev, i.label)
		}
		labels[i.label] = c
		if i.one == "" || i.many == "" {
			t.Errorf("%s: no audit text", c)
		}
		if i.count == nil {
			t.Errorf("%s: no count", c)
		}
		if i.drift && i.plan == nil {
			t.Errorf("%s: drift that leads to no fix", c)
		}
		if !i.drift && i.plan != nil {
			t.Errorf("%s: a notice with fixes", c)
		}
	}
	for _, l := range FirehoseLabels {
		if _, ok := labels[l]; !ok {
			t.Errorf("firehose label %q names no class", l)
		}
	}
	for _, k := range FixKinds {
		i := k.info()
		if _, ok := classInfos[i.expect]; !ok {
			t.Errorf("fix %s: expects %q, not a class", k, i.expect)
		}
		if d := (Fix{Kind: k, MoodID: moodHex, Rkey: "r1"}).Describe("did:plc:x"); !strings.Contains(d, moodHex) {
			t.Errorf("fix %s: description %q does not name the mood", k, d)
		}
	}
}

// TestDecisionsReachOnlyClassesOfTheTable: every class the pure decisions
// can reach, over every shape of input, has its row.
func TestDecisionsReachOnlyClassesOfTheTable(t *testing.T) {
	moods := []*model.Mood{
		nil,
		{ID: moodHex, User: owner},
		{ID: moodHex, User: owner, Rkey: "r1"},
		{ID: moodHex, User: owner, Rkey: "r2"},
		{ID: moodHex, User: owner, Deleted: true},
		{ID: moodHex, User: owner, Deleted: true, Rkey: "r1"},
		{ID: moodHex, User: other},
		{ID: moodHex, User: owner, Malformed: "when is a string"},
	}
	ops := []Upsert{{Rkey: "r1", Value: rec(moodHex)}, {Rkey: "r1", Invalid: "not CBOR"}}
	for _, m := range moods {
		for _, op := range ops {
			if c := DecideUpsert(owner, op, m); classInfos[c].label == "" {
				t.Errorf("DecideUpsert reached %q, which has no row", c)
			}
		}
		if c := DecideDelete(m); classInfos[c].label == "" {
			t.Errorf("DecideDelete reached %q, which has no row", c)
		}
	}
}
