package recordcbor

import (
	"bytes"
	"testing"

	"github.com/bluesky-social/indigo/atproto/atdata"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

const moodHex = "507f1f77bcf86cd799439011"

func cborOf(t testing.TB, m map[string]any) []byte {
	raw, err := atdata.MarshalCBOR(m)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestDecode: both lexicon revisions decode, anything else is
// invalid with a reason.
func TestDecode(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"$type": model.Collection, "mood": "sunny", "when": "2025-10-14T19:30:00.000Z", "ref": moodHex, "mongoId": moodHex}
	}
	legacy := base()
	delete(legacy, "ref")
	number := base()
	number["mood"] = int64(42)
	post := base()
	post["$type"] = "app.bsky.feed.post"
	badRef := base()
	badRef["ref"], badRef["mongoId"] = "nope", "nope"
	cases := []struct {
		name  string
		raw   []byte
		valid bool
	}{
		{"both refs", cborOf(t, base()), true},
		{"legacy mongoId only", cborOf(t, legacy), true},
		{"mood is a number", cborOf(t, number), false},
		{"another $type", cborOf(t, post), false},
		{"bad ref", cborOf(t, badRef), false},
		{"not CBOR", []byte("{}"), false},
		{"empty", nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, why := Decode(c.raw)
			if (v != nil) != c.valid || (v == nil) != (why != "") {
				t.Fatalf("Decode = %+v, %q; want valid=%v", v, why, c.valid)
			}
			if v != nil && v.MoodID() != moodHex {
				t.Fatalf("MoodID %q", v.MoodID())
			}
		})
	}
}

// FuzzDecode: whatever a user wrote, decoding never panics and
// a value is returned only when it passes the lexicon.
func FuzzDecode(f *testing.F) {
	f.Add(cborOf(f, map[string]any{"$type": model.Collection, "mood": "x", "when": "w", "ref": moodHex}))
	f.Add([]byte{0xa1})
	f.Fuzz(func(t *testing.T, raw []byte) {
		v, why := Decode(bytes.Clone(raw))
		if v != nil && (why != "" || model.ValidateRecord(v) != "") {
			t.Fatalf("value %+v returned with reason %q", v, why)
		}
		if v == nil && why == "" {
			t.Fatal("no value and no reason")
		}
	})
}
