package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// BindingsCollection keeps, per user, the DID their rkeys belong to and the
// account status last seen (model.Binding).
const BindingsCollection = "moodsync_accounts"

// Binding returns the binding of user, nil when there is none yet.
func (s *Store) Binding(ctx context.Context, user string) (*model.Binding, error) {
	return findByID[model.Binding](ctx, s.bindings, user)
}

// BindingsOfDID returns the bindings to did (one, unless rows were
// misconfigured).
func (s *Store) BindingsOfDID(ctx context.Context, did string) ([]model.Binding, error) {
	cur, err := s.bindings.Find(ctx, bson.D{{Key: "did", Value: did}}, options.Find().SetLimit(16))
	if err != nil {
		return nil, err
	}
	var out []model.Binding
	return out, cur.All(ctx, &out)
}

// Bind binds user to did if the binding still names prev ("" when there is
// none): compare-and-set, so two replicas noticing the same change rebind
// once. A rebind forgets the status and the clean pass, which were the old
// account's.
func (s *Store) Bind(ctx context.Context, user, did, prev string) (bool, error) {
	if prev == "" {
		_, err := s.bindings.InsertOne(ctx, model.Binding{User: user, DID: did})
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return err == nil, err
	}
	res, err := s.bindings.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: user}, {Key: "did", Value: prev}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "did", Value: did}}},
			{Key: "$unset", Value: bson.D{{Key: "status", Value: ""}, {Key: "statusAt", Value: ""}, {Key: "clean", Value: ""}}},
		})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// SetStatus records the account status of user's binding to did; it does
// nothing when the user is bound to another DID by now.
func (s *Store) SetStatus(ctx context.Context, user, did, status string) error {
	_, err := s.bindings.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: user}, {Key: "did", Value: did}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: status}, {Key: "statusAt", Value: time.Now().UTC()}}}})
	return err
}

// UsersOfDID returns the users whose users row names did (at most a few:
// more than one is a misconfiguration moodsync refuses to act on).
func (s *Store) UsersOfDID(ctx context.Context, did string) ([]string, error) {
	return findIDs(ctx, s.users, bson.D{{Key: "atproto.did", Value: did}}, 16)
}

// NoteReconcile records the last whole-user reconcile of user on their
// binding (none is made for a user without one).
func (s *Store) NoteReconcile(ctx context.Context, user string, mark model.ReconcileMark) error {
	_, err := s.bindings.UpdateOne(ctx, bson.D{{Key: "_id", Value: user}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lastReconcile", Value: mark}}}})
	return err
}

// NoteEvent records the last firehose event of did on the bindings to it
// (none when did is bound to no user).
func (s *Store) NoteEvent(ctx context.Context, did string, mark model.EventMark) error {
	_, err := s.bindings.UpdateMany(ctx, bson.D{{Key: "did", Value: did}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lastEvent", Value: mark}}}})
	return err
}

// UsersRow returns what may be shown of user's users row, nil when there
// is no row. The password itself is never read: a second query asks
// whether one is stored.
func (s *Store) UsersRow(ctx context.Context, user string) (*model.UsersRow, error) {
	var u UserDoc
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: user}},
		options.FindOne().SetProjection(bson.D{{Key: "atproto.did", Value: 1}, {Key: "atproto.handle", Value: 1}})).Decode(&u)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	row := &model.UsersRow{User: u.ID}
	if u.Atproto != nil {
		row.DID, row.Handle = u.Atproto.DID, u.Atproto.Handle
	}
	n, err := s.users.CountDocuments(ctx, bson.D{{Key: "_id", Value: user}, {Key: "atproto.password", Value: bson.D{{Key: "$gt", Value: ""}}}})
	if err != nil {
		return nil, err
	}
	row.HasPassword = n > 0
	return row, nil
}

// SetErased records on user's binding that a purge erased them at (the
// tombstone), binding the user to did first when they never were.
func (s *Store) SetErased(ctx context.Context, user, did string, at time.Time) error {
	_, err := s.bindings.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: user}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "erased", Value: at.UTC()}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: "did", Value: did}}},
		},
		options.UpdateOne().SetUpsert(true))
	return err
}

// SetRewriteOwed records whether user's repo owes a rewrite of its
// missing records (see model.Binding.RewriteOwed); users never bound are
// left alone.
func (s *Store) SetRewriteOwed(ctx context.Context, user string, owed bool) error {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "rewriteOwed", Value: true}}}}
	if !owed {
		update = bson.D{{Key: "$unset", Value: bson.D{{Key: "rewriteOwed", Value: ""}}}}
	}
	_, err := s.bindings.UpdateOne(ctx, bson.D{{Key: "_id", Value: user}}, update)
	return err
}
