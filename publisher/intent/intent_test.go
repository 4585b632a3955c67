package intent

import (
	"strings"
	"testing"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

func TestParseNormalisesTheMongoID(t *testing.T) {
	in, err := Parse("moods.intent.create", []byte(`{"op":"create","mongoId":"507F1F77BCF86CD799439011","user":"auth0|1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if in.MongoID != "507f1f77bcf86cd799439011" {
		t.Fatalf("mongoId %q, want it in lower case", in.MongoID)
	}
	if err := (Intent{Op: OpDelete, User: "auth0|1", MongoID: "507F1F77BCF86CD799439011"}).Validate(); err != nil {
		t.Fatalf("an upper-case id given by hand is refused: %v", err)
	}
}

// TestParseRefusesWhatIsOutOfBounds: every bad intent is a permanent error
// (one dead letter), its reason is short whatever the input's size, and
// only a known op survives the failure.
func TestParseRefusesWhatIsOutOfBounds(t *testing.T) {
	huge := strings.Repeat("x", MaxSize)
	cases := []struct {
		name, subject, data, op string
	}{
		{"over 64 KiB", "moods.intent.create",
			`{"op":"create","mongoId":"507f1f77bcf86cd799439011","user":"auth0|1","pad":"` + huge + `"}`, ""},
		{"huge user", "moods.intent.reconcile", `{"op":"reconcile","user":"` + huge[:MaxUserLen+1] + `"}`, OpReconcile},
		{"control character in user", "moods.intent.reconcile", `{"op":"reconcile","user":"auth0|1\n"}`, OpReconcile},
		{"long mongoId", "moods.intent.delete", `{"op":"delete","user":"auth0|1","mongoId":"` + huge[:40000] + `"}`, OpDelete},
		{"long op", "moods.intent.x", `{"op":"` + huge[:40000] + `","user":"auth0|1"}`, ""},
		{"bad did", "moods.intent.purge", `{"op":"purge","user":"auth0|1","did":"did:` + huge[:3000] + `"}`, OpPurge},
		{"did with spaces", "moods.intent.purge", `{"op":"purge","user":"auth0|1","did":"did:plc:a b"}`, OpPurge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := Parse(c.subject, []byte(c.data))
			if !model.IsPermanent(err) {
				t.Fatalf("err = %v, want a permanent error", err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("reason of %d bytes", len(err.Error()))
			}
			if in != (Intent{Op: c.op}) {
				t.Errorf("intent %+v returned with the error, want only op %q", in, c.op)
			}
		})
	}
}

func TestValidateRefusesAUserThatIsNotUTF8(t *testing.T) {
	// JSON decoding replaces invalid UTF-8; an intent built by hand (the
	// publish command) is checked as it is.
	if err := (Intent{Op: OpReconcile, User: "auth0|\xff"}).Validate(); !model.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
}

func TestParseAcceptsTheLimits(t *testing.T) {
	user := strings.Repeat("u", MaxUserLen)
	data := `{"op":"reconcile","user":"` + user + `","pad":"`
	data += strings.Repeat("p", MaxSize-len(data)-2) + `"}`
	if len(data) != MaxSize {
		t.Fatalf("test payload of %d bytes", len(data))
	}
	if _, err := Parse("moods.intent.reconcile", []byte(data)); err != nil {
		t.Fatalf("an intent of exactly %d bytes with a %d-byte user: %v", MaxSize, MaxUserLen, err)
	}
}
