package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// SetCleanPass records what a clean whole-user pass saw on user's binding
// to did; nothing when the user is bound to another DID by now.
func (s *Store) SetCleanPass(ctx context.Context, user, did string, c model.CleanPass) error {
	_, err := s.bindings.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: user}, {Key: "did", Value: did}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "clean", Value: c}}}})
	return err
}
