package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/backoff"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// BreakerCollection keeps the mass-delete breaker: one document, shared by
// every replica and command, so the bound holds across all of them and a
// tripped breaker stays tripped across restarts.
const BreakerCollection = "moodsync_breaker"

const breakerID = "soft-deletes"

// maxSwaps bounds the compare-and-set attempts of one change; between
// them a jittered backoff lets the other takers through.
const maxSwaps = 64

// breakerDoc is the stored state; V is bumped by every change, so each
// change is a compare-and-set on the state it was decided from.
type breakerDoc struct {
	ID                 string `bson:"_id"`
	V                  int64  `bson:"v"`
	model.BreakerState `bson:",inline"`
}

// Breaker is the mass-delete breaker (reconcile.Breaker) over Mongo: at most
// Limit soft deletes on evidence other than seen delete ops per
// reconcile.BreakerWindow, across every user (reconcile.DecideBreaker).
type Breaker struct {
	Store *Store
	Limit int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

var _ reconcile.Breaker = (*Breaker)(nil)

// Take implements reconcile.Breaker.
func (b *Breaker) Take(ctx context.Context, n int) (bool, error) {
	if b.Limit <= 0 || n <= 0 {
		return true, nil
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	bo := backoff.New(2*time.Millisecond, 200*time.Millisecond)
	for range maxSwaps {
		cur, err := b.read(ctx)
		if err != nil {
			return false, err
		}
		ok, next := reconcile.DecideBreaker(cur.BreakerState, n, b.Limit, reconcile.BreakerWindow, now().UTC())
		done, err := b.swap(ctx, cur, next)
		if err != nil {
			return false, err
		}
		if done {
			return ok, nil
		}
		// Another taker changed it first: decide again on its state.
		if !backoff.Sleep(ctx, bo.Next()) {
			return false, ctx.Err()
		}
	}
	return false, errors.New("mass-delete breaker: state still changing; try again")
}

// Release closes a tripped breaker: an operator looked at what it held.
// The window starts again empty.
func (b *Breaker) Release(ctx context.Context) (model.BreakerState, error) {
	bo := backoff.New(2*time.Millisecond, 200*time.Millisecond)
	for range maxSwaps {
		cur, err := b.read(ctx)
		if err != nil {
			return model.BreakerState{}, err
		}
		done, err := b.swap(ctx, cur, model.BreakerState{})
		if err != nil {
			return model.BreakerState{}, err
		}
		if done {
			return cur.BreakerState, nil
		}
		if !backoff.Sleep(ctx, bo.Next()) {
			return model.BreakerState{}, ctx.Err()
		}
	}
	return model.BreakerState{}, errors.New("mass-delete breaker: state still changing; try again")
}

func (b *Breaker) read(ctx context.Context) (breakerDoc, error) {
	doc, err := findByID[breakerDoc](ctx, b.Store.DB.Collection(BreakerCollection), breakerID)
	if err != nil {
		return breakerDoc{}, fmt.Errorf("read the mass-delete breaker: %w", err)
	}
	if doc == nil {
		return breakerDoc{ID: breakerID}, nil
	}
	return *doc, nil
}

// swap stores next if the state is still cur; false when it changed.
func (b *Breaker) swap(ctx context.Context, cur breakerDoc, next model.BreakerState) (bool, error) {
	coll := b.Store.DB.Collection(BreakerCollection)
	doc := breakerDoc{ID: breakerID, V: cur.V + 1, BreakerState: next}
	if cur.V == 0 {
		_, err := coll.InsertOne(ctx, doc)
		if mongo.IsDuplicateKeyError(err) {
			return false, nil
		}
		return err == nil, err
	}
	res, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: breakerID}, {Key: "v", Value: cur.V}}, doc)
	if err != nil {
		return false, fmt.Errorf("store the mass-delete breaker: %w", err)
	}
	return res.MatchedCount == 1, nil
}
