// Package mongostore is the MongoDB side of the reconcile engine: the app's
// `moods` and `users` collections, and moodsync's own state in collections
// prefixed `moodsync_` (cached PDS sessions, firehose cursors, DID bindings
// and account statuses).
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Collection names. The first two belong to the app.
const (
	MoodsCollection    = "moods"
	UsersCollection    = "users"
	SessionsCollection = "moodsync_sessions"
	CursorsCollection  = "moodsync_cursors"
)

// Store implements reconcile.Store over one database.
type Store struct {
	Client *mongo.Client
	DB     *mongo.Database
	// OnMalformed, when set, is told of every document read that cannot
	// be used (collection, _id, why): see malformed.go. Log, when set,
	// gets a warning for each.
	OnMalformed func(collection, id, why string)
	Log         *slog.Logger

	moods    *mongo.Collection
	users    *mongo.Collection
	sessions *mongo.Collection
	cursors  *mongo.Collection
	bindings *mongo.Collection
}

// Connect dials uri and returns a store over database db. It does not wait
// for the server: the first operation does, and Ping checks.
func Connect(uri, db string) (*Store, error) {
	opts := options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAppName("moodsync")
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: %w", err)
	}
	return New(client, db), nil
}

// New wraps an existing client.
func New(client *mongo.Client, db string) *Store {
	d := client.Database(db)
	return &Store{
		Client:   client,
		DB:       d,
		moods:    d.Collection(MoodsCollection),
		users:    d.Collection(UsersCollection),
		sessions: d.Collection(SessionsCollection),
		cursors:  d.Collection(CursorsCollection),
		bindings: d.Collection(BindingsCollection),
	}
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.Client.Disconnect(ctx) }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.DB.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}

// EnsureIndexes creates the indexes moodsync's queries need. Creating an
// index that exists is a no-op, so this runs at every start.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.moods.Indexes().CreateMany(ctx, []mongo.IndexModel{
		{Keys: bson.D{{Key: "user", Value: 1}, {Key: "atproto.rkey", Value: 1}}, Options: options.Index().SetName("moodsync_user_rkey")},
	})
	if err != nil {
		return fmt.Errorf("moods indexes: %w", err)
	}
	_, err = s.users.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "atproto.did", Value: 1}},
		Options: options.Index().SetName("moodsync_did").SetSparse(true),
	})
	if err != nil {
		return fmt.Errorf("users indexes: %w", err)
	}
	_, err = s.bindings.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "did", Value: 1}},
		Options: options.Index().SetName("moodsync_binding_did"),
	})
	if err != nil {
		return fmt.Errorf("%s indexes: %w", BindingsCollection, err)
	}
	return nil
}

// MoodDoc is a `moods` document as stored by the app.
type MoodDoc struct {
	ID      bson.ObjectID `bson:"_id"`
	User    string        `bson:"user"`
	Mood    string        `bson:"mood"`
	When    time.Time     `bson:"when"`
	Deleted bool          `bson:"deleted,omitempty"`
	Atproto *struct {
		Rkey string `bson:"rkey,omitempty"`
	} `bson:"atproto,omitempty"`
}

// ToMood converts the document to the engine's view.
func (d *MoodDoc) ToMood() *model.Mood {
	m := &model.Mood{ID: d.ID.Hex(), User: d.User, Text: d.Mood, When: d.When, Deleted: d.Deleted}
	if d.Atproto != nil {
		m.Rkey = d.Atproto.Rkey
	}
	return m
}

// UserDoc is a `users` document as stored by the app.
type UserDoc struct {
	ID      string `bson:"_id"`
	Atproto *struct {
		DID      string `bson:"did"`
		Handle   string `bson:"handle"`
		Password string `bson:"password"`
	} `bson:"atproto,omitempty"`
}

func objectIDs(ids []string) ([]bson.ObjectID, error) {
	out := make([]bson.ObjectID, 0, len(ids))
	for _, id := range ids {
		oid, err := bson.ObjectIDFromHex(id)
		if err != nil {
			return nil, model.Permanent("bad mood id %q", id)
		}
		out = append(out, oid)
	}
	return out, nil
}

