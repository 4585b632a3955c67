// Package reconciletest has in-memory stand-ins for the reconcile engine's
// Mongo and PDS sides, for unit tests and benchmarks that must not measure
// a database. They follow the real ones' compare-and-set semantics.
package reconciletest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/whistlegraph/moodsync/reconcile"
	"github.com/whistlegraph/moodsync/reconcile/model"
)

// Store is an in-memory reconcile.Store that also keeps firehose cursors,
// as mongostore.Store does.
type Store struct {
	mu       sync.Mutex
	moods    map[string]*model.Mood
	accounts map[string]model.Account // by user
	bindings map[string]model.Binding // by user
	cursors  map[string]int64
}

var _ reconcile.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		moods:    map[string]*model.Mood{},
		accounts: map[string]model.Account{},
		bindings: map[string]model.Binding{},
		cursors:  map[string]int64{},
	}
}

// PutMood inserts or replaces a mood.
func (s *Store) PutMood(m model.Mood) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.moods[m.ID] = &m
}

// Mood returns a copy of a mood, nil when there is none.
func (s *Store) Mood(id string) *model.Mood {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.moods[id]; m != nil {
		c := *m
		return &c
	}
	return nil
}

// RemoveAccount removes a user's users row, as the app's erase flow does.
func (s *Store) RemoveAccount(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accounts, user)
}

// PutAccount inserts or replaces a user's account.
func (s *Store) PutAccount(a model.Account) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accounts[a.User] = a
}

// Moods implements reconcile.Store.
func (s *Store) Moods(_ context.Context, ids []string) (map[string]*model.Mood, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]*model.Mood, len(ids))
	for _, id := range ids {
		if m := s.moods[id]; m != nil {
			c := *m
			out[id] = &c
		}
	}
	return out, nil
}

// UserMoods implements reconcile.Store.
func (s *Store) UserMoods(_ context.Context, user string) ([]*model.Mood, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*model.Mood
	for _, m := range s.moods {
		if m.User == user {
			c := *m
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *model.Mood) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return out, nil
}

// Account implements reconcile.Store.
func (s *Store) Account(_ context.Context, user string) (*model.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[user]; ok {
		return &a, nil
	}
	return nil, nil
}

// AccountByDID returns the account holding did, or nil.
func (s *Store) AccountByDID(_ context.Context, did string) (*model.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.accounts {
		if a.DID == did {
			return &a, nil
		}
	}
	return nil, nil
}

// UsersOfDID implements reconcile.Store.
func (s *Store) UsersOfDID(_ context.Context, did string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.accounts {
		if a.DID == did {
			out = append(out, a.User)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Binding implements reconcile.Store.
func (s *Store) Binding(_ context.Context, user string) (*model.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[user]; ok {
		return &b, nil
	}
	return nil, nil
}

// BindingsOfDID implements reconcile.Store.
func (s *Store) BindingsOfDID(_ context.Context, did string) ([]model.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []model.Binding
	for _, b := range s.bindings {
		if b.DID == did {
			out = append(out, b)
		}
	}
	return out, nil
}

// Bind implements reconcile.Store.
func (s *Store) Bind(_ context.Context, user, did, prev string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bindings[user]
	if (prev == "" && ok) || (prev != "" && (!ok || b.DID != prev)) {
		return false, nil
	}
	s.bindings[user] = model.Binding{User: user, DID: did}
	return true, nil
}

// SetStatus implements reconcile.Store.
func (s *Store) SetStatus(_ context.Context, user, did, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[user]; ok && b.DID == did {
		b.Status = status
		s.bindings[user] = b
	}
	return nil
}

// NoteReconcile implements reconcile.Store.
func (s *Store) NoteReconcile(_ context.Context, user string, mark model.ReconcileMark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[user]; ok {
		b.LastReconcile = &mark
		s.bindings[user] = b
	}
	return nil
}

// SetCleanPass implements reconcile.Store.
func (s *Store) SetCleanPass(_ context.Context, user, did string, c model.CleanPass) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[user]; ok && b.DID == did {
		b.Clean = &c
		s.bindings[user] = b
	}
	return nil
}

// NoteEvent records the last firehose event of did on the bindings to it,
// as mongostore.Store does.
func (s *Store) NoteEvent(_ context.Context, did string, mark model.EventMark) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for user, b := range s.bindings {
		if b.DID == did {
			b.LastEvent = &mark
			s.bindings[user] = b
		}
	}
	return nil
}

// Accounts returns every account.
func (s *Store) Accounts(context.Context) ([]model.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]model.Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a)
	}
	return out, nil
}

