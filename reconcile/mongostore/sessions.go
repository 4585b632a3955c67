package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// LoadSession returns the cached session of did, or nil.
func (s *Store) LoadSession(ctx context.Context, did string) (*pdsclient.Session, error) {
	return findByID[pdsclient.Session](ctx, s.sessions, did)
}

// SaveSession stores (or replaces) the session of its DID.
func (s *Store) SaveSession(ctx context.Context, sess pdsclient.Session) error {
	sess.UpdatedAt = time.Now().UTC()
	_, err := s.sessions.ReplaceOne(ctx, bson.D{{Key: "_id", Value: sess.DID}}, sess, options.Replace().SetUpsert(true))
	return err
}

// DeleteSession forgets the session of did.
func (s *Store) DeleteSession(ctx context.Context, did string) error {
	_, err := s.sessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: did}})
	return err
}
