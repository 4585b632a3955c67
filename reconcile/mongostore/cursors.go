package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// cursorDoc is one firehose position. It is keyed by the stream (the
// firehose URL without its query), because a PDS and a relay number their
// events differently: switching streams must not reuse the other's cursor.
type cursorDoc struct {
	Stream    string    `bson:"_id"`
	Seq       int64     `bson:"seq"`
	UpdatedAt time.Time `bson:"updatedAt"`
}

// LoadCursor returns the stored position of a stream; ok is false when
// none is stored (a first start).
func (s *Store) LoadCursor(ctx context.Context, stream string) (seq int64, ok bool, err error) {
	var d cursorDoc
	err = s.cursors.FindOne(ctx, bson.D{{Key: "_id", Value: stream}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return d.Seq, true, nil
}

// SaveCursor stores the position of a stream: the seq of the last event
// handled.
func (s *Store) SaveCursor(ctx context.Context, stream string, seq int64) error {
	_, err := s.cursors.ReplaceOne(ctx, bson.D{{Key: "_id", Value: stream}},
		cursorDoc{Stream: stream, Seq: seq, UpdatedAt: time.Now().UTC()}, options.Replace().SetUpsert(true))
	return err
}

// DeleteCursor forgets the position of a stream (the server no longer
// knows it, so the next start is a first start).
func (s *Store) DeleteCursor(ctx context.Context, stream string) error {
	_, err := s.cursors.DeleteOne(ctx, bson.D{{Key: "_id", Value: stream}})
	return err
}
