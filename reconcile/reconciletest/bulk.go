package reconciletest

import (
	"context"

	"github.com/whistlegraph/moodsync/reconcile/model"
)

// AllBindings returns every binding by user, as mongostore.Store does.
func (s *Store) AllBindings(context.Context) (map[string]model.Binding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]model.Binding, len(s.bindings))
	for u, b := range s.bindings {
		out[u] = b
	}
	return out, nil
}

// MoodDigests returns each user's moods digest, as mongostore.Store does.
func (s *Store) MoodDigests(context.Context) (map[string]string, error) {
	s.mu.Lock()
	byUser := map[string][]*model.Mood{}
	for _, m := range s.moods {
		c := *m
		byUser[m.User] = append(byUser[m.User], &c)
	}
	s.mu.Unlock()
	out := make(map[string]string, len(byUser))
	for u, ms := range byUser {
		out[u] = model.MoodsDigest(ms)
	}
	return out, nil
}