// SetRkey implements reconcile.Store.
func (s *Store) SetRkey(_ context.Context, id, rkey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.moods[id]
	if m == nil || m.Deleted || m.Rkey != "" {
		return false, nil
	}
	m.Rkey = rkey
	return true, nil
}

// ClearRkey implements reconcile.Store.
func (s *Store) ClearRkey(_ context.Context, id, rkey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.moods[id]
	if m == nil || m.Rkey != rkey {
		return false, nil
	}
	m.Rkey = ""
	return true, nil
}

// DeleteUserMoods implements reconcile.Store.
func (s *Store) DeleteUserMoods(_ context.Context, user string, upTo time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, m := range s.moods {
		if at, _ := model.IDTime(id); m.User == user && (upTo.IsZero() || !at.After(upTo.Truncate(time.Second))) {
			delete(s.moods, id)
			n++
		}
	}
	return n, nil
}

// InsertMood implements reconcile.Store.
func (s *Store) InsertMood(_ context.Context, m model.Mood) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.moods[m.ID]; ok {
		return false, nil
	}
	s.moods[m.ID] = &m
	return true, nil
}

// SetErased implements reconcile.Store.
func (s *Store) SetErased(_ context.Context, user, did string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bindings[user]
	if !ok {
		b = model.Binding{User: user, DID: did}
	}
	b.Erased = at.UTC()
	s.bindings[user] = b
	return nil
}

// SetRewriteOwed implements reconcile.Store.
func (s *Store) SetRewriteOwed(_ context.Context, user string, owed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.bindings[user]; ok {
		b.RewriteOwed = owed
		s.bindings[user] = b
	}
	return nil
}

// MoodByRkey implements reconcile.FirehoseStore.
func (s *Store) MoodByRkey(_ context.Context, user, rkey string) (*model.Mood, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.moods {
		if m.User == user && m.Rkey == rkey {
			c := *m
			return &c, nil
		}
	}
	return nil, nil
}

// SoftDeleteByRkey implements reconcile.FirehoseStore.
func (s *Store) SoftDeleteByRkey(_ context.Context, id, rkey string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.moods[id]
	if m == nil || m.Rkey != rkey {
		return false, nil
	}
	m.Deleted, m.Rkey = true, ""
	return true, nil
}

// SwapRkey implements reconcile.FirehoseStore.
func (s *Store) SwapRkey(_ context.Context, id, from, to string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.moods[id]
	if m == nil || m.Deleted || m.Rkey != from {
		return false, nil
	}
	m.Rkey = to
	return true, nil
}

// ClearUserRkeys implements reconcile.FirehoseStore.
func (s *Store) ClearUserRkeys(_ context.Context, user string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, m := range s.moods {
		if m.User == user && m.Rkey != "" {
			m.Rkey = ""
			n++
		}
	}
	return n, nil
}

// LoadCursor returns the stored position of a stream.
func (s *Store) LoadCursor(_ context.Context, stream string) (int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.cursors[stream]
	return seq, ok, nil
}

// SaveCursor stores the position of a stream.
func (s *Store) SaveCursor(_ context.Context, stream string, seq int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursors[stream] = seq
	return nil
}

// DeleteCursor forgets the position of a stream.
func (s *Store) DeleteCursor(_ context.Context, stream string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cursors, stream)
	return nil
}

// PDS is an in-memory reconcile.PDS: repos of records by DID.
type PDS struct {
	mu       sync.Mutex
	repos    map[string]map[string]model.Record
	inactive map[string]string // DID → status
	cids     int
	revs     map[string]string // DID → rev of the repo's last commit
	Deleted  []string          // rkeys deleted through DeleteRecord, in order
	Exports  int               // ExportRecords calls
}

var _ reconcile.PDS = (*PDS)(nil)

// NewPDS returns a PDS with no records.
func NewPDS() *PDS {
	return &PDS{repos: map[string]map[string]model.Record{}, inactive: map[string]string{}, revs: map[string]string{}}
}

// SetStatus makes a repo inactive with status (deactivated, takendown,
// deleted), or active again with "".
func (p *PDS) SetStatus(did, status string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == "" {
		delete(p.inactive, did)
	} else {
		p.inactive[did] = status
	}
}