// findMoods reads the moods filter matches, one document at a time: a
// malformed one is reported and returned flagged (decodeMood), never a
// reason to fail the others.
func (s *Store) findMoods(ctx context.Context, filter any) ([]*model.Mood, error) {
	cur, err := s.moods.Find(ctx, filter)
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var out []*model.Mood
	for cur.Next(ctx) {
		if m := s.decodeMood(cur.Current); m != nil {
			out = append(out, m)
		}
	}
	return out, cur.Err()
}

// Moods implements reconcile.Store.
func (s *Store) Moods(ctx context.Context, ids []string) (map[string]*model.Mood, error) {
	oids, err := objectIDs(ids)
	if err != nil {
		return nil, err
	}
	moods, err := s.findMoods(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}})
	if err != nil {
		return nil, err
	}
	out := make(map[string]*model.Mood, len(moods))
	for _, m := range moods {
		out[m.ID] = m
	}
	return out, nil
}

// UserMoods implements reconcile.Store.
func (s *Store) UserMoods(ctx context.Context, user string) ([]*model.Mood, error) {
	return s.findMoods(ctx, bson.D{{Key: "user", Value: user}})
}

// MoodByRkey returns the user's mood whose atproto.rkey is rkey, or nil.
func (s *Store) MoodByRkey(ctx context.Context, user, rkey string) (*model.Mood, error) {
	raw, err := s.moods.FindOne(ctx, bson.D{{Key: "user", Value: user}, {Key: "atproto.rkey", Value: rkey}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.decodeMood(raw), nil
}

// userDoc returns the users row filter matches, nil when there is none,
// it has no atproto (no PDS account), or it cannot be used (decodeUser).
func (s *Store) userDoc(ctx context.Context, filter any) (*UserDoc, error) {
	raw, err := s.users.FindOne(ctx, filter).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.decodeUser(raw), nil
}

func (u *UserDoc) account() *model.Account {
	return &model.Account{User: u.ID, DID: u.Atproto.DID, Handle: u.Atproto.Handle}
}

// Account implements reconcile.Store.
func (s *Store) Account(ctx context.Context, user string) (*model.Account, error) {
	u, err := s.userDoc(ctx, bson.D{{Key: "_id", Value: user}})
	if err != nil || u == nil {
		return nil, err
	}
	return u.account(), nil
}

// AccountByDID returns the account whose users row carries did, or nil.
func (s *Store) AccountByDID(ctx context.Context, did string) (*model.Account, error) {
	u, err := s.userDoc(ctx, bson.D{{Key: "atproto.did", Value: did}})
	if err != nil || u == nil {
		return nil, err
	}
	return u.account(), nil
}

// Accounts returns every user with an ATProto account. Rows whose atproto
// cannot be used are reported and skipped.
func (s *Store) Accounts(ctx context.Context) ([]model.Account, error) {
	cur, err := s.users.Find(ctx, bson.D{{Key: "atproto", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		return nil, err
	}
	defer cur.Close(ctx)
	var out []model.Account
	for cur.Next(ctx) {
		if u := s.decodeUser(cur.Current); u != nil {
			out = append(out, *u.account())
		}
	}
	return out, cur.Err()
}

// Password returns the PDS password stored for did ("" when none, which is
// reported: the row cannot serve a login). It is the one place a secret
// leaves Mongo, straight into a createSession body.
func (s *Store) Password(ctx context.Context, did string) (string, error) {
	raw, err := s.users.FindOne(ctx, bson.D{{Key: "atproto.did", Value: did}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	u := s.decodeUser(raw)
	if u == nil {
		return "", nil
	}
	if u.Atproto.Password == "" {
		s.malformed(UsersCollection, raw, "atproto.password missing: no login is possible")
	}
	return u.Atproto.Password, nil
}

// rkeyUnset matches a document whose atproto carries no rkey: absent, null
// or empty, as legacy scripts left it.
var rkeyUnset = bson.D{{Key: "atproto.rkey", Value: bson.D{{Key: "$in", Value: bson.A{nil, ""}}}}}

// SetRkey implements reconcile.Store.
func (s *Store) SetRkey(ctx context.Context, id, rkey string) (bool, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return false, model.Permanent("bad mood id %q", id)
	}
	filter := bson.D{{Key: "_id", Value: oid}, {Key: "deleted", Value: bson.D{{Key: "$ne", Value: true}}}}
	filter = append(filter, rkeyUnset...)
	res, err := s.moods.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "atproto", Value: bson.D{{Key: "rkey", Value: rkey}}}}}})
	if err != nil {
		return false, ClassifyWrite(err)
	}
	return res.MatchedCount == 1, nil
}

