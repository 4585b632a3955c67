package intent

import (
	"encoding/json"
	"errors"
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

// parseCases are intents as they arrive (subject and payload), and whether
// each is refused; they also seed FuzzParse.
var parseCases = []struct {
	subject, data string
	permanent     bool
}{
	{"moods.intent.create", `{"op":"create","mongoId":"507f1f77bcf86cd799439011","user":"auth0|1"}`, false},
	{"moods.intent.create", `{"op":"create","mongoId":"507F1F77BCF86CD799439011","user":"auth0|1"}`, false},
	{"moods.intent.create", `{"op":"create","mongoId":"507f1f77bcf86cd799439011","user":"auth0|1","extra":1}`, false},
	{"moods.intent.purge", `{"op":"purge","user":"auth0|1","did":"did:plc:abc"}`, false},
	{"moods.intent.reconcile", `{"op":"reconcile","user":"auth0|1"}`, false},
	{"moods.intent.reconcile", `{"op":"reconcile","user":"auth0|1","cause":"gap"}`, false},
	{"moods.intent.create", `{"op":"create","mongoId":"507f1f77bcf86cd79943901","user":"auth0|1"}`, true},
	{"moods.intent.create", `{"op":"create","mongoId":"507f1f77bcf86cd799439011"}`, true},
	{"moods.intent.create", `not json`, true},
	{"moods.intent.create", `{"op":"create",`, true},
	{"moods.intent.zap", `{"op":"zap","user":"auth0|1"}`, true},
	{"moods.intent.delete", `{"op":"create","mongoId":"507f1f77bcf86cd799439011","user":"auth0|1"}`, true},
	{"moods.intent.purge", `{"op":"purge","user":"auth0|1","did":"plc:abc"}`, true},
	{"moods.intent.reconcile", `{"op":"reconcile","user":"auth0|\u0007"}`, true},
	{"moods.intent.create", `{"op":"create","mongoId":["507f1f77bcf86cd799439011"],"user":"auth0|1"}`, true},
}

func TestIntentParse(t *testing.T) {
	for _, c := range parseCases {
		_, err := Parse(c.subject, []byte(c.data))
		if got := model.IsPermanent(err); got != c.permanent || (err != nil) != c.permanent {
			t.Errorf("Parse(%s, %s) = %v, want permanent=%v", c.subject, c.data, err, c.permanent)
		}
	}
	var syntaxErr *json.SyntaxError
	if _, err := Parse("", []byte("{")); errors.As(err, &syntaxErr) {
		t.Error("raw JSON error leaked instead of a permanent error")
	}
}

// FuzzParse: whatever arrives, Parse neither panics nor lets anything out
// of bounds through. A refused intent is a permanent error (one dead
// letter) with a short one-line reason and nothing but a known op; an
// accepted one is valid, in canonical form, matches its subject, and
// reads back the same once published (Publish marshals it).
func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.subject, []byte(c.data))
	}
	f.Add("moods.intent.create", []byte(`{"op":"create","mongoId":"507f1f77bcf86cd799439011","user":"`+strings.Repeat("u", MaxUserLen+1)+`"}`))
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		in, err := Parse(subject, data)
		if err != nil {
			if !model.IsPermanent(err) {
				t.Fatalf("error %v is not permanent: the intent would be retried for ever", err)
			}
			if reason := err.Error(); len(reason) > 300 || strings.ContainsAny(reason, "\r\n") {
				t.Fatalf("reason of %d bytes (%.80q): not one short line", len(reason), reason)
			}
			if in != (Intent{Op: in.Op}) || (in.Op != "" && !Known(in.Op)) {
				t.Fatalf("refused intent returned %+v", in)
			}
			return
		}
		if len(data) > MaxSize {
			t.Fatalf("accepted %d bytes", len(data))
		}
		if err := in.Validate(); err != nil {
			t.Fatalf("accepted an intent Validate refuses: %v", err)
		}
		if (in.Op == OpCreate || in.Op == OpDelete) && !model.ValidID(in.MongoID) {
			t.Fatalf("accepted mongoId %q is not canonical", in.MongoID)
		}
		if subject != "" && subject != in.Subject() {
			t.Fatalf("op %q accepted on subject %q", in.Op, subject)
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(in.Subject(), again)
		if err != nil || back != in {
			t.Fatalf("round trip: %+v → %s → %+v, %v", in, again, back, err)
		}
	})
}
