package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// bulkBatch is the batch size of the streamed reads of every binding and
// every mood: as many documents per round trip as fit (the server caps a
// batch at 16 MiB).
const bulkBatch = 100_000

// AllBindings returns every binding by user, in one streamed read; only
// the DID and the clean pass are read.
func (s *Store) AllBindings(ctx context.Context) (map[string]model.Binding, error) {
	cur, err := s.bindings.Find(ctx, bson.D{}, options.Find().SetBatchSize(bulkBatch).
		SetProjection(bson.D{{Key: "did", Value: 1}, {Key: "clean", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[string]model.Binding{}
	for cur.Next(ctx) {
		var b model.Binding
		if cur.Decode(&b) == nil {
			out[b.User] = b
		}
	}
	return out, cur.Err()
}

// MoodDigests returns each user's moods digest (model.MoodsDigest over the
// moods UserMoods returns), in one streamed read of every mood sorted by
// user (the (user, atproto.rkey) index): one user's moods in memory at a
// time.
func (s *Store) MoodDigests(ctx context.Context) (map[string]string, error) {
	cur, err := s.moods.Find(ctx, bson.D{}, options.Find().SetBatchSize(bulkBatch).SetSort(bson.D{{Key: "user", Value: 1}}))
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	out := map[string]string{}
	var user string
	var moods []*model.Mood
	flush := func() {
		if len(moods) > 0 {
			out[user] = model.MoodsDigest(moods)
		}
		moods = moods[:0]
	}
	for cur.Next(ctx) {
		m := s.decodeMood(cur.Current)
		if m == nil {
			continue
		}
		if m.User != user {
			flush()
			user = m.User
		}
		moods = append(moods, m)
	}
	if err := cur.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}