// ClearRkey implements reconcile.Store.
func (s *Store) ClearRkey(ctx context.Context, id, rkey string) (bool, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return false, model.Permanent("bad mood id %q", id)
	}
	res, err := s.moods.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: oid}, {Key: "atproto.rkey", Value: rkey}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "atproto", Value: ""}}}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// SoftDeleteByRkey marks the live mood holding rkey deleted and unsets
// atproto, in one compare-and-set (a record deleted on the PDS).
func (s *Store) SoftDeleteByRkey(ctx context.Context, id, rkey string) (bool, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return false, model.Permanent("bad mood id %q", id)
	}
	res, err := s.moods.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: oid}, {Key: "atproto.rkey", Value: rkey}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "deleted", Value: true}}},
			{Key: "$unset", Value: bson.D{{Key: "atproto", Value: ""}}},
		})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// ClearUserRkeys unsets atproto on every mood of a user (their account and
// with it every record is gone).
func (s *Store) ClearUserRkeys(ctx context.Context, user string) (int64, error) {
	res, err := s.moods.UpdateMany(ctx,
		bson.D{{Key: "user", Value: user}, {Key: "atproto", Value: bson.D{{Key: "$exists", Value: true}}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "atproto", Value: ""}}}})
	if err != nil {
		return 0, err
	}
	return res.ModifiedCount, nil
}

// DeleteUserMoods implements reconcile.Store: the moods whose ObjectID was
// made up to upTo (every mood when upTo is zero).
func (s *Store) DeleteUserMoods(ctx context.Context, user string, upTo time.Time) (int64, error) {
	filter := bson.D{{Key: "user", Value: user}}
	if !upTo.IsZero() {
		// An ObjectID holds whole seconds: every id of upTo's second, and
		// none after it, sorts before the first id of the next second.
		next := bson.NewObjectIDFromTimestamp(upTo.Truncate(time.Second).Add(time.Second))
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: next}}})
	}
	res, err := s.moods.DeleteMany(ctx, filter)
	if err != nil {
		return 0, err
	}
	return res.DeletedCount, nil
}

// InsertMood implements reconcile.Store: the document is inserted only
// when none with its _id exists (a duplicate key says one does).
func (s *Store) InsertMood(ctx context.Context, m model.Mood) (bool, error) {
	oid, err := bson.ObjectIDFromHex(m.ID)
	if err != nil {
		return false, model.Permanent("bad mood id %q", m.ID)
	}
	doc := bson.D{{Key: "_id", Value: oid}, {Key: "user", Value: m.User}, {Key: "mood", Value: m.Text}, {Key: "when", Value: m.When}}
	if m.Rkey != "" {
		doc = append(doc, bson.E{Key: "atproto", Value: bson.D{{Key: "rkey", Value: m.Rkey}}})
	}
	_, err = s.moods.InsertOne(ctx, doc)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	return err == nil, err
}

// findIDs returns the string _ids of at most limit documents of coll that
// match filter.
func findIDs(ctx context.Context, coll *mongo.Collection, filter bson.D, limit int) ([]string, error) {
	cur, err := coll.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]string, len(docs))
	for i, d := range docs {
		out[i] = d.ID
	}
	return out, nil
}

// findByID decodes the document of coll whose _id is id, nil when there is
// none.
func findByID[T any](ctx context.Context, coll *mongo.Collection, id string) (*T, error) {
	var doc T
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &doc, nil
}
