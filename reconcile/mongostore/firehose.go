package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// SwapRkey implements reconcile.FirehoseStore: a live mood whose stored
// record turned out to be gone adopts its newer record.
func (s *Store) SwapRkey(ctx context.Context, id, from, to string) (bool, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return false, model.Permanent("bad mood id %q", id)
	}
	res, err := s.moods.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: oid}, {Key: "atproto.rkey", Value: from}, {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "atproto.rkey", Value: to}}}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}
