package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// ParkedCollection holds the users in trouble the publisher set aside, with
// what they are owed (model.Parked), one document per user.
const ParkedCollection = "moodsync_parked"

// maxCAS bounds the compare-and-set rounds of one parked write; more means
// another writer keeps winning, and the caller retries later.
const maxCAS = 20

var errParkedContended = errors.New("parked user: document kept changing under compare-and-set")

func (s *Store) parked() *mongo.Collection { return s.DB.Collection(ParkedCollection) }

// Parked returns user's parked document, nil when the user is not parked.
func (s *Store) Parked(ctx context.Context, user string) (*model.Parked, error) {
	return findByID[model.Parked](ctx, s.parked(), user)
}

// Park adds what add owes to user's parked document (add.Moods,
// Reconcile, Purge and PurgeDID; LastError when set), creating it with
// since = now and the given next try when the user is not parked yet. It
// returns once the write is acknowledged: only then may the intents be
// acknowledged.
func (s *Store) Park(ctx context.Context, user string, add model.Parked, nextTry time.Time) error {
	for range maxCAS {
		cur, err := s.Parked(ctx, user)
		if err != nil {
			return err
		}
		if cur == nil {
			doc := model.Parked{User: user, Gen: 1, Since: time.Now().UTC(), NextTry: nextTry.UTC(), LastError: add.LastError}
			mergeParked(&doc, add)
			_, err := s.parked().InsertOne(ctx, doc)
			if mongo.IsDuplicateKeyError(err) {
				continue
			}
			return err
		}
		gen := cur.Gen
		mergeParked(cur, add)
		if add.LastError != "" {
			cur.LastError = add.LastError
		}
		ok, err := s.replaceParked(ctx, gen, cur)
		if err != nil || ok {
			return err
		}
	}
	return errParkedContended
}

// mergeParked adds what add owes to p, keeping each owed intent once; past
// model.MaxParkedMoods the ids give way to one whole-user reconcile.
func mergeParked(p *model.Parked, add model.Parked) {
	if len(add.Moods) > 0 && !(len(p.Moods) == 0 && slices.Contains(p.Reconcile, overflowCause)) {
		seen := make(map[model.ParkedMood]bool, len(p.Moods)+len(add.Moods))
		for _, m := range p.Moods {
			seen[m] = true
		}
		for _, m := range add.Moods {
			if !seen[m] {
				seen[m] = true
				p.Moods = append(p.Moods, m)
			}
		}
		if len(p.Moods) > model.MaxParkedMoods {
			p.Moods = nil
			add.Reconcile = append(add.Reconcile, overflowCause)
		}
	}
	for _, c := range add.Reconcile {
		if !slices.Contains(p.Reconcile, c) {
			p.Reconcile = append(p.Reconcile, c)
		}
	}
	if add.Purge {
		p.Purge = true
		if add.PurgeDID != "" {
			p.PurgeDID = add.PurgeDID
		}
		if add.PurgeAskedAt.After(p.PurgeAskedAt) {
			p.PurgeAskedAt = add.PurgeAskedAt
		}
	}
}

// overflowCause is the reconcile owed in place of more than
// model.MaxParkedMoods mood ids: an intent's (it converges every mood).
const overflowCause = "intent"

// replaceParked writes p over the document if its gen is still gen.
func (s *Store) replaceParked(ctx context.Context, gen int64, p *model.Parked) (bool, error) {
	p.Gen = gen + 1
	res, err := s.parked().ReplaceOne(ctx, bson.D{{Key: "_id", Value: p.User}, {Key: "gen", Value: gen}}, p)
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// ParkedUsers returns the parked users, at most limit.
func (s *Store) ParkedUsers(ctx context.Context, limit int) ([]string, error) {
	return s.parkedIDs(ctx, bson.D{}, limit)
}

// ParkedDue returns the parked users whose next try has come, at most
// limit, the longest waiting first.
func (s *Store) ParkedDue(ctx context.Context, now time.Time, limit int) ([]string, error) {
	return s.parkedIDs(ctx, bson.D{{Key: "nextTry", Value: bson.D{{Key: "$lte", Value: now.UTC()}}}}, limit)
}

func (s *Store) parkedIDs(ctx context.Context, filter bson.D, limit int) ([]string, error) {
	return findIDs(ctx, s.parked(), filter, limit)
}

// ClaimParked takes user's retry if its next try has come, moving the next
// try to until (the lease: should this replica die, another retries then),
// and returns the document; nil when the user is not parked or not due.
func (s *Store) ClaimParked(ctx context.Context, user string, now, until time.Time) (*model.Parked, error) {
	for range maxCAS {
		cur, err := s.Parked(ctx, user)
		if err != nil || cur == nil || cur.NextTry.After(now) {
			return nil, err
		}
		gen := cur.Gen
		cur.NextTry = until.UTC()
		ok, err := s.replaceParked(ctx, gen, cur)
		if err != nil {
			return nil, err
		}
		if ok {
			return cur, nil
		}
	}
	return nil, errParkedContended
}

// FinishParked records a retry of claimed (as ClaimParked returned it):
// what done holds was settled (applied or dead-lettered) and is removed,
// unless intents were parked meanwhile (then nothing is removed: the
// retry repeats it, harmless for level-triggered intents). failure, when
// set, is recorded with the next try; without one, whatever is still owed
// is tried at once. A user owed nothing any more is unparked: stillParked
// is false.
func (s *Store) FinishParked(ctx context.Context, claimed *model.Parked, done model.Parked, failure string, nextTry time.Time) (stillParked bool, err error) {
	for range maxCAS {
		cur, err := s.Parked(ctx, claimed.User)
		if err != nil {
			return true, err
		}
		if cur == nil {
			return false, nil
		}
		if cur.Gen == claimed.Gen {
			removeParked(cur, done)
		}
		gen := cur.Gen
		if failure == "" && cur.Owed() == 0 {
			res, err := s.parked().DeleteOne(ctx, bson.D{{Key: "_id", Value: cur.User}, {Key: "gen", Value: gen}})
			if err != nil {
				return true, err
			}
			if res.DeletedCount == 1 {
				return false, nil
			}
			continue
		}
		if failure != "" {
			cur.Failures++
			cur.LastError = failure
			cur.NextTry = nextTry.UTC()
		} else {
			cur.NextTry = time.Now().UTC()
		}
		ok, err := s.replaceParked(ctx, gen, cur)
		if err != nil {
			return true, err
		}
		if ok {
			return true, nil
		}
	}
	return true, fmt.Errorf("finish retry of %s: %w", claimed.User, errParkedContended)
}

func removeParked(p *model.Parked, done model.Parked) {
	if len(done.Moods) > 0 {
		gone := make(map[model.ParkedMood]bool, len(done.Moods))
		for _, m := range done.Moods {
			gone[m] = true
		}
		p.Moods = slices.DeleteFunc(p.Moods, func(m model.ParkedMood) bool { return gone[m] })
	}
	p.Reconcile = slices.DeleteFunc(p.Reconcile, func(c string) bool { return slices.Contains(done.Reconcile, c) })
	if done.Purge {
		p.Purge, p.PurgeDID, p.PurgeAskedAt = false, "", time.Time{}
	}
}
