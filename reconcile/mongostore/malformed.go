package mongostore

import (
	"fmt"
	"unicode/utf8"

	"github.com/bluesky-social/indigo/atproto/syntax"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// The app writes `moods` and `users`; moodsync only reads them, and some
// documents it cannot use: a mood whose `when` is not a date, whose `mood`
// is not text or whose `user` is missing; a users row whose atproto has no
// DID, or one that is not a DID. Such a document is never a crash and
// never a reason to write anything on a guess: it is reported (logged with
// its _id, counted through OnMalformed) and
//
//   - a mood is returned with model.Mood.Malformed set, so the engine knows
//     the id exists and leaves it and the records naming it alone (an
//     intent naming it is dead-lettered with the reason);
//   - a users row counts as no account (skipped by the sweeps; an intent of
//     that user is dead-lettered).
//
// A users row without a password is reported when a login needs it; the
// login then fails for good (dead letter) unless a cached session serves.

// Collection names reported to OnMalformed are MoodsCollection and
// UsersCollection.

// malformed reports a document that cannot be used. why names fields and
// types, never values (a users row holds a password).
func (s *Store) malformed(collection string, raw bson.Raw, why string) {
	id := "(unreadable _id)"
	switch v := raw.Lookup("_id"); v.Type {
	case bson.TypeObjectID:
		id = v.ObjectID().Hex()
	case bson.TypeString:
		id = v.StringValue()
	}
	if s.OnMalformed != nil {
		s.OnMalformed(collection, id, why)
	}
	if s.Log != nil {
		s.Log.Warn("malformed document skipped: nothing is decided or written for it until it is fixed",
			"collection", collection, "id", id, "why", why)
	}
}

// fieldProblem says what is wrong with one field of raw: absent (when
// required), or of another BSON type than want. "" when it is fine.
func fieldProblem(raw bson.Raw, required bool, want bson.Type, path ...string) string {
	v := raw.Lookup(path...)
	name := path[0]
	for _, p := range path[1:] {
		name += "." + p
	}
	switch {
	case v.Type == 0 || v.Type == bson.TypeNull:
		if required {
			return name + " missing"
		}
		return ""
	case v.Type != want:
		return fmt.Sprintf("%s is %s, not %s", name, typeName(v.Type), typeName(want))
	case want == bson.TypeString && required && v.StringValue() == "":
		return name + " empty"
	}
	return ""
}

// field is one field a document must (required) or may hold, and its
// BSON type.
type field struct {
	required bool
	want     bson.Type
	path     []string
}

// firstProblem is what is wrong with the first field of raw that is not
// as fields say, "" when none is.
func firstProblem(raw bson.Raw, fields []field) string {
	for _, f := range fields {
		if why := fieldProblem(raw, f.required, f.want, f.path...); why != "" {
			return why
		}
	}
	return ""
}

// moodFields are what moodsync reads of a moods document.
var moodFields = []field{
	{true, bson.TypeObjectID, []string{"_id"}},
	{true, bson.TypeString, []string{"user"}},
	{true, bson.TypeString, []string{"mood"}},
	{true, bson.TypeDateTime, []string{"when"}},
	{false, bson.TypeBoolean, []string{"deleted"}},
	{false, bson.TypeEmbeddedDocument, []string{"atproto"}},
	{false, bson.TypeString, []string{"atproto", "rkey"}},
}

// moodProblem says why a moods document cannot be used, "" when it can.
func moodProblem(raw bson.Raw) string {
	if why := firstProblem(raw, moodFields); why != "" {
		return why
	}
	if n := utf8.RuneCountInString(raw.Lookup("mood").StringValue()); n > model.MaxLen {
		return fmt.Sprintf("mood of %d characters, over the lexicon's %d", n, model.MaxLen)
	}
	return ""
}

// decodeMood reads one moods document: the mood, or — for a document that
// cannot be used — a mood with only its id (and user, when readable) and
// Malformed set, reported; nil when not even its _id is an ObjectID.
func (s *Store) decodeMood(raw bson.Raw) *model.Mood {
	why := moodProblem(raw)
	var d MoodDoc
	if why == "" {
		if err := bson.Unmarshal(raw, &d); err != nil {
			why = "does not decode as a mood"
		}
	}
	if why == "" {
		return d.ToMood()
	}
	s.malformed(MoodsCollection, raw, why)
	oid, ok := raw.Lookup("_id").ObjectIDOK()
	if !ok {
		return nil
	}
	m := &model.Mood{ID: oid.Hex(), Malformed: why}
	m.User, _ = raw.Lookup("user").StringValueOK()
	return m
}

// userFields are what moodsync reads of a users row with an atproto.
var userFields = []field{
	{true, bson.TypeString, []string{"_id"}},
	{true, bson.TypeEmbeddedDocument, []string{"atproto"}},
	{true, bson.TypeString, []string{"atproto", "did"}},
	{false, bson.TypeString, []string{"atproto", "handle"}},
	{false, bson.TypeString, []string{"atproto", "password"}},
}

// userProblem says why a users row with an atproto field cannot be used
// as an account, "" when it can.
func userProblem(raw bson.Raw) string {
	if why := firstProblem(raw, userFields); why != "" {
		return why
	}
	if _, err := syntax.ParseDID(raw.Lookup("atproto", "did").StringValue()); err != nil {
		return "atproto.did is not a DID"
	}
	return ""
}

// decodeUser reads one users row: nil, unreported, when it has no atproto
// (a user without a PDS account); nil, reported, when it cannot be used.
func (s *Store) decodeUser(raw bson.Raw) *UserDoc {
	if v := raw.Lookup("atproto"); v.Type == 0 || v.Type == bson.TypeNull {
		return nil
	}
	why := userProblem(raw)
	var u UserDoc
	if why == "" {
		if err := bson.Unmarshal(raw, &u); err != nil {
			why = "does not decode as a users row"
		}
	}
	if why != "" {
		s.malformed(UsersCollection, raw, why)
		return nil
	}
	return &u
}

// typeName names a BSON type as a sentence does.
func typeName(t bson.Type) string {
	switch t {
	case bson.TypeString:
		return "a string"
	case bson.TypeDateTime:
		return "a date"
	case bson.TypeEmbeddedDocument:
		return "a document"
	case bson.TypeObjectID:
		return "an ObjectID"
	case bson.TypeBoolean:
		return "a boolean"
	case bson.TypeInt32, bson.TypeInt64, bson.TypeDouble, bson.TypeDecimal128:
		return "a number"
	case bson.TypeArray:
		return "an array"
	}
	return "a " + t.String()
}
