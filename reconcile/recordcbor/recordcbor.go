// Package recordcbor decodes the DAG-CBOR body of a mood record: the one
// decoder for records read from the firehose and from repo exports.
package recordcbor

import (
	"fmt"

	"github.com/bluesky-social/indigo/atproto/atdata"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// recordFields are the string fields of a mood record; anything else a
// record carries is ignored, as the lexicon allows.
var recordFields = [...]string{"$type", "mood", "when", "ref", "mongoId"}

// Decode decodes the DAG-CBOR body of a mood record generically
// (no generated types, so a record of either lexicon revision, or a broken
// one, is read the same way). It returns the value, or nil and why the
// record is unusable. It never panics: a record is whatever its author
// wrote, and bad input must be counted and skipped, not stop the caller.
func Decode(raw []byte) (v *model.RecordValue, invalid string) {
	defer func() {
		if r := recover(); r != nil {
			v, invalid = nil, fmt.Sprintf("record is not CBOR-decodable (decoder panicked: %v)", r)
		}
	}()
	obj, err := atdata.UnmarshalCBOR(raw)
	if err != nil {
		return nil, "record is not CBOR-decodable: " + err.Error()
	}
	var s [len(recordFields)]string
	for i, name := range recordFields {
		x, ok := obj[name]
		if !ok {
			continue
		}
		str, ok := x.(string)
		if !ok {
			return nil, fmt.Sprintf("field %q is %T, not a string", name, x)
		}
		s[i] = str
	}
	v = &model.RecordValue{Type: s[0], Mood: s[1], When: s[2], Ref: s[3], MongoID: s[4]}
	if v.Type != model.Collection {
		return nil, fmt.Sprintf("$type is %q", v.Type)
	}
	if why := model.ValidateRecord(v); why != "" {
		return nil, why
	}
	return v, ""
}
