package reconciletest

import (
	"context"
	"sync"

	"github.com/whistlegraph/moodsync/reconcile/pdsclient"
)

// Sessions is an in-memory pdsclient.SessionStore: the passwords of the
// accounts a benchmark made, and the sessions the client caches.
type Sessions struct {
	mu        sync.Mutex
	passwords map[string]string
	sessions  map[string]pdsclient.Session
}

var _ pdsclient.SessionStore = (*Sessions)(nil)

// NewSessions returns a session store with no passwords.
func NewSessions() *Sessions {
	return &Sessions{passwords: map[string]string{}, sessions: map[string]pdsclient.Session{}}
}

// SetPassword gives the password of did, for its first login.
func (m *Sessions) SetPassword(did, password string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.passwords[did] = password
}

// Password implements pdsclient.SessionStore.
func (m *Sessions) Password(_ context.Context, did string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.passwords[did], nil
}

// LoadSession implements pdsclient.SessionStore.
func (m *Sessions) LoadSession(_ context.Context, did string) (*pdsclient.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.sessions[did]; ok {
		return &s, nil
	}
	return nil, nil
}

// SaveSession implements pdsclient.SessionStore.
func (m *Sessions) SaveSession(_ context.Context, s pdsclient.Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[s.DID] = s
	return nil
}

// DeleteSession implements pdsclient.SessionStore.
func (m *Sessions) DeleteSession(_ context.Context, did string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sessions, did)
	return nil
}