// refuse is the error for an inactive repo; p.mu is held.
func (p *PDS) refuse(did string) error {
	if st := p.inactive[did]; st != "" {
		return model.Inactive(did, st)
	}
	return nil
}

// newCID is a fresh CID-like name for a record version; p.mu is held.
func (p *PDS) newCID() string {
	p.cids++
	return fmt.Sprintf("cid%d", p.cids)
}

// commit gives did's repo a new rev, as every write does; p.mu is held.
func (p *PDS) commit(did string) {
	p.cids++
	p.revs[did] = fmt.Sprintf("rev%012d", p.cids)
}

// SetRev sets the rev of the repo's last commit, as a restored repo's
// older one.
func (p *PDS) SetRev(did, rev string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revs[did] = rev
}

// Put stores a record as its user would write it.
func (p *PDS) Put(did string, r model.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.repos[did] == nil {
		p.repos[did] = map[string]model.Record{}
	}
	if r.CID == "" {
		r.CID = p.newCID()
	}
	p.repos[did][r.Rkey] = r
	p.commit(did)
}

// Remove deletes a record as its user would.
func (p *PDS) Remove(did, rkey string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.repos[did], rkey)
	p.commit(did)
}

// Has reports whether a record exists.
func (p *PDS) Has(did, rkey string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.repos[did][rkey]
	return ok
}

// ApplyWrites implements reconcile.PDS.
func (p *PDS) ApplyWrites(ctx context.Context, did string, writes []model.Write) error {
	for _, w := range writes {
		var err error
		if w.Delete {
			err = p.DeleteRecord(ctx, did, w.Rkey, "")
		} else {
			err = p.CreateRecord(ctx, did, w.Rkey, w.Value)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateRecord implements reconcile.PDS.
func (p *PDS) CreateRecord(_ context.Context, did, rkey string, v model.RecordValue) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refuse(did); err != nil {
		return err
	}
	if _, taken := p.repos[did][rkey]; taken {
		// As the reference PDS answers it: a bare 500, neither a
		// transport failure nor a permanent one.
		return fmt.Errorf("InternalServerError: rkey %s taken", rkey)
	}
	if p.repos[did] == nil {
		p.repos[did] = map[string]model.Record{}
	}
	p.repos[did][rkey] = model.Record{Rkey: rkey, CID: p.newCID(), Value: v}
	p.commit(did)
	return nil
}

// DeleteRecord implements reconcile.PDS.
func (p *PDS) DeleteRecord(_ context.Context, did, rkey, swapCID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refuse(did); err != nil {
		return err
	}
	if r, ok := p.repos[did][rkey]; ok && swapCID != "" && r.CID != swapCID {
		return fmt.Errorf("InvalidSwap: record %s is not %s", rkey, swapCID)
	}
	delete(p.repos[did], rkey)
	p.Deleted = append(p.Deleted, rkey)
	p.commit(did)
	return nil
}

// GetRecord implements reconcile.PDS.
func (p *PDS) GetRecord(_ context.Context, did, rkey string) (*model.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refuse(did); err != nil {
		return nil, err
	}
	if r, ok := p.repos[did][rkey]; ok {
		return &r, nil
	}
	return nil, nil
}

// ListRecords implements reconcile.PDS.
func (p *PDS) ListRecords(_ context.Context, did string) ([]model.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.refuse(did); err != nil {
		return nil, err
	}
	out := make([]model.Record, 0, len(p.repos[did]))
	for _, r := range p.repos[did] {
		out = append(out, r)
	}
	return out, nil
}

// ExportRecords implements reconcile.PDS.
func (p *PDS) ExportRecords(ctx context.Context, did string) ([]model.Record, error) {
	p.mu.Lock()
	p.Exports++
	p.mu.Unlock()
	return p.ListRecords(ctx, did)
}

// RepoStatus implements reconcile.PDS.
func (p *PDS) RepoStatus(_ context.Context, did string) (model.RepoStatus, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if st := p.inactive[did]; st != "" {
		return model.RepoStatus{Status: st}, nil
	}
	rev := p.revs[did]
	if rev == "" {
		rev = "rev000000000000" // the account's empty first commit
	}
	return model.RepoStatus{Active: true, Rev: rev}, nil
}

// ForgetSession implements reconcile.PDS.
func (p *PDS) ForgetSession(context.Context, string) error { return nil }
