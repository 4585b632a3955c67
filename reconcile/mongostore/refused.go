package mongostore

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// refusedCodes are MongoDB's answers to a write that say the document
// itself is refused, so the same write can never succeed: a validator
// rejects it (121 DocumentValidationFailure), or an update cannot apply to
// the fields as they are (2 BadValue, 14 TypeMismatch, 28 PathNotViable,
// 52 DollarPrefixedFieldName, 66 ImmutableField).
var refusedCodes = map[int]bool{121: true, 2: true, 14: true, 28: true, 52: true, 66: true}

// ClassifyWrite makes a write error MongoDB answered about the document
// permanent (model.PermanentError, the reason naming the code); anything
// else (the server unreachable, a timeout, an election) stays transient.
func ClassifyWrite(err error) error {
	var we mongo.WriteException
	if errors.As(err, &we) {
		for _, e := range we.WriteErrors {
			if refusedCodes[e.Code] {
				return refused(e.Code, e.Message)
			}
		}
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && refusedCodes[int(ce.Code)] {
		return refused(int(ce.Code), ce.Message)
	}
	return err
}

func refused(code int, msg string) error {
	return model.Permanent("MongoDB refused the write (code %d: %s): fix the mood's document or the collection's validator, "+
		"then replay this letter (`moodsync status --user …` lists the user's letters)", code, msg)
}
