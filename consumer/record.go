package consumer

import (
	"fmt"

	"github.com/bluesky-social/indigo/atproto/atdata"

	"github.com/whistlegraph/moodsync/reconcile"
)

// moodFields are the record's string fields; anything else a record
// carries is ignored, as the lexicon allows.
var moodFields = [...]string{"$type", "mood", "when", "ref", "mongoId"}

// decodeRecord decodes the DAG-CBOR body of a mood record. It returns the
// value, or nil and why the record is unusable. It never panics: a record
// is whatever its author wrote, and bad input must not stop the consumer.
func decodeRecord(raw []byte) (v *reconcile.RecordValue, invalid string) {
	defer func() {
		if r := recover(); r != nil {
			v, invalid = nil, fmt.Sprintf("record is not CBOR-decodable (decoder panicked: %v)", r)
		}
	}()
	obj, err := atdata.UnmarshalCBOR(raw)
	if err != nil {
		return nil, "record is not CBOR-decodable: " + err.Error()
	}
	var s [len(moodFields)]string
	for i, name := range moodFields {
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
	v = &reconcile.RecordValue{Type: s[0], Mood: s[1], When: s[2], Ref: s[3], MongoID: s[4]}
	if v.Type != reconcile.Collection {
		return nil, fmt.Sprintf("$type is %q", v.Type)
	}
	if why := reconcile.ValidateRecord(v); why != "" {
		return nil, why
	}
	return v, ""
}
